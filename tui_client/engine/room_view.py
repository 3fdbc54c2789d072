"""An open room: its timeline window over the cache, its members, back-fill from the server.

The window holds at most :data:`MAX_ITEMS` items: paging up loads older events
from the cache (filling gaps from ``/messages`` when it reaches one), and the far
end of the window is dropped so memory does not grow with history that is not on
screen. New events from sync are appended while the window is at the live end.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.events import RoomEvent, UnknownEvent, parse_event
from ..protocol.room_state import PowerLevels, RoomMembers
from ..protocol.room_versions import rules_for
from ..protocol.timeline import Diff, SendState, TimelineModel
from ..store.cache import Gap, OutboxEntry, StoredEvent
from .updates import MembersChanged, ReceiptsChanged, TimelineUpdated

if TYPE_CHECKING:
    from .core import Core
    from .encryption import Encryption

__all__ = ["RoomView"]

log = logging.getLogger(__name__)

INITIAL_EVENTS = 80
#: Under sliding sync (10 events a room: less than a screen), a window shorter than this
#: with history above it is filled from the server at once.
SHORT_WINDOW = 30
PAGE_EVENTS = 80
SERVER_PAGE = 100
MAX_ITEMS = 600


class RoomView:
    """One open room. Created by :meth:`MatrixClient.open_room`."""

    def __init__(
        self,
        core: Core,
        room_id: str,
        encryption: Encryption,
        *,
        hidden_sender: Callable[[str], bool],
        fetch_members: Callable[[str], Awaitable[list[dict[str, Any]]]],
        sliding: Callable[[], bool] = lambda: False,
    ) -> None:
        self.core = core
        self.encryption = encryption
        self._fetch_members = fetch_members
        self._hidden_sender = hidden_sender
        #: Whether sliding sync runs (its windows may start short: they are filled from the server).
        self._sliding = sliding
        self.room_id = room_id
        self.members = RoomMembers()
        self.power_levels = PowerLevels(None)
        # The model's callbacks hold the view weakly: a closed view (a room switch) is
        # then freed by reference counting, not left as a cycle for the collector
        # (which may have frozen it: engine/gc_policy.py).
        this = weakref.ref(self)

        def may_redact_others(user_id: str) -> bool:
            view = this()
            return view is None or view.power_levels.can(user_id, "redact")

        def room_name(room_id: str) -> str | None:
            summary = core.rooms.get(room_id)
            return summary.display_name if summary is not None else None

        self.model = TimelineModel(
            core.user_id,
            self.members.display_name,
            may_redact_others=may_redact_others,
            room_name=room_name,
            hidden_sender=hidden_sender,
        )
        self.first_pos: int | None = None
        self.last_pos: int | None = None
        self.at_live_end = True
        self.reached_start = False
        self.paginating = False
        self.members_complete = False
        self.typing: tuple[str, ...] = ()
        #: Our ``m.fully_read`` marker when the room was opened (the "new messages" line
        #: stays there while the room is open, as in Element, though reading moves it on).
        self.fully_read_at_open: str | None = None
        #: The latest read receipt of each other member: user -> event ID.
        self.receipts: dict[str, str] = {}
        self._receipt_ts: dict[str, int | None] = {}  # receipted event -> its timestamp
        self.version = 0
        self._positions: dict[str, int] = {}
        # Events synced while the window is being (re)loaded wait here, then follow it.
        self._loading = False
        self._held: list[StoredEvent] = []
        self._window_at_live_end = True  # what the window being reset is (see _reset_to)
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    # -- publishing -----------------------------------------------------------------

    def _publish(self, diffs: list[Diff]) -> None:
        if diffs:
            self.version += 1
            self.core.publish(TimelineUpdated(self.room_id, tuple(diffs), self.version))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def close(self) -> None:
        """Stop background fetches of this view."""
        for task in list(self._background):
            task.cancel()

    # -- loading --------------------------------------------------------------------

    @property
    def room_version(self) -> str | None:
        """The room version, from the room's summary."""
        summary = self.core.rooms.get(self.room_id)
        return summary.room_version if summary else None

    # -- reading the cache (database thread): encrypted events in their shown form --

    def _clear(self, events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        encryption = self.encryption
        return encryption.shown_forms(events) if encryption.stored_forms_readable else {}

    def _read_before(self, before: int | None, count: int) -> tuple[list[StoredEvent], Gap | None]:
        stored, gap = self.core.cache.load_before(self.room_id, before, count)
        return self._clear_stored(stored), gap

    def _read_after(self, after: int, count: int) -> list[StoredEvent]:
        return self._clear_stored(self.core.cache.load_after(self.room_id, after, count))

    def _clear_stored(self, stored: list[StoredEvent]) -> list[StoredEvent]:
        forms = self._clear([s.event for s in stored])
        if not forms:
            return stored
        return [StoredEvent(s.pos, forms.get(s.event.get("event_id", ""), s.event)) for s in stored]

    def _read_relations(self, ids: list[str]) -> list[dict[str, Any]]:
        relations = self.core.cache.load_relations(ids)
        forms = self._clear(relations)
        return [forms.get(e.get("event_id", ""), e) for e in relations]

    def _read_events(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        found = self.core.cache.load_events(ids)
        forms = self._clear(list(found.values()))
        return {event_id: forms.get(event_id, event) for event_id, event in found.items()}

    async def reload_state(self) -> None:
        """Re-read the room's current state (a sync brought a ``state`` block)."""
        state = await self.core.db.run(self.core.cache.load_state, self.room_id)
        self._apply_state_events(state)

    def on_decrypted(self, events: dict[str, dict[str, Any]]) -> None:
        """Events of this room were decrypted after they were shown (their key arrived)."""
        diffs: list[Diff] = []
        for raw in events.values():
            event = parse_event(raw, self.room_id)
            if isinstance(event, RoomEvent):
                diffs.extend(self.model.replace_event(event))
        self._publish(diffs)

    def _parse(self, stored: list[StoredEvent]) -> list[RoomEvent | UnknownEvent]:
        events = []
        for item in stored:
            event = parse_event(item.event, self.room_id)
            if event.event_id is not None:
                self._positions[event.event_id] = item.pos
            events.append(event)
        return events

    async def load(self) -> None:
        """Load the newest window from the cache, with members, relations and local echoes."""
        self._loading = True
        try:
            await self._load()
        finally:
            self._loading = False

    async def _load(self) -> None:
        async with self._lock:
            cache = self.core.cache
            state = await self.core.db.run(cache.load_state, self.room_id)
            self._apply_state_events(state)
            stored, gap = await self.core.db.run(self._read_before, None, INITIAL_EVENTS)
            self.reached_start = not stored and gap is None
            await self._reset_to(stored)
            outbox = await self.core.db.run(cache.outbox, self.room_id)
            diffs: list[Diff] = []
            for entry in outbox:
                diffs.extend(self._echo_for_entry(entry))
            self._publish(diffs)
            receipts = await self.core.db.run(cache.receipts_for, self.room_id)
            marker = await self.core.db.run(cache.account_data, "m.fully_read", self.room_id)
            event_id = marker.get("event_id") if marker else None
            self.fully_read_at_open = event_id if isinstance(event_id, str) else None
        self._spawn(self._resolve_missing_replies())
        await self.apply_receipts(receipts.items(), publish=False)
        if gap is not None and len(stored) < SHORT_WINDOW and self._sliding():
            # (v2 brings 50 events a room: a window this short has no history above it)
            self._spawn(self.paginate_back(INITIAL_EVENTS - len(stored)))

    # -- read receipts ---------------------------------------------------------------

    async def apply_receipts(
        self, pairs: Iterable[tuple[str, str]], *, publish: bool = True
    ) -> None:
        """Receipts (user, event ID) from the cache or a sync batch; others' only."""
        moved = {u: e for u, e in pairs if u != self.core.user_id}
        moved = {u: e for u, e in moved.items() if self.receipts.get(u) != e}
        if not moved:
            return
        # Where each receipted event stands in time, then the receipts and the news together.
        unknown = [e for e in set(moved.values()) if e not in self._receipt_ts]
        if unknown:
            known = await self.core.db.run(self.core.cache.event_timestamps, unknown)
            for event_id in unknown:
                self._receipt_ts[event_id] = known.get(event_id)
        self.receipts.update(moved)
        if publish:
            self.core.publish(ReceiptsChanged(self.room_id))

    def new_messages_after(self) -> str | None:
        """The shown event after which the "new messages" line goes: our fully-read marker
        at opening, if someone else wrote after it (else ``None``)."""
        marker = self.fully_read_at_open
        if marker is None:
            return None
        items = self.model.items
        index = next((n for n, item in enumerate(items) if item.event_id == marker), None)
        if index is None:
            return None
        own = self.core.user_id
        if any(item.sender != own and not item.is_local_echo for item in items[index + 1 :]):
            return marker
        return None

    def read_by(self) -> dict[str, tuple[str, ...]]:
        """Shown event ID -> the members who have read up to it (their latest receipt is
        on it, or on a later event that is not shown, such as a reaction, before the next
        shown one)."""
        if not self.receipts:
            return {}
        items = [i for i in self.model.items if i.event_id and not i.is_local_echo]
        where = {item.event_id: n for n, item in enumerate(items)}
        found: dict[str, list[str]] = {}
        ignored = self._hidden_sender
        for user_id, event_id in self.receipts.items():
            if ignored(user_id):
                continue
            index = where.get(event_id)
            if index is None:
                ts = self._receipt_ts.get(event_id)
                if ts is None:
                    continue
                index = next((n for n in range(len(items) - 1, -1, -1) if items[n].ts <= ts), None)
                if index is None:
                    continue
            shown = items[index].event_id
            assert shown is not None
            found.setdefault(shown, []).append(user_id)
        return {event_id: tuple(sorted(users)) for event_id, users in found.items()}

    async def _reset_to(self, stored: list[StoredEvent], *, at_live_end: bool = True) -> None:
        self._loading = True
        try:
            self._window_at_live_end = at_live_end
            await self._reset_window(stored)
        finally:
            self._loading = False
        held, self._held = self._held, []
        # Events synced meanwhile follow a window at the live end; a window in the middle
        # of history (a jump) meets them in the cache when it pages forward.
        newer = [s for s in held if not stored or s.pos > stored[-1].pos]
        if newer and at_live_end:
            self.on_sync_events(newer)

    async def _reset_window(self, stored: list[StoredEvent]) -> None:
        events = self._parse(stored)
        ids = [e.event_id for e in events if isinstance(e, RoomEvent)]
        relations = await self.core.db.run(self._read_relations, ids)
        parsed_relations = [
            r for r in (parse_event(x, self.room_id) for x in relations) if isinstance(r, RoomEvent)
        ]
        self.first_pos = stored[0].pos if stored else None
        self.last_pos = stored[-1].pos if stored else None
        self.at_live_end = self._window_at_live_end
        self._publish(self.model.reset(events, parsed_relations))
        self._forget_dropped_positions()
        await self._add_reply_context()

    async def reload(self, *, only_at_live_end: bool = False) -> None:
        """Jump back to the newest events (after a limited sync, or on request).

        ``only_at_live_end`` (a sync filled history): a window the user moved into the
        middle of history (a search result) by the time the lock is taken stays where it is;
        it meets the new events in the cache when it pages forward."""
        self._loading = True
        try:
            await self._reload(only_at_live_end)
        finally:
            self._loading = False

    async def _reload(self, only_at_live_end: bool = False) -> None:
        async with self._lock:
            if only_at_live_end and not self.at_live_end:
                return
            stored, gap = await self.core.db.run(self._read_before, None, INITIAL_EVENTS)
            self.reached_start = not stored and gap is None
            await self._reset_to(stored)
            # A limited sync stops waiting for echoes that fell into the gap: drop their
            # local echoes too (the messages themselves appear when the gap is filled).
            waiting = {
                e.txn_id for e in await self.core.db.run(self.core.cache.outbox, self.room_id)
            }
            diffs: list[Diff] = []
            for item in self.model.items:
                if item.is_local_echo and item.txn_id is not None and item.txn_id not in waiting:
                    diffs.extend(self.model.remove_local_echo(item.txn_id))
            self._publish(diffs)
        self._spawn(self._resolve_missing_replies())

    async def refilter(self) -> None:
        """The ignore list changed: show the newest window again from the cache, without
        (or again with) the ignored users' messages and reactions."""
        await self.reload()
        self.core.publish(ReceiptsChanged(self.room_id))

    def _echo_for_entry(self, entry: OutboxEntry) -> list[Diff]:
        if _in_a_thread(entry.content):
            return []  # shown in its thread's view (engine/threads.py)
        state = {"pending": SendState.PENDING, "sent": SendState.SENT, "failed": SendState.FAILED}[
            entry.state
        ]
        return self.model.add_local_echo(
            entry.txn_id,
            entry.event_type,
            entry.content,
            entry.created_ts,
            state,
            entry.event_id,
            entry.error,
        )

    async def _add_reply_context(self) -> None:
        missing = self.model.reply_targets_missing()
        if not missing:
            return
        found = await self.core.db.run(self._read_events, missing)
        events = [
            e
            for e in (parse_event(x, self.room_id) for x in found.values())
            if isinstance(e, RoomEvent)
        ]
        self._publish(self.model.add_context(events))

    async def _resolve_missing_replies(self) -> None:
        # Parents not in the cache are fetched from the server, a few at a time.
        for event_id in self.model.reply_targets_missing()[:20]:
            try:
                data = await self.core.connection.send(api.get_event(self.room_id, event_id))
            except (MatrixError, NetworkError) as error:
                log.info("cannot fetch reply parent %s: %s", event_id, error)
                continue
            event = parse_event(data, self.room_id)
            if isinstance(event, RoomEvent):
                self._publish(self.model.add_context([event]))

    # -- paging ---------------------------------------------------------------------

    async def paginate_back(self, count: int = PAGE_EVENTS) -> int:
        """Show older events: from the cache, or from the server when a gap is reached.

        Returns how many events were added; 0 at the start of the room.
        """
        if self.reached_start:
            return 0
        async with self._lock:
            self.paginating = True
            try:
                return await self._paginate_back(count)
            finally:
                self.paginating = False

    async def _paginate_back(self, count: int) -> int:
        for _ in range(10):  # a few server pages at most per call
            stored, gap = await self.core.db.run(self._read_before, self.first_pos, count)
            if stored:
                events = self._parse(stored)
                ids = [e.event_id for e in events if isinstance(e, RoomEvent)]
                relations = await self.core.db.run(self._read_relations, ids)
                diffs = self.model.prepend(
                    [
                        r
                        for r in (parse_event(x, self.room_id) for x in relations)
                        if isinstance(r, RoomEvent)
                    ]
                )
                diffs += self.model.prepend(events)
                self.first_pos = stored[0].pos
                if self.last_pos is None:
                    self.last_pos = stored[-1].pos
                diffs += self._trim_newest()
                self._publish(diffs)
                await self._add_reply_context()
                return len(stored)
            if gap is None:
                self.reached_start = True
                return 0
            if not await self._fill(gap):
                return 0
        return 0

    async def _fill(self, gap: Gap) -> bool:
        try:
            data = await self.core.connection.send(
                api.messages(self.room_id, from_token=gap.token, direction="b", limit=SERVER_PAGE)
            )
        except (MatrixError, NetworkError) as error:
            self.core.notify("warning", f"Could not load older messages: {error}")
            return False
        chunk = data.get("chunk") if isinstance(data, dict) else None
        end = data.get("end") if isinstance(data, dict) else None
        state = data.get("state") if isinstance(data, dict) else None
        chunk = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        if isinstance(state, list):
            members = [e for e in state if isinstance(e, dict) and e.get("type") == "m.room.member"]
            await self.core.db.run(self.core.cache.add_member_events, self.room_id, members)
            for event in members:
                user = event.get("state_key")
                content = event.get("content")
                if isinstance(user, str) and user not in self.members and isinstance(content, dict):
                    self.members.update(user, content)
        stored = await self.core.db.run(
            self.core.cache.fill_gap,
            gap,
            chunk,
            end if isinstance(end, str) else None,
            self.room_version,
        )
        # Back-filled encrypted messages are decrypted as they are stored (so they are
        # shown, and indexed for search, like synced ones).
        encrypted = [s.event for s in stored if s.event.get("type") == "m.room.encrypted"]
        if encrypted:
            await self.encryption.ready()  # the machine may still be opening (first paint)
        if encrypted and self.encryption.available:
            await self.core.db.run(self.encryption.fetched_forms, self.room_id, encrypted)
        return True

    async def jump_to(self, event_id: str, *, max_server_pages: int = 20) -> bool:
        """Show the window around ``event_id`` (a search result), paging history back from
        the server until it is cached if need be. False if it could not be reached."""
        async with self._lock:
            pos = await self.core.db.run(self._pos_of, event_id)
            for _ in range(max_server_pages):
                if pos is not None:
                    break
                gap = await self.core.db.run(self.core.cache.gap_below, self.room_id, None)
                if gap is None or not await self._fill(gap):
                    return False
                pos = await self.core.db.run(self._pos_of, event_id)
            if pos is None:
                return False
            half = INITIAL_EVENTS // 2
            older, gap = await self.core.db.run(self._read_before, pos + 1, half)
            newer = await self.core.db.run(self._read_after, pos, half)
            self.reached_start = gap is None and len(older) < half
            latest = await self.core.db.run(self.core.cache.last_pos, self.room_id)
            # Known before the window is shown: the UI must not take a window in the middle
            # of history for the live end (it would page on to the newest by itself).
            await self._reset_to(
                older + newer, at_live_end=(newer[-1].pos if newer else pos) == latest
            )
            return True

    def _pos_of(self, event_id: str) -> int | None:
        return self.core.cache.event_pos(self.room_id, event_id)

    async def paginate_forward(self, count: int = PAGE_EVENTS) -> int:
        """Show newer events from the cache when the window is not at the live end."""
        if self.at_live_end or self.last_pos is None:
            return 0
        async with self._lock:
            stored = await self.core.db.run(self._read_after, self.last_pos, count)
            if not stored:
                self.at_live_end = True
                return 0
            diffs = self.model.append(self._parse(stored))
            self.last_pos = stored[-1].pos
            if len(stored) < count:
                latest = await self.core.db.run(self.core.cache.last_pos, self.room_id)
                self.at_live_end = latest == self.last_pos
            diffs += self._trim_oldest()
            self._publish(diffs)
            return len(stored)

    def _trim_newest(self) -> list[Diff]:
        excess = len(self.model) - MAX_ITEMS
        if excess <= 0:
            return []
        diffs = self.model.drop_newest(excess)
        if diffs:
            self.at_live_end = False
            self.last_pos = self._pos_of_last()
        return diffs

    def _trim_oldest(self) -> list[Diff]:
        excess = len(self.model) - MAX_ITEMS
        if excess <= 0:
            return []
        diffs = self.model.drop_oldest(excess)
        if diffs:
            self.reached_start = False
            self.first_pos = self._pos_of_first()
        return diffs

    def _pos_of_first(self) -> int | None:
        self._forget_dropped_positions()
        first = self.model.first_event_id()
        return self._positions.get(first) if first else None

    def _pos_of_last(self) -> int | None:
        self._forget_dropped_positions()
        last = self.model.last_event_id()
        return self._positions.get(last) if last else None

    def _forget_dropped_positions(self) -> None:
        self._positions = {
            k: v for k, v in self._positions.items() if self.model.item(k) is not None
        }

    # -- live updates ---------------------------------------------------------------

    def on_sync_events(self, stored: list[StoredEvent]) -> None:
        """New events for this room were committed by sync."""
        if not stored:
            return
        if self._loading:
            self._held.extend(stored)
            return
        state_events = [s.event for s in stored if "state_key" in s.event]
        if state_events:
            self._apply_state_events(state_events)
        if not self.at_live_end:
            return
        diffs = []
        for event in self._parse(stored):
            if isinstance(event, RoomEvent) and event.type == "m.room.redaction":
                diffs.extend(self.model.apply_redaction(event))
            else:
                diffs.extend(self.model.append([event]))
        self.last_pos = stored[-1].pos
        if self.first_pos is None:
            self.first_pos = stored[0].pos
        diffs += self._trim_oldest()
        self._publish(diffs)
        if self.model.reply_targets_missing():
            self._spawn(self._add_reply_context())

    def _apply_state_events(self, events: list[dict[str, Any]]) -> None:
        changed = False
        for raw in events:
            event = parse_event(raw, self.room_id)
            if not isinstance(event, RoomEvent) or event.state_key is None:
                continue
            if event.type == "m.room.member":
                self.members.update(event.state_key, event.content)
                changed = True
            elif event.type == "m.room.third_party_invite":
                self.members.update_third_party(event.state_key, event.content)
                changed = True
            elif event.type == "m.room.power_levels" and event.state_key == "":
                self._set_power_levels(event.content)
                changed = True
        if changed:
            self.core.publish(MembersChanged(self.room_id))

    def _set_power_levels(self, content: dict[str, Any]) -> None:
        summary = self.core.rooms.get(self.room_id)
        rules = rules_for(summary.room_version if summary else None)
        self.power_levels = PowerLevels(
            content,
            creators=summary.creators if summary else (),
            creators_have_infinite_power=rules.creators_have_infinite_power,
        )

    def on_send_state(
        self, txn_id: str, state: str, event_id: str | None, error: str | None
    ) -> None:
        """The send queue reports progress on one of our messages."""
        send_state = {
            "pending": SendState.PENDING,
            "sent": SendState.SENT,
            "failed": SendState.FAILED,
        }[state]
        self._publish(
            self.model.update_local_echo(txn_id, send_state, event_id=event_id, error=error)
        )

    def add_local_echo(self, entry: OutboxEntry) -> None:
        """Show a message the user just queued."""
        self._publish(self._echo_for_entry(entry))

    def remove_local_echo(self, txn_id: str) -> None:
        """Remove a discarded message."""
        self._publish(self.model.remove_local_echo(txn_id))

    async def load_all_members(self) -> None:
        """Fetch the full member list (lazy loading only gave us those who spoke)."""
        if self.members_complete:
            return
        try:
            events = await self._fetch_members(self.room_id)
        except (MatrixError, NetworkError) as error:
            self.core.notify("warning", f"Could not load the member list: {error}")
            return
        for raw in events:
            user = raw.get("state_key")
            content = raw.get("content")
            if isinstance(user, str) and isinstance(content, dict) and user not in self.members:
                self.members.update(user, content)
        self.members_complete = True
        self.core.publish(MembersChanged(self.room_id))

    def display_name(self, user_id: str) -> str:
        """A member's disambiguated name."""
        return self.members.display_name(user_id)

    def can(self, action: str) -> bool:
        """Whether we may ``invite``/``kick``/``ban``/``redact`` here."""
        return self.power_levels.can(self.core.user_id, action)

    def can_send_state(self, event_type: str) -> bool:
        """Whether we may set this state (``m.room.topic``, ``m.room.name``...)."""
        return self.power_levels.can_send(self.core.user_id, event_type, is_state=True)


NameOf = Callable[[str], str]


def _in_a_thread(content: dict[str, Any]) -> bool:
    relation = content.get("m.relates_to")
    return isinstance(relation, dict) and relation.get("rel_type") == "m.thread"
