"""Reading a room's cached timeline, its relations and state; back-filling its gaps.

:class:`TimelineStore` is the part of :class:`~.cache.Cache` that reads windows of
events (stopping at gaps), events by ID and what relates to them, the current state, and
writes ``/messages`` pages into gaps. Redactions are applied here too (for back-filled
pages and, through :mod:`.ingest`, for sync batches).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ..protocol.events import index_event
from ..protocol.room_state import PowerLevels, same_server
from ..protocol.room_versions import redact, rules_for
from .records import (
    _UNSTORABLE,
    INSERT_EVENT,
    Event,
    Gap,
    StoredEvent,
    _chunks,
    _dumps,
    _storable,
)

log = logging.getLogger(__name__)

# The event types the search index holds (their edits too).
_MESSAGE_TYPES = "('m.room.message', 'm.room.encrypted')"


class TimelineStore:
    """Timeline windows, relations, state and back-fill over one connection."""

    _db: sqlite3.Connection
    own_user_id: str

    def _newest_seq(self) -> int:
        """The highest ``seq`` held (0 for none): rows inserted from now on get higher ones
        (the rowid, one past the highest; nothing deletes events inside a writer's transaction)."""
        (seq,) = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(seq) if seq is not None else 0

    def _events_added(self, since: int) -> None:
        """The search index's part of inserting the events after ``since`` (schema 11, once
        for a whole batch of rows, before its redactions are applied): new messages are noted
        for :meth:`~.cache.Cache.index_pending`; a message an edit replaces is indexed again
        with its current text (the edit's row now counts), unless it waits in ``fts_pending``
        unindexed (a first sync's edited messages): the catch-up indexes its text then."""
        db = self._db
        db.execute(
            "INSERT OR IGNORE INTO fts_pending (seq) SELECT seq FROM events WHERE seq > ? "
            f"AND state_key IS NULL AND type IN {_MESSAGE_TYPES} "
            "AND rel_type IS NOT 'm.replace' AND redacted_by IS NULL",
            (since,),
        )
        # (No DISTINCT: with it SQLite walks all of events_by_relation, not the new rows.)
        targets = db.execute(
            "SELECT e.relates_to FROM events e JOIN events t ON t.event_id = e.relates_to "
            "WHERE e.seq > ? AND e.rel_type = 'm.replace' AND e.state_key IS NULL "
            f"AND e.type IN {_MESSAGE_TYPES} "
            "AND (NOT EXISTS (SELECT 1 FROM fts_pending p WHERE p.seq = t.seq) "
            "OR EXISTS (SELECT 1 FROM message_fts f WHERE f.rowid = t.seq))",
            (since,),
        ).fetchall()
        for target in dict.fromkeys(target for (target,) in targets):
            db.execute(
                "DELETE FROM message_fts WHERE rowid = (SELECT seq FROM events WHERE event_id = ?)",
                (target,),
            )
            db.execute(
                "INSERT INTO message_fts (rowid, body) SELECT seq, body FROM search_text "
                "WHERE body IS NOT NULL AND event_id = ?",
                (target,),
            )

    def last_pos(self, room_id: str) -> int | None:
        """The newest timeline position of a room."""
        row = self._db.execute(
            "SELECT MAX(pos) FROM events WHERE room_id = ? AND pos IS NOT NULL", (room_id,)
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def event_pos(self, room_id: str, event_id: str) -> int | None:
        """The timeline position of an event of a room (None when it is not in the timeline)."""
        row = self._db.execute(
            "SELECT pos FROM events WHERE event_id = ? AND room_id = ? AND pos IS NOT NULL",
            (event_id, room_id),
        ).fetchone()
        return int(row[0]) if row else None

    def event_seq(self, event_id: str) -> int:
        """The order in which an event was stored (0 when it is not stored)."""
        row = self._db.execute("SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

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
            "SELECT pos_above, token FROM gaps WHERE room_id = ? ORDER BY pos_above DESC",
            (room_id,),
        ).fetchall()
        return [Gap(room_id, p, t) for p, t in rows]

    def load_before(
        self, room_id: str, before_pos: int | None, limit: int
    ) -> tuple[list[StoredEvent], Gap | None]:
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
            "SELECT MIN(pos_above) FROM gaps WHERE room_id = ? AND pos_above > ?",
            (room_id, after_pos),
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
            rows = self._db.execute(
                f"SELECT event_id, ts FROM events WHERE event_id IN ({marks})", chunk
            )
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
        row = self._db.execute(
            "SELECT events FROM invite_state WHERE room_id = ?", (room_id,)
        ).fetchone()
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
            since = self._newest_seq()
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
            self._events_added(since)
        return stored

    def _insert_event(
        self, room_id: str, pos: int | None, event: Event, index: tuple[Any, ...]
    ) -> bool:
        cursor = self._db.execute(INSERT_EVENT, (index[0], room_id, pos, *index[1:], _dumps(event)))
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
            since = self._newest_seq()
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
            db.execute(
                "DELETE FROM gaps WHERE room_id = ? AND pos_above = ?", (gap.room_id, gap.pos_above)
            )
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
            self._events_added(since)
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

    def set_thread_unread(self, room_id: str, counts: dict[str, tuple[int, int]]) -> None:
        """The unread counts of a room's threads as counted here (sliding sync has none)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM thread_unread WHERE room_id = ?", (room_id,))
            self._db.executemany(
                "INSERT INTO thread_unread (room_id, root_id, notifications, highlights) VALUES (?, ?, ?, ?)",
                [(room_id, root, n, h) for root, (n, h) in counts.items() if n or h],
            )

    # -- receipts and account data ---------------------------------------------------

    def own_receipts(self, room_id: str, user_id: str) -> dict[str, str]:
        """A user's latest ``m.read`` (or ``m.read.private``) in a room per thread: thread ID
        (``""`` unthreaded, ``"main"``, or a thread root) -> event ID."""
        rows = self._db.execute(
            "SELECT thread_id, event_id, ts FROM receipts WHERE room_id = ? AND user_id = ? "
            "AND receipt_type IN ('m.read', 'm.read.private') ORDER BY ts",
            (room_id, user_id),
        )
        return {thread: event for thread, event, _ts in rows}

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


def _apply_redaction_row(
    db: sqlite3.Connection, room_id: str, redaction: Event, room_version: str | None
) -> None:
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
    if not isinstance(redacter, str) or not _may_redact(
        db, room_id, redacter, original.get("sender"), room_version
    ):
        log.info("ignoring redaction %s of %s: not allowed", redaction.get("event_id"), target)
        return
    because: dict[str, Any] = {
        k: redaction[k]
        for k in ("event_id", "sender", "origin_server_ts", "type")
        if k in redaction
    }
    redacted = redact(original, room_version, because)
    db.execute(
        "UPDATE events SET json = ?, redacted_by = ?, rel_type = NULL, relates_to = NULL, rel_key = NULL "
        "WHERE event_id = ?",
        (_dumps(redacted), redaction.get("event_id"), target),
    )


def _current_state_content(
    db: sqlite3.Connection, room_id: str, event_type: str
) -> tuple[dict[str, Any], str] | None:
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


def _may_redact(
    db: sqlite3.Connection,
    room_id: str,
    redacter: str,
    original_sender: object,
    room_version: str | None,
) -> bool:
    """The spec's rule: the redacter has redact power, or shares the original sender's server."""
    if same_server(redacter, original_sender):
        return True
    create = _current_state_content(db, room_id, "m.room.create")
    creators: list[str] = []
    if create is not None:
        content, creator = create
        creators = [creator] + [
            u for u in content.get("additional_creators", []) if isinstance(u, str)
        ]
    power = _current_state_content(db, room_id, "m.room.power_levels")
    levels = PowerLevels(
        power[0] if power is not None else None,
        creators=creators,
        creators_have_infinite_power=rules_for(room_version).creators_have_infinite_power,
    )
    return levels.can(redacter, "redact")
