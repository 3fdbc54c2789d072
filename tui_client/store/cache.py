"""The SQLite cache of one account: rooms, events, state, gaps, receipts, the outbox.

One :class:`Cache` owns one connection and is used from one thread (the engine's
database thread). Every write that belongs to a sync batch happens inside
:meth:`Cache.ingest_sync`, in one transaction that ends by storing ``next_batch``:
killed at any point, the cache holds either the whole batch and its token or
neither. SQL is parameterised throughout.
The parts: :mod:`.records` (the rows and shared helpers), :mod:`.timeline` (windows,
relations, state, back-fill; a base class of :class:`Cache`), :mod:`.ingest` (one batch).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..protocol.room_state import RoomSummary
from ..protocol.sync import MalformedResponse, SyncBatch
from .crypto_store import SqliteCryptoStore
from .encrypted_db import connect, encrypt_in_place, finish_interrupted_migration, is_plain_sqlite
from .ingest import Ingest
from .records import (
    _UNSTORABLE,
    GAP_SPACE,
    Event,
    Gap,
    IngestHook,
    IngestResult,
    OutboxEntry,
    PendingJoin,
    SearchHit,
    StoredEvent,
    _dumps,
    _storable,
    _summary_from_json,
    write_summaries,
)
from .schema import migrate
from .timeline import TimelineStore

log = logging.getLogger(__name__)

__all__ = [
    "GAP_SPACE",
    "Cache",
    "Event",
    "Gap",
    "IngestHook",
    "IngestResult",
    "OutboxEntry",
    "PendingJoin",
    "SearchHit",
    "StoredEvent",
    "fts_match",
]

R = TypeVar("R")


def _secure_create(path: Path) -> None:
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


#: The meta key set when the cache was closed cleanly, cleared while it is open.
CLEAN_CLOSE = "closed_cleanly"


def outbox_insert(
    db: sqlite3.Connection, txn_id: str, room_id: str, event_type: str, content: dict[str, Any]
) -> OutboxEntry:
    """Write a pending outbox row inside the caller's transaction, and return its entry."""
    now = int(time.time() * 1000)
    cursor = db.execute(
        "INSERT INTO outbox (txn_id, room_id, event_type, content, created_ts) VALUES (?, ?, ?, ?, ?)",
        (txn_id, room_id, event_type, _dumps(content), now),
    )
    return OutboxEntry(
        int(cursor.lastrowid or 0),
        txn_id,
        room_id,
        event_type,
        content,
        "pending",
        None,
        None,
        0,
        now,
    )


