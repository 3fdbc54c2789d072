"""``python -m tui_client`` / ``tui-client``: run the terminal client."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from .engine.paths import data_dir


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the app."""
    parser = argparse.ArgumentParser(prog="tui-client", description="A terminal chat client for Matrix.")
    parser.add_argument("--profile", default="default", help="account profile name (one account each)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder (default: platform data dir)")
    parser.add_argument("--homeserver", default="", help="homeserver URL to prefill on the login screen")
    parser.add_argument("--user", default="", help="user ID to prefill on the login screen")
    parser.add_argument("--log", type=Path, default=None, help="write a debug log to this file")
    args = parser.parse_args(argv)
    base = args.data_dir or data_dir()
    log_path = args.log or (base / args.profile / "client.log")
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    logging.basicConfig(
        filename=str(log_path),
        level=logging.DEBUG if os.environ.get("TUI_CLIENT_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .ui.app import run_app

    run_app(profile=args.profile, base_dir=args.data_dir, homeserver=args.homeserver, user_id=args.user)


if __name__ == "__main__":
    main()
