"""Long run: a bot writes into 50 rooms while the UI switches rooms and pages back.

``python -m bench.soak --seconds 7200`` (``make soak`` runs the 2-hour form through
tests/resilience/test_soak.py; ``make test`` a 60-second one). One Synapse on loopback,
the real app headless (Textual's ``run_test``, 120x40), a bot account sending through
the admin-free client API from a thread. Every few seconds it samples this process's
RSS and open file descriptors, the items the timeline widget holds, the client's open
room views, the app's running workers, and how late the event loop answers. The slope
of each (least squares, after a warm-up of the first third) is the figure: flat means
no leak. A worker running longer than a minute counts as stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fds import fd_kinds
from bench.heap import (
    collect_frozen,
    frozen_k,
    growers,
    malloc_mb,
    py_blocks_k,
    pymalloc_mb,
    rss_parts_mb,
    sqlite_mb,
    type_counts,
)

ROOMS = 50
#: httpx's keep-alive expiry of an idle connection, in seconds.
KEEPALIVE = 5.0


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    held_items: int
    views: int
    workers: int
    loop_lag_ms: float
    fd_kinds: dict[str, int] = field(default_factory=dict)
    #: Where the RSS is (bench/heap.py): Python's small-object blocks (thousands),
    #: SQLite's allocations (page cache included), malloc's bytes in use and free-but-held.
    rss_anon_mb: float = 0.0
    rss_file_mb: float = 0.0
    py_kblocks: float = 0.0
    #: Objects frozen out of the collector's sight (thousands; engine/gc_policy.py).
    frozen_k: float = 0.0
    #: pymalloc: bytes of its blocks in use, and its arenas (mapped outside malloc).
    py_used_mb: float = 0.0
    py_arenas_mb: float = 0.0
    sqlite_mb: float = 0.0
    malloc_used_mb: float = 0.0
    malloc_free_mb: float = 0.0

    def line(self) -> str:
        """One line: time, RSS and its parts, descriptors by kind, timeline, views, workers, lag."""
        kinds = " ".join(f"{kind}={n}" for kind, n in sorted(self.fd_kinds.items()))
        return (
            f"{self.t:8.0f} s  rss {self.rss_mb:6.1f} MB (anon {self.rss_anon_mb:.1f} "
            f"file {self.rss_file_mb:.1f})  py {self.py_kblocks:.0f}k blocks "
            f"({self.frozen_k:.0f}k frozen objects) "
            f"{self.py_used_mb:.1f} MB in {self.py_arenas_mb:.0f} MB arenas  "
            f"sqlite {self.sqlite_mb:.1f} MB  malloc {self.malloc_used_mb:.1f}+"
            f"{self.malloc_free_mb:.1f} free MB  fds {self.fds} ({kinds})  "
            f"held {self.held_items}  views {self.views}  workers {self.workers}  "
            f"lag {self.loop_lag_ms:.1f} ms"
        )

    def value(self, name: str) -> float:
        """A measure by name; ``fds:<kind>`` is the count of one kind of descriptor."""
        if name.startswith("fds:"):
            return float(self.fd_kinds.get(name[4:], 0))
        return float(getattr(self, name))


@dataclass
class SoakReport:
    seconds: float
    sent: int
    switches: int
    pages: int
    samples: list[Sample] = field(default_factory=list)
    stuck_workers: list[str] = field(default_factory=list)
    #: Descriptors by kind with the app at rest (no bot, no switching, idle connections
    #: expired), before the run and after it: what a leak leaves behind.
    settled_before: dict[str, int] = field(default_factory=dict)
    settled_after: dict[str, int] = field(default_factory=dict)
    #: Live objects by type (gc census) at the end of the warm-up and at the end of the run.
    census_warm: dict[str, int] = field(default_factory=dict)
    census_end: dict[str, int] = field(default_factory=dict)
    #: ``PRAGMA cache_size`` of the cache's connection, and its pages (page_count).
    sqlite_cache_size: int = 0
    sqlite_pages: int = 0
    #: At the end: what one full collection with nothing frozen found unreachable
    #: (objects, MB of pymalloc blocks freed), and the RSS before and after it.
    frozen_garbage: tuple[int, float] = (0, 0.0)
    #: Those unreachable objects by type, most numerous first.
    frozen_garbage_kinds: dict[str, int] = field(default_factory=dict)
    #: SQLite's memory (MB) at the end, and after ``PRAGMA shrink_memory`` on the cache's
    #: connection (which gives back its page cache): the difference is that page cache.
    sqlite_before_after_shrink: tuple[float, float] = (0.0, 0.0)
    rss_before_after_collect: tuple[float, float] = (0.0, 0.0)

    def settled_growth(self) -> dict[str, int]:
        """Kinds of descriptor more numerous at rest after the run than before it."""
        kinds = set(self.settled_before) | set(self.settled_after)
        growth = {k: self.settled_after.get(k, 0) - self.settled_before.get(k, 0) for k in kinds}
        return {kind: n for kind, n in sorted(growth.items()) if n > 0}

    def after_warm_up(self) -> list[Sample]:
        start = (
            self.samples[0].t + (self.samples[-1].t - self.samples[0].t) / 3 if self.samples else 0
        )
        return [s for s in self.samples if s.t >= start]

    def slope_per_hour(self, name: str) -> float:
        """Least-squares slope of ``name`` after the warm-up, per hour."""
        points = [(s.t, s.value(name)) for s in self.after_warm_up()]
        if len(points) < 3:
            return 0.0
        mean_t = sum(t for t, _ in points) / len(points)
        mean_v = sum(v for _, v in points) / len(points)
        var = sum((t - mean_t) ** 2 for t, _ in points)
        if var == 0:
            return 0.0
        return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600

    def fd_kinds(self) -> list[str]:
        """Every kind of descriptor seen, most numerous (at the end) first."""
        kinds = {kind for s in self.samples for kind in s.fd_kinds}
        last = self.samples[-1].fd_kinds if self.samples else {}
        return sorted(kinds, key=lambda kind: (-last.get(kind, 0), kind))

    def attribution(self) -> list[str]:
        """What grew between the end of the warm-up and the end: object types (gc census),
        and the cache connection's page-cache bound."""
        before, after = Counter(self.census_warm), Counter(self.census_end)
        lines = [
            f"gc objects: {sum(before.values())} after warm-up -> {sum(after.values())} at the end"
        ]
        grown = growers(before, after)
        lines.append("top growers: " + (", ".join(f"{name} +{n}" for name, n in grown) or "none"))
        found, freed = self.frozen_garbage
        before_mb, after_mb = self.rss_before_after_collect
        lines.append(
            f"full collection at the end (nothing frozen): {found} unreachable objects, "
            f"{freed:.1f} MB of Python blocks freed; RSS {before_mb:.1f} -> {after_mb:.1f} MB"
        )
        lines.append(
            "of which: "
            + (", ".join(f"{name} {n}" for name, n in self.frozen_garbage_kinds.items()) or "none")
        )
        if self.sqlite_cache_size:
            bound = (
                f"{-self.sqlite_cache_size / 1024:.0f} MiB"
                if self.sqlite_cache_size < 0
                else f"{self.sqlite_cache_size} pages"
            )
            held, rest = self.sqlite_before_after_shrink
            lines.append(
                f"cache connection: cache_size {bound}, database {self.sqlite_pages} pages; "
                f"SQLite {held:.1f} MB, {rest:.1f} MB once its page cache is given back "
                "(PRAGMA shrink_memory)"
            )
        return lines

    def table(self) -> str:
        warm = self.after_warm_up()
        lines = [
            f"soak: {self.seconds:.0f} s, {self.sent} messages into {ROOMS} rooms, "
            f"{self.switches} room switches, {self.pages} page-ups, {len(self.samples)} samples",
            f"{'':24}{'after warm-up':>16}{'end':>10}{'max':>10}{'slope/hour':>14}",
        ]
        for name, unit in (
            ("rss_mb", "MB"),
            ("rss_anon_mb", "MB"),
            ("rss_file_mb", "MB"),
            ("py_kblocks", "k"),
            ("frozen_k", "k"),
            ("py_used_mb", "MB"),
            ("py_arenas_mb", "MB"),
            ("sqlite_mb", "MB"),
            ("malloc_used_mb", "MB"),
            ("malloc_free_mb", "MB"),
            ("fds", ""),
            *((f"fds:{kind}", "") for kind in self.fd_kinds()),
            ("held_items", ""),
            ("views", ""),
            ("workers", ""),
            ("loop_lag_ms", "ms"),
        ):
            values = [s.value(name) for s in warm] or [0.0]
            lines.append(
                f"{name + (' (' + unit + ')' if unit else ''):24}{values[0]:>16.1f}{values[-1]:>10.1f}"
                f"{max(values):>10.1f}{self.slope_per_hour(name):>14.2f}"
            )
        at_rest = ", ".join(
            f"{kind} {self.settled_before.get(kind, 0)}->{self.settled_after.get(kind, 0)}"
            for kind in sorted(set(self.settled_before) | set(self.settled_after))
        )
        lines.append(f"fds at rest, before->after: {at_rest}")
        lines.extend(self.attribution())
        lines.append(f"stuck workers: {', '.join(self.stuck_workers) or 'none'}")
        return "\n".join(lines)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cache_pages(cache: Any) -> tuple[int, int]:
    """``PRAGMA cache_size`` and ``page_count`` of the cache's connection (its thread)."""
    db = cache._db
    return db.execute("PRAGMA cache_size").fetchone()[0], db.execute(
        "PRAGMA page_count"
    ).fetchone()[0]


