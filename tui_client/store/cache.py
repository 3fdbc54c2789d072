"""The SQLite cache of one account: rooms, events, state, gaps, receipts, the outbox.

One :class:`Cache` owns one connection and is used from one thread (the engine's
database thread). Every write that belongs to a sync batch happens inside
:meth:`Cache.ingest_sync`, in one transaction that ends by storing ``next_batch``:
killed at any point, the cache holds either the whole batch and its token or
neither. SQL is parameterised throughout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from ..protocol.events import index_event
from ..protocol.room_state import PowerLevels, RoomSummary, same_server
from ..protocol.room_versions import redact, rules_for
from ..protocol.sync import InvitedRoom, JoinedRoom, LeftRoom, SyncBatch
from .crypto_store import SqliteCryptoStore
from .encrypted_db import connect, encrypt_in_place, finish_interrupted_migration, is_plain_sqlite
from .schema import migrate

log = logging.getLogger(__name__)

__all__ = ["Cache", "Gap", "IngestResult", "OutboxEntry", "PendingJoin", "SearchHit", "StoredEvent", "fts_match"]

# Room between the last cached event and the first event after a `limited` sync:
# back-filled events of the gap take the positions just below the later event.
GAP_SPACE = 1 << 32
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
# What valid JSON can carry but SQLite cannot store: a string with a lone surrogate
# (from a ``\ud800`` escape) is not UTF-8, an integer beyond 64 bits does not fit.
_UNSTORABLE = (UnicodeEncodeError, OverflowError)
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = 1 << 63

Event = dict[str, Any]
# Hook run inside the ingest transaction, after events and before the token (tests
# use it to kill the writer there; the crypto layer will write its state there).
IngestHook = Callable[[sqlite3.Connection, SyncBatch], Any]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as cached: its position in the room's timeline and the event itself."""

    pos: int
    event: Event


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing history just below position ``pos_above``, fetchable from ``token``."""

    room_id: str
    pos_above: int
    token: str


@dataclass(slots=True)
class IngestResult:
    """What a committed sync batch changed, for the engine to publish."""

    next_batch: str
    changed_rooms: dict[str, RoomSummary] = field(default_factory=dict)
    new_events: dict[str, list[StoredEvent]] = field(default_factory=dict)
    limited_rooms: set[str] = field(default_factory=set)
    removed_rooms: set[str] = field(default_factory=set)
    typing: dict[str, list[str]] = field(default_factory=dict)
    receipts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    echoed_txn_ids: set[str] = field(default_factory=set)
    state_changed_rooms: set[str] = field(default_factory=set)
    # Rooms whose batch had a ``state`` block (members an open view does not know yet).
    state_rooms: set[str] = field(default_factory=set)
    skipped_events: int = 0
    # What the ingest hook returned (the crypto layer's decryptions, for example).
    hook_result: Any = None
    # Unread counts per thread of the joined rooms in the batch: room -> root -> counts.
    thread_counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message found by the local full-text index, with its current text."""

    event_id: str
    room_id: str
    sender: str
    ts: int
    body: str
    seq: int


