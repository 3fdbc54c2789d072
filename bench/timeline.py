"""Timeline: open a 100,000-event room and page up 50 times; worst frame time.

The app runs headless (Textual's test driver) against a profile whose cache holds
one room of N events, with a fake homeserver that never delivers anything new.
For each of 50 PageUp presses we time key-to-settled (the press processed, any
page loaded from the cache, the screen refreshed), and a monitor task on the UI
event loop records the longest stall: the worst frame, the time during which the
UI could not draw or take a key.

One message in :data:`FORMATTED_EVERY` carries an Element-style ``formatted_body``
(paragraphs with bold, italics, links and a pill; code blocks, nested lists, quotes,
tables, spoilers and headings in turn: the mix of ``bench/formatted.py``), so paging
parses, sanitises and renders HTML as a real room would make it.

Baseline, measured in the same run: the same 50 PageUps in a room of 500 events.
The ratio says whether history size costs anything while scrolling (it should
not: the window over the cache is bounded, and memory with it).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import httpx

from tui_client.engine import gc_policy
from tui_client.engine.client import CACHE_FILE, SESSION_FILE, SessionInfo
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache

from ._harness import sized
from .formatted import WORDS, element_html

ROOM = "!bigroom0000000000000000000000000000000000001"
ME = "@me:bench.example"
PAGES = sized(50, 3)
BIG = sized(100_000, 1_000)
SMALL = sized(500, 100)
CHUNK = 5_000
ROUNDS = sized(3, 1)
#: One message in this many is formatted HTML (the rest plain text).
FORMATTED_EVERY = 5


def _events(start: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    senders = [f"@user{n}:bench.example" for n in range(12)]
    events = []
    for n in range(start, start + count):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
        content: dict[str, Any] = {"msgtype": "m.text", "body": f"{n}: {body}"}
        if n % FORMATTED_EVERY == 0:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = element_html(n, rng)
        events.append(
            {
                "event_id": f"$ev{n:08d}bench",
                "type": "m.room.message",
                "sender": senders[n % len(senders)],
                "origin_server_ts": 1_700_000_000_000 + n * 30_000,
                "content": content,
                "unsigned": {},
            }
        )
    return events


def build_profile(base_dir: Path, events: int, seed: int = 7) -> Path:
    """A saved session whose cache holds one room of ``events`` messages."""
    rng = random.Random(seed)
    folder = profile_dir("bench", base_dir)
    info = SessionInfo(ME, "BENCHDEVICE", "https://bench.example")
    (folder / SESSION_FILE).write_text(json.dumps(info.to_json()))
    SecretStore(folder, ME, use_keyring=False).set("access_token", "bench-token")
    cache = Cache(folder / CACHE_FILE, own_user_id=ME)
    summaries: dict[str, Any] = {}
    state = [
        {
            "event_id": "$create",
            "type": "m.room.create",
            "sender": ME,
            "state_key": "",
            "origin_server_ts": 1,
            "content": {"room_version": "12"},
        },
        {
            "event_id": "$name",
            "type": "m.room.name",
            "sender": ME,
            "state_key": "",
            "origin_server_ts": 2,
            "content": {"name": "Big room"},
        },
    ] + [
        {
            "event_id": f"$member{n}",
            "type": "m.room.member",
            "sender": f"@user{n}:bench.example",
            "state_key": f"@user{n}:bench.example",
            "origin_server_ts": 3,
            "content": {"membership": "join", "displayname": f"User {n}"},
        }
        for n in range(12)
    ]
    for start in range(0, events, CHUNK):
        room = {
            "timeline": {
                "events": _events(start, min(CHUNK, events - start), rng),
                "limited": False,
            },
            "state": {"events": state if start == 0 else []},
        }
        batch = parse_sync({"next_batch": f"s{start}", "rooms": {"join": {ROOM: room}}})
        result = cache.ingest_sync(batch, summaries)
        summaries.update(result.changed_rooms)
    cache.close()
    return folder


async def _fake_homeserver(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/sync"):
        if request.url.params.get("timeout", "0") != "0":
            await asyncio.sleep(3600)
        return httpx.Response(200, json={"next_batch": "live"})
    if request.url.path.endswith("/messages"):
        return httpx.Response(200, json={"chunk": [], "start": "x"})
    return httpx.Response(200, json={})


@dataclass(slots=True)
class Run:
    """One measured scroll session."""

    events: int
    open_ms: float
    #: Every loop turn while paging (wall ms, the UI thread's CPU ms), see :class:`FrameMonitor`.
    frames: list[tuple[float, float]]
    key_ms: list[float]
    items_max: int
    rss_growth_mb: float
    gc_passes: list[int]
    gc_worst_ms: list[float]


class FrameMonitor:
    """A task on the UI event loop that wakes every millisecond: each turn of the loop
    between two wake-ups is a frame, timed in wall time (what the user waits for) and in
    the UI thread's CPU time (``time.thread_time``: what our code costs, whatever else
    runs on the machine's cores; a wall time far above it is the machine, not the app)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, float]] = []
        self.running = True

    async def run(self) -> None:
        """Record frames until :attr:`running` is cleared."""
        last, last_cpu = time.perf_counter(), time.thread_time()
        while self.running:
            await asyncio.sleep(0.001)
            now, cpu = time.perf_counter(), time.thread_time()
            self.frames.append(((now - last) * 1000, (cpu - last_cpu) * 1000))
            last, last_cpu = now, cpu


