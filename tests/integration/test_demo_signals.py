"""``make demo`` ends with everything it started, however it is ended.

The demo launcher (``python -m tui_client.devtools.demo``) runs on a pseudo-terminal
that is its controlling terminal, with the UI up, Synapse and the bot running. Then it
gets SIGHUP, SIGTERM or SIGINT, its terminal is closed (the kernel hangs it up), or it
is killed outright (SIGKILL, no clean-up at all): in every case the launcher, the bot
and Synapse must all be gone within a deadline. The first start seeds the demo world
(``--no-ui``, ended by SIGTERM: the headless case); the others reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_client.devtools.demo import DEMO_DIR_ENV, DemoPaths

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0
END_TIMEOUT = 40.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (whatever session or group it moved to)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class DemoOnPty:
    """The demo launcher with a pseudo-terminal as its controlling terminal."""

    def __init__(self, demo_dir: Path, *args: str) -> None:
        self.paths = DemoPaths(demo_dir)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = dict(os.environ)
        env.update(
            {
                DEMO_DIR_ENV: str(demo_dir),
                "TERM": "xterm-256color",
                "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            }
        )
        env.pop("TEXTUAL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tui_client.devtools.demo", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=env,
            # A session of its own whose controlling terminal is the pty, as a login
            # shell's would be: closing the master hangs it up.
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.master: int | None = master
        self.output = bytearray()
        self.started: set[int] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Keep the terminal drained, as a terminal emulator does.
        while self.master is not None:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def tail(self) -> str:
        return bytes(self.output[-3000:]).decode("utf-8", "replace")

    def wait_ready(self, *, ui: bool) -> set[int]:
        """Wait until the bot is online (and the UI has drawn); the processes started."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the demo exited early:\n{self.tail()}"
            drawn = not ui or b"\x1b[?1049h" in self.output  # the UI took the screen
            if self.paths.bot_ready.exists() and self.paths.synapse_pid.exists() and drawn:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the demo did not come up:\n{self.tail()}")
        if ui:
            time.sleep(2.0)  # the UI's first screen and its first sync
        started = _descendants(self.process.pid)
        bot = int(self.paths.bot_pid.read_text(encoding="utf-8"))
        synapse = int(self.paths.synapse_pid.read_text(encoding="utf-8"))
        assert {bot, synapse} <= started, (bot, synapse, started)
        self.started = started | {self.process.pid}
        return self.started

    def close_terminal(self) -> None:
        master, self.master = self.master, None
        if master is not None:
            os.close(master)

    def kill_all(self) -> None:
        for pid in {self.process.pid, *self.started, *_descendants(self.process.pid)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _assert_all_end(demo: DemoOnPty, pids: set[int], how: str) -> None:
    deadline = time.monotonic() + END_TIMEOUT
    while time.monotonic() < deadline:
        demo.process.poll()
        alive = {pid for pid in pids if _alive(pid)}
        if not alive:
            return
        time.sleep(0.2)
    names = {}
    for pid in alive:
        with contextlib.suppress(OSError):
            names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
    raise AssertionError(f"after {how}, still running: {names}\n{demo.tail()}")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A seeded demo folder; seeding it is the headless SIGTERM case."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    demo = DemoOnPty(folder, "--no-ui")
    try:
        pids = demo.wait_ready(ui=False)
        os.kill(demo.process.pid, signal.SIGTERM)
        _assert_all_end(demo, pids, "SIGTERM to the headless demo")
    finally:
        demo.kill_all()
        demo.close_terminal()
    yield folder


def test_the_headless_demo_ends_everything_on_sigterm(demo_dir: Path) -> None:
    # What the fixture did; named here so that a failure there reads as this test's.
    assert (demo_dir / "synapse").is_dir()
    assert not DemoPaths(demo_dir).bot_pid.exists()
    assert not DemoPaths(demo_dir).synapse_pid.exists()


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "SIGINT", "terminal closed", "SIGKILL"])
def test_the_demo_ends_everything_it_started(demo_dir: Path, how: str) -> None:
    demo = DemoOnPty(demo_dir)
    try:
        pids = demo.wait_ready(ui=True)
        if how == "terminal closed":
            demo.close_terminal()
        else:
            os.kill(demo.process.pid, getattr(signal, how))
        _assert_all_end(demo, pids, how)
        if how != "SIGKILL":
            assert demo.process.wait(timeout=5) is not None
    finally:
        demo.kill_all()
        demo.close_terminal()
        with contextlib.suppress(subprocess.TimeoutExpired):
            demo.process.wait(timeout=5)
