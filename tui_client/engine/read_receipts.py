"""Read receipts and the fully-read marker, for what the user has seen.

The UI decides what was seen (the terminal had focus, the room was open, the event
was on screen) and calls :meth:`ReadReceipts.mark_read` with that event. Here the
receipt is sent as a threaded receipt (``POST /rooms/{roomId}/receipt``): ``thread_id``
``main`` in the main timeline (threads are read apart, ``receipts.md``), the root's ID
in a thread; in the main timeline the fully-read marker follows
(``POST /rooms/{roomId}/read_markers``, which cannot carry a ``thread_id``), after the
receipt. A room's marks are sent one at a time and finish even if the caller gives up,
so the server never sees them out of order; a receipt never moves back over one this
session already sent for a later event of the open timeline, and the same event is not
marked twice. With the private setting on, the receipt is ``m.read.private``: the server
counts it for our unread counts, nobody else sees it. :meth:`ReadReceipts.mark_all_read`
marks every joined room that has unread messages up to its newest cached event, threads
included (an unthreaded receipt).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.room_state import RoomSummary
from ..store.cache import Cache
from .dbthread import DatabaseThread
from .updates import RoomListChanged, Update

__all__ = ["MAIN_THREAD", "PRIVATE_SETTING", "UNTHREADED", "ReadReceipts"]

log = logging.getLogger(__name__)

#: The cache's meta key of the private-receipts setting.
PRIVATE_SETTING = "private_read_receipts"
#: The ``thread_id`` of the main timeline in a threaded receipt.
MAIN_THREAD = "main"
#: ``mark_read``'s ``thread_id`` for an unthreaded receipt (everything up to the event).
UNTHREADED = ""


class ReadReceipts:
    """See the module documentation."""

    def __init__(
        self,
        connection: HomeserverConnection,
        cache: Cache,
        db: DatabaseThread,
        publish: Callable[[Update], None],
        *,
        rooms: Callable[[], dict[str, RoomSummary]],
        shown_events: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self._connection = connection
        self._cache = cache
        self._db = db
        self._publish = publish
        self._rooms = rooms
        # The open timeline's server events, oldest first (to keep receipts moving forward).
        self._shown_events = shown_events or (lambda room_id: ())
        #: ``m.read.private`` instead of ``m.read`` (the setting).
        self.private = False
        self._sent: dict[tuple[str, str], str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self) -> None:
        """Read the setting (off unless the user turned it on)."""
        self.private = await self._db.run(self._cache.get_meta, PRIVATE_SETTING) == "1"

    async def set_private(self, value: bool) -> None:
        """Send private receipts from now on, or public ones (kept across restarts)."""
        self.private = value
        await self._db.run(self._cache.set_meta, PRIVATE_SETTING, "1" if value else "0")

    @property
    def receipt_type(self) -> str:
        """The receipt type sent now."""
        return "m.read.private" if self.private else "m.read"

    def last_sent(self, room_id: str, thread_id: str | None = None) -> str | None:
        """The event this session last marked read in the room (or thread)."""
        return self._sent.get((room_id, thread_id or ""))

    def _is_behind(self, room_id: str, event_id: str, previous: str) -> bool:
        order = list(self._shown_events(room_id))
        if event_id in order and previous in order:
            return order.index(event_id) <= order.index(previous)
        return event_id == previous

    async def mark_read(
        self, room_id: str, event_id: str, *, thread_id: str | None = None, newest: bool = False
    ) -> bool:
        """Mark ``event_id`` read (``thread_id``: a thread's root, else the main timeline, or
        :data:`UNTHREADED`) and, outside a thread, fully read; ``newest``: it is the room's
        newest event, so its unread counts go to zero at once. False if the room is not joined
        or the server could not be told."""
        summary = self._rooms().get(room_id)
        if summary is None or summary.membership != "join":
            return False
        # Shielded: a caller cancelled (a newer mark replaced it) does not cut a request
        # the server may already be answering; the next one waits for it.
        return await asyncio.shield(self._mark(room_id, event_id, thread_id, newest))

    async def _mark(self, room_id: str, event_id: str, thread_id: str | None, newest: bool) -> bool:
        in_thread = bool(thread_id)
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            key = (room_id, thread_id or "")
            previous = self._sent.get(key)
            if previous is not None and self._is_behind(room_id, event_id, previous):
                return True  # already marked, at this event or past it
            receipt = api.receipt(
                room_id,
                event_id,
                self.receipt_type,
                thread_id if thread_id is not None else MAIN_THREAD,
            )
            try:
                await self._connection.send(receipt, wait_on_rate_limit=False)
                if not in_thread:
                    marker = api.read_markers(room_id, event_id)
                    await self._connection.send(marker, wait_on_rate_limit=False)
            except (MatrixError, NetworkError) as error:
                log.info("read receipt or marker not sent: %s", error)
                return False
            self._sent[key] = event_id
        if newest and not in_thread:
            await self._clear_counts(room_id)
        return True

    async def _clear_counts(self, room_id: str) -> None:
        summary = self._rooms().get(room_id)
        if summary is None or not (summary.notification_count or summary.highlight_count):
            return
        updated = summary.copy()
        updated.notification_count = 0
        updated.highlight_count = 0
        rooms = self._rooms()
        rooms[room_id] = updated
        await self._db.run(self._cache.save_summary, updated)
        self._publish(RoomListChanged(tuple(rooms.values()), frozenset({room_id})))

    async def mark_all_read(self) -> tuple[int, int]:
        """Mark the newest event of every joined room with unread messages: how many rooms
        were marked, and how many could not be (the server refused or was unreachable)."""
        marked = failed = 0
        for summary in list(self._rooms().values()):
            if summary.membership != "join" or not (
                summary.notification_count or summary.highlight_count
            ):
                continue
            newest, _gap = await self._db.run(self._cache.load_before, summary.room_id, None, 1)
            event_id = newest[-1].event.get("event_id") if newest else None
            if not isinstance(event_id, str):
                continue
            if await self.mark_read(summary.room_id, event_id, thread_id=UNTHREADED, newest=True):
                marked += 1
            else:
                failed += 1
        return marked, failed
