"""Run a real Synapse homeserver as a subprocess, for tests and demos.

The harness writes a minimal, fast-starting Synapse configuration (SQLite, a
single plain-HTTP client listener bound to 127.0.0.1, no federation), launches
``python -m synapse.app.homeserver`` with the current interpreter and offers a
few helpers for seeding it: shared-secret user registration, a lazily created
admin account and a tiny JSON-over-HTTP request helper.

Only the standard library is used so that this module can be imported by the
test suite and by the demo without pulling in the client's own stack.

Run ``python -m tui_client.devtools.synapse DIR`` to start a server whose state
lives in ``DIR``; it prints the base URL and runs until interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .children import die_with_parent

__all__ = [
    "RegisteredUser",
    "RegistrationError",
    "SynapseServer",
    "main",
]

ADMIN_LOCALPART: Final = "harness-admin"
"""Localpart of the admin account created lazily by :attr:`SynapseServer.admin_token`."""

ADMIN_PASSWORD: Final = "harness-admin-password"
"""Password of the harness admin account (the server only listens on 127.0.0.1)."""

CONFIG_FILE: Final = "homeserver.yaml"
LOG_CONFIG_FILE: Final = "log_config.yaml"
LOG_FILE: Final = "homeserver.log"
CONSOLE_FILE: Final = "synapse.console.log"
SIGNING_KEY_FILE: Final = "signing.key"
DATABASE_FILE: Final = "homeserver.db"
MEDIA_DIR: Final = "media_store"
PID_FILE: Final = "homeserver.pid"

_GENEROUS: Final[dict[str, float]] = {"per_second": 10_000.0, "burst_count": 100_000}

# Every rate limiter that Synapse 1.163 reads in synapse/config/ratelimiting.py.
# Synapse does not validate these keys: a misspelt one is silently ignored.
_GENEROUS_RATE_LIMITS: Final[dict[str, Any]] = {
    "rc_message": _GENEROUS,
    "rc_registration": _GENEROUS,
    "rc_registration_token_validity": _GENEROUS,
    "rc_login": {
        "address": _GENEROUS,
        "account": _GENEROUS,
        "failed_attempts": _GENEROUS,
    },
    "rc_admin_redaction": _GENEROUS,
    "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
    "rc_joins_per_room": _GENEROUS,
    "rc_key_requests": _GENEROUS,
    "rc_3pid_validation": _GENEROUS,
    "rc_invites": {
        "per_room": _GENEROUS,
        "per_user": _GENEROUS,
        "per_issuer": _GENEROUS,
    },
    "rc_third_party_invite": _GENEROUS,
    "rc_media_create": _GENEROUS,
    "rc_presence": {"per_user": _GENEROUS},
    "rc_delayed_event_mgmt": _GENEROUS,
    "rc_room_creation": _GENEROUS,
    "rc_reports": _GENEROUS,
    "rc_user_directory": _GENEROUS,
    "rc_profile": _GENEROUS,
}

# With rate limiting on, only messages are tightened (so a test can provoke a
# 429 after a handful of sends); everything else keeps Synapse's defaults.
_STRICT_RATE_LIMITS: Final[dict[str, Any]] = {
    "rc_message": {"per_second": 0.5, "burst_count": 3},
}

_LOG_TAIL_LINES: Final = 40

# The server is always on 127.0.0.1: never route through an http_proxy from the
# environment.
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class RegisteredUser:
    """An account created on the harness server, with a logged-in device."""

    user_id: str
    password: str
    access_token: str
    device_id: str
    home_server: str

    @property
    def localpart(self) -> str:
        """The part of :attr:`user_id` between ``@`` and ``:``."""
        return self.user_id[1:].split(":", 1)[0]


class RegistrationError(RuntimeError):
    """Shared-secret registration was refused by the server."""

    def __init__(self, localpart: str, status: int, body: dict[str, Any]) -> None:
        """Build the error from the HTTP ``status`` and JSON ``body`` of the refusal."""
        self.localpart = localpart
        self.status = status
        self.errcode: str | None = body.get("errcode")
        self.error: str | None = body.get("error")
        detail = " ".join(part for part in (self.errcode, self.error or json.dumps(body)) if part)
        super().__init__(f"registering {localpart!r} failed: HTTP {status} {detail}")


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    """Whether ``port`` can currently be bound on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Twisted's listener: ignore TIME_WAIT leftovers of our own polling.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path``, or a note if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _register_cleanup(server: SynapseServer) -> None:
    """Stop ``server`` at interpreter exit, unless it was garbage-collected."""
    ref = weakref.ref(server)

    def _cleanup() -> None:
        srv = ref()
        if srv is not None and srv.is_running:
            with contextlib.suppress(Exception):
                srv.stop(timeout=5)

    atexit.register(_cleanup)