@dataclass(frozen=True, slots=True)
class PendingJoin:
    """A join asked for and not made yet (kept across restarts)."""

    key: str
    target: str
    via: tuple[str, ...]
    label: str
    reason: str | None
    after_key: str | None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message waiting for (or refused by) the server."""

    seq: int
    txn_id: str
    room_id: str
    event_type: str
    content: dict[str, Any]
    state: str
    event_id: str | None
    error: str | None
    attempts: int
    created_ts: int


def _secure_create(path: Path) -> None:
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


class Cache:
    """The account's SQLite cache (WAL, one writer, numbered migrations)."""

    def __init__(self, path: Path | str, *, own_user_id: str = "", key: bytes | None = None) -> None:
        # ``key``: open with SQLCipher (a plain cache found there is encrypted first);
        # ``None`` keeps a plain SQLite file (tests and benchmark baselines).
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if key is not None:
                finish_interrupted_migration(self.path)
                if is_plain_sqlite(self.path):
                    encrypt_in_place(self.path, key)
            _secure_create(self.path)
        self._db = connect(path, key)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA temp_store=MEMORY")
        # A first sync writes tens of MB; with SQLite's default 2 MiB page cache the
        # event_id index (random keys) keeps being evicted and read back. 8 MiB holds
        # the hot index pages: ingest CPU within noise of 64 MiB (bench/ingest.py),
        # 38 MB less peak RSS through a 1,000-room first sync (bench/memory.py).
        self._db.execute("PRAGMA cache_size=-8192")
        self.schema_found = migrate(self._db)
        self.own_user_id = own_user_id or (self.get_meta("user_id") or "")

    def crypto_store(self) -> SqliteCryptoStore:
        """The crypto machine's store, on this cache's connection (same transactions)."""
        return SqliteCryptoStore(self._db)

    def begin(self) -> None:
        """Start a write transaction (for work outside :meth:`ingest_sync`)."""
        self._db.execute("BEGIN")

    def commit(self) -> None:
        """Commit the current transaction."""
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        """Abandon the current transaction."""
        self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self._db.close()

    # -- meta ----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value from the key/value meta table."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def get_avatar(self, mxc: str) -> tuple[int, int, bytes] | None:
        """A cached avatar's pixels: (width, height, RGBA bytes)."""
        row = self._db.execute("SELECT width, height, rgba FROM avatars WHERE mxc = ?", (mxc,)).fetchone()
        return (int(row[0]), int(row[1]), bytes(row[2])) if row else None

    def put_avatar(self, mxc: str, width: int, height: int, rgba: bytes, fetched_ts: int) -> None:
        """Keep an avatar's pixels (its own transaction)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO avatars (mxc, width, height, rgba, fetched_ts) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(mxc) DO UPDATE SET width = excluded.width, height = excluded.height,"
                " rgba = excluded.rgba, fetched_ts = excluded.fetched_ts",
                (mxc, width, height, rgba, fetched_ts),
            )

    def set_meta(self, key: str, value: str) -> None:
        """Store a meta value (its own transaction)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @property
    def sync_token(self) -> str | None:
        """The ``next_batch`` of the last committed sync batch."""
        return self.get_meta("next_batch")

    # -- rooms ---------------------------------------------------------------------

    def load_summaries(self) -> dict[str, RoomSummary]:
        """Every room's summary, as the room list needs at start."""
        summaries: dict[str, RoomSummary] = {}
        for room_id, data in self._db.execute("SELECT room_id, summary FROM rooms"):
            summaries[room_id] = _summary_from_json(room_id, data)
        return summaries

    def save_summary(self, summary: RoomSummary) -> None:
        """Write one summary outside a sync batch (after a local change)."""
        with self._db:
            self._db.execute("BEGIN")
            self._write_summaries([summary])

    def _write_summaries(self, summaries: Iterable[RoomSummary]) -> None:
        self._db.executemany(
            "INSERT INTO rooms (room_id, summary, last_ts) VALUES (?, ?, ?) "
            "ON CONFLICT(room_id) DO UPDATE SET summary = excluded.summary, last_ts = excluded.last_ts",
            [(s.room_id, _dumps(_summary_to_json(s)), s.last_ts) for s in summaries],
        )

    def forget_room(self, room_id: str) -> None:
        """Remove everything cached about a room; later syncs of it as left are ignored."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (f"forgotten:{room_id}",)
            )
            for table in ("rooms", "events", "room_state", "gaps", "receipts", "invite_state", "thread_unread"):
                self._db.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))
            self._db.execute("DELETE FROM account_data WHERE room_id = ?", (room_id,))

    # -- sync ingest -----------------------------------------------------------------

    def ingest_sync(
        self,
        batch: SyncBatch,
        summaries: dict[str, RoomSummary],
        *,
        hook: IngestHook | None = None,
    ) -> IngestResult:
        """Store a whole sync batch and its ``next_batch`` in one transaction.

        ``summaries`` is the engine's in-memory room list. It is only read: the changed
        summaries come back as copies in the result, for the caller to adopt once the
        batch is committed (a failed batch changes nothing).
        """
        result = IngestResult(next_batch=batch.next_batch)
        db = self._db
        db.execute("BEGIN")
        try:
            try:
                _Ingest(self, summaries, result).run(batch)
            except _UNSTORABLE:
                # Rare: some event holds a lone surrogate or a huge integer. Start the
                # batch again from a repaired copy rather than refuse it forever.
                db.execute("ROLLBACK")
                db.execute("BEGIN")
                result = IngestResult(next_batch=batch.next_batch)
                _Ingest(self, summaries, result).run(_storable(batch))
            if hook is not None:
                result.hook_result = hook(db, batch)
            tokens = batch.tokens if batch.tokens is not None else {"next_batch": batch.next_batch}
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                tokens.items(),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    # -- timeline windows ----------------------------------------------------------

    def last_pos(self, room_id: str) -> int | None:
        """The newest timeline position of a room."""
        row = self._db.execute(
            "SELECT MAX(pos) FROM events WHERE room_id = ? AND pos IS NOT NULL", (room_id,)
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def gap_below(self, room_id: str, pos: int | None) -> Gap | None:
        """The nearest gap at or below ``pos`` (the newest gap when ``pos`` is None)."""
        if pos is None:
            row = self._db.execute(
                "SELECT pos_above, token FROM gaps WHERE room_id = ? ORDER BY pos_above DESC LIMIT 1",
                (room_id,),
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT pos_above, token FROM gaps WHERE room_id = ? AND pos_above <= ? "
                "ORDER BY pos_above DESC LIMIT 1",
                (room_id, pos),
            ).fetchone()
        return Gap(room_id, row[0], row[1]) if row else None

    def gaps(self, room_id: str) -> list[Gap]:
        """All gaps of a room, newest first."""
        rows = self._db.execute(
            "SELECT pos_above, token FROM gaps WHERE room_id = ? ORDER BY pos_above DESC", (room_id,)
        ).fetchall()
        return [Gap(room_id, p, t) for p, t in rows]

    def load_before(self, room_id: str, before_pos: int | None, limit: int) -> tuple[list[StoredEvent], Gap | None]:
        """Up to ``limit`` timeline events older than ``before_pos``, oldest first.

        Stops at a gap: events below a gap are not contiguous with those above it. The
        gap reached (if the result is short because of it) is returned too, so the
        caller can fill it from the server.
        """
        upper = before_pos if before_pos is not None else (1 << 62)
        gap = self.gap_below(room_id, upper if before_pos is not None else None)
        lower = gap.pos_above if gap is not None else -(1 << 62)
        rows = self._db.execute(
            "SELECT pos, json FROM events WHERE room_id = ? AND pos IS NOT NULL AND pos < ? AND pos >= ? "
            "ORDER BY pos DESC LIMIT ?",
            (room_id, upper, lower, limit),
        ).fetchall()
        rows.reverse()
        reached_gap = gap if len(rows) < limit else None
        return [StoredEvent(p, json.loads(j)) for p, j in rows], reached_gap

    def load_after(self, room_id: str, after_pos: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` timeline events newer than ``after_pos``, oldest first (to the next gap)."""
        gap = self._db.execute(
            "SELECT MIN(pos_above) FROM gaps WHERE room_id = ? AND pos_above > ?", (room_id, after_pos)
        ).fetchone()
        ceiling = gap[0] if gap and gap[0] is not None else (1 << 62)
        rows = self._db.execute(
            "SELECT pos, json FROM events WHERE room_id = ? AND pos > ? AND pos < ? ORDER BY pos LIMIT ?",
            (room_id, after_pos, ceiling, limit),
        ).fetchall()
        return [StoredEvent(p, json.loads(j)) for p, j in rows]

    def load_relations(self, target_ids: Sequence[str]) -> list[Event]:
        """Edits, reactions and thread replies that point at any of ``target_ids``."""
        found: list[Event] = []
        for chunk in _chunks(list(target_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT json FROM events WHERE relates_to IN ({marks}) "
                "AND rel_type IN ('m.replace', 'm.annotation', 'm.thread') ORDER BY ts",
                chunk,
            )
            found.extend(json.loads(j) for (j,) in rows)
        return found

    def load_events(self, event_ids: Sequence[str]) -> dict[str, Event]:
        """Cached events by ID (those we have)."""
        found: dict[str, Event] = {}
        for chunk in _chunks(list(event_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT event_id, json FROM events WHERE event_id IN ({marks})", chunk
            )
            found.update((e, json.loads(j)) for e, j in rows)
        return found

    def event_timestamps(self, event_ids: Sequence[str]) -> dict[str, int]:
        """``origin_server_ts`` of cached events by ID (those we have), without decoding them."""
        found: dict[str, int] = {}
        for chunk in _chunks(list(event_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT event_id, ts FROM events WHERE event_id IN ({marks})", chunk)
            found.update((e, int(ts)) for e, ts in rows)
        return found

    def count_timeline(self, room_id: str) -> int:
        """How many timeline events of a room are cached."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM events WHERE room_id = ? AND pos IS NOT NULL", (room_id,)
        ).fetchone()
        return int(row[0])

    def load_state(self, room_id: str, event_type: str | None = None) -> list[Event]:
        """The room's current state events (optionally of one type)."""
        if event_type is None:
            rows = self._db.execute(
                "SELECT e.json FROM room_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = ?",
                (room_id,),
            )
        else:
            rows = self._db.execute(
                "SELECT e.json FROM room_state s JOIN events e ON e.event_id = s.event_id "
                "WHERE s.room_id = ? AND s.type = ?",
                (room_id, event_type),
            )
        return [json.loads(j) for (j,) in rows]

    def state_event(self, room_id: str, event_type: str, state_key: str = "") -> Event | None:
        """One current state event of a room, or ``None``."""
        row = self._db.execute(
            "SELECT e.json FROM room_state s JOIN events e ON e.event_id = s.event_id "
            "WHERE s.room_id = ? AND s.type = ? AND s.state_key = ?",
            (room_id, event_type, state_key),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def load_state_of_types(self, event_types: Sequence[str]) -> list[tuple[str, Event]]:
        """Current state events of the given types in every room, as ``(room_id, event)``.

        The space graph reads all ``m.space.child``/``m.space.parent`` links with it in
        one query instead of one per room.
        """
        if not event_types:
            return []
        marks = ",".join("?" * len(event_types))
        rows = self._db.execute(
            "SELECT s.room_id, e.json FROM room_state s JOIN events e ON e.event_id = s.event_id "
            f"WHERE s.type IN ({marks})",
            list(event_types),
        )
        return [(room_id, json.loads(j)) for room_id, j in rows]

    def load_invite_state(self, room_id: str) -> list[Event]:
        """The stripped state of a room we are invited to."""
        row = self._db.execute("SELECT events FROM invite_state WHERE room_id = ?", (room_id,)).fetchone()
        return list(json.loads(row[0])) if row else []

    def add_member_events(self, room_id: str, events: Iterable[Event]) -> int:
        """Store member events from ``/members``; never overwrites a membership we have."""
        events = list(events)
        try:
            return self._add_member_events(room_id, events)
        except _UNSTORABLE:
            return self._add_member_events(room_id, _storable(events))

    def _add_member_events(self, room_id: str, events: list[Event]) -> int:
        stored = 0
        with self._db:
            self._db.execute("BEGIN")
            for event in events:
                index = index_event(event)
                if index is None or index[1] != "m.room.member" or index[4] is None:
                    continue
                self._insert_event(room_id, None, event, index)
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO room_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)",
                    (room_id, "m.room.member", index[4], index[0]),
                )
                stored += cursor.rowcount
        return stored

    def _insert_event(self, room_id: str, pos: int | None, event: Event, index: tuple[Any, ...]) -> bool:
        cursor = self._db.execute(
            "INSERT INTO events (event_id, room_id, pos, type, sender, ts, state_key, rel_type, relates_to, "
            "rel_key, txn_id, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(event_id) DO UPDATE SET pos = excluded.pos WHERE events.pos IS NULL AND excluded.pos IS NOT NULL",
            (index[0], room_id, pos, *index[1:], _dumps(event)),
        )
        return cursor.rowcount > 0

    # -- back-fill -----------------------------------------------------------------

    def fill_gap(
        self,
        gap: Gap,
        chunk: Sequence[Event],
        end_token: str | None,
        room_version: str | None,
    ) -> list[StoredEvent]:
        """Store a page of ``/messages`` (``dir=b``: newest first) into a gap.

        Events take the positions just below the gap. When the page reaches an event we
        already have, or the server has no more history (``end_token`` is None), the gap
        is closed; otherwise it moves down to below the page, with the new token.
        Returns the stored events, oldest first.
        """
        try:
            return self._fill_gap(gap, chunk, end_token, room_version)
        except _UNSTORABLE:
            return self._fill_gap(gap, _storable(list(chunk)), end_token, room_version)

    def _fill_gap(
        self,
        gap: Gap,
        chunk: Sequence[Event],
        end_token: str | None,
        room_version: str | None,
    ) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        db = self._db
        with db:
            db.execute("BEGIN")
            still_open = db.execute(
                "SELECT 1 FROM gaps WHERE room_id = ? AND pos_above = ? AND token = ?",
                (gap.room_id, gap.pos_above, gap.token),
            ).fetchone()
            if not still_open:
                return []
            ids: list[str] = [e["event_id"] for e in chunk if isinstance(e.get("event_id"), str)]
            known = self._timeline_ids(ids)
            pos = gap.pos_above
            reached_known = False
            redactions: list[Event] = []
            for event in chunk:
                index = index_event(event)
                if index is None:
                    continue
                if index[0] in known:
                    reached_known = True
                    break
                pos -= 1
                if self._insert_event(gap.room_id, pos, event, index):
                    stored.append(StoredEvent(pos, event))
                    if index[1] == "m.room.redaction":
                        redactions.append(event)
            db.execute("DELETE FROM gaps WHERE room_id = ? AND pos_above = ?", (gap.room_id, gap.pos_above))
            if not reached_known and end_token and chunk:
                db.execute(
                    "INSERT OR REPLACE INTO gaps (room_id, pos_above, token) VALUES (?, ?, ?)",
                    (gap.room_id, pos, end_token),
                )
            elif not reached_known and end_token and not chunk:
                # An empty page with a token: keep the gap where it was, with the new token.
                db.execute(
                    "INSERT OR REPLACE INTO gaps (room_id, pos_above, token) VALUES (?, ?, ?)",
                    (gap.room_id, gap.pos_above, end_token),
                )
            for redaction in redactions:
                _apply_redaction_row(db, gap.room_id, redaction, room_version)
        stored.reverse()
        return stored

    def _timeline_ids(self, ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT event_id FROM events WHERE pos IS NOT NULL AND event_id IN ({marks})",
                chunk,
            )
            known.update(e for (e,) in rows)
        return known

    # -- unread counts per thread ----------------------------------------------------

    def thread_unread(self) -> dict[str, dict[str, tuple[int, int]]]:
        """The unread counts per thread the last sync said: room -> root -> (notifications,
        highlights), threads with none left out."""
        counts: dict[str, dict[str, tuple[int, int]]] = {}
        for room_id, root_id, notifications, highlights in self._db.execute(
            "SELECT room_id, root_id, notifications, highlights FROM thread_unread"
        ):
            counts.setdefault(room_id, {})[root_id] = (notifications, highlights)
        return counts

    def clear_thread_unread(self, room_id: str, root_id: str) -> None:
        """A thread was read here: forget its count until sync says otherwise."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM thread_unread WHERE room_id = ? AND root_id = ?", (room_id, root_id)
            )

    # -- receipts and account data ---------------------------------------------------

    def receipts_for(self, room_id: str) -> dict[str, str]:
        """The latest ``m.read`` (or ``m.read.private``) in the main timeline per user in a
        room: user -> event ID. Unthreaded receipts and those of thread ``main`` count; a
        thread's receipt (on an event that may be older) does not move the room's mark."""
        rows = self._db.execute(
            "SELECT user_id, event_id, ts FROM receipts WHERE room_id = ? AND receipt_type IN ('m.read', 'm.read.private') "
            "AND thread_id IN ('', 'main') ORDER BY ts",
            (room_id,),
        )
        return {user: event for user, event, _ts in rows}

    def account_data(self, event_type: str, room_id: str = "") -> dict[str, Any] | None:
        """Global (``room_id=""``) or room account data content."""
        row = self._db.execute(
            "SELECT content FROM account_data WHERE room_id = ? AND type = ?", (room_id, event_type)
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- pending joins ---------------------------------------------------------------

    def joins_add(self, join: PendingJoin) -> None:
        """Keep a join until it is made or refused for good."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR IGNORE INTO pending_joins (key, target, via, label, reason, after_key) VALUES (?, ?, ?, ?, ?, ?)",
                (join.key, join.target, _dumps(list(join.via)), join.label, join.reason, join.after_key),
            )

    def joins_remove(self, key: str) -> None:
        """The join was made, or refused for a reason that waiting will not fix."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM pending_joins WHERE key = ?", (key,))

    def joins_pending(self) -> list[PendingJoin]:
        """The joins not made yet, in the order they were asked for."""
        rows = self._db.execute(
            "SELECT key, target, via, label, reason, after_key FROM pending_joins ORDER BY seq"
        ).fetchall()
        joins = []
        for key, target, via, label, reason, after_key in rows:
            try:
                servers = tuple(v for v in json.loads(via) if isinstance(v, str))
            except (ValueError, TypeError):
                servers = ()
            joins.append(PendingJoin(key, target, servers, label, reason, after_key))
        return joins

    # -- outbox --------------------------------------------------------------------

    def outbox_add(self, txn_id: str, room_id: str, event_type: str, content: dict[str, Any]) -> OutboxEntry:
        """Queue a message; the transaction ID is durable before anything is sent."""
        now = int(time.time() * 1000)
        with self._db:
            self._db.execute("BEGIN")
            cursor = self._db.execute(
                "INSERT INTO outbox (txn_id, room_id, event_type, content, created_ts) VALUES (?, ?, ?, ?, ?)",
                (txn_id, room_id, event_type, _dumps(content), now),
            )
        return OutboxEntry(int(cursor.lastrowid or 0), txn_id, room_id, event_type, content, "pending", None, None, 0, now)

    def outbox(self, room_id: str | None = None, states: Sequence[str] = ("pending", "sent", "failed")) -> list[OutboxEntry]:
        """Queued messages in the order they were written."""
        marks = ",".join("?" * len(states))
        query = f"SELECT seq, txn_id, room_id, event_type, content, state, event_id, error, attempts, created_ts FROM outbox WHERE state IN ({marks})"
        params: list[Any] = list(states)
        if room_id is not None:
            query += " AND room_id = ?"
            params.append(room_id)
        rows = self._db.execute(query + " ORDER BY seq", params).fetchall()
        return [
            OutboxEntry(seq, txn, room, etype, json.loads(content), state, event_id, error, attempts, created)
            for seq, txn, room, etype, content, state, event_id, error, attempts, created in rows
        ]

    def outbox_attempt(self, txn_id: str) -> None:
        """Count an attempt (before it is made)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE txn_id = ?", (txn_id,))

    def outbox_sent(self, txn_id: str, event_id: str) -> bool:
        """The server answered with an event ID. Returns True if the echo already arrived
        (the entry is then removed); otherwise it waits, marked sent, for the echo."""
        with self._db:
            self._db.execute("BEGIN")
            echoed = self._db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone()
            if echoed:
                self._db.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))
                return True
            self._db.execute(
                "UPDATE outbox SET state = 'sent', event_id = ?, error = NULL WHERE txn_id = ?", (event_id, txn_id)
            )
            return False

    def outbox_set_state(self, txn_id: str, state: str, error: str | None = None) -> None:
        """Mark an entry ``failed`` (with the error) or ``pending`` again (retry)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE outbox SET state = ?, error = ? WHERE txn_id = ?", (state, error, txn_id))

    def outbox_remove(self, txn_id: str) -> None:
        """Drop an entry (the user cancelled a failed message)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))

    # -- local full-text search -----------------------------------------------------

    def search_messages(
        self,
        words: Sequence[str],
        phrases: Sequence[str] = (),
        *,
        room_ids: Sequence[str] = (),
        senders: Sequence[str] = (),
        after_ts: int | None = None,
        before_ts: int | None = None,
        older_than: tuple[int, int] | None = None,
        limit: int = 50,
        exclude_senders: Sequence[str] = (),
    ) -> list[SearchHit]:
        """Messages whose current text holds every word and phrase, newest first.

        The index is kept by triggers (schema 6) in the same transactions as the events
        and their decryptions. ``older_than`` is the ``(ts, seq)`` of the last hit of a
        previous page; ``exclude_senders`` (ignored users) are never found.
        """
        match = fts_match(words, phrases)
        if not match:
            return []
        sql = (
            "SELECT e.event_id, e.room_id, e.sender, e.ts, f.body, e.seq FROM message_fts f "
            "JOIN events e ON e.seq = f.rowid WHERE message_fts MATCH ?"
        )
        params: list[Any] = [match]
        if room_ids:
            sql += f" AND e.room_id IN ({','.join('?' * len(room_ids))})"
            params.extend(room_ids)
        if senders:
            sql += f" AND e.sender IN ({','.join('?' * len(senders))})"
            params.extend(senders)
        if exclude_senders:
            sql += f" AND e.sender NOT IN ({','.join('?' * len(exclude_senders))})"
            params.extend(exclude_senders)
        if after_ts is not None:
            sql += " AND e.ts >= ?"
            params.append(after_ts)
        if before_ts is not None:
            sql += " AND e.ts < ?"
            params.append(before_ts)
        if older_than is not None:
            sql += " AND (e.ts < ? OR (e.ts = ? AND e.seq < ?))"
            params.extend((older_than[0], older_than[0], older_than[1]))
        sql += " ORDER BY e.ts DESC, e.seq DESC LIMIT ?"
        params.append(limit)
        return [SearchHit(*row) for row in self._db.execute(sql, params)]

    def message_neighbours(
        self, room_id: str, event_id: str, exclude_senders: Sequence[str] = ()
    ) -> tuple[SearchHit | None, SearchHit | None] | None:
        """The indexed messages just before and just after one in its room's timeline
        (their current text), skipping ``exclude_senders``; ``None`` where there is none,
        and instead of the pair when the event itself is not in the cache."""
        row = self._db.execute(
            "SELECT pos FROM events WHERE event_id = ? AND room_id = ? AND pos IS NOT NULL",
            (event_id, room_id),
        ).fetchone()
        if row is None:
            return None
        skip = f" AND e.sender NOT IN ({','.join('?' * len(exclude_senders))})" if exclude_senders else ""
        found: list[SearchHit | None] = []
        for compare, order in (("<", "DESC"), (">", "ASC")):
            hit = self._db.execute(
                "SELECT e.event_id, e.room_id, e.sender, e.ts, f.body, e.seq FROM events e "
                f"JOIN message_fts f ON f.rowid = e.seq WHERE e.room_id = ? AND e.pos {compare} ?{skip} "
                f"ORDER BY e.pos {order} LIMIT 1",
                (room_id, row[0], *exclude_senders),
            ).fetchone()
            found.append(SearchHit(*hit) if hit is not None else None)
        return found[0], found[1]

    def indexed_count(self, room_id: str | None = None) -> int:
        """How many messages the local index holds (in one room, or in all)."""
        if room_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM message_fts").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM message_fts f JOIN events e ON e.seq = f.rowid WHERE e.room_id = ?",
                (room_id,),
            ).fetchone()
        return int(row[0])

    # -- statistics ----------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Row counts, for diagnostics and tests."""
        counts = {}
        for table in ("rooms", "events", "room_state", "gaps", "receipts", "outbox"):
            counts[table] = int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return counts

    def execute_readonly(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (tests and diagnostics)."""
        if not sql.lstrip().upper().startswith("SELECT"):
            raise ValueError("read-only queries only")
        return list(self._db.execute(sql, params))


def fts_match(words: Sequence[str], phrases: Sequence[str] = ()) -> str:
    """An FTS5 query requiring every word and phrase, each quoted (no operators leak in).

    A word ending in ``*`` matches as a prefix.
    """
    parts: list[str] = []
    for word in words:
        prefix = word.endswith("*")
        word = word.rstrip("*")
        if word.strip():
            parts.append('"' + word.replace('"', '""') + '"' + (" *" if prefix else ""))
    for phrase in phrases:
        if phrase.strip():
            parts.append('"' + phrase.replace('"', '""') + '"')
    return " AND ".join(parts)


def _storable(value: Any) -> Any:
    """A copy SQLite can store: lone surrogates become U+FFFD, integers beyond 64 bits 0.

    Only used after a write failed, so the common path never pays for the walk.
    """
    kind = type(value)
    if kind is str:
        return _SURROGATE.sub("\ufffd", value)
    if kind is int:
        return value if -_INT64 <= value < _INT64 else 0
    if kind is dict:
        return {_storable(k): _storable(v) for k, v in value.items()}
    if kind is list:
        return [_storable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _storable(getattr(value, f.name)) for f in fields(value)})
    return value


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _summary_to_json(summary: RoomSummary) -> dict[str, Any]:
    return asdict(summary)


def _summary_from_json(room_id: str, data: str) -> RoomSummary:
    fields = json.loads(data)
    known = RoomSummary.__dataclass_fields__
    summary = RoomSummary(**{k: v for k, v in fields.items() if k in known})
    summary.room_id = room_id
    return summary


def _apply_redaction_row(db: sqlite3.Connection, room_id: str, redaction: Event, room_version: str | None) -> None:
    content = redaction.get("content")
    target = content.get("redacts") if isinstance(content, dict) else None
    if not isinstance(target, str):
        target = redaction.get("redacts")
    if not isinstance(target, str):
        return
    # Only within the room: a redaction never reaches an event of another room.
    row = db.execute(
        "SELECT json, redacted_by FROM events WHERE event_id = ? AND room_id = ?", (target, room_id)
    ).fetchone()
    if row is None or row[1] is not None:
        return
    original = json.loads(row[0])
    redacter = redaction.get("sender")
    if not isinstance(redacter, str) or not _may_redact(db, room_id, redacter, original.get("sender"), room_version):
        log.info("ignoring redaction %s of %s: not allowed", redaction.get("event_id"), target)
        return
    because: dict[str, Any] = {
        k: redaction[k] for k in ("event_id", "sender", "origin_server_ts", "type") if k in redaction
    }
    redacted = redact(original, room_version, because)
    db.execute(
        "UPDATE events SET json = ?, redacted_by = ?, rel_type = NULL, relates_to = NULL, rel_key = NULL "
        "WHERE event_id = ?",
        (_dumps(redacted), redaction.get("event_id"), target),
    )


def _current_state_content(db: sqlite3.Connection, room_id: str, event_type: str) -> tuple[dict[str, Any], str] | None:
    row = db.execute(
        "SELECT e.json FROM room_state s JOIN events e ON e.event_id = s.event_id "
        "WHERE s.room_id = ? AND s.type = ? AND s.state_key = ''",
        (room_id, event_type),
    ).fetchone()
    if row is None:
        return None
    event = json.loads(row[0])
    content = event.get("content")
    return (content if isinstance(content, dict) else {}), str(event.get("sender", ""))


def _may_redact(db: sqlite3.Connection, room_id: str, redacter: str, original_sender: object, room_version: str | None) -> bool:
    """The spec's rule: the redacter has redact power, or shares the original sender's server."""
    if same_server(redacter, original_sender):
        return True
    create = _current_state_content(db, room_id, "m.room.create")
    creators: list[str] = []
    if create is not None:
        content, creator = create
        creators = [creator] + [u for u in content.get("additional_creators", []) if isinstance(u, str)]
    power = _current_state_content(db, room_id, "m.room.power_levels")
    levels = PowerLevels(
        power[0] if power is not None else None,
        creators=creators,
        creators_have_infinite_power=rules_for(room_version).creators_have_infinite_power,
    )
    return levels.can(redacter, "redact")


class _Ingest:
    """One sync batch being written (inside the caller's transaction)."""

    def __init__(self, cache: Cache, summaries: dict[str, RoomSummary], result: IngestResult) -> None:
        self.cache = cache
        self.db = cache._db
        self.own = cache.own_user_id
        self.summaries = summaries
        self.result = result
        self.rows: list[tuple[Any, ...]] = []
        self.state_rows: list[tuple[str, str, str, str]] = []
        self.redactions: list[tuple[str, Event, str | None]] = []
        self.echoed_txn: list[str] = []
        self.dm_rooms: dict[str, str] | None = None
        # Rows are written at the end: a room's timeline seen twice in one batch (a
        # malformed response) continues from here, not from the database.
        self.last_pos: dict[str, int] = {}
        self.timeline_ids: dict[str, set[str]] = {}

    def summary(self, room_id: str) -> RoomSummary:
        existing = self.result.changed_rooms.get(room_id)
        if existing is not None:
            return existing
        current = self.summaries.get(room_id)
        copy = RoomSummary(room_id) if current is None else current.copy()
        self.result.changed_rooms[room_id] = copy
        return copy

    def run(self, batch: SyncBatch) -> None:
        for event in batch.account_data:
            self.global_account_data(event)
        for joined in batch.joined:
            self.joined(joined)
        for invited in batch.invited:
            self.invited(invited)
        for left in batch.left:
            self.left(left)
        self.flush()
        if self.dm_rooms is not None:
            self.apply_direct()
        for summary in self.result.changed_rooms.values():
            summary.recompute_name(self.own)
        self.cache._write_summaries(self.result.changed_rooms.values())

    def flush(self) -> None:
        db = self.db
        if self.rows:
            db.executemany(
                "INSERT INTO events (event_id, room_id, pos, type, sender, ts, state_key, rel_type, relates_to, "
                "rel_key, txn_id, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(event_id) DO UPDATE SET pos = excluded.pos "
                "WHERE events.pos IS NULL AND excluded.pos IS NOT NULL",
                self.rows,
            )
        if self.state_rows:
            db.executemany(
                "INSERT INTO room_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
                self.state_rows,
            )
        for room_id, redaction, version in self.redactions:
            _apply_redaction_row(db, room_id, redaction, version)
        if self.echoed_txn:
            db.executemany("DELETE FROM outbox WHERE txn_id = ?", [(t,) for t in self.echoed_txn])
            self.result.echoed_txn_ids.update(self.echoed_txn)

    def add_state(self, room_id: str, summary: RoomSummary, events: list[Event]) -> None:
        if events:
            self.result.state_rooms.add(room_id)
        rows, state_rows = self.rows, self.state_rows
        for event in events:
            index = index_event(event)
            if index is None or index[4] is None:
                self.result.skipped_events += 1
                continue
            rows.append((index[0], room_id, None, *index[1:], _dumps(event)))
            state_rows.append((room_id, index[1], index[4], index[0]))
            content = event.get("content")
            if summary.apply_state(index[1], index[4], content if isinstance(content, dict) else {}, index[2]):
                self.result.state_changed_rooms.add(room_id)

    def add_timeline(
        self,
        room_id: str,
        summary: RoomSummary,
        events: list[Event],
        limited: bool,
        prev_batch: str | None,
    ) -> None:
        last = self.last_pos[room_id] if room_id in self.last_pos else self.cache.last_pos(room_id)
        # An event already in the timeline (sent again, or twice in one batch) keeps
        # its place and is not reported as new.
        seen = self.timeline_ids.setdefault(room_id, set())
        if last is not None and events:
            seen.update(self.cache._timeline_ids([e["event_id"] for e in events if type(e.get("event_id")) is str]))
            # A timeline holding an event we hold (sliding sync sends a room's latest
            # events again on a new connection, and more of them when the room's timeline
            # limit grows, as when it is opened) joins on after the newest such event: no
            # gap; the older ones before it are history, not new events: they fill the
            # gap just above the first event held (as a back-fill page would), never
            # appended after the newest.
            held = [i for i, e in enumerate(events) if e.get("event_id") in seen]
            if held:
                if held[0]:
                    self._fill_above(room_id, events[held[0]], events[: held[0]], prev_batch)
                events = events[held[-1] + 1 :]
                limited = False
        if last is None:
            start = 0
            if prev_batch:
                self.db.execute(
                    "INSERT OR REPLACE INTO gaps (room_id, pos_above, token) VALUES (?, ?, ?)",
                    (room_id, start, prev_batch),
                )
        elif limited:
            start = last + GAP_SPACE
            if prev_batch:
                self.db.execute(
                    "INSERT OR REPLACE INTO gaps (room_id, pos_above, token) VALUES (?, ?, ?)",
                    (room_id, start, prev_batch),
                )
            self.result.limited_rooms.add(room_id)
            # Echoes of sent messages may have fallen into the gap: stop waiting for them.
            self.db.execute("DELETE FROM outbox WHERE room_id = ? AND state = 'sent'", (room_id,))
        else:
            start = last + 1
        stored: list[StoredEvent] = []
        rows, state_rows = self.rows, self.state_rows
        pos = start
        for event in events:
            index = index_event(event)
            if index is None:
                self.result.skipped_events += 1
                continue
            if index[0] in seen:
                continue
            seen.add(index[0])
            event_id, event_type, sender, ts, state_key = index[0], index[1], index[2], index[3], index[4]
            rows.append((event_id, room_id, pos, *index[1:], _dumps(event)))
            stored.append(StoredEvent(pos, event))
            pos += 1
            if ts > summary.last_ts:
                summary.last_ts = ts
            if state_key is not None:
                state_rows.append((room_id, event_type, state_key, event_id))
                content = event.get("content")
                if summary.apply_state(event_type, state_key, content if isinstance(content, dict) else {}, sender):
                    self.result.state_changed_rooms.add(room_id)
            elif event_type == "m.room.redaction":
                self.redactions.append((room_id, event, summary.room_version))
            if index[8] is not None and sender == self.own:
                self.echoed_txn.append(index[8])
        if stored:
            self.result.new_events.setdefault(room_id, []).extend(stored)
            self.last_pos[room_id] = stored[-1].pos

    def _fill_above(self, room_id: str, held: Event, older: list[Event], prev_batch: str | None) -> None:
        """History sent again before an event we hold: into the gap right above that event
        (if there is one and the positions below it are free); the gap moves above it,
        with the chunk's token, or closes when the chunk starts with the room's creation."""
        row = self.db.execute("SELECT pos FROM events WHERE event_id = ? AND pos IS NOT NULL", (held.get("event_id"),)).fetchone()
        if row is None:
            return
        pos = int(row[0])
        gap = self.db.execute("SELECT 1 FROM gaps WHERE room_id = ? AND pos_above = ?", (room_id, pos)).fetchone()
        indexed = [(e, i) for e in older if (i := index_event(e)) is not None]
        if gap is None or not indexed:
            return
        top = pos - len(indexed)
        taken = self.db.execute(
            "SELECT 1 FROM events WHERE room_id = ? AND pos >= ? AND pos < ? LIMIT 1", (room_id, top, pos)
        ).fetchone()
        if taken:
            return
        for offset, (event, index) in enumerate(indexed):
            self.cache._insert_event(room_id, top + offset, event, index)
        self.db.execute("DELETE FROM gaps WHERE room_id = ? AND pos_above = ?", (room_id, pos))
        if prev_batch and indexed[0][1][1] != "m.room.create":
            self.db.execute(
                "INSERT OR REPLACE INTO gaps (room_id, pos_above, token) VALUES (?, ?, ?)", (room_id, top, prev_batch)
            )
        # An open room shows them: its window is read again.
        self.result.limited_rooms.add(room_id)

    def joined(self, room: JoinedRoom) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (f"forgotten:{room.room_id}",))
        summary = self.summary(room.room_id)
        if summary.membership != "join":
            summary.membership = "join"
            summary.inviter = None
            self.db.execute("DELETE FROM invite_state WHERE room_id = ?", (room.room_id,))
        if room.heroes is not None:
            summary.heroes = room.heroes
            summary.hero_names = {h: summary.hero_names.get(h) for h in room.heroes}
            self.load_hero_names(room.room_id, summary)
        if room.joined_count is not None:
            summary.joined_count = room.joined_count
        if room.invited_count is not None:
            summary.invited_count = room.invited_count
        if room.notification_count is not None:
            summary.notification_count = room.notification_count
        if room.highlight_count is not None:
            summary.highlight_count = room.highlight_count
        if room.notification_count is not None or room.thread_counts:
            # The room's counts came: those of its threads are all there (none: none left).
            self.result.thread_counts[room.room_id] = dict(room.thread_counts)
            self.db.execute("DELETE FROM thread_unread WHERE room_id = ?", (room.room_id,))
            self.db.executemany(
                "INSERT INTO thread_unread (room_id, root_id, notifications, highlights) VALUES (?, ?, ?, ?)",
                [(room.room_id, root, n, h) for root, (n, h) in room.thread_counts.items()],
            )
        self.add_state(room.room_id, summary, room.state)
        self.add_timeline(room.room_id, summary, room.timeline, room.limited, room.prev_batch)
        for event in room.ephemeral:
            self.ephemeral(room.room_id, event)
        for event in room.account_data:
            self.room_account_data(room.room_id, summary, event)

    def load_hero_names(self, room_id: str, summary: RoomSummary) -> None:
        missing = [h for h, name in summary.hero_names.items() if name is None]
        if not missing:
            return
        for chunk in _chunks(missing, 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT s.state_key, e.json FROM room_state s JOIN events e ON e.event_id = s.event_id "
                f"WHERE s.room_id = ? AND s.type = 'm.room.member' AND s.state_key IN ({marks})",
                (room_id, *chunk),
            )
            for user_id, data in rows:
                content = json.loads(data).get("content", {})
                name = content.get("displayname") if isinstance(content, dict) else None
                summary.hero_names[user_id] = name if isinstance(name, str) and name else None

    def invited(self, room: InvitedRoom) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (f"forgotten:{room.room_id}",))
        summary = self.summary(room.room_id)
        summary.membership = "invite"
        members = 0
        for event in room.invite_state:
            event_type, state_key = event.get("type"), event.get("state_key")
            content = event.get("content")
            sender = event.get("sender")
            if not isinstance(event_type, str) or not isinstance(state_key, str) or not isinstance(content, dict):
                continue
            summary.apply_state(event_type, state_key, content, sender if isinstance(sender, str) else "")
            if event_type == "m.room.member":
                if content.get("membership") == "join":
                    members += 1
                if state_key == self.own and content.get("membership") == "invite":
                    summary.inviter = sender if isinstance(sender, str) else None
                    if content.get("is_direct") is True:
                        summary.is_dm = True
                        summary.dm_user = summary.inviter
                    ts = event.get("origin_server_ts")
                    if isinstance(ts, int):
                        summary.last_ts = max(summary.last_ts, ts)
                elif state_key != self.own and isinstance(content.get("displayname"), str) and not summary.heroes:
                    summary.hero_names[state_key] = content["displayname"]
        if not summary.heroes and summary.inviter:
            summary.heroes = [summary.inviter]
            summary.joined_count = max(members, 1)
            summary.invited_count = 1
            summary.hero_names.setdefault(summary.inviter, None)
        if summary.last_ts == 0:
            summary.last_ts = int(time.time() * 1000)
        self.db.execute(
            "INSERT OR REPLACE INTO invite_state (room_id, events) VALUES (?, ?)",
            (room.room_id, _dumps(room.invite_state)),
        )

    def left(self, room: LeftRoom) -> None:
        # A room the user forgot: the server may still report the leave once.
        if self.db.execute("SELECT 1 FROM meta WHERE key = ?", (f"forgotten:{room.room_id}",)).fetchone():
            return
        summary = self.summary(room.room_id)
        self.add_state(room.room_id, summary, room.state)
        self.add_timeline(room.room_id, summary, room.timeline, room.limited, room.prev_batch)
        membership = "leave"
        for event in reversed(room.timeline):
            if event.get("type") == "m.room.member" and event.get("state_key") == self.own:
                content = event.get("content")
                if isinstance(content, dict) and content.get("membership") == "ban":
                    membership = "ban"
                break
        summary.membership = membership
        self.db.execute("DELETE FROM invite_state WHERE room_id = ?", (room.room_id,))

    def ephemeral(self, room_id: str, event: Event) -> None:
        event_type = event.get("type")
        content = event.get("content")
        if not isinstance(content, dict):
            return
        if event_type == "m.typing":
            users = content.get("user_ids")
            if isinstance(users, list):
                self.result.typing[room_id] = [u for u in users if isinstance(u, str)]
        elif event_type == "m.receipt":
            rows = []
            for event_id, by_type in content.items():
                if not isinstance(by_type, dict):
                    continue
                for receipt_type, by_user in by_type.items():
                    if not isinstance(by_user, dict):
                        continue
                    for user_id, data in by_user.items():
                        data = data if isinstance(data, dict) else {}
                        ts = data.get("ts")
                        thread = data.get("thread_id")
                        rows.append(
                            (
                                room_id,
                                receipt_type,
                                thread if isinstance(thread, str) else "",
                                user_id,
                                event_id,
                                ts if isinstance(ts, int) else 0,
                            )
                        )
                        self.result.receipts.setdefault(room_id, []).append((user_id, event_id))
            self.db.executemany(
                "INSERT INTO receipts (room_id, receipt_type, thread_id, user_id, event_id, ts) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(room_id, receipt_type, thread_id, user_id) DO UPDATE SET event_id = excluded.event_id, "
                "ts = excluded.ts WHERE excluded.ts >= receipts.ts",
                rows,
            )

    def room_account_data(self, room_id: str, summary: RoomSummary, event: Event) -> None:
        event_type, content = event.get("type"), event.get("content")
        if not isinstance(event_type, str) or not isinstance(content, dict):
            return
        self.db.execute(
            "INSERT OR REPLACE INTO account_data (room_id, type, content) VALUES (?, ?, ?)",
            (room_id, event_type, _dumps(content)),
        )
        if event_type == "m.tag":
            tags = content.get("tags")
            summary.tags = sorted(t for t in tags if isinstance(t, str)) if isinstance(tags, dict) else []

    def global_account_data(self, event: Event) -> None:
        event_type, content = event.get("type"), event.get("content")
        if not isinstance(event_type, str) or not isinstance(content, dict):
            return
        self.db.execute(
            "INSERT OR REPLACE INTO account_data (room_id, type, content) VALUES ('', ?, ?)",
            (event_type, _dumps(content)),
        )
        if event_type == "m.direct":
            self.dm_rooms = {}
            for user_id, rooms in content.items():
                if isinstance(rooms, list):
                    for room_id in rooms:
                        if isinstance(room_id, str):
                            self.dm_rooms[room_id] = user_id

    def apply_direct(self) -> None:
        assert self.dm_rooms is not None
        dm_rooms = self.dm_rooms
        for room_id, summary in list(self.summaries.items()) + list(self.result.changed_rooms.items()):
            is_dm = room_id in dm_rooms
            if summary.membership == "invite" and summary.is_dm:
                continue
            if summary.is_dm != is_dm or summary.dm_user != dm_rooms.get(room_id):
                target = self.summary(room_id)
                target.is_dm = is_dm
                target.dm_user = dm_rooms.get(room_id)
