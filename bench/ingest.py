"""Initial sync ingest: from the raw ``/sync`` bytes to a committed cache and a sorted room list.

Cases, measured in the same run on fresh on-disk databases (WAL, ``synchronous=NORMAL``):

``ours``
    The client's real path: ``Cache(path)`` on a new file (schema migrations
    included), then the engine's ``MatrixClient._ingest_raw(raw)``: a response this
    large is read in slices of rooms (``net.sync_stream``, one pass) and stored by
    ``Cache.ingest_slices`` (one transaction, committed); ``ours, decoded whole``:
    ``SyncV2Source.parse(raw)`` (``json.loads`` and ``parse_sync``) and
    ``Cache.ingest_sync``. Then the changed summaries adopted and sorted by
    ``MatrixClient.room_list``.
``floor`` (the baseline)
    ``json.loads(raw)``, then the same state and timeline events written with one
    ``executemany`` of ``(event_id, room_id, json.dumps(event))`` into a bare table
    ``(event_id TEXT PRIMARY KEY, room_id TEXT, json TEXT)`` in one transaction, with
    the same pragmas, then the decoded response dropped. No code can store the events
    and do less.
``matrix-nio``
    ``nio.responses.SyncResponse.from_dict(json.loads(raw))``: nio's parsing alone
    (jsonschema validation of the response and of every event), nothing stored.

Run ``python -m bench.ingest`` (``--rounds N``, ``--nio-rounds N``, ``--no-nio``,
``--no-profile``, ``--seed S``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tui_client.crypto import CryptoStore, OlmMachine, load_backend
from tui_client.engine import gc_policy
from tui_client.engine.client import CACHE_FILE, MatrixClient
from tui_client.engine.core import Core
from tui_client.engine.encryption import Encryption
from tui_client.engine.notifications import NotificationService
from tui_client.engine.presence import PresenceService
from tui_client.engine.secrets import SecretStore
from tui_client.engine.server_clock import ServerClock
from tui_client.engine.sync import SyncV2Source
from tui_client.protocol.room_state import RoomSummary
from tui_client.store.cache import Cache

from ._harness import Case, CaseResult, Sample, Stopwatch, fmt_ms, print_table, run_rounds
from .synthetic import DEFAULT_SEED, OWN_USER_ID, initial_sync, payload_stats

__all__ = [
    "FLOOR",
    "NIO",
    "OURS",
    "TARGET_RATIO",
    "IngestReport",
    "floor_case",
    "main",
    "nio_case",
    "ours_case",
    "run",
]

OURS = "ours"
#: Ours and then the search index the engine builds after the batch.
OURS_INDEXED = "ours + index"
#: Ours with the response decoded whole (json.loads), not in slices of rooms (net.sync_stream).
OURS_WHOLE = "ours, decoded whole"
FLOOR = "floor"
NIO = "matrix-nio"
#: Issue 13: ours at most 1.5x the floor (both under the same collector settings).
TARGET_RATIO = 1.5


BENCH_DEVICE_ID = "BENCHDEVICE"


@dataclass(slots=True)
class _Engine:
    """What ``MatrixClient._ingest_raw`` and ``room_list`` read of the client: no network needed.

    ``encryption`` is the engine's own :class:`Encryption` with an open Olm machine (see
    :func:`open_encryption`), so its sync hook runs inside the measured ingest as it does in
    a logged-in client.
    """

    _source: SyncV2Source
    cache: Cache
    rooms: dict[str, RoomSummary]
    user_id: str = OWN_USER_ID
    device_id: str = BENCH_DEVICE_ID
    encryption: Encryption | None = None
    notifications: NotificationService | None = None
    presence: PresenceService | None = None
    server_clock: ServerClock = field(default_factory=ServerClock)

    @property
    def core(self) -> _Engine:
        """The engine's :class:`Core` (what it reads of one: the cache, the room list)."""
        return self


async def _no_members(room_id: str) -> None:
    raise AssertionError("the ingest benchmark fetches no members")


