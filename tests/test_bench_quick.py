"""Every benchmark still runs: ``python -m bench --quick`` (tiny sizes, one round).

The figures of a quick run mean nothing and nothing here looks at them; the point is
that a change to the engine which breaks a benchmark's stand-ins or set-up fails the
suite, instead of being found the next time someone runs ``make bench``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.__main__ import BENCHMARKS
from bench._harness import QUICK_ENV

ROOT = Path(__file__).resolve().parents[1]


def test_every_benchmark_runs_once_in_quick_mode() -> None:
    env = {key: value for key, value in os.environ.items() if key != QUICK_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-5000:]
    assert "FAILED" not in report, report[-5000:]
    assert "Traceback" not in report, report[-5000:]
    for name in BENCHMARKS:
        assert f"running {name} ..." in done.stderr, name
    # Each benchmark printed its result: the in-process table rows and the reports of
    # the ones run apart.
    for line in (
        "initial sync ingest",
        "matrix-nio, parse only",
        "cold start to room list",
        "encrypted cache: ingest",
        "encrypted cache: cold start",
        "encrypted cache: timeline",
        "render 200 formatted messages",
        "search: ingest 2,000 messages, indexed",
        "search: median query over 2,000",
        "decrypt 50 events (olm)",
        "share to 5 devices (vodozemac)",
        "sync of 10 encrypted events (vodozemac)",
        "restore 20 keys (vodozemac)",
        "upload 20 keys (olm)",
        "cold start to first painted room list, 20 cached rooms",
        "start_process: process start to the painted room list, 20 cached rooms",
        "first paint, CPU: ours",
        "whole process (to idle, then exit), CPU: ours",
        "timeline: 1,000-event room vs 100-event room, 3 PageUps each",
        "first sync frames: 20-room first /sync",
        "directory: 300 public rooms vs 100",
        "memory: peak RSS of a new process, 20 rooms",
        "first login: 30 joined rooms, /login to the first room list of 20 rooms",
        "sliding / v2: first list x",
        "images: 40-image room vs 40-message text room",
        "http2: HTTP/2 vs HTTP/1.1 through one TLS front",
    ):
        assert line in done.stdout, line