def frame_figures(frames: list[tuple[float, float]]) -> dict[str, float]:
    """Worst and 99th-percentile frame, wall and CPU; the CPU of the worst wall frame."""
    walls = sorted(wall for wall, _cpu in frames)
    cpus = sorted(cpu for _wall, cpu in frames)
    worst = max(frames) if frames else (0.0, 0.0)

    def p99(values: list[float]) -> float:
        return values[int(0.99 * (len(values) - 1))] if values else 0.0

    return {
        "worst_ms": worst[0],
        "worst_frame_cpu_ms": worst[1],
        "p99_ms": p99(walls),
        "worst_cpu_ms": cpus[-1] if cpus else 0.0,
        "p99_cpu_ms": p99(cpus),
        "over_16_7": sum(1 for wall in walls if wall > 16.7),
        "cpu_over_16_7": sum(1 for cpu in cpus if cpu > 16.7),
    }


class FrameRun(Protocol):
    """What a frame benchmark keeps of one run: its frames and the collector's passes."""

    frames: list[tuple[float, float]]
    gc_passes: list[int]
    gc_worst_ms: list[float]


def compare_runs(big: Sequence[FrameRun], small: Sequence[FrameRun]) -> dict[str, Any]:
    """Big against small: each :func:`frame_figures` figure (median over runs), the GC
    passes per generation (most in one run) and the longest GC pass."""

    def median(runs: Sequence[FrameRun], name: str) -> float:
        return statistics.median(frame_figures(r.frames)[name] for r in runs)

    return {
        "frames": {
            name: (median(big, name), median(small, name)) for name in frame_figures(big[0].frames)
        },
        "gc_passes": (
            [max(r.gc_passes[g] for r in big) for g in range(3)],
            [max(r.gc_passes[g] for r in small) for g in range(3)],
        ),
        "gc_worst_pass_ms": (
            max(max(r.gc_worst_ms) for r in big),
            max(max(r.gc_worst_ms) for r in small),
        ),
    }


def print_gc(report: dict[str, Any], label: str) -> None:
    """The GC line of a report (:func:`compare_runs`)."""
    (big_passes, small_passes), (big_gc, small_gc) = report["gc_passes"], report["gc_worst_pass_ms"]
    print(
        f"  {label + ' ':<30}{'/'.join(map(str, big_passes)):>10} vs {'/'.join(map(str, small_passes)):>10}"
        f"   longest pass {big_gc:.1f} ms vs {small_gc:.1f} ms"
    )