def _shrink(cache: Any) -> None:
    """Give back the cache connection's page cache (its thread)."""
    cache._db.execute("PRAGMA shrink_memory")


async def _at_rest(client: Any, pilot: Any, ports: dict[int, str]) -> dict[str, int]:
    """Descriptors by kind once the app is at rest: a few seconds without input, then a
    request, which makes the pool close the connections idle past their keep-alive. The
    least of three such samples 2 s apart: a request that happens to be in flight is gone
    in one of them, a leaked descriptor is in all."""
    from tui_client.protocol import requests as api

    await pilot.pause(KEEPALIVE + 1)
    samples = []
    for _ in range(3):
        await client.connection.send(api.versions())
        await pilot.pause(0.5)
        samples.append(fd_kinds(ports=ports))
        await pilot.pause(2)
    kinds = {kind for sample in samples for kind in sample}
    return {kind: min(sample.get(kind, 0) for sample in samples) for kind in sorted(kinds)}


def _bot(
    synapse: Any,
    token: str,
    rooms: list[str],
    stop: threading.Event,
    rate: float,
    counter: list[int],
) -> None:
    rng = random.Random(19)
    n = 0
    while not stop.is_set():
        room = rng.choice(rooms)
        path = urllib.parse.quote(room, safe="")
        status, _ = synapse.request_json(
            "PUT",
            f"/_matrix/client/v3/rooms/{path}/send/m.room.message/soak{n}",
            {
                "msgtype": "m.text",
                "body": f"soak message {n}: " + "lorem ipsum " * rng.randint(1, 20),
            },
            token=token,
        )
        if status == 200:
            counter[0] += 1
        n += 1
        stop.wait(1 / rate)


