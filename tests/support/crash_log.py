"""Where the suite was when its process died.

A C abort or a segfault in the pytest process (a library's assertion, a Rust panic
that cannot unwind, a double free) ends the run with no report: pytest's own
faulthandler prints every thread's stack to stderr, and a CI log that keeps only
its tail shows the main thread's pytest frames, not the test nor the thread that
died. With ``TUI_CLIENT_CRASH_DIR`` set (``make test`` sets it), the conftest
keeps two files there:

- ``current-test``: the node id of the test running, rewritten as each starts;
- ``faulthandler.log``: faulthandler's dump of every thread, if the process dies.

``python -m tests.support.crash_report DIR`` (run by ``make test`` when pytest
fails) prints them in a short form, the test's name on the last line.
"""

from __future__ import annotations

import faulthandler
import os
from pathlib import Path
from typing import IO

CRASH_DIR_ENV = "TUI_CLIENT_CRASH_DIR"
CURRENT_TEST = "current-test"
DUMP = "faulthandler.log"


class CrashLog:
    """The two files: the running test's id and faulthandler's target."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._where = os.open(folder / CURRENT_TEST, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._dump: IO[str] = open(folder / DUMP, "w")  # noqa: SIM115 (open until exit)
        faulthandler.enable(self._dump, all_threads=True)

    def entering(self, nodeid: str, phase: str) -> None:
        data = f"{nodeid} ({phase})\n".encode()
        os.ftruncate(self._where, 0)
        os.pwrite(self._where, data, 0)

    def close(self) -> None:
        faulthandler.disable()
        self._dump.close()
        os.close(self._where)


def from_environment() -> CrashLog | None:
    folder = os.environ.get(CRASH_DIR_ENV)
    return CrashLog(Path(folder)) if folder else None