def print_frames(figures: dict[str, tuple[float, float]]) -> None:
    """The frame lines of a report (:func:`frame_figures`, ours vs the baseline)."""
    print(
        f"  worst frame, UI thread CPU    {figures['worst_frame_cpu_ms'][0]:8.1f} ms   vs {figures['worst_frame_cpu_ms'][1]:8.1f} ms"
    )
    print(
        f"  frame p99 (loop turns)        {figures['p99_ms'][0]:8.1f} ms   vs {figures['p99_ms'][1]:8.1f} ms"
    )
    print(
        f"  most CPU in one frame         {figures['worst_cpu_ms'][0]:8.1f} ms   vs {figures['worst_cpu_ms'][1]:8.1f} ms"
        f"   (p99 {figures['p99_cpu_ms'][0]:.1f} vs {figures['p99_cpu_ms'][1]:.1f} ms)"
    )
    print(
        f"  frames over 16.7 ms, wall/CPU {figures['over_16_7'][0]:5.0f}/{figures['cpu_over_16_7'][0]:<3.0f}     vs {figures['over_16_7'][1]:5.0f}/{figures['cpu_over_16_7'][1]:.0f}"
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def measure(base_dir: Path, events: int) -> Run:
    """Open the room, press PageUp :data:`PAGES` times, and time it."""
    from textual import events

    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.widgets.timeline import TimelineView

    # Every run starts from the same collector state: nothing frozen by an earlier
    # round, default thresholds, the heap collected. The app then applies its own
    # policy (engine/gc_policy.py) as it does for a user.
    gc_policy.reset()
    app = TuiClientApp(
        profile="bench", base_dir=base_dir, transport=httpx.MockTransport(_fake_homeserver)
    )
    keys: list[float] = []
    items_max = 0
    began = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(2000):
            chat = app.chat_screen
            if chat is not None and chat.view is not None and chat.query_one(TimelineView).items:
                break
            await pilot.pause(0.005)
        opened = (time.perf_counter() - began) * 1000
        timeline = app.chat_screen.query_one(TimelineView)  # type: ignore[union-attr]
        timeline.focus()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        rss_before = _rss_mb()
        monitor = FrameMonitor()
        watcher = asyncio.ensure_future(monitor.run())
        meter = gc_policy.PauseMeter().__enter__()
        pumps = [app, app.screen, timeline]

        def settled() -> bool:
            return not any(w.is_running for w in app.workers) and all(
                p._message_queue.empty() for p in pumps
            )

        for _ in range(PAGES):
            start = time.perf_counter()
            # Straight to the driver: Pilot.press would also wait for the whole
            # process to look idle, which measures the machine, not the app.
            app._driver.send_message(events.Key("pageup", None))  # type: ignore[union-attr]
            calm = 0
            while calm < 2:
                await asyncio.sleep(0.001)
                calm = calm + 1 if settled() else 0
            keys.append((time.perf_counter() - start) * 1000)
            items_max = max(items_max, len(timeline.items))
        monitor.running = False
        await watcher
        meter.__exit__()
        rss_growth = _rss_mb() - rss_before
    return Run(
        events,
        opened,
        monitor.frames,
        keys,
        items_max,
        rss_growth,
        meter.passes,
        meter.worst_ms,
    )


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Build both rooms, measure each ``rounds`` times alternately, and report."""
    with tempfile.TemporaryDirectory(prefix="tui-bench-timeline-") as tmp:
        big_dir, small_dir = Path(tmp) / "big", Path(tmp) / "small"
        built = time.perf_counter()
        build_profile(big_dir, BIG)
        build_profile(small_dir, SMALL)
        build_s = time.perf_counter() - built
        results: dict[int, list[Run]] = {BIG: [], SMALL: []}
        for round_no in range(rounds):
            order = (
                [(BIG, big_dir), (SMALL, small_dir)]
                if round_no % 2 == 0
                else [(SMALL, small_dir), (BIG, big_dir)]
            )
            for events, folder in order:
                results[events].append(asyncio.run(measure(folder, events)))
    big, small = results[BIG], results[SMALL]
    compared = compare_runs(big, small)
    worst_big, worst_small = compared["frames"]["worst_ms"]

    def p95(runs: list[Run]) -> float:
        return statistics.median(sorted(r.key_ms)[int(0.95 * (len(r.key_ms) - 1))] for r in runs)

    report = {
        "build_s": build_s,
        **compared,
        "open_ms": (
            statistics.median(r.open_ms for r in big),
            statistics.median(r.open_ms for r in small),
        ),
        "worst_frame_ms": (worst_big, worst_small),
        "worst_frame_ratio": worst_big / worst_small,
        "key_p95_ms": (p95(big), p95(small)),
        "key_median_ms": (
            statistics.median(statistics.median(r.key_ms) for r in big),
            statistics.median(statistics.median(r.key_ms) for r in small),
        ),
        "items_max": (max(r.items_max for r in big), max(r.items_max for r in small)),
        "rss_growth_mb": (
            statistics.median(r.rss_growth_mb for r in big),
            statistics.median(r.rss_growth_mb for r in small),
        ),
    }
    return report


def main() -> None:
    """Print the timeline benchmark."""
    report = run()
    big, small = report["worst_frame_ms"]
    print(
        f"timeline: {BIG:,}-event room vs {SMALL}-event room, {PAGES} PageUps each (built in {report['build_s']:.1f} s)"
    )
    print(
        f"  1 message in {FORMATTED_EVERY} is Element-style formatted HTML (bench/formatted.py's mix)"
    )
    print(
        f"  app start to first items   {report['open_ms'][0]:8.1f} ms   vs {report['open_ms'][1]:8.1f} ms"
    )
    print(
        f"  worst frame (loop stall)      {big:8.1f} ms   vs {small:8.1f} ms   ratio {report['worst_frame_ratio']:.2f}"
    )
    print_frames(report["frames"])
    print(
        f"  key to settled, median        {report['key_median_ms'][0]:8.1f} ms   vs {report['key_median_ms'][1]:8.1f} ms"
    )
    print(
        f"  key to settled, p95           {report['key_p95_ms'][0]:8.1f} ms   vs {report['key_p95_ms'][1]:8.1f} ms"
    )
    print(
        f"  items held at most            {report['items_max'][0]:8d}      vs {report['items_max'][1]:8d}"
    )
    print(
        f"  RSS growth while paging       {report['rss_growth_mb'][0]:8.1f} MB   vs {report['rss_growth_mb'][1]:8.1f} MB"
    )
    print_gc(report, "GC passes gen0/1/2 while paging")


if __name__ == "__main__":
    main()
