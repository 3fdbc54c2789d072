"""Simplified sliding sync (MSC4186) as a :class:`~tui_client.engine.sync.SyncSource`.

The first request asks for the most recent :data:`WINDOW` rooms (plus the first
invites, DMs and spaces wherever they sit), so the room list shows at once; each
following response grows the ``all`` list's range by :data:`GROW_STEP` without
long-polling until it covers every room, and the cache fills in the background. After
that the range keeps :data:`HEADROOM` rooms past the count, and requests long-poll.
The open rooms are room subscriptions with a longer timeline.

The loop's position is :func:`~tui_client.protocol.sliding_sync.encode_token` of
``pos`` and the ``to_device`` token, both committed with the batch under their own
meta keys. ``M_UNKNOWN_POS`` (the server forgot the connection) starts a new
connection at once: ``pos`` is dropped, the to-device token and the cache are kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Iterator

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol import sliding_sync as ss
from ..protocol.errors import MatrixError
from ..protocol.sync import MalformedResponse, SyncBatch

__all__ = ["GROW_STEP", "HEADROOM", "WINDOW", "SlidingSyncSource", "server_offers_sliding_sync"]

log = logging.getLogger(__name__)

#: Rooms in the first request (the visible window).
WINDOW = 20
#: How many more rooms each background request asks for while the list fills.
GROW_STEP = 100
#: Rooms past the known count covered once the list is complete (new rooms, joins).
HEADROOM = 50


async def server_offers_sliding_sync(connection: HomeserverConnection) -> bool:
    """Whether ``/versions`` lists simplified sliding sync in ``unstable_features``."""
    raw = await connection.send_raw(api.versions())
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    features = data.get("unstable_features") if isinstance(data, dict) else None
    return isinstance(features, dict) and features.get(ss.FEATURE) is True


class SlidingSyncSource:
    """See the module documentation."""

    mode = "sliding sync"

    def __init__(
        self,
        connection: HomeserverConnection,
        own_user_id: str,
        *,
        subscriptions: Callable[[], Iterable[str]] = lambda: (),
        known_rooms: Callable[[], int] = lambda: 0,
        window: int = WINDOW,
        grow_step: int = GROW_STEP,
    ) -> None:
        self._connection = connection
        self._own = own_user_id
        self._subscriptions = subscriptions
        self._known_rooms = known_rooms
        self._window = window
        self._grow_step = grow_step
        self._range_end: int | None = None  # set by the first request of a connection
        self._count: int | None = None  # the ``all`` list's size, from the last response
        self._sent_since: str | None = None
        self._sent_subscriptions: list[str] = []
        # Set when the open rooms change: a long-poll in flight is cut short and asked
        # again with them (as Element X does), so an opened room gets its longer timeline
        # at once instead of after the long-poll.
        self._resubscribe = asyncio.Event()
        #: New connections started after ``M_UNKNOWN_POS`` (for tests and the log).
        self.restarts = 0

    def resubscribe(self) -> None:
        """The open rooms changed: a long-poll in flight is asked again with them."""
        self._resubscribe.set()

    def load_token(self, get_meta: Callable[[str], str | None]) -> str | None:
        """The committed position (runs on the database thread)."""
        pos, since = get_meta(ss.POS_KEY), get_meta(ss.TO_DEVICE_KEY)
        return ss.encode_token(pos, since) if pos is not None or since is not None else None

    @property
    def filling(self) -> bool:
        """Whether the ``all`` list does not cover every room yet."""
        return self._count is None or self._range_end is None or self._range_end < self._count - 1

    def _next_range(self, pos: str | None) -> int:
        if self._range_end is None:
            # A fresh connection shows the window first; a resumed one covers the
            # rooms it already knows, whose updates would otherwise wait.
            known = self._known_rooms()
            return self._window - 1 if pos is None or not known else known + HEADROOM - 1
        if self._count is None:
            return self._range_end
        if self._range_end < self._count - 1:
            return min(self._range_end + self._grow_step, self._count - 1 + HEADROOM)
        return max(self._range_end, self._count - 1 + HEADROOM)

    async def fetch(self, since: str | None, timeout_ms: int) -> bytes:
        """One request; a forgotten connection is started again once, at once."""
        pos, to_device_since = ss.decode_token(since)
        try:
            return await self._request(pos, to_device_since, timeout_ms)
        except MatrixError as error:
            # A position the server cannot read (a 400 on a request that carried one) is
            # as good as forgotten: without a new connection every retry would fail the same way.
            forgotten = error.errcode == ss.UNKNOWN_POS or (pos is not None and error.status == 400)
            if not forgotten:
                raise
            log.info("sliding sync connection expired (%s); starting a new one", error)
            self.restarts += 1
            self._range_end = None
            self._count = None
            return await self._request(None, to_device_since, 0)

    async def _request(
        self, pos: str | None, to_device_since: str | None, timeout_ms: int
    ) -> bytes:
        growing = self._range_end is not None and self.filling
        range_end = self._next_range(pos)
        body = ss.sliding_sync_body(
            range_end=range_end,
            to_device_since=to_device_since,
            subscriptions=sorted(self._subscriptions()),
        )
        subscriptions = body["room_subscriptions"]
        self._resubscribe.clear()
        timeout = 0 if growing or pos is None else timeout_ms
        while True:
            request = ss.sliding_sync(pos=pos, timeout_ms=timeout, body=body)
            if not timeout:
                raw = await self._connection.send_raw(request)
                break
            sending = asyncio.ensure_future(self._connection.send_raw(request))
            woken = asyncio.ensure_future(self._resubscribe.wait())
            try:
                await asyncio.wait({sending, woken}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                sending.cancel()  # the loop stopped: the request goes with it
                raise
            finally:
                woken.cancel()
            if sending.done():
                raw = sending.result()
                break
            self._resubscribe.clear()
            body = ss.sliding_sync_body(
                range_end=range_end,
                to_device_since=to_device_since,
                subscriptions=sorted(self._subscriptions()),
            )
            if body["room_subscriptions"] == subscriptions:
                raw = await sending  # nothing new to ask for: the long-poll goes on
                break
            # The same position again (the server answers a repeated pos afresh).
            sending.cancel()
            try:
                await sending
            except (asyncio.CancelledError, Exception):
                pass
            subscriptions = body["room_subscriptions"]
            timeout = 0
        self._range_end = range_end
        self._sent_since = to_device_since
        return raw

    def parse_slices(self, raw: bytes) -> Iterator[SyncBatch] | None:
        """Never: the lists come in windows (20 rooms, then 100 a request)."""
        return None

    def parse(self, raw: bytes) -> SyncBatch:
        """Decode a response into the v2 batch shape (runs on the database thread)."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise MalformedResponse("sliding sync response is not JSON") from error
        response = ss.parse_sliding_sync(data, self._own, sent_to_device_since=self._sent_since)
        count = response.list_counts.get("all")
        if count is not None:
            self._count = count
        return response.batch
