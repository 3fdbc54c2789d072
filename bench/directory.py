"""Directory: 10,000 public rooms paged into the directory screen, then scrolled; worst frame.

The app runs headless (Textual's test driver) with a fake homeserver whose
``/publicRooms`` lists N synthetic rooms (names, aliases, topics of varied
length, member counts), in pages of the screen's own size (50). The directory screen is opened on it and
the user scrolls down with End until every page is in (the list asks for the
next page as the user nears its end), then presses PageDown 50 times from the
top, then End and Home. A monitor task on the UI event loop records the longest
stall: the worst frame, the time during which the UI could not draw or take a key.

Baseline, measured in the same run: the same session with a directory of 1,000 rooms
(enough for every PageDown to move: each key redraws a full screen of new rows in
both cases). The ratio says whether a long directory costs anything while scrolling (it should
not: the list is a line-API widget that renders only the rows on screen, and each
page is laid out once, when it arrives).

Python's cyclic garbage collector is switched off while the keys are timed, so that
a full collection (which walks the whole heap, 10,000 rooms or not, and lands at
random) does not decide the worst frame; what the rooms add to the heap is
measured apart, as the time of one full collection after the session, next to
the same figure for the baseline.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import httpx

from ._harness import sized
from .timeline import build_profile

BIG = sized(10_000, 300)
SMALL = sized(1000, 100)
PAGE = 100
PAGES_DOWN = sized(50, 3)
ROUNDS = sized(3, 1)
WORDS = [
    "matrix",
    "rooms",
    "chat",
    "open",
    "source",
    "rust",
    "python",
    "terminal",
    "music",
    "games",
    "books",
    "art",
    "science",
    "news",
    "help",
    "linux",
]


def synthetic_rooms(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """``count`` directory chunks, deterministic."""
    rng = random.Random(seed)
    rooms = []
    for n in range(count):
        topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40)))
        room: dict[str, Any] = {
            "room_id": f"!room{n:06d}:bench.example",
            "name": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {n}",
            "num_joined_members": rng.randint(1, 50_000),
            "world_readable": rng.random() < 0.3,
            "guest_can_join": False,
            "join_rule": rng.choice(["public", "public", "public", "knock"]),
        }
        if topic:
            room["topic"] = topic
        if rng.random() < 0.7:
            room["canonical_alias"] = f"#room{n}:bench.example"
        if rng.random() < 0.05:
            room["room_type"] = "m.space"
        rooms.append(room)
    return rooms


def fake_homeserver(rooms: list[dict[str, Any]]) -> httpx.MockTransport:
    """Sync that never brings anything; a directory of ``rooms``, ``PAGE`` a page."""

    async def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/sync"):
            if request.url.params.get("timeout", "0") != "0":
                await asyncio.sleep(3600)
            return httpx.Response(200, json={"next_batch": "live"})
        if path.endswith("/publicRooms"):
            body = json.loads(request.content or b"{}")
            start = int(body.get("since") or 0)
            limit = min(int(body.get("limit", PAGE)), PAGE)
            answer: dict[str, Any] = {
                "chunk": rooms[start : start + limit],
                "total_room_count_estimate": len(rooms),
            }
            if start + limit < len(rooms):
                answer["next_batch"] = str(start + limit)
            return httpx.Response(200, json=answer)
        if path.endswith("/messages"):
            return httpx.Response(200, json={"chunk": [], "start": "x"})
        return httpx.Response(200, json={})

    return httpx.MockTransport(handle)


@dataclass(slots=True)
class Run:
    """One measured session."""

    rooms: int
    load_s: float
    load_worst_ms: float
    scroll_worst_ms: float
    key_ms: list[float]
    rss_growth_mb: float
    full_gc_ms: float


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def measure(base_dir: Path, count: int) -> Run:
    """Open the directory on ``count`` rooms, page them all in, scroll; time it."""
    from textual import events

    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.screens.directory import DirectoryScreen
    from tui_client.ui.widgets.directory_list import DirectoryList

    DirectoryScreen.timeout = 60.0
    rooms = synthetic_rooms(count)
    app = TuiClientApp(profile="bench", base_dir=base_dir, transport=fake_homeserver(rooms))
    stalls: list[float] = []
    keys: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(2000):
            if app.chat_screen is not None and app.chat_screen.view is not None:
                break
            await pilot.pause(0.005)
        await app.workers.wait_for_complete()
        rss_before = _rss_mb()
        monitoring = True
        phase: list[float] = stalls

        async def monitor() -> None:
            last = time.perf_counter()
            while monitoring:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                phase.append(now - last)
                last = now

        def settled() -> bool:
            screen = app.screen
            pumps = [app, screen, *screen.query(DirectoryList)]
            return not any(w.is_running for w in app.workers) and all(
                p._message_queue.empty() for p in pumps
            )

        async def press(key: str) -> float:
            start = time.perf_counter()
            # Straight to the driver: Pilot.press would also wait for the whole process
            # to look idle, which measures the machine, not the app.
            app._driver.send_message(events.Key(key, None))  # type: ignore[union-attr]
            calm = 0
            while calm < 2:
                await asyncio.sleep(0.001)
                calm = calm + 1 if settled() else 0
            return (time.perf_counter() - start) * 1000

        watcher = asyncio.ensure_future(monitor())
        loading: list[float] = []
        phase = loading
        began = time.perf_counter()
        app.push_screen(DirectoryScreen(app.client, servers="bench.example"))  # type: ignore[arg-type]
        for _ in range(5000):
            await pilot.pause(0.005)
            if isinstance(app.screen, DirectoryScreen) and app.screen.query(DirectoryList):
                break
        screen = app.screen
        assert isinstance(screen, DirectoryScreen)
        results = screen.query_one(DirectoryList)
        # The directory opens with its search box focused; the keys below are the list's.
        results.focus()
        await pilot.pause(0.01)
        while results.option_count < count:
            await press("end")
        load_s = time.perf_counter() - began
        # The collection itself must not count as a frame of the scrolling phase.
        gc.collect()
        gc.disable()
        await asyncio.sleep(0.01)
        scrolling: list[float] = []
        phase = scrolling
        try:
            await press("home")
            for _ in range(PAGES_DOWN):
                keys.append(await press("pagedown"))
            keys.append(await press("end"))
            keys.append(await press("home"))
        finally:
            gc.enable()
        monitoring = False
        await watcher
        rss_growth = _rss_mb() - rss_before
        collected = time.perf_counter()
        gc.collect()
        full_gc_ms = (time.perf_counter() - collected) * 1000
    return Run(
        count, load_s, max(loading) * 1000, max(scrolling) * 1000, keys, rss_growth, full_gc_ms
    )


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Measure both directories ``rounds`` times, alternating, and report medians."""
    results: dict[int, list[Run]] = {BIG: [], SMALL: []}
    with tempfile.TemporaryDirectory(prefix="tui-bench-directory-") as tmp:
        folders = {BIG: Path(tmp) / "big", SMALL: Path(tmp) / "small"}
        for folder in folders.values():
            build_profile(folder, 50)
        for round_no in range(rounds):
            order = [BIG, SMALL] if round_no % 2 == 0 else [SMALL, BIG]
            for count in order:
                results[count].append(asyncio.run(measure(folders[count], count)))
    big, small = results[BIG], results[SMALL]

    def median(runs: list[Run], attribute: str) -> float:
        return statistics.median(float(getattr(r, attribute)) for r in runs)

    def p95(runs: list[Run]) -> float:
        return statistics.median(sorted(r.key_ms)[int(0.95 * (len(r.key_ms) - 1))] for r in runs)

    scroll_big, scroll_small = median(big, "scroll_worst_ms"), median(small, "scroll_worst_ms")
    return {
        "scroll_worst_ms": (scroll_big, scroll_small),
        "scroll_worst_ratio": scroll_big / scroll_small,
        "load_s": (median(big, "load_s"), median(small, "load_s")),
        "load_worst_ms": (median(big, "load_worst_ms"), median(small, "load_worst_ms")),
        "key_median_ms": (
            statistics.median(statistics.median(r.key_ms) for r in big),
            statistics.median(statistics.median(r.key_ms) for r in small),
        ),
        "key_p95_ms": (p95(big), p95(small)),
        "rss_growth_mb": (median(big, "rss_growth_mb"), median(small, "rss_growth_mb")),
        "full_gc_ms": (median(big, "full_gc_ms"), median(small, "full_gc_ms")),
    }