def open_encryption(engine: _Engine) -> None:
    """Give the stand-in the engine's encryption service with a new Olm machine in its cache."""
    encryption = Encryption(cast(Core, engine), cast(SecretStore, None), fetch_members=_no_members)
    engine.cache.begin()
    encryption.machine = OlmMachine(
        engine.user_id,
        engine.device_id,
        cast(CryptoStore, encryption.store),
        load_backend("olm"),
        pickle_key=bytes(32),
    )
    engine.cache.commit()
    engine.encryption = encryption
    # Push rules over the batch's events, as the client counts its encrypted rooms.
    engine.notifications = NotificationService(
        engine.cache,
        cast(Any, None),
        cast(Any, None),
        lambda update: None,
        user_id=engine.user_id,
        shown_forms=encryption.shown_forms,
        rooms=lambda: engine.rooms,
    )
    # Presence is collected on the database thread during ingest, as in the client.
    engine.presence = PresenceService(
        cast(Any, None), engine.cache, cast(Any, None), lambda update: None, user_id=engine.user_id
    )


def ours_case(
    raw: bytes, expected_events: int, *, index: bool = False, whole: bool = False
) -> Case:
    """Our path: open a new cache, ``MatrixClient._ingest_raw`` (parse + ingest), sort the room list.

    ``_ingest_raw`` is what the sync loop runs on the database thread for every
    batch: ``SyncV2Source.parse`` then ``Cache.ingest_sync``. Calling the engine's own
    function (on a stand-in for the client) keeps anything the engine adds around
    ingest inside the measurement. The search index is built after the batch (the
    engine does it in slices once the room list is out); ``index=True`` times it too.
    A response this large is decoded and stored in slices of rooms (``net.sync_stream``,
    for memory); ``whole=True`` decodes it whole, as a response under 2 MiB is.
    """
    source = SyncV2Source(cast(Any, None))  # parse() needs no connection
    if whole:
        source.slice_bytes = len(raw) + 1

    def run(folder: Path) -> Sample:
        watch = Stopwatch()
        with watch.part("open cache"):
            cache = Cache(folder / CACHE_FILE, own_user_id=OWN_USER_ID)
            engine = _Engine(source, cache, {})
            open_encryption(engine)
        with watch.part("parse + ingest_sync"):
            result = MatrixClient._ingest_raw(cast(MatrixClient, engine), raw, True)
        with watch.part("room list"):
            engine.rooms.update(result.changed_rooms)
            listed = MatrixClient.room_list(cast(MatrixClient, engine))
        if index:
            with watch.part("search index (after)"):
                cache.index_pending(None)
        stored = cache.stats()["events"]
        cache.close()
        if stored != expected_events or len(listed) != len(result.changed_rooms):
            raise AssertionError(f"ingest stored {stored} events and listed {len(listed)} rooms")
        return watch.sample

    return run


