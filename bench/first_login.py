"""First login: time from ``/login`` returning to the first room list, sliding sync vs v2.

Runs a real Synapse (``tui_client.devtools.synapse``) with one account joined to
:data:`ROOMS` rooms (created with batched ``createRoom`` calls, 8 at a time), then logs
in afresh for each case, each in a new interpreter so no case sees another's heap:

| case | what the child does |
| --- | --- |
| ``sync v2`` (baseline) | ``MatrixClient.login``, ``open()``, ``start()`` with ``/sync`` v2 forced |
| ``sliding sync`` | the same with the default source (``/versions`` offers simplified sliding sync) |
| ``sync v2 whole`` | ``/sync`` v2 with every response decoded whole (``json.loads``), as before the sliced ingest |

Each child reports the time from ``login()`` returning to the engine's first
``RoomListChanged`` holding at least :data:`FIRST_LIST` rooms (what the room list
paints), the time until every room is in the client's list, and its peak resident set
(``VmHWM``: ``ru_maxrss`` would carry the parent's peak over an exec on Linux), at the
first list and at the end. The order of the cases rotates from round to round; the
ratio is taken per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._harness import sized
from .cold_start import KEYRING_ENV

ROOMS = sized(1000, 30)
ROUNDS = sized(2, 1)
#: Rooms the first painted room list needs (a screenful).
FIRST_LIST = 20
V2, SLIDING = "sync v2", "sliding sync"
#: v2 with its response decoded whole (json.loads), as before the sliced ingest: the
#: same-run baseline of v2's peak RSS.
V2_WHOLE = "sync v2 whole"
CASES = (V2, SLIDING, V2_WHOLE)

_CHILD = """
import asyncio, json, sys, time
from pathlib import Path
from bench.cold_start import use_file_secrets
use_file_secrets()
from tui_client.engine.client import MatrixClient
from tui_client.engine.sync import SyncV2Source
from tui_client.engine.updates import RoomListChanged

def peak_mb():
    line = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
    return int(line.split()[1]) / 1024

async def go(base_url, user_id, password, folder, mode, want, total):
    class Whole(SyncV2Source):
        mode = 'sync v2 whole'
        slice_bytes = 1 << 62
    options = {'sync_source': {'sync v2': SyncV2Source, 'sync v2 whole': Whole}[mode]} if mode != 'sliding sync' else {}
    client = await MatrixClient.login(user_id, password, homeserver=base_url, base_dir=Path(folder), **options)
    t0 = time.perf_counter()
    first, done = asyncio.Event(), asyncio.Event()
    marks = {}
    def on_update(update):
        if isinstance(update, RoomListChanged):
            n = len(client.rooms)
            if n >= want and 'first' not in marks:
                marks['first'] = time.perf_counter() - t0
                marks['peak_first'] = peak_mb()
                first.set()
            if n >= total and 'all' not in marks:
                marks['all'] = time.perf_counter() - t0
                done.set()
    client.subscribe(on_update)
    await client.open()  # sliding sync: the default where /versions offers it
    client.start()
    await asyncio.wait_for(first.wait(), 600)
    await asyncio.wait_for(done.wait(), 900)
    marks['mode'] = client.sync_mode
    await client.close()
    marks['peak'] = peak_mb()
    print('result', json.dumps(marks))

asyncio.run(go(*sys.argv[1:6], int(sys.argv[6]), int(sys.argv[7])))
"""


def seed_account(server: object, rooms: int) -> tuple[str, str]:
    """Register an account and create ``rooms`` rooms it is joined to: (user ID, password)."""
    from tui_client.devtools.synapse import SynapseServer

    assert isinstance(server, SynapseServer)
    password = "bench-password"
    user = server.register_user("bench", password)

    def create(n: int) -> None:
        body = {
            "preset": "private_chat",
            "name": f"Bench room {n:04d}",
            "topic": f"Room number {n}",
        }
        status, answer = server.request_json(
            "POST", "/_matrix/client/v3/createRoom", body, token=user.access_token, timeout=120
        )
        if status != 200:
            raise RuntimeError(f"createRoom failed: {status} {answer}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(rooms)))
    return user.user_id, password


def _child(
    base_url: str, user_id: str, password: str, folder: Path, mode: str, rooms: int
) -> dict[str, float | str]:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            base_url,
            user_id,
            password,
            str(folder),
            mode,
            str(min(FIRST_LIST, rooms)),
            str(rooms),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, **KEYRING_ENV},
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {done.stderr[-3000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("result "):
            result: dict[str, float | str] = json.loads(line[len("result ") :])
            if result.get("mode") != mode:
                raise RuntimeError(f"asked for {mode}, ran {result.get('mode')}")
            return result
    raise RuntimeError(f"{mode} child printed no result: {done.stdout[-500:]}")


def run(
    rounds: int = ROUNDS, rooms: int = ROOMS
) -> tuple[dict[str, list[dict[str, float | str]]], float]:
    """Each case's results per round, and the seconds the account's rooms took to create."""
    from tui_client.devtools.synapse import SynapseServer

    results: dict[str, list[dict[str, float | str]]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="tui-bench-login-") as tmp:
        base = Path(tmp)
        with SynapseServer(base / "synapse") as server:
            began = time.perf_counter()
            user_id, password = seed_account(server, rooms)
            seeding = time.perf_counter() - began
            for round_no in range(rounds):
                order = CASES[round_no % 2 :] + CASES[: round_no % 2]
                for case in order:
                    folder = base / f"r{round_no}-{case.replace(' ', '_')}"
                    results[case].append(
                        _child(server.base_url, user_id, password, folder, case, rooms)
                    )
    return results, seeding


def print_report(
    results: dict[str, list[dict[str, float | str]]], seeding: float, rooms: int = ROOMS
) -> None:
    """Medians per case and the per-round ratio of sliding sync to v2."""
    n = len(results[V2])
    want = min(FIRST_LIST, rooms)
    print(
        f"first login: {rooms:,} joined rooms, /login to the first room list of {want} rooms ({n} rounds; rooms created in {seeding:.0f} s)"
    )

    def med(case: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[case])

    for case in CASES:
        print(
            f"  {case:<14} first list {med(case, 'first') * 1000:8.0f} ms  all {rooms} rooms {med(case, 'all') * 1000:8.0f} ms"
            f"  peak RSS at first list {med(case, 'peak_first'):6.1f} MB, at the end {med(case, 'peak'):6.1f} MB"
        )
    ratios = [
        float(s["first"]) / float(v["first"])
        for s, v in zip(results[SLIDING], results[V2], strict=True)
    ]
    all_ratios = [
        float(s["all"]) / float(v["all"])
        for s, v in zip(results[SLIDING], results[V2], strict=True)
    ]
    print(
        f"  sliding / v2: first list x{statistics.median(ratios):.2f} (per round {', '.join(f'{r:.2f}' for r in ratios)}),"
        f" whole list x{statistics.median(all_ratios):.2f}"
    )
    peaks = [
        float(v["peak"]) / float(w["peak"])
        for v, w in zip(results[V2], results[V2_WHOLE], strict=True)
    ]
    print(
        f"  v2 in slices / v2 decoded whole: peak RSS x{statistics.median(peaks):.2f}"
        f" (per round {', '.join(f'{r:.2f}' for r in peaks)})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run and print the first-login benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--rooms", type=int, default=ROOMS)
    args = parser.parse_args(argv)
    results, seeding = run(args.rounds, args.rooms)
    print_report(results, seeding, args.rooms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