class Cache(TimelineStore):
    """The account's SQLite cache (WAL, one writer, numbered migrations)."""

    def __init__(
        self, path: Path | str, *, own_user_id: str = "", key: bytes | None = None
    ) -> None:
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
        #: Whether every page was checked at this open (store/repair.py).
        self.fully_checked = False
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
        """Abandon the current transaction (SQLite may have ended it already: a full disk)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def probe_write(self, size: int = 256 * 1024) -> None:
        """Write ``size`` bytes and delete them again, each committed: raises if the cache
        cannot be written now (a full disk, a read-only folder)."""
        for statement, params in (
            (
                "INSERT INTO meta (key, value) VALUES ('storage_probe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                ("x" * size,),
            ),
            ("DELETE FROM meta WHERE key = 'storage_probe'", ()),
        ):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(statement, params)
                self._db.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise

    def stop_writing(self) -> None:
        """Never write to this file again (it is damaged): a transaction left open is
        abandoned and every later write refused by SQLite."""
        try:
            self.rollback()
        except Exception:  # the damage may refuse even that; SQLite has rolled back then
            pass
        self._db.execute("PRAGMA query_only = 1")

    def close(self) -> None:
        """Close the connection (checkpointing the WAL), noting that it closed cleanly
        (the next open skips the integrity check: store/repair.py)."""
        try:
            self.set_meta(CLEAN_CLOSE, "1")
        except Exception:  # a full disk or a read-only folder: checked next time
            pass
        self._db.close()

    # -- meta ----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value from the key/value meta table."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def get_avatar(self, mxc: str) -> tuple[int, int, bytes] | None:
        """A cached avatar's pixels: (width, height, RGBA bytes)."""
        row = self._db.execute(
            "SELECT width, height, rgba FROM avatars WHERE mxc = ?", (mxc,)
        ).fetchone()
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
        self.save_summaries([summary])

    def save_summaries(self, summaries: Iterable[RoomSummary]) -> None:
        """Write summaries outside a sync batch, in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._write_summaries(summaries)

    def _write_summaries(self, summaries: Iterable[RoomSummary]) -> None:
        write_summaries(self._db, summaries)

    def forget_room(self, room_id: str) -> None:
        """Remove everything cached about a room; later syncs of it as left are ignored."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')",
                (f"forgotten:{room_id}",),
            )
            for table in (
                "rooms",
                "events",
                "room_state",
                "gaps",
                "receipts",
                "invite_state",
                "thread_unread",
            ):
                self._db.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))
            self._db.execute("DELETE FROM account_data WHERE room_id = ?", (room_id,))

    # -- sync ingest -----------------------------------------------------------------

    def ingest_sync(
        self,
        batch: SyncBatch,
        summaries: dict[str, RoomSummary],
        *,
        hook: IngestHook[R] | None = None,
    ) -> IngestResult[R]:
        """Store a whole sync batch and its ``next_batch`` in one transaction.

        ``summaries`` is the engine's in-memory room list. It is only read: the changed
        summaries come back as copies in the result, for the caller to adopt once the
        batch is committed (a failed batch changes nothing).
        """
        return self.ingest_slices(
            lambda: (batch,), summaries, hook=None if hook is None else lambda: hook
        )

    def ingest_slices(
        self,
        slices: Callable[[], Iterable[SyncBatch]],
        summaries: dict[str, RoomSummary],
        *,
        hook: Callable[[], IngestHook[R]] | None = None,
        on_slice: Callable[[IngestResult[R], SyncBatch], None] | None = None,
    ) -> IngestResult[R]:
        """Store a response handed over in slices (``net.sync_stream``) in ONE
        transaction, as a whole batch is: each slice's rows, then the hook over that
        slice (``hook()`` makes it for the response; each call returns what it gathered
        so far), then ``on_slice``; after the last slice the changed summaries, the first
        slice's tokens, and COMMIT. Killed or failed anywhere, nothing of it is stored
        and the token stays. ``slices()`` is called again from the start (the copies
        repaired) if a write failed on a lone surrogate or a huge integer.
        """
        db = self._db
        db.execute("BEGIN")
        try:
            try:
                result = self._ingest_slices(slices(), summaries, hook, on_slice, repair=False)
            except _UNSTORABLE:
                # Rare: some event holds a lone surrogate or a huge integer. Start the
                # response again from repaired copies rather than refuse it forever.
                db.execute("ROLLBACK")
                db.execute("BEGIN")
                result = self._ingest_slices(slices(), summaries, hook, on_slice, repair=True)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a full disk can end the transaction itself
                db.execute("ROLLBACK")
            raise
        return result

    def _ingest_slices(
        self,
        slices: Iterable[SyncBatch],
        summaries: dict[str, RoomSummary],
        hook: Callable[[], IngestHook[R]] | None,
        on_slice: Callable[[IngestResult[R], SyncBatch], None] | None,
        *,
        repair: bool,
    ) -> IngestResult[R]:
        result: IngestResult[R] | None = None
        ingest: Ingest | None = None
        tokens: dict[str, str] = {}
        run_hook = None if hook is None else hook()
        for batch in slices:
            if repair:
                batch = _storable(batch)
            if result is None or ingest is None:
                result = IngestResult(next_batch=batch.next_batch)
                ingest = Ingest(self, summaries, result)
                tokens = (
                    batch.tokens if batch.tokens is not None else {"next_batch": batch.next_batch}
                )
            ingest.add(batch)
            if run_hook is not None:
                result.hook_result = run_hook(batch)
            if on_slice is not None:
                on_slice(result, batch)
        if result is None or ingest is None:
            raise MalformedResponse("sync response has no batch")
        ingest.finish()
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            tokens.items(),
        )
        return result

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
                (
                    join.key,
                    join.target,
                    _dumps(list(join.via)),
                    join.label,
                    join.reason,
                    join.after_key,
                ),
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

    def outbox_add(
        self, txn_id: str, room_id: str, event_type: str, content: dict[str, Any]
    ) -> OutboxEntry:
        """Queue a message; the transaction ID is durable before anything is sent."""
        with self._db:
            self._db.execute("BEGIN")
            return outbox_insert(self._db, txn_id, room_id, event_type, content)

    def outbox(
        self, room_id: str | None = None, states: Sequence[str] = ("pending", "sent", "failed")
    ) -> list[OutboxEntry]:
        """Queued messages in the order they were written."""
        marks = ",".join("?" * len(states))
        query = f"SELECT seq, txn_id, room_id, event_type, content, state, event_id, error, attempts, created_ts FROM outbox WHERE state IN ({marks})"
        params: list[Any] = list(states)
        if room_id is not None:
            query += " AND room_id = ?"
            params.append(room_id)
        rows = self._db.execute(query + " ORDER BY seq", params).fetchall()
        return [
            OutboxEntry(
                seq,
                txn,
                room,
                etype,
                json.loads(content),
                state,
                event_id,
                error,
                attempts,
                created,
            )
            for seq, txn, room, etype, content, state, event_id, error, attempts, created in rows
        ]

    def outbox_attempt(self, txn_id: str) -> None:
        """Count an attempt (before it is made)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE txn_id = ?", (txn_id,)
            )

    def outbox_sent(self, txn_id: str, event_id: str) -> bool:
        """The server answered with an event ID. Returns True if the echo already arrived
        (the entry is then removed); otherwise it waits, marked sent, for the echo."""
        with self._db:
            self._db.execute("BEGIN")
            echoed = self._db.execute(
                "SELECT 1 FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
            if echoed:
                self._db.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))
                return True
            self._db.execute(
                "UPDATE outbox SET state = 'sent', event_id = ?, error = NULL WHERE txn_id = ?",
                (event_id, txn_id),
            )
            return False

    def outbox_set_state(self, txn_id: str, state: str, error: str | None = None) -> None:
        """Mark an entry ``failed`` (with the error) or ``pending`` again (retry)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE outbox SET state = ?, error = ? WHERE txn_id = ?", (state, error, txn_id)
            )

    def outbox_remove(self, txn_id: str) -> None:
        """Drop an entry (the user cancelled a failed message)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))

    # -- local full-text search -----------------------------------------------------

    #: Messages indexed per transaction by :meth:`index_pending`.
    INDEX_SLICE = 2000

    def index_pending(self, limit: int | None = INDEX_SLICE) -> int:
        """Index up to ``limit`` (``None``: all) of the messages stored since the last call
        (schema 10), in one transaction; returns how many are left. Runs after each sync
        batch and before every search, so searches see every stored message."""
        db = self._db
        while True:
            with db:
                db.execute("BEGIN")
                rows = db.execute(
                    "SELECT seq FROM fts_pending ORDER BY seq LIMIT ?",
                    (limit if limit is not None else self.INDEX_SLICE,),
                ).fetchall()
                if not rows:
                    return 0
                low, high = rows[0][0], rows[-1][0]
                db.execute(
                    "INSERT INTO message_fts (rowid, body) SELECT s.seq, s.body FROM search_text s "
                    "WHERE s.seq IN (SELECT seq FROM fts_pending WHERE seq BETWEEN ? AND ?) "
                    "AND s.body IS NOT NULL AND NOT EXISTS (SELECT 1 FROM message_fts f WHERE f.rowid = s.seq)",
                    (low, high),
                )
                db.execute("DELETE FROM fts_pending WHERE seq BETWEEN ? AND ?", (low, high))
            if limit is not None:
                (left,) = db.execute("SELECT COUNT(*) FROM fts_pending").fetchone()
                return int(left)

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

        Messages not indexed yet (schema 10) are indexed first. ``older_than`` is the ``(ts, seq)`` of the last hit of a
        previous page; ``exclude_senders`` (ignored users) are never found.
        """
        match = fts_match(words, phrases)
        if not match:
            return []
        self.index_pending(None)
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
        self.index_pending(None)
        skip = (
            f" AND e.sender NOT IN ({','.join('?' * len(exclude_senders))})"
            if exclude_senders
            else ""
        )
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
        self.index_pending(None)
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
