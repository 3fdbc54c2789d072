"""URL previews: a link's title and description, asked of the homeserver.

The server fetches the page, so asking tells it which links we read: the spec's privacy
note says not to do so in encrypted rooms by default. Two settings (kept in the cache):
previews in plain rooms (on by default) and in encrypted rooms (off by default). Answers
are cached in memory (a failure too, so a dead link is asked once per run).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.room_state import RoomSummary
from ..protocol.url_preview import UrlPreview, parse_preview
from ..store.cache import Cache
from .dbthread import DatabaseThread
from .storage import StorageUnavailable

__all__ = ["ENCRYPTED_SETTING", "PLAIN_SETTING", "UrlPreviewService"]

#: Cache meta keys of the two settings ("on" / "off").
PLAIN_SETTING = "url_previews"
ENCRYPTED_SETTING = "url_previews_encrypted"
#: How many answers are kept.
CACHE_SIZE = 500

Ready = Callable[[str], None]


class UrlPreviewService:
    """Previews of links, for the rooms where the settings allow them.

    Built with what it uses: the connection, the cache and its thread (for the settings)
    and the room list (to tell encrypted rooms).
    """

    def __init__(
        self,
        connection: HomeserverConnection,
        cache: Cache,
        db: DatabaseThread,
        *,
        rooms: Callable[[], Mapping[str, RoomSummary]],
    ) -> None:
        self._connection = connection
        self._cache = cache
        self._db = db
        self._rooms = rooms
        self.plain = True
        self.encrypted = False
        self._answers: OrderedDict[str, UrlPreview | None] = OrderedDict()
        self._asking: dict[str, list[Ready]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load_settings(self) -> None:
        """Read the two settings from the cache (a damaged cache's unread: the defaults)."""
        try:
            plain = await self._db.run(self._cache.get_meta, PLAIN_SETTING)
            encrypted = await self._db.run(self._cache.get_meta, ENCRYPTED_SETTING)
        except StorageUnavailable:
            return
        self.plain = plain != "off"
        self.encrypted = encrypted == "on"

    async def set_plain(self, on: bool) -> None:
        """Previews in plain rooms on or off (kept in the cache)."""
        self.plain = on
        await self._db.run(self._cache.set_meta, PLAIN_SETTING, "on" if on else "off")

    async def set_encrypted(self, on: bool) -> None:
        """Previews in encrypted rooms on or off (kept in the cache)."""
        self.encrypted = on
        await self._db.run(self._cache.set_meta, ENCRYPTED_SETTING, "on" if on else "off")

    def allowed(self, room_id: str) -> bool:
        """Whether links of this room may be previewed (by the settings)."""
        summary = self._rooms().get(room_id)
        if summary is None:
            return False
        return self.encrypted if summary.encrypted else self.plain

    def peek(self, url: str) -> UrlPreview | bool | None:
        """The cached preview; ``None`` if the link has none; ``False`` if not asked yet."""
        if url not in self._answers:
            return False
        self._answers.move_to_end(url)
        return self._answers[url]

    def request(self, room_id: str, url: str, ready: Ready) -> bool:
        """Ask the server for ``url``'s preview (once); ``ready(url)`` when it is known.
        False (nothing asked) when the room's setting is off."""
        if not self.allowed(room_id):
            return False
        if url in self._answers:
            ready(url)
            return True
        waiting = self._asking.get(url)
        if waiting is not None:
            waiting.append(ready)
            return True
        self._asking[url] = [ready]
        task = asyncio.get_running_loop().create_task(self._fetch(url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _fetch(self, url: str) -> None:
        preview: UrlPreview | None = None
        try:
            preview = parse_preview(url, await self._ask(url))
        except (MatrixError, NetworkError):
            preview = None
        self._answers[url] = preview
        while len(self._answers) > CACHE_SIZE:
            self._answers.popitem(last=False)
        for ready in self._asking.pop(url, []):
            ready(url)

    async def _ask(self, url: str) -> Any:
        try:
            return await self._connection.send(api.preview_url(url))
        except MatrixError as error:
            # Servers without authenticated media (before Matrix 1.11) know only the old route.
            if error.errcode not in ("M_UNRECOGNIZED",) and error.status not in (404, 405):
                raise
        return await self._connection.send(api.preview_url(url, legacy=True))

    def stop(self) -> None:
        """Cancel the questions under way."""
        for task in self._tasks:
            task.cancel()
