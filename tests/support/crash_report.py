"""Print, in a few lines, where a pytest run died (tests/support/crash_log.py).

``python -m tests.support.crash_report DIR``: nothing if the process did not die
(faulthandler wrote no stack). Otherwise each thread's innermost frames, the
thread that died first and in full depth up to a limit, and on the last line the
test that was running, so a log that keeps only its tail still names it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .crash_log import CURRENT_TEST, DUMP

THREAD_FRAMES = 6
CURRENT_FRAMES = 25
# pytest's and pluggy's own frames say nothing about the crash.
NOISE = ("/_pytest/", "/pluggy/", "<frozen runpy>")


def blocks(dump: str) -> tuple[list[str], list[list[str]]]:
    """The dump's first lines (the error) and one list of lines per thread."""
    head: list[str] = []
    threads: list[list[str]] = []
    for line in dump.splitlines():
        if line.startswith(("Thread 0x", "Current thread 0x")):
            threads.append([line])
        elif threads and line.startswith("  "):
            if not any(part in line for part in NOISE):
                threads[-1].append(line)
        elif not threads and line.strip():
            head.append(line)
    return head, threads


def report(folder: Path) -> str:
    dump_path = folder / DUMP
    dump = dump_path.read_text(errors="replace") if dump_path.exists() else ""
    if not dump.strip():
        return ""
    where = folder / CURRENT_TEST
    test = where.read_text().strip() if where.exists() else ""
    head, threads = blocks(dump)
    current = [t for t in threads if t[0].startswith("Current")]
    others = [t for t in threads if not t[0].startswith("Current")]
    lines = ["", "=== the pytest process died ===", *head]
    for thread in others:
        lines += thread[: 1 + THREAD_FRAMES]
        if len(thread) > 1 + THREAD_FRAMES:
            lines.append(f"  ... {len(thread) - 1 - THREAD_FRAMES} more frames")
    for thread in current:
        lines.append("The thread that died:")
        lines += thread[: 1 + CURRENT_FRAMES]
    lines.append(f"The test running when it died: {test or '(none had started)'}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = report(Path(argv[1]))
    if text:
        print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
