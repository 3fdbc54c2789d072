"""Threads (``m.thread``): an open thread's timeline, a room's thread list, unread counts.

A :class:`ThreadView` is a second timeline beside a room's: the root and its
``m.thread`` replies, back-filled from ``/relations/{root}/m.thread`` (newest page
first), kept live from the same sync batches as the room's view, with local echoes of
what we send into it. :class:`ThreadService` opens thread views, pages a room's thread
list (``/threads``, with the summaries the server bundles under
``unsigned.m.relations.m.thread``) and keeps the unread counts per thread that sync
reports (``unread_thread_notifications``, kept in the cache across restarts).

Encrypted rooms work the same way: relations are in the clear, and the events fetched
here are decrypted (and stored) through the ``decrypt`` door.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.events import RoomEvent, parse_event, relation_of
from ..protocol.render import describe
from ..protocol.timeline import Diff, SendState, TimelineModel
from ..store.cache import Cache, IngestResult, OutboxEntry, StoredEvent
from .dbthread import DatabaseThread
from .decryption_forms import Decrypt, Ready, at_once, fetched_forms
from .formatting import Pill, edit_content, message_content, pills_in
from .send_queue import new_transaction_id
from .updates import ThreadUnreadChanged, ThreadUpdated, Update

__all__ = [
    "ThreadPage",
    "ThreadService",
    "ThreadSummary",
    "ThreadView",
    "is_thread_reply",
    "thread_relation",
]

log = logging.getLogger(__name__)

Event = dict[str, Any]
Enqueue = Callable[[str, str, dict[str, Any]], Awaitable[OutboxEntry]]
MarkRead = Callable[[str, str, str], Awaitable[None]]

SERVER_PAGE = 50
LIST_PAGE = 20
_SEND_STATES = {"pending": SendState.PENDING, "sent": SendState.SENT, "failed": SendState.FAILED}


def thread_relation(
    root_id: str, latest_id: str | None, reply_to: str | None = None
) -> dict[str, Any]:
    """``m.relates_to`` of a message in a thread (``threading.md``): a plain message in
    the thread falls back to a reply to the thread's latest event; a reply to one
    message of the thread says so (``is_falling_back: false``)."""
    if reply_to:
        return {
            "rel_type": "m.thread",
            "event_id": root_id,
            "is_falling_back": False,
            "m.in_reply_to": {"event_id": reply_to},
        }
    return {
        "rel_type": "m.thread",
        "event_id": root_id,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": latest_id or root_id},
    }


def is_thread_reply(content: object, root_id: str | None = None) -> bool:
    """True if ``content`` is a message in a thread (the thread of ``root_id`` if given)."""
    relation = relation_of(content)
    return (
        relation is not None
        and relation.rel_type == "m.thread"
        and (root_id is None or relation.event_id == root_id)
    )


class ThreadView:
    """One open thread: the root and its replies as timeline items (see the module)."""

    def __init__(
        self,
        connection: HomeserverConnection,
        db: DatabaseThread,
        cache: Cache,
        publish: Callable[[Update], None],
        *,
        user_id: str,
        room_id: str,
        root_id: str,
        decrypt: Decrypt,
        enqueue: Enqueue,
        ready: Ready = at_once,
        name_of: Callable[[str], str] | None = None,
        may_redact_others: Callable[[str], bool] | None = None,
        may_mention_room: Callable[[], bool] = lambda: False,
        hidden_sender: Callable[[str], bool] | None = None,
    ) -> None:
        self._connection = connection
        self._db = db
        self._cache = cache
        self._publish_update = publish
        self._decrypt = decrypt
        self._ready = ready
        self._enqueue = enqueue
        self._may_mention_room = may_mention_room
        self.user_id = user_id
        self.room_id = room_id
        self.root_id = root_id
        self.model = TimelineModel(
            user_id, name_of, may_redact_others, thread_root=root_id, hidden_sender=hidden_sender
        )
        self.version = 0
        #: The ``/relations`` token of the next older page; ``None`` before the first page.
        self.next_batch: str | None = None
        self.reached_start = False
        self.root_missing = False
        self._events: dict[str, RoomEvent] = {}  # the root and the replies
        self._relations: dict[str, RoomEvent] = {}  # edits and reactions (by their own ID)
        self._lock = asyncio.Lock()

    # -- publishing ---------------------------------------------------------------------

    def _publish(self, diffs: list[Diff]) -> None:
        if diffs:
            self.version += 1
            self._publish_update(
                ThreadUpdated(self.room_id, self.root_id, tuple(diffs), self.version)
            )

    def _belongs(self, event: RoomEvent) -> str | None:
        if event.event_id == self.root_id:
            return "item"
        relation = event.relation
        if relation is None:
            return None
        if relation.rel_type == "m.thread" and relation.event_id == self.root_id:
            return "item"
        if relation.rel_type in ("m.replace", "m.annotation"):
            return "relation"
        return None

    def _keep(self, events: Iterable[RoomEvent]) -> None:
        for event in events:
            kind = self._belongs(event)
            if kind == "item":
                self._events[event.event_id] = event
            elif kind == "relation":
                self._relations[event.event_id] = event

    def _reset(self) -> None:
        ordered = sorted(
            self._events.values(),
            key=lambda e: (e.event_id != self.root_id, e.origin_server_ts, e.event_id),
        )
        self._publish(self.model.reset(ordered, self._relations.values()))

    def refilter(self) -> None:
        """The ignore list changed: show the thread again from what it holds."""
        self._reset()

    # -- loading ------------------------------------------------------------------------

    def _parse(self, raw: Iterable[Event]) -> list[RoomEvent]:
        return [e for e in (parse_event(x, self.room_id) for x in raw) if isinstance(e, RoomEvent)]

    def _read_cached(self) -> tuple[list[Event], list[OutboxEntry]]:
        """The root, its cached relations and theirs, and the outbox (database thread)."""
        found = list(self._cache.load_events([self.root_id]).values())
        related = self._cache.load_relations([self.root_id])
        children = [
            e["event_id"] for e in related if is_thread_reply(e.get("content"), self.root_id)
        ]
        related += self._cache.load_relations(children) if children else []
        events = found + related
        forms = self._decrypt(self.room_id, events)
        shown = [forms.get(e.get("event_id", ""), e) for e in events]
        return shown, self._cache.outbox(self.room_id)

    async def load(self) -> None:
        """Show what the cache has, then the newest page from the server."""
        async with self._lock:
            raw, outbox = await self._db.run(self._read_cached)
            self._keep(self._parse(raw))
            self._reset()
            diffs: list[Diff] = []
            for entry in outbox:
                if is_thread_reply(entry.content, self.root_id):
                    diffs.extend(
                        self.model.add_local_echo(
                            entry.txn_id,
                            entry.event_type,
                            entry.content,
                            entry.created_ts,
                            _SEND_STATES[entry.state],
                            entry.event_id,
                            entry.error,
                        )
                    )
            self._publish(diffs)
        await self.paginate_back()

    async def paginate_back(self) -> int:
        """Fetch the next older page of replies from the server; how many came (0 at the start)."""
        if self.reached_start:
            return 0
        async with self._lock:
            try:
                data = await self._connection.send(
                    api.relations(
                        self.room_id,
                        self.root_id,
                        "m.thread",
                        from_token=self.next_batch,
                        limit=SERVER_PAGE,
                    )
                )
            except (MatrixError, NetworkError) as error:
                log.info("thread page not loaded: %s", error)
                self._publish_update_notice(error)
                return 0
            chunk = data.get("chunk") if isinstance(data, dict) else None
            raw = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
            token = data.get("next_batch") if isinstance(data, dict) else None
            if self.root_id not in self._events:
                try:
                    root = await self._connection.send(api.get_event(self.room_id, self.root_id))
                    if isinstance(root, dict):
                        raw.append(root)
                except (MatrixError, NetworkError) as error:
                    log.info("thread root not loaded: %s", error)
                    self.root_missing = True
            forms = await fetched_forms(self._db, self._decrypt, self._ready, self.room_id, raw)
            self._keep(self._parse(forms.get(e.get("event_id", ""), e) for e in raw))
            self.next_batch = token if isinstance(token, str) else None
            self.reached_start = self.next_batch is None
            self._reset()
            return len(raw)

    def _publish_update_notice(self, error: Exception) -> None:
        from .updates import Notice

        self._publish_update(Notice("warning", f"Could not load the thread: {error}"))

    # -- live -------------------------------------------------------------------------

    def on_sync_events(self, stored: Sequence[StoredEvent]) -> None:
        """New events of the room (shown forms), as committed by sync."""
        diffs: list[Diff] = []
        for event in self._parse(s.event for s in stored):
            if event.type == "m.room.redaction":
                diffs.extend(self.model.apply_redaction(event))
                continue
            kind = self._belongs(event)
            if kind is None:
                continue
            self._keep([event])
            diffs.extend(self.model.append([event]))
        self._publish(diffs)

    def on_decrypted(self, events: dict[str, Event]) -> None:
        """Events of the room were decrypted after they were shown."""
        diffs: list[Diff] = []
        for event in self._parse(events.values()):
            if event.event_id in self._events or event.event_id in self._relations:
                self._keep([event])
            diffs.extend(self.model.replace_event(event))
        self._publish(diffs)

    def on_send_state(
        self, txn_id: str, state: str, event_id: str | None, error: str | None
    ) -> None:
        """The send queue reports progress on one of our messages."""
        self._publish(
            self.model.update_local_echo(
                txn_id, _SEND_STATES[state], event_id=event_id, error=error
            )
        )

    def latest_event_id(self) -> str:
        """The thread's newest event from the server (the root while it has no reply)."""
        return self.model.last_event_id() or self.root_id

    # -- acting in the thread ------------------------------------------------------------

    async def _send(self, event_type: str, content: dict[str, Any], *, echo: bool) -> OutboxEntry:
        entry = await self._enqueue(self.room_id, event_type, content)
        if echo:
            self._publish(
                self.model.add_local_echo(
                    entry.txn_id,
                    entry.event_type,
                    entry.content,
                    entry.created_ts,
                    _SEND_STATES[entry.state],
                )
            )
        return entry

    async def send_text(
        self,
        text: str,
        *,
        msgtype: str = "m.text",
        reply_to: str | None = None,
        pills: Sequence[Pill] = (),
        markdown: bool = True,
    ) -> OutboxEntry:
        """Send a message into the thread (a reply to ``reply_to`` in it, if given)."""
        content = message_content(
            text,
            msgtype=msgtype,
            pills=pills_in(text, pills),
            own_user_id=self.user_id,
            may_mention_room=self._may_mention_room(),
            markdown=markdown,
        )
        content["m.relates_to"] = thread_relation(self.root_id, self.latest_event_id(), reply_to)
        return await self._send("m.room.message", content, echo=True)

    async def send_edit(
        self, event_id: str, new_body: str, *, pills: Sequence[Pill] = ()
    ) -> OutboxEntry:
        """Replace the text of one of our messages in the thread (``m.replace``)."""
        original = self.model.content_of(event_id)
        msgtype = original.get("msgtype") if original else None
        new_content = message_content(
            new_body,
            msgtype=msgtype if msgtype in ("m.text", "m.emote", "m.notice") else "m.text",
            pills=pills_in(new_body, pills),
            own_user_id=self.user_id,
            may_mention_room=self._may_mention_room(),
        )
        return await self._send(
            "m.room.message", edit_content(event_id, new_content, original), echo=False
        )

    async def toggle_reaction(self, event_id: str, key: str) -> bool:
        """React with ``key``, or take our reaction back; True if a reaction was sent."""
        ours = self.model.reaction_event_id(event_id, self.user_id, key)
        if ours is None:
            content = {
                "m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}
            }
            await self._send("m.reaction", content, echo=False)
            return True
        await self._connection.send(api.redact(self.room_id, ours, new_transaction_id()))
        return False


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One thread of a room's thread list: its root, its latest reply, how many replies."""

    root_id: str
    root_sender: str
    root_body: str
    root_ts: int
    count: int
    participated: bool
    latest_id: str | None = None
    latest_sender: str | None = None
    latest_body: str | None = None
    latest_ts: int = 0


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """A page of a room's thread list; ``next_batch`` is ``None`` on the last page."""

    room_id: str
    include: str
    threads: tuple[ThreadSummary, ...]
    next_batch: str | None


