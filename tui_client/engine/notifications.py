"""Notifications: push rules evaluated here, unread counts of encrypted rooms, ignored users.

The server counts unread notifications and highlights with the user's push rules,
but it cannot read encrypted events: every message of an encrypted group room is a
plain "notify" to it, and a mention there is never a highlight. This service runs
the same rules (:mod:`~tui_client.protocol.push_rules`) over the decrypted events of
each sync batch and counts encrypted rooms itself, from our read receipt (or our
own latest message) on; other rooms keep the server's counts, except over sliding
sync (Synapse's sends 0 for every room): then every room is counted here.

After the first batch of a start (which only brings counts of what was missed), each
live event the rules say to notify of is published as a
:class:`~tui_client.engine.updates.PushNotification` (never our own, never in a muted
room); :attr:`NotificationService.alerts` holds how the user wants to be told.

It also sets the user's per-room notification level and keywords through the push
rules API, and the list of ignored users (``m.ignored_user_list``); both are read
back from account data, so changes made in another client show here.

Built with the few things it uses (the cache, the database thread, the connection,
a publish function), so a test can build it alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.events import relation_of
from ..protocol.push_rules import (
    LEVEL_ALL,
    PushActions,
    PushContext,
    PushRuleSet,
    keyword_rule_body,
    level_changes,
)
from ..protocol.room_state import PowerLevels, RoomSummary
from ..protocol.room_versions import rules_for
from ..store.cache import Cache, IngestResult
from .alert_settings import AlertSettings
from .dbthread import DatabaseThread
from .updates import PushNotification, RoomListChanged, Update

__all__ = ["IGNORED_USERS", "PUSH_RULES", "NotificationService"]

log = logging.getLogger(__name__)

PUSH_RULES = "m.push_rules"
IGNORED_USERS = "m.ignored_user_list"

#: How far back a room is counted when our read receipt is older (or unknown).
COUNT_WINDOW = 500
#: Events asked for per ``/messages`` page when history is fetched to reach our receipt.
FILL_PAGE = 100

#: A thread key of :class:`Unread`: the main timeline (thread roots belong to it).
MAIN = ""

Event = dict[str, Any]
#: The decrypted (shown) forms of stored ``m.room.encrypted`` events, by event ID.
ShownForms = Callable[[list[Event]], Mapping[str, Event]]


class Unread:
    """A room's unread counts as counted here: the main timeline's and each thread's."""

    __slots__ = ("main", "threads")

    def __init__(
        self, main: tuple[int, int] = (0, 0), threads: dict[str, tuple[int, int]] | None = None
    ) -> None:
        self.main = main
        self.threads = dict(threads or {})

    @property
    def total(self) -> tuple[int, int]:
        """``(notifications, highlights)`` of the room, its threads included (as v2 says)."""
        return (
            self.main[0] + sum(n for n, _h in self.threads.values()),
            self.main[1] + sum(h for _n, h in self.threads.values()),
        )

    def add(self, thread: str, highlight: bool) -> None:
        if thread == MAIN:
            self.main = (self.main[0] + 1, self.main[1] + highlight)
        else:
            n, h = self.threads.get(thread, (0, 0))
            self.threads[thread] = (n + 1, h + highlight)

    def clear(self, thread: str) -> None:
        if thread == MAIN:
            self.main = (0, 0)
        else:
            self.threads.pop(thread, None)

    def copy(self) -> Unread:
        return Unread(self.main, self.threads)


def thread_of(event: Mapping[str, Any]) -> str:
    """The thread root an event replies in, :data:`MAIN` for the main timeline."""
    relation = relation_of(event.get("content"))
    if relation is not None and relation.rel_type == "m.thread" and relation.event_id:
        return relation.event_id
    return MAIN


