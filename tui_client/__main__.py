"""``python -m tui_client`` / ``tui-client``: run the terminal client."""

from __future__ import annotations

import argparse
import locale
import logging
import os
import re
from pathlib import Path

from .config import config_path, load_config, write_example
from .engine.paths import data_dir

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Defence in depth: nothing in the client logs a credential, but a library might put one
# in a message (an ``Authorization`` header, a URL with ``?access_token=``).
_CREDENTIALS = re.compile(
    r"(?i)(bearer\s+|(?:access|refresh)_token[\"']?\s*[=:]\s*[\"']?|password[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;)}]+"
)


class RedactCredentials(logging.Filter):
    """Replaces what follows ``Bearer``, ``access_token=`` or ``password:`` with ``<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; never drops a record."""
        message = record.getMessage()
        cleaned = _CREDENTIALS.sub(r"\1<redacted>", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def open_private_log(path: Path) -> logging.FileHandler:
    """A handler appending to ``path``, which is created, or narrowed, to mode 0600.

    The log names rooms, people and servers: only its owner may read it, whatever the
    umask, and a log left readable by an older version is narrowed too.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactCredentials())
    return handler


def configure_logging(path: Path, *, debug: bool) -> logging.FileHandler:
    """Send the process's log records to ``path`` (mode 0600); DEBUG and up if ``debug``."""
    handler = open_private_log(path)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the app."""
    parser = argparse.ArgumentParser(
        prog="tui-client", description="A terminal chat client for Matrix."
    )
    parser.add_argument(
        "--profile", default="default", help="account profile name (one account each)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default: platform data dir)"
    )
    parser.add_argument(
        "--homeserver", default="", help="homeserver URL to prefill on the login screen"
    )
    parser.add_argument("--user", default="", help="user ID to prefill on the login screen")
    parser.add_argument(
        "--log", type=Path, default=None, help="write a debug log to this file (mode 0600)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $TUI_CLIENT_CONFIG, else config.toml in the config folder)",
    )
    parser.add_argument(
        "--write-config",
        action="store_true",
        help="write a commented config file with every setting at its default, then exit",
    )
    args = parser.parse_args(argv)
    path = config_path(args.config)
    if args.write_config:
        if not write_example(path):
            parser.exit(1, f"{path} exists already; not overwritten.\n")
        parser.exit(0, f"Wrote {path}\n")
    try:
        # Month and day names, and "locale" time format, follow LC_TIME.
        locale.setlocale(locale.LC_TIME, "")
    except locale.Error:
        pass
    config = load_config(path)
    base = args.data_dir or data_dir()
    log_path = args.log or (base / args.profile / "client.log")
    configure_logging(log_path, debug=bool(os.environ.get("TUI_CLIENT_DEBUG")))
    from .engine import gc_policy, method_cache

    # Few young collections while the app's modules load (ended when the app mounts), and
    # the methods of their dataclasses compiled by an earlier start, not again; nor
    # Textual's stylesheets parsed again (ui/css_cache.py).
    gc_policy.starting()
    method_cache.install()
    from .ui import css_cache

    css_cache.install()
    from .engine.opener import remove_stale_folders
    from .ui.app import run_app

    # Files opened with o by a run that crashed (their copies are private, but not kept).
    remove_stale_folders()

    run_app(
        profile=args.profile,
        base_dir=args.data_dir,
        homeserver=args.homeserver,
        user_id=args.user,
        config=config,
    )


if __name__ == "__main__":
    main()