def _bundled_thread(event: Event) -> dict[str, Any]:
    unsigned = event.get("unsigned")
    relations = unsigned.get("m.relations") if isinstance(unsigned, dict) else None
    thread = relations.get("m.thread") if isinstance(relations, dict) else None
    return thread if isinstance(thread, dict) else {}


class ThreadService:
    """Open threads, thread lists and unread counts per thread (see the module)."""

    def __init__(
        self,
        connection: HomeserverConnection,
        db: DatabaseThread,
        cache: Cache,
        publish: Callable[[Update], None],
        *,
        user_id: str,
        decrypt: Decrypt,
        enqueue: Enqueue,
        mark_read: MarkRead,
        hidden_sender: Callable[[str], bool] | None = None,
        ready: Ready = at_once,
    ) -> None:
        self._connection = connection
        self._db = db
        self._cache = cache
        self._publish = publish
        self._decrypt = decrypt
        self._ready = ready
        self._enqueue = enqueue
        self._mark_read = mark_read
        self._hidden_sender = hidden_sender
        self.user_id = user_id
        self.views: dict[tuple[str, str], ThreadView] = {}
        #: room -> thread root -> (notifications, highlights), as sync last said.
        self.unread: dict[str, dict[str, tuple[int, int]]] = {}

    # -- open threads ---------------------------------------------------------------------

    async def open(
        self,
        room_id: str,
        root_id: str,
        *,
        name_of: Callable[[str], str] | None = None,
        may_redact_others: Callable[[str], bool] | None = None,
        may_mention_room: Callable[[], bool] = lambda: False,
    ) -> ThreadView:
        """Open a thread (cache first, then the newest page from the server); reuses an open one."""
        view = self.views.get((room_id, root_id))
        if view is None:
            view = ThreadView(
                self._connection,
                self._db,
                self._cache,
                self._publish,
                user_id=self.user_id,
                room_id=room_id,
                root_id=root_id,
                decrypt=self._decrypt,
                enqueue=self._enqueue,
                ready=self._ready,
                name_of=name_of,
                may_redact_others=may_redact_others,
                may_mention_room=may_mention_room,
                hidden_sender=self._hidden_sender,
            )
            self.views[(room_id, root_id)] = view
            await view.load()
        return view

    def close(self, room_id: str, root_id: str) -> None:
        """Forget an open thread."""
        self.views.pop((room_id, root_id), None)

    def _hides(self, sender: str) -> bool:
        """True for an ignored sender (never ourselves)."""
        hidden = self._hidden_sender
        return hidden is not None and sender != self.user_id and hidden(sender)

    def refilter(self) -> None:
        """The ignore list changed: every open thread is shown again."""
        for view in list(self.views.values()):
            view.refilter()

    def _views_of(self, room_id: str) -> list[ThreadView]:
        return [view for (room, _root), view in self.views.items() if room == room_id]

    # -- fed by the client -----------------------------------------------------------------

    def on_commit(self, result: IngestResult[Any]) -> None:
        """A sync batch was committed (events in their shown form)."""
        for room_id, stored in result.new_events.items():
            for view in self._views_of(room_id):
                view.on_sync_events(stored)
        for room_id, counts in result.thread_counts.items():
            if self.unread.get(room_id, {}) != counts:
                self._set_unread(room_id, dict(counts))

    def on_send_state(
        self, entry: OutboxEntry, state: str, event_id: str | None, error: str | None
    ) -> None:
        """Progress of one of our messages (its echo may be in a thread)."""
        for view in self._views_of(entry.room_id):
            view.on_send_state(entry.txn_id, state, event_id, error)

    def on_decrypted(self, redecrypted: dict[str, dict[str, Event]]) -> None:
        """Events decrypted late (their key arrived)."""
        for room_id, events in redecrypted.items():
            for view in self._views_of(room_id):
                view.on_decrypted(events)

    # -- unread counts -------------------------------------------------------------------

    async def load(self) -> None:
        """The counts per thread the cache kept from the last sync (before the first one)."""
        self.unread = await self._db.run(self._cache.thread_unread)

    def _set_unread(self, room_id: str, counts: dict[str, tuple[int, int]]) -> None:
        self.unread[room_id] = counts
        self._publish(
            ThreadUnreadChanged(
                room_id, tuple((root, n, h) for root, (n, h) in sorted(counts.items()))
            )
        )

    def counted(self, room_id: str, counts: dict[str, tuple[int, int]]) -> None:
        """The counts per thread of a room counted here again (outside a sync batch)."""
        if self.unread.get(room_id, {}) != counts:
            self._set_unread(room_id, dict(counts))

    def unread_in(self, room_id: str) -> dict[str, tuple[int, int]]:
        """Thread root -> (notifications, highlights) of the room's threads with unread replies."""
        return dict(self.unread.get(room_id, {}))

    async def mark_read(self, room_id: str, root_id: str, event_id: str | None = None) -> None:
        """Send a threaded read receipt for ``event_id`` (the thread's newest by default); the
        thread's unread count goes to zero at once (sync confirms it)."""
        view = self.views.get((room_id, root_id))
        target = event_id or (view.latest_event_id() if view is not None else root_id)
        await self._mark_read(room_id, target, root_id)
        counts = self.unread.get(room_id, {})
        if root_id in counts and (
            event_id is None or (view is not None and target == view.latest_event_id())
        ):
            self._set_unread(room_id, {k: v for k, v in counts.items() if k != root_id})
            await self._db.run(self._cache.clear_thread_unread, room_id, root_id)

    # -- the thread list ----------------------------------------------------------------

    def _roots_we_answered(self, root_ids: list[str]) -> set[str]:
        """(database thread) The roots among ``root_ids`` of threads we wrote in (cached)."""
        found: set[str] = set()
        for event in self._cache.load_relations(root_ids):
            relation = relation_of(event.get("content"))
            if (
                event.get("sender") == self.user_id
                and relation is not None
                and relation.rel_type == "m.thread"
                and relation.event_id
            ):
                found.add(relation.event_id)
        return found

    async def list_threads(
        self,
        room_id: str,
        *,
        include: str = "all",
        from_token: str | None = None,
        limit: int = LIST_PAGE,
        name_of: Callable[[str], str] | None = None,
    ) -> ThreadPage:
        """A page of the room's threads, latest activity first (``include``: ``all`` or
        ``participated``). Raises :class:`MatrixError` / :class:`NetworkError`."""
        data = await self._connection.send(
            api.threads(room_id, include=include, from_token=from_token, limit=limit)
        )
        chunk = data.get("chunk") if isinstance(data, dict) else None
        roots = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        latest = [
            t["latest_event"]
            for t in map(_bundled_thread, roots)
            if isinstance(t.get("latest_event"), dict)
        ]
        raw = roots + latest
        forms = await fetched_forms(self._db, self._decrypt, self._ready, room_id, raw)
        ours = await self._db.run(self._roots_we_answered, [r.get("event_id", "") for r in roots])
        summaries: list[ThreadSummary] = []
        for root_raw in roots:
            root = parse_event(forms.get(root_raw.get("event_id", ""), root_raw), room_id)
            if not isinstance(root, RoomEvent) or self._hides(root.sender):
                continue
            thread = _bundled_thread(root_raw)
            count = thread.get("count")
            latest_raw = thread.get("latest_event")
            latest_event = (
                parse_event(forms.get(latest_raw.get("event_id", ""), latest_raw), room_id)
                if isinstance(latest_raw, dict)
                else None
            )
            summary = ThreadSummary(
                root_id=root.event_id,
                root_sender=root.sender,
                root_body=describe(root, name_of).body,
                root_ts=root.origin_server_ts,
                count=count
                if isinstance(count, int) and not isinstance(count, bool) and count > 0
                else 0,
                # The server's flag can lag behind our own reply (Synapse caches it).
                participated=thread.get("current_user_participated") is True
                or root.sender == self.user_id
                or root.event_id in ours,
            )
            if isinstance(latest_event, RoomEvent) and not self._hides(latest_event.sender):
                summary = replace(
                    summary,
                    latest_id=latest_event.event_id,
                    latest_sender=latest_event.sender,
                    latest_body=describe(latest_event, name_of).body,
                    latest_ts=latest_event.origin_server_ts,
                )
            summaries.append(summary)
        token = data.get("next_batch") if isinstance(data, dict) else None
        return ThreadPage(
            room_id, include, tuple(summaries), token if isinstance(token, str) else None
        )