def read_marks(
    events: list[Event], own_user_id: str, receipts: Mapping[str, str]
) -> tuple[int, dict[str, int], bool]:
    """Where reading stopped in ``events`` (oldest first), from our receipts (thread ID ->
    event ID, ``""`` unthreaded, ``"main"`` the main timeline's, else a thread root's) and our
    own messages (each one read up to itself in its thread), per the spec's threaded
    receipts: ``(unthreaded index, {thread: index}, main mark found)``; -1 where none is in
    ``events``. An event is unread if it comes after both its thread's mark and the
    unthreaded one."""
    at = {e.get("event_id"): i for i, e in enumerate(events)}
    unthreaded = at.get(receipts.get(""), -1)
    marks: dict[str, int] = {}
    main = at.get(receipts.get("main"), -1)
    if main >= 0:
        marks[MAIN] = main
    for thread, event_id in receipts.items():
        if thread not in ("", "main") and event_id in at:
            marks[thread] = max(marks.get(thread, -1), at[event_id])
    for index, event in enumerate(events):
        if event.get("sender") == own_user_id:
            thread = thread_of(event)
            marks[thread] = max(marks.get(thread, -1), index)
    return unthreaded, marks, unthreaded >= 0 or MAIN in marks


class NotificationService:
    """Push rules, local unread counts of encrypted rooms, levels, keywords, ignored users."""

    def __init__(
        self,
        cache: Cache,
        db: DatabaseThread,
        connection: HomeserverConnection,
        publish: Callable[[Update], None],
        *,
        user_id: str,
        shown_forms: ShownForms,
        rooms: Callable[[], Mapping[str, RoomSummary]],
        on_ignored_changed: Callable[[], None] = lambda: None,
        count_all: Callable[[], bool] = lambda: False,
    ) -> None:
        self._cache = cache
        self._db = db
        self._connection = connection
        self._publish = publish
        self._user_id = user_id
        self._shown_forms = shown_forms
        self._rooms = rooms
        #: The user's rules as last read (the spec's defaults until account data says more).
        self.rules = PushRuleSet.from_account_data(None, user_id)
        #: Users whose messages and invites are hidden.
        self.ignored: frozenset[str] = frozenset()
        # The list as the rest of the engine last applied it (see check_ignored).
        self._ignored_applied: frozenset[str] = frozenset()
        self._on_ignored_changed = on_ignored_changed
        # True: the server's counts mean nothing (Synapse's sliding sync sends 0 for
        # every room), so every room is counted here, not only encrypted ones.
        self._count_all = count_all
        # Rooms counted from the cache since start, with their counts; later batches add to them.
        self._counted: dict[str, Unread] = {}
        # Rooms whose receipt lies beyond the cached history (counted too low until the
        # history is fetched: see fill_history).
        self._short: set[str] = set()
        self._filling: asyncio.Task[None] | None = None
        #: Called (event loop) with a room whose counts a history fetch changed, and its
        #: counts per thread.
        self.on_recount: Callable[[RoomSummary, dict[str, tuple[int, int]]], None] = lambda s, t: (
            None
        )
        # Back-filled encrypted events: decrypted as they are stored (room, events).
        self.decrypt: Callable[[str, list[Event]], object] | None = None
        #: How the user wants to be told of a notification (off / bell / desktop, text shown).
        self.alerts = AlertSettings(cache, db)
        # Live once the first batch (what was missed) is in: later events notify.
        self._live = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- reading settings --------------------------------------------------------------

    async def load(self) -> None:
        """Read the rules and the ignore list from the cache (before the first sync)."""
        self._loop = asyncio.get_running_loop()
        await self._db.run(self._load_settings, {PUSH_RULES, IGNORED_USERS})
        await self.alerts.load()
        self._ignored_applied = self.ignored

    def _load_settings(self, types: Iterable[str]) -> None:
        """(database thread) Re-read the settings whose account data changed."""
        types = set(types)
        if PUSH_RULES in types:
            self.rules = PushRuleSet.from_account_data(
                self._cache.account_data(PUSH_RULES), self._user_id
            )
        if IGNORED_USERS in types:
            content = self._cache.account_data(IGNORED_USERS) or {}
            users = content.get("ignored_users")
            self.ignored = (
                frozenset(u for u in users if isinstance(u, str))
                if isinstance(users, dict)
                else frozenset()
            )

    def room_level(self, room_id: str) -> str:
        """``all``, ``mentions`` (and keywords) or ``mute``."""
        return self.rules.room_level(room_id)

    def keywords(self) -> list[str]:
        """The user's keywords."""
        return self.rules.keywords()

    def is_ignored(self, user_id: object) -> bool:
        """True if the user is on our ignore list."""
        return user_id in self.ignored

    def hides_room(self, summary: RoomSummary) -> bool:
        """True for an invite from an ignored user (not listed, not alerted)."""
        return summary.membership == "invite" and summary.inviter in self.ignored

    def check_ignored(self) -> None:
        """(event loop) If the list changed since the engine last applied it (a sync
        brought it, or we set it), tell the engine, which re-renders what it shows."""
        if self.ignored != self._ignored_applied:
            self._ignored_applied = self.ignored
            self._on_ignored_changed()

    # -- per batch (database thread) -----------------------------------------------------

    def on_batch(
        self,
        result: IngestResult[Any],
        previous: Mapping[str, RoomSummary],
        *,
        account_types: Iterable[str] = (),
        decrypted: Mapping[str, Mapping[str, Event]] | None = None,
        redecrypted: Iterable[str] = (),
    ) -> None:
        """(database thread, after the batch committed) Re-read changed settings and count
        encrypted rooms: their summaries in ``result.changed_rooms`` get our counts.

        ``decrypted`` holds the shown forms of the batch's encrypted events (room -> event
        ID -> event); ``redecrypted`` names rooms where older events became readable.
        """
        changed_settings = set(account_types) & {PUSH_RULES, IGNORED_USERS}
        before = self.rules
        if changed_settings:
            self._load_settings(changed_settings)
        decrypted = decrypted or {}
        redecrypted = set(redecrypted)
        rules_changed = PUSH_RULES in changed_settings and self.rules != before
        # Every encrypted room of the batch (every room when the server's counts mean
        # nothing): ingest gave them the server's counts.
        count_all = self._count_all()
        candidates = (
            set(result.changed_rooms)
            | set(result.new_events)
            | set(result.receipts)
            | redecrypted
            | result.trimmed_rooms
        )
        if rules_changed or IGNORED_USERS in changed_settings:
            candidates |= {r for r, s in previous.items() if s.encrypted or count_all}
            self._counted.clear()  # what counts has changed: count again from the cache
        touched = []
        for room_id in candidates:
            summary = result.changed_rooms.get(room_id) or previous.get(room_id)
            if (
                summary is None
                or not (summary.encrypted or count_all)
                or summary.membership != "join"
            ):
                continue
            own_receipt = any(user == self._user_id for user, _ in result.receipts.get(room_id, ()))
            full = (
                room_id not in self._counted
                or own_receipt
                or room_id in redecrypted
                or room_id in result.limited_rooms
                or room_id in result.trimmed_rooms  # its events were not kept: the cache has them
            )
            try:
                unread = self._count_room(
                    room_id, summary, result, decrypted.get(room_id, {}), full, count_all
                )
            except Exception:
                log.exception("counting notifications in %s failed", room_id)
                continue
            before_threads = self._counted[room_id].threads if room_id in self._counted else None
            self._counted[room_id] = unread
            counts = unread.total
            if count_all and unread.threads != before_threads:
                # Synapse's sliding sync sends no counts per thread either: ours are kept
                # where v2's go.
                result.thread_counts[room_id] = dict(unread.threads)
                self._cache.set_thread_unread(room_id, unread.threads)
            if (
                summary.notification_count,
                summary.highlight_count,
            ) != counts or room_id in result.changed_rooms:
                updated = result.changed_rooms.get(room_id) or summary.copy()
                updated.notification_count, updated.highlight_count = counts
                result.changed_rooms[room_id] = updated
                touched.append(updated)
        if touched:
            self._cache.save_summaries(touched)
        if self._live:
            for notification in self._live_notifications(result, previous, decrypted):
                self._deliver(notification)
        self._live = True

    def _live_notifications(
        self,
        result: IngestResult[Any],
        previous: Mapping[str, RoomSummary],
        decrypted: Mapping[str, Mapping[str, Event]],
    ) -> list[PushNotification]:
        """(database thread) The batch's events the rules say to notify of."""
        found = []
        for room_id, stored in result.new_events.items():
            summary = result.changed_rooms.get(room_id) or previous.get(room_id)
            if summary is None or summary.membership != "join" or room_id in result.trimmed_rooms:
                continue
            shown = decrypted.get(room_id, {})
            events = [shown.get(s.event.get("event_id", ""), s.event) for s in stored]
            # Only what came after our own latest event (our join, when the batch joined
            # the room, brings history and the invite before it): that much we have seen.
            start = 0
            for index, event in enumerate(events):
                if event.get("sender") == self._user_id:
                    start = index + 1
            before = previous.get(room_id)
            if not start and (before is None or before.membership != "join"):
                continue
            context: PushContext | None = None
            for event in events[start:]:
                sender = event.get("sender")
                if not isinstance(sender, str) or sender == self._user_id:
                    continue
                try:
                    context = context or self._context(room_id, summary)
                    actions = self.evaluate(room_id, event, context)
                except Exception:
                    log.exception("evaluating push rules in %s failed", room_id)
                    break
                if not actions.notify:
                    continue
                content = event.get("content")
                body = content.get("body") if isinstance(content, dict) else None
                found.append(
                    PushNotification(
                        room_id,
                        str(event.get("event_id", "")),
                        sender,
                        self._member_name(room_id, sender),
                        summary.display_name or room_id,
                        body if isinstance(body, str) and body else None,
                        actions.highlight,
                        actions.sound,
                        summary.encrypted,
                        summary.is_dm,
                    )
                )
        return found

    def _member_name(self, room_id: str, user_id: str) -> str:
        """(database thread) A member's display name in a room, else the user ID."""
        member = self._cache.state_event(room_id, "m.room.member", user_id)
        content = member.get("content") if member else None
        name = content.get("displayname") if isinstance(content, dict) else None
        return name if isinstance(name, str) and name else user_id

    def _deliver(self, update: Update) -> None:
        """Publish on the event loop's thread (``on_batch`` runs on the database thread)."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._publish(update)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._publish, update)

    def _count_room(
        self,
        room_id: str,
        summary: RoomSummary,
        result: IngestResult[Any] | None,
        decrypted: Mapping[str, Event],
        full: bool,
        count_all: bool,
    ) -> Unread:
        """(database thread) The room's unread counts: from the cache (``full``), else the
        last counts plus the batch's new events."""
        context = self._context(room_id, summary)
        if full or result is None:
            stored, gap = self._cache.load_before(room_id, None, COUNT_WINDOW)
            events = [s.event for s in stored]
            shown = self._shown_forms(events)
            events = [shown.get(e.get("event_id", ""), e) for e in events]
            receipts = self._cache.own_receipts(room_id, self._user_id)
            if not count_all:  # only the room's count is ours: threads' receipts left aside
                receipts = {k: v for k, v in receipts.items() if k in ("", "main")}
            unthreaded, marks, found = read_marks(events, self._user_id, receipts)
            unread = Unread()
            if count_all and not found and gap is not None and len(events) < COUNT_WINDOW:
                # Our receipt is older than what is cached: the count is too low until the
                # history down to it is fetched.
                self._short.add(room_id)
            else:
                self._short.discard(room_id)
        else:
            new = [s.event for s in result.new_events.get(room_id, [])]
            events = [decrypted.get(e.get("event_id", ""), e) for e in new]
            unthreaded, marks, _found = read_marks(events, self._user_id, {})
            unread = self._counted[room_id].copy()
            for thread in marks:
                unread.clear(thread if count_all else MAIN)
        for index, event in enumerate(events):
            thread = thread_of(event) if count_all else MAIN
            if index <= unthreaded or index <= marks.get(thread, -1):
                continue
            if not count_all and index <= max(marks.values(), default=-1):
                continue  # (only the room's count is ours: any own event read up to it)
            actions = self.evaluate(room_id, event, context)
            if actions.notify:
                unread.add(thread, actions.highlight)
        return unread

    # -- history for counts beyond the cache (sliding sync) -------------------------------

    def after_commit(self) -> None:
        """(event loop, once the engine took the batch's summaries) Fetch, one room at a
        time, the history down to our receipt of the rooms counted short."""
        if self._short and (self._filling is None or self._filling.done()):
            self._filling = asyncio.ensure_future(self.fill_history())

    async def fill_history(self) -> None:
        """Page back each room whose receipt is older than its cached history (at most
        :data:`COUNT_WINDOW` events), then count it again and say so. Sliding sync brings
        10 events a room; Synapse's counts are 0, so without this a room with more unread
        messages than that would show too few."""
        while True:
            try:
                room_id = self._short.pop()  # (the database thread adds and discards too)
            except KeyError:
                return
            try:
                await self._fill_room(room_id)
            except (MatrixError, NetworkError) as error:
                log.info("history for the unread count of %s not fetched: %s", room_id, error)
            except Exception:
                log.exception("history for the unread count of %s not fetched", room_id)

    async def _fill_room(self, room_id: str) -> None:
        summary = self._rooms().get(room_id)
        if summary is None or summary.membership != "join":
            return
        for _ in range(COUNT_WINDOW // FILL_PAGE + 1):
            stored, gap = await self._db.run(self._cache.load_before, room_id, None, COUNT_WINDOW)
            if gap is None or len(stored) >= COUNT_WINDOW:
                break
            events = [s.event for s in stored]
            receipts = await self._db.run(self._cache.own_receipts, room_id, self._user_id)
            if read_marks(events, self._user_id, receipts)[2]:
                break
            data = await self._connection.send(
                api.messages(room_id, from_token=gap.token, direction="b", limit=FILL_PAGE)
            )
            chunk = data.get("chunk") if isinstance(data, dict) else None
            end = data.get("end") if isinstance(data, dict) else None
            page = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
            added = await self._db.run(
                self._cache.fill_gap,
                gap,
                page,
                end if isinstance(end, str) else None,
                summary.room_version,
            )
            encrypted = [s.event for s in added if s.event.get("type") == "m.room.encrypted"]
            if encrypted and self.decrypt is not None:
                await self._db.run(self.decrypt, room_id, encrypted)
            if not page:
                break
        summary = self._rooms().get(room_id)
        if summary is None:
            return
        unread = await self._db.run(self._recount, room_id, summary)
        self._short.discard(
            room_id
        )  # (the rest is older than the window: counted as far as it goes)
        if unread is None:
            return
        updated = summary.copy()
        updated.notification_count, updated.highlight_count = unread.total
        await self._db.run(self._cache.save_summary, updated)
        self.on_recount(updated, dict(unread.threads))

    def _recount(self, room_id: str, summary: RoomSummary) -> Unread | None:
        """(database thread) Count a room from the cache again; ``None`` if nothing changed."""
        before = self._counted.get(room_id)
        unread = self._count_room(room_id, summary, None, {}, True, True)
        self._counted[room_id] = unread
        if before is not None and before.main == unread.main and before.threads == unread.threads:
            return None
        self._cache.set_thread_unread(room_id, unread.threads)
        return unread

    def evaluate(self, room_id: str, event: Mapping[str, Any], context: PushContext) -> PushActions:
        """The rules' verdict on one event of a room (ignored users' events: nothing)."""
        if event.get("sender") in self.ignored:
            return PushActions()
        if "room_id" not in event:
            event = {**event, "room_id": room_id}
        return self.rules.evaluate(event, context)

    def _context(self, room_id: str, summary: RoomSummary) -> PushContext:
        """(database thread) What evaluation needs of the room as it is now."""
        member = self._cache.state_event(room_id, "m.room.member", self._user_id)
        content = member.get("content") if member else None
        name = content.get("displayname") if isinstance(content, dict) else None
        power = self._cache.state_event(room_id, "m.room.power_levels")
        power_content = power.get("content") if power else None
        levels = PowerLevels(
            power_content if isinstance(power_content, dict) else None,
            creators=summary.creators,
            creators_have_infinite_power=rules_for(
                summary.room_version
            ).creators_have_infinite_power,
        )
        return PushContext(
            self._user_id,
            display_name=name if isinstance(name, str) and name else None,
            member_count=summary.joined_count,
            power_levels=levels,
        )

    # -- changing settings ---------------------------------------------------------------

    async def set_room_level(self, room_id: str, level: str) -> None:
        """Set a room to ``all``, ``mentions`` or ``mute`` (Element's rule shapes)."""
        for method, kind, rule_id, body in level_changes(room_id, level):
            if method == "PUT":
                await self._connection.send(api.put_push_rule(kind, rule_id, body or {}))
            else:
                await self._delete_rule(kind, rule_id)
        await self.refresh_rules(changed={room_id})

    async def add_keyword(self, keyword: str) -> None:
        """Notify (and highlight) for messages with this word."""
        keyword = keyword.strip()
        if not keyword:
            raise ValueError("a keyword cannot be empty")
        await self._connection.send(
            api.put_push_rule("content", keyword, keyword_rule_body(keyword))
        )
        await self.refresh_rules()

    async def remove_keyword(self, keyword: str) -> None:
        """Stop notifying for a keyword."""
        await self._delete_rule("content", keyword)
        await self.refresh_rules()

    async def _delete_rule(self, kind: str, rule_id: str) -> None:
        try:
            await self._connection.send(api.delete_push_rule(kind, rule_id))
        except MatrixError as error:
            if error.errcode != "M_NOT_FOUND" and error.status != 404:
                raise

    async def refresh_rules(self, changed: Iterable[str] = ()) -> None:
        """Read the rules back from the server now (sync brings them too, a little later)."""
        data = await self._connection.send(api.push_rules())
        self.rules = PushRuleSet.from_account_data(
            data if isinstance(data, dict) else None, self._user_id
        )
        rooms = self._rooms()
        self._publish(RoomListChanged(tuple(rooms.values()), frozenset(changed)))

    async def ignore(self, user_id: str) -> None:
        """Hide a user's messages and invites (``m.ignored_user_list``)."""
        await self._set_ignored(self.ignored | {user_id})

    async def unignore(self, user_id: str) -> None:
        """Show a user again."""
        await self._set_ignored(self.ignored - {user_id})

    async def _set_ignored(self, users: frozenset[str]) -> None:
        content: dict[str, Any] = {"ignored_users": {u: {} for u in sorted(users)}}
        await self._connection.send(api.set_account_data(self._user_id, IGNORED_USERS, content))
        self.ignored = users
        rooms = self._rooms()
        self._publish(RoomListChanged(tuple(rooms.values()), frozenset()))
        self.check_ignored()


def level_label(level: str) -> str:
    """How a level is said to the user."""
    return {LEVEL_ALL: "all messages", "mentions": "mentions and keywords", "mute": "muted"}.get(
        level, level
    )
