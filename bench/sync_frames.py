"""Frames while a first sync streams in: the app open as a big first ``/sync`` is ingested.

A logged-in profile with nothing cached yet (a first start after ``/login``); the app
runs headless (Textual's test driver) against a fake homeserver whose first ``/sync``
answers with the synthetic initial sync of :data:`ROOMS` rooms (``bench/synthetic.py``,
19.6 MB for 1,000 rooms) once the empty screen is painted, and whose later ``/sync``
calls wait. It offers no sliding sync, so the client takes the whole response at once
over ``/sync`` v2: the worst case for the UI (sliding sync fetches the list in windows
of 20 and 100 rooms).

The frame monitor of ``bench/timeline.py`` (wall and UI-thread CPU of every turn of the
UI event loop) runs from the moment the response is released until the room list shows
every room, the first room's timeline is drawn, the search index of the batch is built
and the app is idle again: the decode and ingest on the database thread, the room list
of 1,000 rooms, the first room opening and the indexing slices all fall in it.

Baseline, in the same run: the same with the payload of :data:`SMALL_ROOMS` rooms.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import httpx

from tui_client.engine import gc_policy
from tui_client.engine.client import SESSION_FILE, SessionInfo
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore

from ._harness import sized
from .synthetic import OWN_USER_ID, initial_sync
from .timeline import FrameMonitor, compare_runs, frame_figures, print_frames, print_gc

ROOMS = sized(1000, 20)
SMALL_ROOMS = sized(20, 5)
ROUNDS = sized(2, 1)


def build_profile(base_dir: Path) -> Path:
    """A saved session for the synthetic account, with an empty cache."""
    folder = profile_dir("bench", base_dir)
    info = SessionInfo(OWN_USER_ID, "BENCHDEVICE", "https://bench.example")
    (folder / SESSION_FILE).write_text(json.dumps(info.to_json()))
    SecretStore(folder, OWN_USER_ID, use_keyring=False).set("access_token", "bench-token")
    return folder


@dataclass(slots=True)
class SyncRun:
    """One first sync watched from the UI."""

    rooms: int
    frames: list[tuple[float, float]]
    settle_ms: float
    gc_passes: list[int]
    gc_worst_ms: list[float]


async def measure(base_dir: Path, raw: bytes, rooms: int) -> SyncRun:
    """Open the app, release the first sync, and record every frame until it is all in."""
    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.widgets.room_list import RoomList
    from tui_client.ui.widgets.timeline import TimelineView

    gc_policy.reset()
    release = asyncio.Event()

    async def homeserver(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            if "since" in request.url.params:
                await asyncio.sleep(3600)
                return httpx.Response(200, json={"next_batch": "later"})
            await release.wait()
            return httpx.Response(200, content=raw, headers={"content-type": "application/json"})
        if request.url.path.endswith("/messages"):
            return httpx.Response(200, json={"chunk": [], "start": "x"})
        return httpx.Response(200, json={})

    app = TuiClientApp(
        profile="bench", base_dir=base_dir, transport=httpx.MockTransport(homeserver)
    )
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(2000):
            if app.chat_screen is not None:
                break
            await pilot.pause(0.005)
        chat = app.chat_screen
        assert chat is not None
        await pilot.pause(0.3)
        room_list, timeline = chat.query_one(RoomList), chat.query_one(TimelineView)
        monitor = FrameMonitor()
        watcher = asyncio.ensure_future(monitor.run())
        meter = gc_policy.PauseMeter().__enter__()
        began = time.perf_counter()
        release.set()
        pumps = [app, chat, room_list, timeline]

        def settled() -> bool:
            indexing = chat.client._indexing
            return (
                len(room_list.room_ids) >= rooms
                and bool(timeline.items)
                and (indexing is None or indexing.done())
                and not any(w.is_running for w in app.workers)
                and all(p._message_queue.empty() for p in pumps)
            )

        calm = 0
        deadline = began + 600
        while calm < 20 and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
            calm = calm + 1 if settled() else 0
        settle_ms = (time.perf_counter() - began) * 1000
        monitor.running = False
        await watcher
        meter.__exit__()
        if not settled():
            raise RuntimeError(
                f"the first sync did not settle: {len(room_list.room_ids)} of {rooms} rooms listed"
            )
    return SyncRun(rooms, monitor.frames, settle_ms, meter.passes, meter.worst_ms)


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Both payloads, alternately, each on a fresh profile; medians over rounds."""
    payloads = {ROOMS: initial_sync(rooms=ROOMS), SMALL_ROOMS: initial_sync(rooms=SMALL_ROOMS)}
    results: dict[int, list[SyncRun]] = {ROOMS: [], SMALL_ROOMS: []}
    with tempfile.TemporaryDirectory(prefix="tui-bench-sync-frames-") as tmp:
        for round_no in range(rounds):
            order = [ROOMS, SMALL_ROOMS] if round_no % 2 == 0 else [SMALL_ROOMS, ROOMS]
            for rooms in order:
                base = Path(tmp) / f"r{round_no}-{rooms}"
                build_profile(base)
                results[rooms].append(asyncio.run(measure(base, payloads[rooms], rooms)))
    big, small = results[ROOMS], results[SMALL_ROOMS]
    return {
        "bytes": (len(payloads[ROOMS]), len(payloads[SMALL_ROOMS])),
        **compare_runs(big, small),
        "settle_ms": (
            statistics.median(r.settle_ms for r in big),
            statistics.median(r.settle_ms for r in small),
        ),
        "worst_each_ms": (
            [frame_figures(r.frames)["worst_ms"] for r in big],
            [frame_figures(r.frames)["worst_ms"] for r in small],
        ),
    }


def main() -> None:
    """Print the first-sync frames benchmark."""
    report = run()
    figures = report["frames"]
    big_mb, small_mb = (n / 1e6 for n in report["bytes"])
    print(
        f"first sync frames: {ROOMS:,}-room first /sync ({big_mb:.1f} MB) vs {SMALL_ROOMS} rooms "
        f"({small_mb:.2f} MB), app open, /sync v2"
    )
    print(
        f"  release to settled            {report['settle_ms'][0]:8.1f} ms   vs {report['settle_ms'][1]:8.1f} ms"
    )
    print(
        f"  worst frame (loop stall)      {figures['worst_ms'][0]:8.1f} ms   vs {figures['worst_ms'][1]:8.1f} ms"
    )
    print_frames(figures)
    print_gc(report, "GC passes gen0/1/2")


if __name__ == "__main__":
    main()
