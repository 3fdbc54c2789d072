"""``make demo``: a local homeserver with people, rooms and a bot, and the client on top.

``python -m tui_client.devtools.demo`` keeps everything in ``./.demo`` (or
``$TUI_CLIENT_DEMO_DIR``):

* ``synapse/``: a Synapse homeserver, started (or restarted, on the same port)
  and seeded once with :func:`~tui_client.devtools.seed.seed`;
* ``bot/`` and ``bot.log``: the demo bot (:mod:`~tui_client.devtools.bot`),
  run as a child process;
* ``data/``: the client's data folder, where alice is logged in as the
  profile ``demo``.

Then it starts the terminal UI. Whatever way the UI ends (quit, Ctrl-C, a
crash), the bot and the homeserver are stopped. ``--no-ui`` does everything but
the UI and waits for Ctrl-C; ``--reset`` deletes the demo folder first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from ..engine.client import LoginError, MatrixClient
from .bot import PASSWORD_ENV
from .children import die_with_parent
from .seed import SeedError, load_world, seed
from .synapse import SynapseServer

__all__ = ["DEMO_DIR_ENV", "DEMO_PROFILE", "DemoPaths", "main"]

DEMO_DIR_ENV: Final = "TUI_CLIENT_DEMO_DIR"
DEMO_PROFILE: Final = "demo"
"""The client profile alice is logged in as (``run_app(profile="demo", ...)``)."""

_TAG_FILE: Final = ".tui_client_demo"
_BOT_READY_TIMEOUT: Final = 60.0
_BOT_STOP_TIMEOUT: Final = 10.0
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps its pieces."""

    root: Path

    @classmethod
    def from_environment(cls) -> DemoPaths:
        """``$TUI_CLIENT_DEMO_DIR``, else ``.demo`` in the current directory."""
        return cls(Path(os.environ.get(DEMO_DIR_ENV) or ".demo").resolve())

    @property
    def synapse(self) -> Path:
        """The homeserver's config, database, media and logs."""
        return self.root / "synapse"

    @property
    def data(self) -> Path:
        """The client's data folder (``base_dir`` of the ``demo`` profile)."""
        return self.root / "data"

    @property
    def bot_data(self) -> Path:
        """The bot's session and cache."""
        return self.root / "bot"

    @property
    def bot_log(self) -> Path:
        """The bot's output."""
        return self.root / "bot.log"

    @property
    def bot_pid(self) -> Path:
        """The running bot's process ID."""
        return self.root / "bot.pid"

    @property
    def synapse_pid(self) -> Path:
        """The running homeserver's process ID (Synapse writes none unless daemonised)."""
        return self.root / "synapse.pid"

    @property
    def bot_ready(self) -> Path:
        """Written by the bot once it is online."""
        return self.root / "bot.ready"

    @property
    def tag(self) -> Path:
        """Marks the folder as the demo's own, so ``--reset`` may delete it."""
        return self.root / _TAG_FILE


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


def _say(text: str = "", stream: TextIO | None = None) -> None:
    # The terminal may be gone (closed, hung up): that must not stop the clean-up.
    with contextlib.suppress(OSError, ValueError):
        print(text, file=stream or sys.stdout, flush=True)


def _prepare_root(paths: DemoPaths, reset: bool) -> None:
    root = paths.root
    if reset and root.exists():
        if not paths.tag.exists() and any(root.iterdir()):
            raise DemoError(f"{root} is not empty and was not created by the demo; not deleting it")
        _stop_leftovers(paths)
        shutil.rmtree(root)
        _say(f"Deleted {root}")
    if root.exists() and any(root.iterdir()) and not paths.tag.exists():
        raise DemoError(f"{root} is not empty and was not created by the demo; set ${DEMO_DIR_ENV}")
    root.mkdir(parents=True, exist_ok=True)
    paths.tag.write_text("Created by python -m tui_client.devtools.demo\n", encoding="utf-8")


def _process_args(pid: int) -> str | None:
    """The command line of a live process, or ``None`` if there is none."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    result = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def _stop_stale(pid_file: Path, needle: str, what: str) -> None:
    """Stop a process an earlier, killed demo left running (if its command line matches)."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return
    args = _process_args(pid)
    if args is None:
        pid_file.unlink(missing_ok=True)
        return
    if needle not in args:
        return
    _say(f"Stopping the {what} an earlier demo left running (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _process_args(pid) is not None:
        time.sleep(0.1)
    if _process_args(pid) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _stop_leftovers(paths: DemoPaths) -> None:
    _stop_stale(paths.bot_pid, "tui_client.devtools.bot", "bot")
    _stop_stale(paths.synapse_pid, str(paths.synapse), "homeserver")


class _Bot:
    """The bot as a child process, its output in ``bot.log``."""

    def __init__(self, paths: DemoPaths) -> None:
        self.paths = paths
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, homeserver: str, user_id: str, password: str) -> None:
        self.paths.bot_ready.unlink(missing_ok=True)
        env = dict(os.environ)
        # The bot's token stays in its own folder (mode 0600), not in the user's keyring.
        env.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        env[PASSWORD_ENV] = password
        command = [
            sys.executable,
            "-m",
            "tui_client.devtools.bot",
            "--homeserver",
            homeserver,
            "--user",
            user_id,
            "--data-dir",
            str(self.paths.bot_data),
            "--ready-file",
            str(self.paths.bot_ready),
        ]
        with self.paths.bot_log.open("ab") as log:
            log.write(
                f"\n--- demo started the bot at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
            )
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own group: a Ctrl-C meant for the UI must not reach it; we stop it,
                # and the kernel does if we die without doing so (Linux).
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        self.paths.bot_pid.write_text(f"{self.process.pid}\n", encoding="utf-8")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the bot is online; false if it exited or took too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.paths.bot_ready.exists():
                return True
            if not self.running:
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_BOT_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.process = None
        self.paths.bot_pid.unlink(missing_ok=True)
        self.paths.bot_ready.unlink(missing_ok=True)


