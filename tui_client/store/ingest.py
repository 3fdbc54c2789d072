"""Writing one sync batch into the cache (inside :meth:`~.cache.Cache.ingest_sync`'s transaction).

:class:`Ingest` turns a parsed :class:`~tui_client.protocol.sync.SyncBatch` into rows:
events and state in bulk at the end, timeline positions continuing from the cache (a
``limited`` timeline leaves a gap), redactions, receipts, typing, account data, invites
and leaves, and the copies of the room summaries the batch changed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..protocol.events import index_event
from ..protocol.room_state import RoomSummary
from ..protocol.sync import InvitedRoom, JoinedRoom, LeftRoom, SyncBatch
from .records import (
    GAP_SPACE,
    INSERT_EVENT,
    Event,
    IngestResult,
    StoredEvent,
    _chunks,
    _dumps,
    write_summaries,
)
from .timeline import TimelineStore, _apply_redaction_row


class Ingest:
    """One sync batch being written (inside the caller's transaction)."""

    def __init__(
        self, cache: TimelineStore, summaries: dict[str, RoomSummary], result: IngestResult[Any]
    ) -> None:
        self.cache = cache
        self.db = cache._db
        self.own = cache.own_user_id
        self.summaries = summaries
        self.result = result
        self.rows: list[tuple[Any, ...]] = []
        self.state_rows: list[tuple[str, str, str, str]] = []
        self.redactions: list[tuple[str, Event, str | None]] = []
        self.echoed_txn: list[str] = []
        # Rows written with one statement each per batch rather than one per room or event.
        self.unforgotten: list[tuple[str]] = []
        self.receipt_rows: list[tuple[str, str, str, str, str, int]] = []
        self.account_rows: list[tuple[str, str, str]] = []
        self.dm_rooms: dict[str, str] | None = None
        # Rows are written at the end: a room's timeline seen twice in one batch (a
        # malformed response) continues from here, not from the database.
        self.last_pos: dict[str, int] = {}
        self.timeline_ids: dict[str, set[str]] = {}
        # The batch's events (those _fill_above writes early too) are the rows after this.
        self.since = cache._newest_seq()
        # A cache holding no event (a first sync) has no timeline position to look up
        # (last_pos: only the batch's own), and without thread counts only the rooms the
        # batch gives some have any to replace: no statement a room for either.
        self.positions_held = self.since != 0
        self.threads_held = (
            self.db.execute("SELECT 1 FROM thread_unread LIMIT 1").fetchone() is not None
        )
        self.thread_rooms: set[str] = set()

    def summary(self, room_id: str) -> RoomSummary:
        existing = self.result.changed_rooms.get(room_id)
        if existing is not None:
            return existing
        current = self.summaries.get(room_id)
        copy = RoomSummary(room_id) if current is None else current.copy()
        self.result.changed_rooms[room_id] = copy
        return copy

    def run(self, batch: SyncBatch) -> None:
        self.add(batch)
        self.finish()

    def add(self, batch: SyncBatch) -> None:
        """Write one batch, or one slice of a response (``Cache.ingest_slices``)."""
        for event in batch.account_data:
            self.global_account_data(event)
        for joined in batch.joined:
            self.joined(joined)
        for invited in batch.invited:
            self.invited(invited)
        # Before the left rooms: a room joined and left in one batch is not forgotten.
        if self.unforgotten:
            self.db.executemany("DELETE FROM meta WHERE key = ?", self.unforgotten)
            self.unforgotten = []
        for left in batch.left:
            self.left(left)
        self.flush()

    def finish(self) -> None:
        """After the last slice: direct rooms, names, and the changed summaries."""
        if self.dm_rooms is not None:
            self.apply_direct()
        for summary in self.result.changed_rooms.values():
            summary.recompute_name(self.own)
        write_summaries(self.db, self.result.changed_rooms.values())

    def flush(self) -> None:
        db = self.db
        if self.rows:
            db.executemany(INSERT_EVENT, self.rows)
        self.cache._events_added(self.since)
        # The next slice of a sliced response indexes only its own rows (those _fill_above
        # wrote for this one included: they are indexed now).
        self.since = self.cache._newest_seq()
        if self.state_rows:
            db.executemany(
                "INSERT INTO room_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
                self.state_rows,
            )
        for room_id, redaction, version in self.redactions:
            _apply_redaction_row(db, room_id, redaction, version)
        if self.receipt_rows:
            db.executemany(
                "INSERT INTO receipts (room_id, receipt_type, thread_id, user_id, event_id, ts) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(room_id, receipt_type, thread_id, user_id) DO UPDATE SET event_id = excluded.event_id, "
                "ts = excluded.ts WHERE excluded.ts >= receipts.ts",
                self.receipt_rows,
            )
        if self.account_rows:
            db.executemany(
                "INSERT OR REPLACE INTO account_data (room_id, type, content) VALUES (?, ?, ?)",
                self.account_rows,
            )
        if self.echoed_txn:
            db.executemany("DELETE FROM outbox WHERE txn_id = ?", [(t,) for t in self.echoed_txn])
            self.result.echoed_txn_ids.update(self.echoed_txn)
        # Written: a sliced response's next slice starts afresh (its rows are not kept).
        self.rows, self.state_rows, self.redactions, self.echoed_txn = [], [], [], []
        self.receipt_rows, self.account_rows = [], []

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
            if summary.apply_state(
                index[1], index[4], content if isinstance(content, dict) else {}, index[2]
            ):
                self.result.state_changed_rooms.add(room_id)

    def add_timeline(
        self,
        room_id: str,
        summary: RoomSummary,
        events: list[Event],
        limited: bool,
        prev_batch: str | None,
    ) -> None:
        if room_id in self.last_pos:
            last: int | None = self.last_pos[room_id]
        else:
            last = self.cache.last_pos(room_id) if self.positions_held else None
        # An event already in the timeline (sent again, or twice in one batch) keeps
        # its place and is not reported as new.
        seen = self.timeline_ids.setdefault(room_id, set())
        if last is not None and events:
            seen.update(
                self.cache._timeline_ids(
                    [e["event_id"] for e in events if type(e.get("event_id")) is str]
                )
            )
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
            event_id, event_type, sender, ts, state_key = (
                index[0],
                index[1],
                index[2],
                index[3],
                index[4],
            )
            rows.append((event_id, room_id, pos, *index[1:], _dumps(event)))
            stored.append(StoredEvent(pos, event))
            pos += 1
            if ts > summary.last_ts:
                summary.last_ts = ts
            if state_key is not None:
                state_rows.append((room_id, event_type, state_key, event_id))
                content = event.get("content")
                if summary.apply_state(
                    event_type, state_key, content if isinstance(content, dict) else {}, sender
                ):
                    self.result.state_changed_rooms.add(room_id)
            elif event_type == "m.room.redaction":
                self.redactions.append((room_id, event, summary.room_version))
            if index[8] is not None and sender == self.own:
                self.echoed_txn.append(index[8])
        if stored:
            self.result.new_events.setdefault(room_id, []).extend(stored)
            self.last_pos[room_id] = stored[-1].pos

    def _fill_above(
        self, room_id: str, held: Event, older: list[Event], prev_batch: str | None
    ) -> None:
        """History sent again before an event we hold: into the gap right above that event
        (if there is one and the positions below it are free); the gap moves above it,
        with the chunk's token, or closes when the chunk starts with the room's creation."""
        row = self.db.execute(
            "SELECT pos FROM events WHERE event_id = ? AND pos IS NOT NULL", (held.get("event_id"),)
        ).fetchone()
        if row is None:
            return
        pos = int(row[0])
        gap = self.db.execute(
            "SELECT 1 FROM gaps WHERE room_id = ? AND pos_above = ?", (room_id, pos)
        ).fetchone()
        indexed = [(e, i) for e in older if (i := index_event(e)) is not None]
        if gap is None or not indexed:
            return
        top = pos - len(indexed)
        taken = self.db.execute(
            "SELECT 1 FROM events WHERE room_id = ? AND pos >= ? AND pos < ? LIMIT 1",
            (room_id, top, pos),
        ).fetchone()
        if taken:
            return
        for offset, (event, index) in enumerate(indexed):
            self.cache._insert_event(room_id, top + offset, event, index)
        self.db.execute("DELETE FROM gaps WHERE room_id = ? AND pos_above = ?", (room_id, pos))
        if prev_batch and indexed[0][1][1] != "m.room.create":
            self.db.execute(
                "INSERT OR REPLACE INTO gaps (room_id, pos_above, token) VALUES (?, ?, ?)",
                (room_id, top, prev_batch),
            )
        # An open room shows them: its window is read again.
        self.result.limited_rooms.add(room_id)

    def joined(self, room: JoinedRoom) -> None:
        self.unforgotten.append((f"forgotten:{room.room_id}",))
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
            if self.threads_held or room.room_id in self.thread_rooms:
                self.db.execute("DELETE FROM thread_unread WHERE room_id = ?", (room.room_id,))
            if room.thread_counts:
                self.thread_rooms.add(room.room_id)
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
        self.unforgotten.append((f"forgotten:{room.room_id}",))
        summary = self.summary(room.room_id)
        summary.membership = "invite"
        members = 0
        for event in room.invite_state:
            event_type, state_key = event.get("type"), event.get("state_key")
            content = event.get("content")
            sender = event.get("sender")
            if (
                not isinstance(event_type, str)
                or not isinstance(state_key, str)
                or not isinstance(content, dict)
            ):
                continue
            summary.apply_state(
                event_type, state_key, content, sender if isinstance(sender, str) else ""
            )
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
                elif (
                    state_key != self.own
                    and isinstance(content.get("displayname"), str)
                    and not summary.heroes
                ):
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
        if self.db.execute(
            "SELECT 1 FROM meta WHERE key = ?", (f"forgotten:{room.room_id}",)
        ).fetchone():
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
            rows = self.receipt_rows
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

    def room_account_data(self, room_id: str, summary: RoomSummary, event: Event) -> None:
        event_type, content = event.get("type"), event.get("content")
        if not isinstance(event_type, str) or not isinstance(content, dict):
            return
        self.account_rows.append((room_id, event_type, _dumps(content)))
        if event_type == "m.tag":
            tags = content.get("tags")
            summary.tags = (
                sorted(t for t in tags if isinstance(t, str)) if isinstance(tags, dict) else []
            )

    def global_account_data(self, event: Event) -> None:
        event_type, content = event.get("type"), event.get("content")
        if not isinstance(event_type, str) or not isinstance(content, dict):
            return
        self.account_rows.append(("", event_type, _dumps(content)))
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
        for room_id, summary in list(self.summaries.items()) + list(
            self.result.changed_rooms.items()
        ):
            is_dm = room_id in dm_rooms
            if summary.membership == "invite" and summary.is_dm:
                continue
            if summary.is_dm != is_dm or summary.dm_user != dm_rooms.get(room_id):
                target = self.summary(room_id)
                target.is_dm = is_dm
                target.dm_user = dm_rooms.get(room_id)
