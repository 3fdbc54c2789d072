"""The real client in a pseudo-terminal: bytes in at a terminal's speed, the screen read back.

Pilot hands keys to the app one at a time and waits for each to be processed; a terminal
does not wait. :class:`PtyApp` spawns ``python -m tui_client`` on a pty of a given size,
writes raw bytes (a whole burst in one ``write``), and keeps a VT100 screen (pyte) fed
from the app's output in a reader thread, so a test can wait for text to appear on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import pyte

__all__ = ["PtyApp"]

#: Picture sequences (kitty graphics APC, sixel DCS, iTerm2's OSC 1337), kept in
#: ``output`` but not fed to pyte, which would print their payload as text.
_GRAPHICS = re.compile(rb"\x1b_G.*?\x1b\\|\x1bP[0-9;]*q.*?\x1b\\|\x1b\]1337;.*?\x07", re.DOTALL)
_UNFINISHED = re.compile(rb"\x1b(_G|P[0-9;]*q|\]1337;)")


class PtyApp:
    """One process on a pseudo-terminal, with a screen that follows its output."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        size: tuple[int, int] = (80, 24),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        answers: dict[bytes, bytes] | None = None,
    ) -> None:
        """``answers``: what the terminal answers to a query the app writes (the first
        time each query is seen), as a terminal that identifies itself."""
        self.answers = dict(answers or {})
        self._held = b""
        self.columns, self.rows = size
        self.screen = pyte.Screen(self.columns, self.rows)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self.output = bytearray()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.columns, 0, 0))
        full_env = dict(os.environ)
        full_env.update(
            {"TERM": "xterm-256color", "COLUMNS": str(self.columns), "LINES": str(self.rows)}
        )
        full_env.pop("TEXTUAL", None)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="pty-reader", daemon=True)
        self._reader.start()

    @classmethod
    def client(
        cls,
        *args: str,
        size: tuple[int, int] = (80, 24),
        env: dict[str, str] | None = None,
        answers: dict[bytes, bytes] | None = None,
    ) -> PtyApp:
        """``python -m tui_client`` with these arguments."""
        return cls([sys.executable, "-m", "tui_client", *args], size=size, env=env, answers=answers)

    @classmethod
    def for_account(
        cls,
        data_dir: str | Path,
        homeserver: str,
        user_id: str,
        *,
        size: tuple[int, int] = (80, 24),
        env: dict[str, str] | None = None,
        answers: dict[bytes, bytes] | None = None,
    ) -> PtyApp:
        """The client of one account: its data folder, homeserver and user ID given on the
        command line (the login screen then asks for the password)."""
        return cls.client(
            "--data-dir",
            str(data_dir),
            "--homeserver",
            homeserver,
            "--user",
            user_id,
            size=size,
            env=env,
            answers=answers,
        )

    def _read_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self._master, 65536)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                self.output += data
                self._stream.feed(self._screen_bytes(data))
                # Answered in the order asked, as a terminal does.
                asked = sorted(
                    (query for query in self.answers if query in self.output),
                    key=self.output.index,
                )
            for query in asked:
                self.write(self.answers.pop(query))

    def _screen_bytes(self, data: bytes) -> bytes:
        data = self._held + data
        self._held = b""
        data = _GRAPHICS.sub(b"", data)
        unfinished = _UNFINISHED.search(data)
        if unfinished is not None:
            data, self._held = data[: unfinished.start()], data[unfinished.start() :]
        return data

    # -- input ------------------------------------------------------------------------

    def write(self, data: bytes | str) -> None:
        """Write all of ``data`` to the terminal at once (as fast as the kernel takes it)."""
        raw = data.encode() if isinstance(data, str) else data
        view = memoryview(raw)
        while view:
            written = os.write(self._master, view)
            view = view[written:]

    # -- the screen ---------------------------------------------------------------------

    def text(self) -> str:
        """The screen as lines of text."""
        with self._lock:
            return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, what: str | Callable[[str], bool], timeout: float = 30.0) -> str:
        """Wait until the screen shows ``what`` (a substring or a predicate); return the screen."""
        deadline = time.monotonic() + timeout
        check = (lambda screen: what in screen) if isinstance(what, str) else what
        while time.monotonic() < deadline:
            screen = self.text()
            if check(screen):
                return screen
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"the screen never showed {what!r} (exit code {self.process.poll()}); it shows:\n{self.text()}"
        )

    # -- the end --------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> int | None:
        """End the app (SIGTERM, then SIGKILL) and its process group; return its exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        self._closed.set()
        self._reader.join(2)
        with contextlib.suppress(OSError):
            os.close(self._master)
        return self.process.returncode

    def __enter__(self) -> PtyApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