async def _ensure_session(homeserver: str, user_id: str, password: str, data: Path) -> bool:
    """Log alice in as the ``demo`` profile unless a usable session is saved; true if it logged in."""
    saved = MatrixClient.restore(profile=DEMO_PROFILE, base_dir=data)
    if saved is not None:
        usable = saved.user_id == user_id and saved.info.homeserver.rstrip(
            "/"
        ) == homeserver.rstrip("/")
        await saved.close()
        if usable:
            return False
    client = await MatrixClient.login(
        user_id,
        password,
        homeserver=homeserver,
        profile=DEMO_PROFILE,
        base_dir=data,
        device_name="tui_client demo",
    )
    await client.close()
    return True


def _launch_ui(data: Path) -> bool:
    """Run the terminal UI until it quits."""
    # The one place devtools reaches the UI (an explicit exception in pyproject's
    # import-linter contract); the rest of devtools stays headless.
    from ..ui.app import run_app

    run_app(profile=DEMO_PROFILE, base_dir=data)
    return True


def _wait_headless(server: SynapseServer, bot: _Bot) -> None:
    """Wait for Ctrl-C (a ``KeyboardInterrupt``), or until Synapse dies."""
    warned = False
    while server.is_running:
        if not bot.running and not warned:
            _say(f"The bot stopped; see {bot.paths.bot_log}", sys.stderr)
            warned = True
        time.sleep(0.5)
    _say(f"Synapse exited unexpectedly; see {server.log_path}", sys.stderr)


def _banner(paths: DemoPaths, server: SynapseServer, user_lines: list[str], timings: str) -> None:
    _say()
    _say("tui_client demo")
    _say(f"  homeserver  {server.base_url}   (Synapse; log {server.log_path})")
    for line in user_lines:
        _say(line)
    _say(f"  bot log     {paths.bot_log}")
    _say(f"  client data {paths.data}   (profile {DEMO_PROFILE!r})")
    _say(f"  {timings}")
    _say()


def run(paths: DemoPaths, *, ui: bool, reset: bool) -> int:
    """Bring the demo up, run the UI (or wait), and tear it down; the exit status."""
    started = time.monotonic()
    _prepare_root(paths, reset)
    _stop_leftovers(paths)
    server = SynapseServer(paths.synapse)
    bot = _Bot(paths)
    try:
        _say(f"Starting Synapse in {paths.synapse} ...")
        server.start()
        paths.synapse_pid.write_text(f"{server.pid}\n", encoding="utf-8")
        server_up = time.monotonic()
        if load_world(server) is None:
            _say("Seeding the demo world (first run only, about 10-20 s) ...")
        try:
            world = seed(server)
        except SeedError as error:
            raise DemoError(f"seeding failed: {error}\nStart from scratch with --reset.") from error
        seeded = time.monotonic()
        # The seeding session of the demo's own account made no keys: end it, so the devices
        # screen (F6) lists only the client's session (an error means it ended before).
        server.request_json("POST", "/_matrix/client/v3/logout", {}, world.alice.access_token)
        bot.start(server.base_url, world.bot.user_id, world.bot.password)
        logged_in = asyncio.run(
            _ensure_session(server.base_url, world.alice.user_id, world.alice.password, paths.data)
        )
        if not bot.wait_ready(_BOT_READY_TIMEOUT):
            _say(f"Warning: the bot is not online; see {paths.bot_log}", sys.stderr)
        ready = time.monotonic()
        users = [
            f"  you         {world.alice.user_id}  password {world.alice.password}"
            + ("  (logged in now)" if logged_in else "")
        ]
        for name in ("bob", "carol", "dave"):
            user = world.users[name]
            users.append(f"  also        {user.user_id}  password {user.password}")
        users.append(f"  bot         {world.bot.user_id}  (message it, or type !help in General)")
        timings = (
            f"ready in {ready - started:.1f}s: Synapse {server_up - started:.1f}s, "
            f"seed {seeded - server_up:.1f}s, bot and login {ready - seeded:.1f}s"
        )
        _banner(paths, server, users, timings)
        if ui and _launch_ui(paths.data):
            return 0
        if ui:
            _say("The terminal UI (tui_client.ui.app) is not installed; running headless.")
        _say("Running without the UI. Ctrl-C to stop.")
        _wait_headless(server, bot)
        return 1
    except KeyboardInterrupt:
        _say()
    except (DemoError, LoginError) as error:
        _say(f"demo: {error}", sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not leave the children running.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
        try:
            _say("Stopping the bot and Synapse ...")
            try:
                bot.stop()
            finally:
                server.stop()
                paths.synapse_pid.unlink(missing_ok=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tui_client.devtools.demo [--no-ui] [--reset]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tui_client.devtools.demo",
        description=(
            "Run the client against a local demo homeserver with seeded rooms and a bot. "
            f"Everything lives in ./.demo (or ${DEMO_DIR_ENV})."
        ),
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="start everything but the UI; wait for Ctrl-C"
    )
    parser.add_argument("--reset", action="store_true", help="delete the demo folder first")
    args = parser.parse_args(argv)

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM and SIGHUP (and SIGINT, which a non-interactive shell may have us
    # ignore) end the demo through the same clean-up as Ctrl-C.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    try:
        return run(DemoPaths.from_environment(), ui=not args.no_ui, reset=args.reset)
    except DemoError as error:
        _say(f"demo: {error}", sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
