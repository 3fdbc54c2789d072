"""Memory: peak RSS of a first sync of 1,000 rooms, and of a restart from that cache.

Each case runs in a new interpreter (``python -c``) and reports its own peak resident
set (``VmHWM`` in ``/proc/self/status``, KiB), so no case sees another's heap:

| case | what the child does |
| --- | --- |
| ``interpreter + payload`` (baseline) | reads the raw ``/sync`` bytes and ``json.loads`` them |
| ``first sync`` | the ingest bench's ``ours`` case: a new cache, ``MatrixClient._ingest_raw`` of the raw bytes (parse, store, encryption hook), the room list |
| ``restart from cache`` | the cold-start engine case: ``MatrixClient.restore`` of a warm (encrypted) profile, ``open()``, the room list |

Goals (issue 13): the first sync below 150 MB, the restart 70-90 MB. Engine only: the
Textual UI adds its own ~30-40 MB on top of either.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ._harness import sized
from .cold_start import KEYRING_ENV, prepare_warm_profile
from .synthetic import DEFAULT_ROOMS, initial_sync, payload_stats

ROUNDS = sized(3, 1)
ROOMS = sized(DEFAULT_ROOMS, 20)

# VmHWM, the high-water mark of this address space: ``ru_maxrss`` would carry the
# parent's peak over (Linux keeps it across fork and exec).
_PEAK = (
    "print('peak', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
)

_CHILD_BASE = f"""
import json, sys
raw = open(sys.argv[1], 'rb').read()
data = json.loads(raw)
{_PEAK}
"""

# The payload's event count comes from the parent: counting it here would decode the
# whole payload (the baseline's 183 MB) in the process being measured.
_CHILD_FIRST_SYNC = f"""
import sys
from pathlib import Path
from bench.ingest import ours_case
raw = open(sys.argv[1], 'rb').read()
ours_case(raw, int(sys.argv[3]))(Path(sys.argv[2]))
{_PEAK}
"""

_CHILD_RESTART = f"""
import asyncio, sys
from pathlib import Path
from bench._harness import Stopwatch
from bench.cold_start import _engine_start, use_file_secrets
use_file_secrets()
async def go():
    client = await _engine_start(Path(sys.argv[1]), Stopwatch())
    await client.close()
asyncio.run(go())
{_PEAK}
"""


def _peak_mb(code: str, *args: str) -> float:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, **KEYRING_ENV},
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"child failed: {done.stderr[-3000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("peak "):
            return int(line.split()[1]) / 1024  # KiB on Linux
    raise AssertionError(f"child printed no peak: {done.stdout[-500:]}")


def run(rounds: int = ROUNDS, rooms: int = ROOMS) -> dict[str, list[float]]:
    """Peak RSS in MB of each case, per round."""
    peaks: dict[str, list[float]] = {
        "interpreter + payload": [],
        "first sync": [],
        "restart from cache": [],
    }
    with tempfile.TemporaryDirectory(prefix="tui-bench-memory-") as tmp:
        base = Path(tmp)
        payload = base / "sync.json"
        raw = initial_sync(rooms=rooms)
        payload.write_bytes(raw)
        events = payload_stats(raw).room_events
        del raw
        profile = prepare_warm_profile(base / "warm", rooms=rooms)
        for round_no in range(rounds):
            scratch = base / f"round{round_no}"
            scratch.mkdir()
            peaks["interpreter + payload"].append(_peak_mb(_CHILD_BASE, str(payload)))
            peaks["first sync"].append(
                _peak_mb(_CHILD_FIRST_SYNC, str(payload), str(scratch), str(events))
            )
            peaks["restart from cache"].append(_peak_mb(_CHILD_RESTART, str(profile)))
    return peaks


def print_report(peaks: dict[str, list[float]], rooms: int = ROOMS) -> None:
    """One line a case: median and range of the peaks, and the ratio to the baseline."""
    base = statistics.median(peaks["interpreter + payload"])
    print(f"memory: peak RSS of a new process, {rooms:,} rooms ({len(peaks['first sync'])} rounds)")
    for name, values in peaks.items():
        median = statistics.median(values)
        print(
            f"  {name:<24} {median:7.1f} MB  (min {min(values):.1f}, max {max(values):.1f})  x{median / base:.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run and print the memory benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--rooms", type=int, default=ROOMS)
    args = parser.parse_args(argv)
    print_report(run(args.rounds, args.rooms), args.rooms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
