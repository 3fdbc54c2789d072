"""Cold start with a warm cache of 1,000 rooms: time until the room list is ready to paint.

A profile is prepared once, outside the timing, by :func:`prepare_warm_profile`:
``session.json`` and the access token written by the same code the client uses
(``SecretStore`` in its 0600-file mode, ``engine.client``'s private JSON writer),
and a cache holding the synthetic initial sync (``bench.synthetic``), ingested by
the client's own ``Cache.ingest_sync``.

Cases, in the same run, on that same database:

``engine``
    ``MatrixClient.restore()`` (session file, keyring probe, secrets, database
    thread, cache open, HTTP client), ``await client.open()`` (loads every room
    summary) and ``client.room_list()`` (the sorted list the UI paints).
``bare SELECT`` (the baseline)
    a bare connection to the same (encrypted) file, ``SELECT * FROM rooms`` and ``json.loads``
    of every summary.

and, each in a new Python process (interpreter start and imports included; the
clock is the system-wide monotonic one, read by the parent before it starts the
child and by the child when its list is ready):

``process: engine``
    ``python -c`` importing ``tui_client.engine.client`` and doing the above.
``process: bare``
    ``python -c`` importing the SQLCipher module and ``json`` and doing the bare SELECT.

The UI's first paint will be added on top of :func:`prepare_warm_profile` (the
returned folder is a profile: ``MatrixClient.restore(profile=p.name,
base_dir=p.parent)``, or ``TUI_CLIENT_DATA_DIR=p.parent`` with profile ``p.name``).

Run ``python -m bench.cold_start`` (``--rounds N``, ``--no-process``, ``--no-profile``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tui_client.engine.cache_key import CACHE_KEY
from tui_client.engine.client import (
    CACHE_FILE,
    SESSION_FILE,
    MatrixClient,
    SessionInfo,
    write_private_json,
)
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore
from tui_client.engine.sync import SyncV2Source
from tui_client.engine.sync_choice import SLIDING_OFFERED
from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import connect, new_key

from ._harness import Case, CaseResult, Sample, Stopwatch, fmt_ms, print_table, run_rounds
from .synthetic import DEFAULT_ROOMS, DEFAULT_SEED, OWN_USER_ID, initial_sync

__all__ = [
    "BARE",
    "ENGINE",
    "PROCESS_BARE",
    "PROCESS_ENGINE",
    "PROFILE_NAME",
    "ColdStartReport",
    "main",
    "prepare_warm_profile",
    "run",
    "use_file_secrets",
]

ENGINE = "engine"
BARE = "bare SELECT"
PROCESS_ENGINE = "process: engine"
PROCESS_BARE = "process: bare"
PROFILE_NAME = "default"
DEVICE_ID = "BENCHDEVICE"
HOMESERVER = "https://matrix.example.org"
ACCESS_TOKEN = "syt_YmVuY2g_benchmarktokenbenchmark_0a1b2c"
# Makes `keyring` use its always-failing backend: secrets go to the profile's 0600
# file, and a developer's real keyring is never read or written by a benchmark.
KEYRING_ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def use_file_secrets() -> None:
    """Route this process (and the children it starts) to the file fallback for secrets."""
    os.environ.update(KEYRING_ENV)
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]


def prepare_warm_profile(
    base_dir: Path, *, seed: int = DEFAULT_SEED, rooms: int = DEFAULT_ROOMS
) -> Path:
    """A logged-in profile under ``base_dir`` whose cache holds the synthetic initial sync.

    Returns the profile folder. Calls :func:`use_file_secrets` (the token is in the
    profile's ``secrets.json``), so ``MatrixClient.restore`` in this process finds it.
    """
    use_file_secrets()
    folder = profile_dir(PROFILE_NAME, base_dir)
    info = SessionInfo(OWN_USER_ID, DEVICE_ID, HOMESERVER)
    SecretStore(folder, info.user_id, use_keyring=False).set("access_token", ACCESS_TOKEN)
    write_private_json(folder / SESSION_FILE, info.to_json())
    # Encrypted with a key in the secrets file, as the client makes it.
    key = new_key()
    SecretStore(folder, info.user_id, use_keyring=False).set(CACHE_KEY, key.hex())
    cache = Cache(folder / CACHE_FILE, own_user_id=info.user_id, key=key)
    try:
        cache.ingest_sync(SyncV2Source(cast(Any, None)).parse(initial_sync(seed, rooms)), {})
        # A client that ran before remembers the server's /versions answer, so its start
        # does not wait on the network (the benches' fake servers never answer).
        cache.set_meta(SLIDING_OFFERED, "0")
    finally:
        cache.close()
    return folder


async def _engine_start(folder: Path, watch: Stopwatch) -> MatrixClient:
    with watch.part("restore"):
        client = MatrixClient.restore(profile=folder.name, base_dir=folder.parent)
    if client is None:
        raise AssertionError(f"no session to restore in {folder}")
    with watch.part("open"):
        await client.open()
    with watch.part("room list"):
        listed = client.room_list()
    if not listed:
        raise AssertionError("the restored room list is empty")
    return client


def engine_case(folder: Path) -> Case:
    """restore + open + room_list on the warm profile."""

    def run(_scratch: Path) -> Sample:
        watch = Stopwatch()

        async def go() -> None:
            client = await _engine_start(folder, watch)
            await client.close()

        asyncio.run(go())
        return watch.sample

    return run


def cache_key_of(folder: Path) -> bytes:
    """The cache key :func:`prepare_warm_profile` stored for the profile."""
    stored = SecretStore(folder, OWN_USER_ID, use_keyring=False).get(CACHE_KEY)
    if not stored:
        raise AssertionError(f"no cache key in {folder}")
    return bytes.fromhex(stored)


def bare_case(folder: Path, expected_rooms: int) -> Case:
    """The baseline: every summary read and decoded, nothing else."""
    path = str(folder / CACHE_FILE)
    key = cache_key_of(folder)

    def run(_scratch: Path) -> Sample:
        watch = Stopwatch()
        with watch.part("select + json.loads"):
            db = connect(path, key)
            summaries = [
                json.loads(summary) for _room_id, summary, _ts in db.execute("SELECT * FROM rooms")
            ]
        db.close()
        if len(summaries) != expected_rooms:
            raise AssertionError(f"read {len(summaries)} summaries")
        return watch.sample

    return run


_CHILD_ENGINE = """
import asyncio, sys, time
from pathlib import Path
from tui_client.engine.client import MatrixClient
async def main():
    folder = Path(sys.argv[1])
    client = MatrixClient.restore(profile=folder.name, base_dir=folder.parent)
    await client.open()
    rooms = client.room_list()
    print(time.perf_counter(), len(rooms), flush=True)
    await client.close()
asyncio.run(main())
"""

_CHILD_BARE = f"""
import json, sys, time
from pathlib import Path
from tui_client.store.encrypted_db import connect
db = connect(str(Path(sys.argv[1]) / {CACHE_FILE!r}), bytes.fromhex(sys.argv[2]))
summaries = [json.loads(summary) for _room_id, summary, _ts in db.execute("SELECT * FROM rooms")]
print(time.perf_counter(), len(summaries), flush=True)
"""


def process_case(code: str, folder: Path, expected_rooms: int) -> Case:
    """A new interpreter runs ``code``; timed from just before it starts to its 'ready' print."""
    env = {**os.environ, **KEYRING_ENV}
    key_hex = cache_key_of(folder).hex()

    def run(_scratch: Path) -> Sample:
        cpu_before = os.times()
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, str(folder), key_hex],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        cpu_after = os.times()
        if done.returncode != 0:
            raise AssertionError(f"child failed: {done.stderr[-2000:]}")
        ready, count = done.stdout.split()[:2]
        if int(count) != expected_rooms:
            raise AssertionError(f"child listed {count} rooms")
        wall = float(ready) - start
        cpu = (cpu_after.children_user + cpu_after.children_system) - (
            cpu_before.children_user + cpu_before.children_system
        )
        return Sample(wall=wall, cpu=cpu, parts={"start to ready": wall})

    return run


def profile_engine_start(folder: Path, top: int = 14) -> str:
    """cProfile of one in-process engine start, by cumulative time (where restore goes)."""
    watch = Stopwatch()
    profiler = cProfile.Profile()

    async def go() -> None:
        profiler.enable()
        client = await _engine_start(folder, watch)
        profiler.disable()
        await client.close()

    asyncio.run(go())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    report = [
        "cProfile of one in-process engine start (cumulative; the profiler inflates Python-level costs):"
    ]
    report += ["  " + line for line in [lines[0], *lines[start:]]]
    return "\n".join(report)


@dataclass(slots=True)
class ColdStartReport:
    """The results of one run of this benchmark."""

    results: dict[str, CaseResult]
    rooms: int

    @property
    def ratio(self) -> float:
        """Engine over the bare SELECT (median of paired wall-time ratios)."""
        return self.results[ENGINE].wall_ratio

    @property
    def process_ratio(self) -> float | None:
        """Engine process over bare process, when measured."""
        result = self.results.get(PROCESS_ENGINE)
        return result.wall_ratio if result else None


def run(
    base_dir: Path,
    *,
    rounds: int = 7,
    with_process: bool = True,
    seed: int = DEFAULT_SEED,
    verbose: bool = False,
) -> ColdStartReport:
    """Prepare a warm profile under ``base_dir`` and measure the cases."""
    folder = prepare_warm_profile(base_dir, seed=seed)
    rooms = DEFAULT_ROOMS
    in_process = run_rounds(
        {BARE: bare_case(folder, rooms), ENGINE: engine_case(folder)},
        BARE,
        rounds,
        progress=print if verbose else None,
    )
    results = dict(in_process)
    if with_process:
        processes = run_rounds(
            {
                PROCESS_BARE: process_case(_CHILD_BARE, folder, rooms),
                PROCESS_ENGINE: process_case(_CHILD_ENGINE, folder, rooms),
            },
            PROCESS_BARE,
            rounds,
            progress=print if verbose else None,
        )
        results.update(processes)
    return ColdStartReport(results, rooms)


def print_report(report: ColdStartReport) -> None:
    """The table of cases, their parts, and the ratios."""
    rows = []
    for result in report.results.values():
        baseline = PROCESS_BARE if result.name.startswith("process") else BARE
        rows.append(
            [
                result.name,
                str(len(result.samples)),
                fmt_ms(result.wall_median),
                fmt_ms(result.wall_min),
                fmt_ms(result.cpu_median),
                f"{result.wall_ratio:.2f}",
                f"{result.cpu_ratio:.2f}",
                baseline,
            ]
        )
    print_table(
        rows,
        [
            "case",
            "runs",
            "wall median",
            "wall best",
            "cpu median",
            "x base (wall)",
            "x base (cpu)",
            "base",
        ],
    )
    for result in report.results.values():
        parts = ", ".join(f"{name} {fmt_ms(t)}" for name, t in result.part_medians().items())
        print(f"  {result.name}: {parts}")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.cold_start``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.cold_start", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each case (default 7)")
    parser.add_argument("--no-process", action="store_true", help="skip the new-process cases")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the cProfile of restore/open"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args(argv)
    print(
        f"Cold start, warm cache of {DEFAULT_ROOMS:,} rooms (seed {args.seed}): time until the room list is ready"
    )
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        report = run(
            Path(tmp),
            rounds=args.rounds,
            with_process=not args.no_process,
            seed=args.seed,
            verbose=args.verbose,
        )
        print_report(report)
        if not args.no_profile:
            print(profile_engine_start(Path(tmp) / PROFILE_NAME))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
