"""Telling a room that we are typing (``m.typing``), as Element does, without flooding it.

The UI calls :meth:`TypingNotices.composing` whenever the composer changes: a non-empty
draft says "typing" (sent again only every :data:`RESEND_AFTER` seconds while the user
keeps typing; the server forgets it after :data:`TIMEOUT_MS`), an empty draft, a sent
message or a switch to another room says "stopped". Sending is best effort: a failure is
logged and forgotten (typing notices are not worth a retry). :meth:`set_enabled` turns
them off (a privacy setting, kept in the cache).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from .core import Core

__all__ = ["RESEND_AFTER", "SETTING", "TIMEOUT_MS", "TypingNotices"]

log = logging.getLogger(__name__)

#: How long the server shows us typing after one notice.
TIMEOUT_MS = 20_000
#: While the user keeps typing, the notice is renewed this often.
RESEND_AFTER = 15.0
#: The cache's meta key of the on/off setting.
SETTING = "send_typing_notices"


class TypingNotices:
    """See the module documentation."""

    def __init__(self, core: Core, *, clock: Any = time.monotonic) -> None:
        self.core = core
        self.enabled = True
        self._clock = clock
        self._room: str | None = None  # where we last said "typing"
        self._sent_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read the setting (on unless the user turned it off)."""
        self.enabled = await self.core.db.run(self.core.cache.get_meta, SETTING) != "0"

    async def set_enabled(self, value: bool) -> None:
        """Turn typing notices on or off (kept across restarts)."""
        if not value:
            self.stopped()
        self.enabled = value
        await self.core.db.run(self.core.cache.set_meta, SETTING, "1" if value else "0")

    def composing(self, room_id: str | None, draft: str) -> None:
        """The draft in ``room_id``'s composer is now ``draft``."""
        if not self.enabled:
            return
        text = draft.lstrip()
        is_command = text.startswith("/") and not text.startswith("//")
        typing_now = bool(text) and room_id is not None and not is_command
        if not typing_now:
            self.stopped()
            return
        assert room_id is not None
        now = self._clock()
        if self._room != room_id:
            self.stopped()
        elif now - self._sent_at < RESEND_AFTER:
            return
        self._room, self._sent_at = room_id, now
        self._send(room_id, True)

    def stopped(self) -> None:
        """The draft was sent, emptied, or left for another room."""
        room, self._room = self._room, None
        if room is not None:
            self._send(room, False)

    def _send(self, room_id: str, typing_now: bool) -> None:
        """Queue a notice after the ones before it (a "stopped" never overtakes its "typing")."""
        request = api.typing(room_id, self.core.user_id, typing_now, TIMEOUT_MS)
        previous = self._last

        async def send() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            try:
                await self.core.connection.send(request, wait_on_rate_limit=False)
            except (MatrixError, NetworkError) as error:
                log.info("typing notice not sent: %s", error)

        try:
            task = asyncio.get_running_loop().create_task(send())
        except RuntimeError:
            return
        self._last = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Cancel notices on their way (the client is closing)."""
        for task in list(self._tasks):
            task.cancel()