async def run_soak(
    synapse: Any,
    folder: Path,
    seconds: float,
    *,
    rate: float = 5.0,
    sample_every: float = 5.0,
    trace: Any = None,
    cache_kib: int = 0,
) -> SoakReport:
    """The soak against a running ``synapse`` (a SynapseServer); the app's data under ``folder``.
    ``trace``: a text stream that gets each sample as it is taken (a long run can be watched).
    ``cache_kib``: the cache connection's page-cache bound for this run (0: the app's own),
    to tell SQLite's page cache filling up from other growth."""
    from tui_client.engine.client import MatrixClient
    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.widgets.timeline import TimelineView

    ports = {urllib.parse.urlsplit(synapse.base_url).port or 80: "synapse"}
    suffix = f"{os.getpid()}{random.randrange(10**6)}"
    reader = synapse.register_user(f"soakreader{suffix}", "pw")
    bot = synapse.register_user(f"soakbot{suffix}", "pw")
    rooms: list[str] = []
    for i in range(ROOMS):
        status, body = synapse.request_json(
            "POST",
            "/_matrix/client/v3/createRoom",
            {"name": f"Soak {i:02}", "preset": "private_chat", "invite": [reader.user_id]},
            token=bot.access_token,
        )
        assert status == 200, body
        rooms.append(body["room_id"])
        status, body = synapse.request_json(
            "POST",
            f"/_matrix/client/v3/join/{urllib.parse.quote(rooms[-1], safe='')}",
            {},
            token=reader.access_token,
        )
        assert status == 200, body
    client = await MatrixClient.login(
        reader.user_id, "pw", homeserver=synapse.base_url, base_dir=folder
    )
    await client.close()

    report = SoakReport(seconds=seconds, sent=0, switches=0, pages=0)
    counter = [0]
    stop = threading.Event()
    bot_thread = threading.Thread(
        target=_bot, args=(synapse, bot.access_token, rooms, stop, rate, counter), daemon=True
    )
    app = TuiClientApp(base_dir=folder)
    rng = random.Random(7)
    first_seen: dict[int, float] = {}
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 60
            while (
                app.chat_screen is None or app.client is None or len(app.client.rooms) < ROOMS
            ) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert app.chat_screen is not None and app.client is not None, (
                "the app did not reach the rooms"
            )
            if cache_kib:
                cache = app.client.cache
                await app.client.db.run(
                    lambda: cache._db.execute(f"PRAGMA cache_size=-{cache_kib}")
                )
            report.settled_before = await _at_rest(app.client, pilot, ports)
            bot_thread.start()
            start = time.monotonic()
            next_sample = start
            while (now := time.monotonic()) < start + seconds:
                chat = app.chat_screen
                assert chat is not None
                chat.open_room(rng.choice(rooms))
                report.switches += 1
                await pilot.pause(0.3)
                timeline = chat.query_one(TimelineView)
                timeline.focus()
                for _ in range(rng.randint(0, 4)):
                    await pilot.press("pageup")
                    report.pages += 1
                    await pilot.pause(0.1)
                await pilot.press("end")
                if now >= next_sample:
                    next_sample += sample_every
                    before = time.perf_counter()
                    await asyncio.sleep(0)
                    lag = (time.perf_counter() - before) * 1000
                    running = [w for w in app.workers if w.is_running]
                    for worker in running:
                        first_seen.setdefault(id(worker), now)
                        if (
                            now - first_seen[id(worker)] > 60
                            and worker.name not in report.stuck_workers
                        ):
                            report.stuck_workers.append(f"{worker.group}/{worker.name}")
                    kinds = fd_kinds(ports=ports)
                    report.samples.append(
                        Sample(
                            now - start,
                            _rss_mb(),
                            sum(kinds.values()),
                            len(timeline.items),
                            len(app.client.views),
                            len(running),
                            lag,
                            kinds,
                            *rss_parts_mb(),
                            py_blocks_k(),
                            frozen_k(),
                            *pymalloc_mb(),
                            sqlite_mb(),
                            *malloc_mb(),
                        )
                    )
                    if not report.census_warm and now - start >= seconds / 3:
                        report.census_warm = dict(type_counts())
                    if trace is not None:
                        print(report.samples[-1].line(), file=trace, flush=True)
            stop.set()
            bot_thread.join(30)
            report.census_end = dict(type_counts())
            report.sqlite_cache_size, report.sqlite_pages = await app.client.db.run(
                _cache_pages, app.client.cache
            )
            held = sqlite_mb()
            await app.client.db.run(_shrink, app.client.cache)
            report.sqlite_before_after_shrink = (held, sqlite_mb())
            rss = _rss_mb()
            found, freed, kinds = collect_frozen()
            report.frozen_garbage = (found, freed)
            report.frozen_garbage_kinds = dict(kinds.most_common(12))
            report.rss_before_after_collect = (rss, _rss_mb())
            report.settled_after = await _at_rest(app.client, pilot, ports)
    finally:
        stop.set()
        if bot_thread.is_alive():
            bot_thread.join(10)
    report.sent = counter[0]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=5.0, help="bot messages per second")
    parser.add_argument(
        "--cache-kib", type=int, default=0, help="the cache's page-cache bound (KiB) for this run"
    )
    parser.add_argument("--trace", action="store_true", help="print each sample to stderr")
    args = parser.parse_args(argv)
    from tui_client.devtools.synapse import SynapseServer

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        server = SynapseServer(Path(tmp) / "synapse")
        server.start()
        try:
            report = asyncio.run(
                run_soak(
                    server,
                    Path(tmp) / "client",
                    args.seconds,
                    rate=args.rate,
                    trace=sys.stderr if args.trace else None,
                    cache_kib=args.cache_kib,
                )
            )
        finally:
            server.stop()
    print(report.table())
    return 0 if not report.stuck_workers else 1


if __name__ == "__main__":
    raise SystemExit(main())