def floor_case(raw: bytes, expected_events: int) -> Case:
    """The floor: ``json.loads`` and one bare batched insert of the same events."""

    def run(folder: Path) -> Sample:
        # Under the same collector settings as ours (``_ingest_raw`` pauses it).
        with gc_policy.paused():
            return timed(folder)

    def timed(folder: Path) -> Sample:
        watch = Stopwatch()
        with watch.part("json.loads"):
            data = json.loads(raw)
        with watch.part("open db"):
            db = sqlite3.connect(str(folder / "floor.sqlite3"), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY, room_id TEXT, json TEXT)")
        with watch.part("dumps+insert"):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO events (event_id, room_id, json) VALUES (?, ?, ?)",
                (
                    (event["event_id"], room_id, json.dumps(event))
                    for room_id, room in data["rooms"]["join"].items()
                    for section in ("state", "timeline")
                    for event in room[section]["events"]
                ),
            )
        with watch.part("commit"):
            db.execute("COMMIT")
        with watch.part("free"):
            # The decoded response dropped, as ours in slices drops each slice once stored
            # (inside its timing); freeing it is ~40 ms any client pays.
            del data
        (stored,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        db.close()
        if stored != expected_events:
            raise AssertionError(f"floor stored {stored} events")
        return watch.sample

    return run


def import_nio_sync_response() -> Any:
    """``nio.responses.SyncResponse``, importable even without nio's e2e extras.

    nio enables its encryption modules when ``vodozemac`` is importable, and those
    need ``cachetools``, ``atomicwrites`` and ``peewee`` (the ``e2e`` extra), which
    this project does not install. Parsing needs none of it, so vodozemac is hidden
    from nio's ``find_spec`` check while nio is imported.
    """
    missing = object()
    saved = sys.modules.get("vodozemac", missing)
    sys.modules["vodozemac"] = cast(Any, None)  # find_spec() returns None for a None entry
    try:
        from nio.responses import SyncResponse  # type: ignore[import-untyped]
    finally:
        if saved is missing:
            del sys.modules["vodozemac"]
        else:
            sys.modules["vodozemac"] = cast(Any, saved)
    # nio logs every event its schemas reject (room v12 create events without
    # predecessor.event_id, for one); the messages are still built, but not printed.
    logging.getLogger("nio").setLevel(logging.CRITICAL)
    return SyncResponse


def nio_case(raw: bytes, expected_rooms: int) -> Case:
    """matrix-nio's parsing of the same payload (nothing stored)."""
    sync_response = import_nio_sync_response()

    def run(folder: Path) -> Sample:
        # Under the same collector settings as ours (``_ingest_raw`` pauses it).
        with gc_policy.paused():
            return timed(folder)

    def timed(folder: Path) -> Sample:
        watch = Stopwatch()
        with watch.part("json.loads"):
            data = json.loads(raw)
        with watch.part("SyncResponse.from_dict"):
            response = sync_response.from_dict(data)
        if type(response).__name__ != "SyncResponse" or len(response.rooms.join) != expected_rooms:
            raise AssertionError(f"nio did not parse the payload: {type(response).__name__}")
        return watch.sample

    return run


def nio_bad_events(raw: bytes) -> dict[str, int]:
    """Room events nio's schemas reject, by event type (reported, not timed)."""
    sync_response = import_nio_sync_response()
    response = sync_response.from_dict(json.loads(raw))
    bad: dict[str, int] = {}
    for info in response.rooms.join.values():
        for event in [*info.state, *info.timeline.events]:
            if type(event).__name__ in ("BadEvent", "UnknownBadEvent"):
                key = event.type if isinstance(getattr(event, "type", None), str) else "?"
                bad[key] = bad.get(key, 0) + 1
    return bad


# -- profile -------------------------------------------------------------------------


class _TimedConnection:
    """Stands in for the cache's connection and times each SQL statement."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def _timed(self, kind: str, method: Callable[..., Any], sql: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(sql, *args)
        finally:
            key = f"{kind} {' '.join(sql.split())[:72]}"
            self.spent[key] += time.perf_counter() - start
            self.calls[key] += 1

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute    ", self.db.execute, sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._timed("executemany", self.db.executemany, sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def profile_ingest(raw: bytes, folder: Path, top: int = 18) -> str:
    """cProfile of one run of our path, and the time spent in each SQL statement."""
    out = io.StringIO()
    source = SyncV2Source(cast(Any, None))
    profiler = cProfile.Profile()
    cache = Cache(folder / "profiled.sqlite3", own_user_id=OWN_USER_ID)
    engine = _Engine(source, cache, {})
    open_encryption(engine)
    profiler.enable()
    result = MatrixClient._ingest_raw(cast(MatrixClient, engine), raw, True)
    engine.rooms.update(result.changed_rooms)
    MatrixClient.room_list(cast(MatrixClient, engine))
    profiler.disable()
    cache.close()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    report = [
        "cProfile of our path (one run; the profiler inflates Python-level costs), by own time:"
    ]
    report += [
        "  " + line.replace(str(Path(sys.prefix)), "<venv>") for line in [lines[0], *lines[start:]]
    ]

    # SQL breakdown (a separate, unprofiled run).
    batch = source.parse(raw)
    cache = Cache(folder / "timed.sqlite3", own_user_id=OWN_USER_ID)
    timed = _TimedConnection(cache._db)
    cache._db = cast(sqlite3.Connection, timed)
    start_time = time.perf_counter()
    cache.ingest_sync(batch, {})  # the SQL only: parsing is outside this timing
    total = time.perf_counter() - start_time
    cache._db = timed.db
    cache.close()
    report.append(
        f"SQL statements of one ingest_sync (unprofiled; ingest_sync took {fmt_ms(total)}):"
    )
    for key, spent in sorted(timed.spent.items(), key=lambda item: -item[1])[:10]:
        report.append(f"  {fmt_ms(spent):>11}  {timed.calls[key]:>6} x {key}")
    return "\n".join(report)


# -- running -------------------------------------------------------------------------


@dataclass(slots=True)
class IngestReport:
    """The results of one run of this benchmark."""

    results: dict[str, CaseResult]
    payload_bytes: int
    payload_events: int

    @property
    def ratio(self) -> float:
        """Ours over the floor (median of paired wall-time ratios)."""
        return self.results[OURS].wall_ratio

    @property
    def nio_over_ours(self) -> float | None:
        """nio's median wall time over ours (None when nio was not run)."""
        nio = self.results.get(NIO)
        return nio.wall_median / self.results[OURS].wall_median if nio else None


def run(
    *,
    rounds: int = 5,
    nio_rounds: int = 3,
    with_nio: bool = True,
    seed: int = DEFAULT_SEED,
    verbose: bool = False,
) -> IngestReport:
    """Measure ours, the floor and (optionally) nio on the synthetic payload."""
    raw = initial_sync(seed)
    stats = payload_stats(raw)
    cases: dict[str, Case] = {
        FLOOR: floor_case(raw, stats.room_events),
        OURS: ours_case(raw, stats.room_events),
        OURS_INDEXED: ours_case(raw, stats.room_events, index=True),
        OURS_WHOLE: ours_case(raw, stats.room_events, whole=True),
    }
    sparse = {}
    if with_nio:
        cases[NIO] = nio_case(raw, stats.rooms)
        sparse[NIO] = min(nio_rounds, rounds)
    results = run_rounds(cases, FLOOR, rounds, sparse=sparse, progress=print if verbose else None)
    return IngestReport(results, stats.size_bytes, stats.room_events)


def print_report(report: IngestReport) -> None:
    """The table of cases, their parts, and the verdict."""
    rows = []
    for result in report.results.values():
        rows.append(
            [
                result.name,
                str(len(result.samples)),
                fmt_ms(result.wall_median),
                fmt_ms(result.wall_min),
                fmt_ms(result.cpu_median),
                f"{result.wall_ratio:.2f}",
                f"{result.cpu_ratio:.2f}",
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
            "x floor (wall)",
            "x floor (cpu)",
        ],
    )
    for result in report.results.values():
        parts = ", ".join(f"{name} {fmt_ms(t)}" for name, t in result.part_medians().items())
        print(f"  {result.name}: {parts}")
    ours = report.results[OURS]
    mb = report.payload_bytes / 1e6
    verdict = {
        kind: f"{ratio:.2f} ({'met' if ratio <= TARGET_RATIO else 'NOT met'})"
        for kind, ratio in (("CPU", ours.cpu_ratio), ("wall", ours.wall_ratio))
    }
    print(
        f"ours: {report.payload_events / ours.wall_median:,.0f} events/s, {mb / ours.wall_median:.1f} MB/s; "
        f"ratio to floor (target <= {TARGET_RATIO:.1f}): CPU {verdict['CPU']}, wall {verdict['wall']}"
    )
    if report.nio_over_ours is not None:
        print(
            f"matrix-nio parsing alone takes {report.nio_over_ours:.1f}x as long as our whole ingest"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ingest``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of ours and the floor (default 5)"
    )
    parser.add_argument(
        "--nio-rounds", type=int, default=3, help="rounds that include matrix-nio (default 3)"
    )
    parser.add_argument("--no-nio", action="store_true", help="skip matrix-nio")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the cProfile and SQL breakdown"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args(argv)

    raw = initial_sync(args.seed)
    stats = payload_stats(raw)
    print(
        f"Initial sync ingest: {stats.size_bytes:,} bytes, {stats.rooms:,} joined rooms, "
        f"{stats.room_events:,} room events (seed {args.seed})"
    )
    report = run(
        rounds=args.rounds,
        nio_rounds=args.nio_rounds,
        with_nio=not args.no_nio,
        seed=args.seed,
        verbose=args.verbose,
    )
    print_report(report)
    if not args.no_nio:
        bad = nio_bad_events(raw)
        if bad:
            print(f"  (nio rejected {sum(bad.values())} spec-valid events as BadEvent: {bad})")
    if not args.no_profile:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
            print(profile_ingest(raw, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
