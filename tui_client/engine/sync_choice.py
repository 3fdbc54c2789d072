"""Which sync runs: sliding sync where the server offers it and the user allows it,
``/sync`` v2 otherwise; the user's setting and the server's last answer kept in the cache.

:class:`SyncSourceChoice` is a base class of :class:`~.client.MatrixClient`; it declares what
it needs of the client below.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..net.http import HomeserverConnection
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.room_state import RoomSummary
from ..store.cache import Cache
from .dbthread import DatabaseThread
from .presence import PresenceService
from .room_view import RoomView
from .sync import SyncLoop, SyncSource, SyncV2Source

__all__ = ["SLIDING_OFFERED", "SYNC_MODE_SETTING", "SyncSourceChoice"]

log = logging.getLogger(__name__)

#: The cache's meta key of the sync setting: ``v2`` forces ``/sync`` v2.
SYNC_MODE_SETTING = "sync_mode"
#: The cache's meta key of the server's last answer on sliding sync (``1``/``0``).
SLIDING_OFFERED = "sliding_sync_offered"


class SyncSourceChoice:
    """The sync source and the user's sliding sync setting (see the module documentation)."""

    if TYPE_CHECKING:
        # Defined by MatrixClient and its services.
        connection: HomeserverConnection
        rooms: dict[str, RoomSummary]
        views: dict[str, RoomView]
        db: DatabaseThread
        cache: Cache
        sync_loop: SyncLoop | None
        sync_token: str | None
        closed: bool
        _source: SyncSource
        _source_factory: Any
        _sliding_allowed: bool
        _tasks: list[asyncio.Task[Any]]

        @property
        def user_id(self) -> str: ...

        @property
        def presence(self) -> PresenceService: ...

        def _new_sync_loop(self) -> SyncLoop: ...

    def _v2_source(self, connection: HomeserverConnection) -> SyncV2Source:
        source = SyncV2Source(connection)
        source.presence = lambda: self.presence.sync_value
        return source

    @property
    def sliding_sync_allowed(self) -> bool:
        """Whether the user lets sliding sync run where offered (``False``: always v2)."""
        return self._sliding_allowed

    async def _choose_sync_source(self, *, ask: bool = True) -> None:
        """Sliding sync where the server offers it (unless the user forced v2), v2 otherwise.

        Synapse's sliding sync sends no unread counts, no per-thread counts and no
        presence: the client counts from the push rules over its cache
        (:class:`~.notifications.NotificationService`, threads included) and reads presence
        apart (:meth:`~.presence.PresenceService.keep_alive`).

        ``ask=False`` (at open: no network before the cached room list is up, and an
        offline start keeps its source) takes the server's last answer when there is one;
        :meth:`_recheck_sliding_sync` asks again once sync runs."""
        from .sliding_sync import SlidingSyncSource, server_offers_sliding_sync

        self._sliding_allowed = await self.db.run(self.cache.get_meta, SYNC_MODE_SETTING) != "v2"
        offered = False
        if self._sliding_allowed:
            remembered = await self.db.run(self.cache.get_meta, SLIDING_OFFERED)
            if remembered is not None and not ask:
                offered = remembered == "1"
            elif not ask and await self.db.run(self.cache.get_meta, "next_batch") is not None:
                # A cache that synced with v2 before the server was ever asked: go on with v2
                # without waiting on the network (an offline start must not hang here);
                # _recheck_sliding_sync switches once sync runs.
                offered = False
            else:
                try:
                    offered = await server_offers_sliding_sync(self.connection)
                    await self.db.run(self.cache.set_meta, SLIDING_OFFERED, "1" if offered else "0")
                except (MatrixError, NetworkError) as error:
                    log.info("no /versions answer (%s): using /sync v2", error)
                    offered = remembered == "1"
        if offered:
            self._source = SlidingSyncSource(
                self.connection,
                self.user_id,
                subscriptions=lambda: self.views,
                known_rooms=lambda: len(self.rooms),
            )
        else:
            self._source = self._v2_source(self.connection)

    async def _recheck_sliding_sync(self) -> None:
        """Ask ``/versions`` again once sync runs; switch if the server's offer changed."""
        from .sliding_sync import SlidingSyncSource, server_offers_sliding_sync

        if not self._sliding_allowed or self._source_factory is not None:
            return
        try:
            offered = await server_offers_sliding_sync(self.connection)
        except (MatrixError, NetworkError) as error:
            log.info("no /versions answer (%s): the sync source stays %s", error, self.sync_mode)
            return
        await self.db.run(self.cache.set_meta, SLIDING_OFFERED, "1" if offered else "0")
        if offered != isinstance(self._source, SlidingSyncSource):
            await self.set_sliding_sync(True)

    async def set_sliding_sync(self, allowed: bool) -> None:
        """Allow sliding sync (where offered) or force ``/sync`` v2; kept in the cache. A
        running sync loop switches at once; the cache is kept either way."""
        await self.db.run(self.cache.set_meta, SYNC_MODE_SETTING, "auto" if allowed else "v2")
        running = self.sync_loop is not None and bool(self._tasks)
        if running and self.sync_loop is not None:
            self.sync_loop.stop()
            self._tasks[0].cancel()
            # Its end, however it ended; a cancellation of this switch (a close) goes on up.
            await asyncio.wait([self._tasks[0]])
        await self._choose_sync_source()
        self.sync_token = await self.db.run(self._source.load_token, self.cache.get_meta)
        if running and not self.closed and self._tasks:
            self.sync_loop = self._new_sync_loop()
            self._tasks[0] = asyncio.ensure_future(self.sync_loop.run())

    @property
    def sync_mode(self) -> str:
        """Which sync runs: ``sync v2`` or ``sliding sync``."""
        return self._source.mode