class SynapseServer:
    """A Synapse homeserver running as a child process, with its state in ``base_dir``.

    The configuration is written on the first :meth:`start`; later starts
    (:meth:`restart`) reuse it, including the port, so clients can reconnect to
    the same :attr:`base_url` and find their data (SQLite database and media
    store live in ``base_dir``).
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        server_name: str = "localhost",
        rate_limits: bool = False,
        extra_config: dict[str, Any] | None = None,
        app_service_config_files: list[Path] | None = None,
    ) -> None:
        """Describe a server; nothing is written or started until :meth:`start`.

        Args:
            base_dir: directory holding config, database, media, keys and logs.
            port: TCP port to listen on; picked free on first start if ``None``.
            server_name: the Matrix server name (the part after ``:`` in IDs).
            rate_limits: if false, every rate limiter is made very generous;
                if true, Synapse's defaults apply except ``rc_message``, which
                is tightened to 0.5/s with a burst of 3.
            extra_config: merged over the generated config at the top level.
            app_service_config_files: application service registration files
                (bridges) the server loads and calls.
        """
        self.base_dir = Path(base_dir).resolve()
        self.server_name = server_name
        self.rate_limits = rate_limits
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self.app_service_config_files = [Path(p).resolve() for p in app_service_config_files or ()]
        self.registration_shared_secret = secrets.token_urlsafe(32)
        self._port = port
        self._configured = False
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: RegisteredUser | None = None
        _register_cleanup(self)

    # ------------------------------------------------------------------ paths

    @property
    def config_path(self) -> Path:
        """The generated Synapse config file (JSON, which YAML parsers accept)."""
        return self.base_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        """Synapse's own log file (INFO level)."""
        return self.base_dir / LOG_FILE

    @property
    def console_log_path(self) -> Path:
        """Where the child's stdout and stderr go (tracebacks before logging starts)."""
        return self.base_dir / CONSOLE_FILE

    # ------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The TCP port; known once given to ``__init__`` or after the first start."""
        if self._port is None:
            raise RuntimeError("the port is chosen on first start(); start the server first")
        return self._port

    @property
    def base_url(self) -> str:
        """The client-server API base URL, e.g. ``http://127.0.0.1:8008``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        """Whether the child process is alive (it may still be starting up)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else ``None``."""
        return self._process.pid if self.is_running and self._process else None

    # ---------------------------------------------------------------- config

    def build_config(self) -> dict[str, Any]:
        """The homeserver configuration that :meth:`start` writes (as a dict)."""
        base = self.base_dir
        config: dict[str, Any] = {
            "server_name": self.server_name,
            # Otherwise Synapse advertises https://<server_name>/ in URLs it returns.
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(base / PID_FILE),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(base / DATABASE_FILE)},
            },
            "media_store_path": str(base / MEDIA_DIR),
            "log_config": str(base / LOG_CONFIG_FILE),
            "signing_key_path": str(base / SIGNING_KEY_FILE),
            "registration_shared_secret": self.registration_shared_secret,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_registration": False,
            "room_list_publication_rules": [{"action": "allow"}],
            "alias_creation_rules": [{"action": "allow"}],
            "url_preview_enabled": False,
            "presence": {"enabled": True},
            # Fast password hashing: registrations and logins are much quicker.
            "bcrypt_rounds": 4,
        }
        config.update(_STRICT_RATE_LIMITS if self.rate_limits else _GENEROUS_RATE_LIMITS)
        if self.app_service_config_files:
            config["app_service_config_files"] = [str(p) for p in self.app_service_config_files]
        config.update(self.extra_config)
        return config

    def _log_config(self) -> dict[str, Any]:
        """A Python logging dictConfig sending INFO and above to :attr:`log_path`."""
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                    " - %(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
            "root": {"level": "INFO", "handlers": ["file"]},
        }

    def _previous_port(self) -> int | None:
        """The port of a config left in ``base_dir`` by an earlier run, if any."""
        try:
            previous = json.loads(self.config_path.read_text(encoding="utf-8"))
            port = previous["listeners"][0]["port"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None
        return port if isinstance(port, int) else None

    def _write_config(self) -> None:
        """Write the config and log config files (and pick the port if needed).

        The signing key is not generated here: Synapse's default startup mode
        (generate missing files, then run; the same code path as
        ``--generate-keys``) creates it in the server process itself, which
        saves a second ~2 s interpreter start just to import Synapse.
        """
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / MEDIA_DIR).mkdir(exist_ok=True)
        if self._port is None:
            # Reuse the port of an earlier run in the same directory when we
            # can, so a client's saved homeserver URL keeps working.
            previous = self._previous_port()
            self._port = previous if previous and _port_is_free(previous) else _free_port()
        self.config_path.write_text(json.dumps(self.build_config(), indent=2), encoding="utf-8")
        (self.base_dir / LOG_CONFIG_FILE).write_text(
            json.dumps(self._log_config(), indent=2), encoding="utf-8"
        )
        self._configured = True

    # ------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 60) -> None:
        """Start Synapse and wait until ``/_matrix/client/versions`` answers.

        The first call writes the configuration and generates signing keys.
        Raises ``RuntimeError`` (with the end of the logs) if the process exits
        early or does not answer within ``timeout`` seconds.
        """
        if self.is_running:
            return
        if not self._configured:
            self._write_config()
        with self.console_log_path.open("ab") as console:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "synapse.app.homeserver",
                    "--config-path",
                    str(self.config_path),
                    # No mode flag: the default, generate-missing-and-run, creates
                    # the signing key on first start (the --generate-keys code
                    # path). Passing --generate-missing-and-run explicitly makes
                    # Synapse 1.163 exit: its second argv parse rejects it.
                ],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Ends with us even if we are killed without stopping it (Linux).
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/_matrix/client/versions"
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise RuntimeError(
                    f"Synapse exited with code {code} during startup.\n{self._log_tails()}"
                )
            try:
                with _OPENER.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                self._kill()
                raise RuntimeError(
                    f"Synapse did not answer {url} within {timeout:g}s.\n{self._log_tails()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 20) -> None:
        """Stop Synapse: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                return
        self._process = None

    def restart(self, timeout: float = 60) -> None:
        """Stop and start again with the same config, port and data."""
        self.stop()
        self.start(timeout=timeout)

    def _kill(self) -> None:
        """SIGKILL the child's process group and reap it."""
        process = self._process
        if process is None:
            return
        self._signal(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        self._process = None

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        """Send ``sig`` to the process group led by ``process`` (it has its own)."""
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    def _log_tails(self) -> str:
        """The last lines of Synapse's log and of its console output."""
        parts = []
        for label, path in (("homeserver.log", self.log_path), ("console", self.console_log_path)):
            if path.exists():
                parts.append(f"--- last {_LOG_TAIL_LINES} lines of {label} ({path}) ---")
                parts.append(_tail(path))
        return "\n".join(parts) if parts else "(no log output)"

    def __enter__(self) -> SynapseServer:
        """Start the server and return it."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Show the directory, URL (if known) and whether it runs."""
        url = self.base_url if self._port is not None else "port not chosen"
        state = "running" if self.is_running else "stopped"
        return f"<SynapseServer {self.base_dir} {url} {state}>"

    # ----------------------------------------------------------------- HTTP

    def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
        *,
        timeout: float = 30,
    ) -> tuple[int, dict[str, Any]]:
        """Send a JSON request to ``base_url + path``; return ``(status, json)``.

        ``path`` must already be URL-quoted (room IDs contain ``!`` and ``:``,
        use ``urllib.parse.quote(room_id, safe="")``). HTTP error statuses are
        returned, not raised; a non-JSON or non-object body is returned as
        ``{"_raw": text}``. Connection failures still raise ``URLError``.
        """
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method.upper())
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                status: int = response.status
                raw: bytes = response.read()
        except urllib.error.HTTPError as err:
            status = err.code
            with err:  # its socket, which a traceback cycle would keep open until a gc pass
                raw = err.read()
        text = raw.decode("utf-8", errors="replace")
        if not text:
            return status, {}
        try:
            parsed = json.loads(text)
        except ValueError:
            return status, {"_raw": text}
        if not isinstance(parsed, dict):
            return status, {"_raw": text}
        return status, parsed

    # ---------------------------------------------------------- registration

    def register_user(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> RegisteredUser:
        """Create an account with the shared-secret admin registration API.

        Returns the new user with the access token and device of the login that
        registration performs. Raises :class:`RegistrationError` if the server
        refuses (e.g. ``M_USER_IN_USE`` when the localpart is taken).
        """
        status, nonce_body = self.request_json("GET", "/_synapse/admin/v1/register")
        nonce = nonce_body.get("nonce")
        if status != 200 or not isinstance(nonce, str):
            raise RegistrationError(localpart, status, nonce_body)
        mac = hmac.new(self.registration_shared_secret.encode("utf-8"), digestmod=hashlib.sha1)
        mac.update(nonce.encode("utf-8"))
        mac.update(b"\x00")
        mac.update(localpart.encode("utf-8"))
        mac.update(b"\x00")
        mac.update(password.encode("utf-8"))
        mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        payload: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            payload["displayname"] = displayname
        status, body = self.request_json("POST", "/_synapse/admin/v1/register", payload)
        if status != 200:
            raise RegistrationError(localpart, status, body)
        return RegisteredUser(
            user_id=body["user_id"],
            password=password,
            access_token=body["access_token"],
            device_id=body["device_id"],
            home_server=body.get("home_server", self.server_name),
        )

    def login(
        self, localpart: str, password: str, *, device_id: str | None = None
    ) -> RegisteredUser:
        """Log an existing account in with a password; returns a new device's token."""
        payload: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        }
        if device_id is not None:
            payload["device_id"] = device_id
        status, body = self.request_json("POST", "/_matrix/client/v3/login", payload)
        if status != 200:
            raise RuntimeError(f"login as {localpart!r} failed: HTTP {status} {body}")
        return RegisteredUser(
            user_id=body["user_id"],
            password=password,
            access_token=body["access_token"],
            device_id=body["device_id"],
            home_server=body.get("home_server", self.server_name),
        )

    @property
    def admin_user(self) -> RegisteredUser:
        """The server admin ``harness-admin``, registered (or logged in) on first use."""
        if self._admin is None:
            try:
                self._admin = self.register_user(ADMIN_LOCALPART, ADMIN_PASSWORD, admin=True)
            except RegistrationError as exc:
                if exc.errcode != "M_USER_IN_USE":
                    raise
                # Left over from an earlier run in the same base_dir.
                self._admin = self.login(ADMIN_LOCALPART, ADMIN_PASSWORD)
        return self._admin

    @property
    def admin_token(self) -> str:
        """An access token of the server admin ``harness-admin`` (created lazily)."""
        return self.admin_user.access_token


def main(argv: list[str] | None = None) -> int:
    """Start a server in the directory given on the command line; run until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tui_client.devtools.synapse",
        description="Run a local Synapse homeserver for development.",
    )
    parser.add_argument("directory", type=Path, help="where config, database and logs live")
    parser.add_argument("--port", type=int, default=None, help="port (default: free one)")
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="keep Synapse's rate limits (messages tightened to 0.5/s, burst 3)",
    )
    args = parser.parse_args(argv)
    server = SynapseServer(
        args.directory,
        port=args.port,
        server_name=args.server_name,
        rate_limits=args.rate_limits,
    )

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Synapse runs in its own process group, so make sure SIGTERM/SIGHUP (and a
    # SIGINT that a non-interactive shell would otherwise have us ignore) stop
    # it rather than leaving it orphaned.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    started = time.monotonic()
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()
        return 130
    print(server.base_url, flush=True)
    print(
        f"Synapse {server.server_name} up in {time.monotonic() - started:.1f}s; "
        f"logs in {server.log_path}. Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while server.is_running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
    print(f"Synapse exited unexpectedly; see {server.log_path}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
