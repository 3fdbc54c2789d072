"""``python -m bench``: run every benchmark and print one compact table of ratios.

Each benchmark also runs alone with more detail (parts, cProfile, SQL breakdown):
``python -m bench.ingest``, ``python -m bench.cold_start``, ``python -m bench.timeline``.

``--quick`` runs every benchmark once on tiny sizes: it shows that they all still run
(the test suite does it, ``tests/test_bench_quick.py``); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ._harness import QUICK_ENV, fmt_ms, print_table

# Sizes are read when a benchmark module loads, so the payload module is imported only
# once the mode is known (see main).
DEFAULT_SEED = 20250101

# These run in this process and add rows to the table.
IN_PROCESS_BENCHMARKS = ("ingest", "cold_start", "encrypted_cache", "formatted", "search")
# These run in their own process and print their own report (the UI ones drive the whole app).
UI_BENCHMARKS = (
    "crypto",
    "sync_decrypt",
    "backup",
    "ui_start",
    "start_process",
    "timeline",
    "sync_frames",
    "directory",
    "memory",
    "first_login",
    "images",
    "http2",
)
BENCHMARKS = IN_PROCESS_BENCHMARKS + UI_BENCHMARKS
Row = list[str]


def _ingest_rows(rounds: int, nio_rounds: int, with_nio: bool, seed: int) -> list[Row]:
    from . import ingest

    report = ingest.run(rounds=rounds, nio_rounds=nio_rounds, with_nio=with_nio, seed=seed)
    ours, floor = report.results[ingest.OURS], report.results[ingest.FLOOR]
    rows = [
        [
            "initial sync ingest",
            fmt_ms(ours.wall_median),
            fmt_ms(floor.wall_median),
            f"{ours.wall_ratio:.2f}",
            f"{ours.cpu_ratio:.2f}",
            f"<= {ingest.TARGET_RATIO:.1f}",
            "json.loads + bare executemany",
        ]
    ]
    nio = report.results.get(ingest.NIO)
    if nio is not None and report.nio_over_ours is not None:
        rows.append(
            [
                "  matrix-nio, parse only",
                fmt_ms(nio.wall_median),
                fmt_ms(floor.wall_median),
                f"{nio.wall_ratio:.2f}",
                f"{nio.cpu_ratio:.2f}",
                "",
                f"(= {report.nio_over_ours:.1f}x our whole ingest)",
            ]
        )
    return rows


def _cold_start_rows(rounds: int, seed: int, quick: bool) -> list[Row]:
    from . import cold_start

    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        report = cold_start.run(Path(tmp), rounds=rounds if quick else max(rounds, 5), seed=seed)
    pairs = [
        (
            cold_start.ENGINE,
            cold_start.BARE,
            "cold start to room list",
            "SELECT rooms + json.loads",
        ),
        (
            cold_start.PROCESS_ENGINE,
            cold_start.PROCESS_BARE,
            "  same, new process",
            "python + that SELECT",
        ),
    ]
    rows = []
    for name, base, label, base_label in pairs:
        if name in report.results:
            result = report.results[name]
            rows.append(
                [
                    label,
                    fmt_ms(result.wall_median),
                    fmt_ms(report.results[base].wall_median),
                    f"{result.wall_ratio:.2f}",
                    f"{result.cpu_ratio:.2f}",
                    "",
                    base_label,
                ]
            )
    return rows


def _encrypted_cache_rows(rounds: int, seed: int) -> list[Row]:
    from . import encrypted_cache

    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        return encrypted_cache.rows(Path(tmp), rounds, seed)


def _formatted_rows(rounds: int) -> list[Row]:
    from . import formatted

    return formatted.rows(rounds)


def _search_rows(rounds: int) -> list[Row]:
    from . import search

    return search.rows(rounds)


def _run_apart(name: str, timeout: float) -> str:
    """A UI benchmark in its own process (own interpreter, a time limit): its report."""
    try:
        done = subprocess.run(
            # -X faulthandler: a crash in native code (a segfault, glibc abort) prints
            # the Python stack of every thread instead of dying silently.
            [sys.executable, "-X", "faulthandler", "-m", f"bench.{name}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"bench.{name} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"bench.{name} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks (or those named with ``--only``)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per benchmark (default 5)")
    parser.add_argument("--nio-rounds", type=int, default=3, help="ingest rounds with nio")
    parser.add_argument("--no-nio", action="store_true", help="skip matrix-nio (its share is long)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every benchmark once on tiny sizes: checks they run; the figures mean nothing",
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument(
        "--timeline-timeout", type=float, default=900.0, help="seconds (default 900)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.quick:
        # Read by every benchmark module when it loads, here and in the processes run apart.
        os.environ[QUICK_ENV] = "1"
    from .synthetic import initial_sync, payload_stats

    rounds, nio_rounds = (1, 1) if args.quick else (args.rounds, args.nio_rounds)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    began = time.perf_counter()
    stats = payload_stats(initial_sync(args.seed))
    print(
        f"tui_client benchmarks: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.machine()}, seed {args.seed}, {rounds} rounds"
        + (" (quick: tiny sizes, figures meaningless)" if args.quick else "")
    )
    print(
        f"payload: synthetic initial /sync, {stats.size_bytes:,} bytes, {stats.rooms:,} joined rooms, "
        f"{stats.room_events:,} room events"
    )
    runners = {
        "ingest": lambda: _ingest_rows(rounds, nio_rounds, not args.no_nio, args.seed),
        "cold_start": lambda: _cold_start_rows(rounds, args.seed, args.quick),
        "encrypted_cache": lambda: _encrypted_cache_rows(rounds, args.seed),
        "formatted": lambda: _formatted_rows(rounds),
        "search": lambda: _search_rows(rounds),
    }
    rows: list[Row] = []
    failed = []
    reports: list[str] = []
    for name in chosen:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            if name in UI_BENCHMARKS:
                reports.append(_run_apart(name, args.timeline_timeout))
            else:
                rows.extend(runners[name]())
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print()
    print_table(
        rows, ["benchmark", "ours", "baseline", "x (wall)", "x (cpu)", "target", "baseline is"]
    )
    print()
    print("x = median over rounds of ours / baseline measured in the same round; lower is better.")
    for report in reports:
        print()
        print(report.rstrip())
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