def main() -> None:
    """Print the directory benchmark."""
    report = run()
    big, small = report["scroll_worst_ms"]
    print(
        f"directory: {BIG:,} public rooms vs {SMALL}, paged in as the user scrolls, then {PAGES_DOWN} PageDowns, End, Home"
    )
    print(
        f"  worst frame while scrolling   {big:8.1f} ms   vs {small:8.1f} ms   ratio {report['scroll_worst_ratio']:.2f}"
    )
    key_big, key_small = report["key_median_ms"]
    print(
        f"  key to settled, median        {key_big:8.1f} ms   vs {key_small:8.1f} ms   ratio {key_big / key_small:.2f}"
    )
    print(
        f"  key to settled, p95           {report['key_p95_ms'][0]:8.1f} ms   vs {report['key_p95_ms'][1]:8.1f} ms"
    )
    print(
        f"  paging every room in          {report['load_s'][0]:8.2f} s    vs {report['load_s'][1]:8.2f} s"
    )
    print(
        f"  worst frame while paging in   {report['load_worst_ms'][0]:8.1f} ms   vs {report['load_worst_ms'][1]:8.1f} ms"
    )
    print(
        f"  RSS growth                    {report['rss_growth_mb'][0]:8.1f} MB   vs {report['rss_growth_mb'][1]:8.1f} MB"
    )
    print(
        f"  one full GC of the process    {report['full_gc_ms'][0]:8.1f} ms   vs {report['full_gc_ms'][1]:8.1f} ms"
    )


if __name__ == "__main__":
    main()
