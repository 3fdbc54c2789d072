"""Presence: other people's (``m.presence`` in sync) and ours, following the terminal's focus.

Other users' presence arrives in the ``presence`` block of ``/sync`` (the server sends
it for people we share a room with, when it has presence enabled). The sync batch is
decoded on the database thread, which hands the events to :meth:`PresenceService.receive`;
the engine applies them on its own loop with :meth:`PresenceService.flush`, which
publishes one :class:`~.updates.PresenceChanged` for the users whose presence changed.

Ours: while the setting is on (the default), the terminal's focus decides between
``online`` and ``unavailable``. A change is sent at once (``PUT /presence/{userId}/status``)
and every later ``/sync`` carries the same value as ``set_presence`` (a sync without it
would mark us online again). With the setting off, presence is left to the server's
default (online while syncing). Sending is best effort: a failure is logged.

Sliding sync (Synapse's) carries neither ``set_presence`` nor presence events:
while it runs, :meth:`PresenceService.keep_alive` says ours every few seconds and
reads the open rooms' members' with ``GET /presence/{userId}/status``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..store.cache import Cache
from .dbthread import DatabaseThread
from .updates import PresenceChanged, Update

__all__ = ["SETTING", "Presence", "PresenceService"]

log = logging.getLogger(__name__)

#: The cache's meta key of the on/off setting (share our presence from the terminal's focus).
SETTING = "share_presence"

_STATES = frozenset({"online", "unavailable", "offline"})
#: How often ours is said and others' read when the sync carries no presence.
KEEP_ALIVE_SECONDS = 10.0
#: At most this many users' presence read each time (the open rooms' first members).
WATCH_LIMIT = 30


@dataclass(frozen=True, slots=True)
class Presence:
    """One user's presence as the server last told it."""

    state: str
    currently_active: bool = False
    last_active_ago: int | None = None

    @property
    def label(self) -> str:
        """A word for the member list and the header."""
        return {"online": "online", "unavailable": "away", "offline": "offline"}.get(
            self.state, self.state
        )


def parse_presence(event: Any) -> tuple[str, Presence] | None:
    """``(user_id, presence)`` of one ``m.presence`` event, or ``None`` if unusable."""
    if not isinstance(event, dict) or event.get("type") != "m.presence":
        return None
    sender, content = event.get("sender"), event.get("content")
    if not isinstance(sender, str) or not isinstance(content, dict):
        return None
    state = content.get("presence")
    if state not in _STATES:
        return None
    ago = content.get("last_active_ago")
    return sender, Presence(
        state,
        currently_active=content.get("currently_active") is True,
        last_active_ago=ago if isinstance(ago, int) and not isinstance(ago, bool) else None,
    )


class PresenceService:
    """See the module documentation."""

    def __init__(
        self,
        connection: HomeserverConnection,
        cache: Cache,
        db: DatabaseThread,
        publish: Callable[[Update], None],
        *,
        user_id: str,
    ) -> None:
        self._connection = connection
        self._cache = cache
        self._db = db
        self._publish = publish
        self._user_id = user_id
        #: Everyone's presence we know of (ours included, as the server echoes it).
        self.known: dict[str, Presence] = {}
        #: Whether our presence follows the terminal's focus (the setting).
        self.enabled = True
        self.focused = True
        self._pending: list[tuple[str, Presence]] = []
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read the setting (on unless the user turned it off)."""
        self.enabled = await self._db.run(self._cache.get_meta, SETTING) != "0"

    # -- theirs -----------------------------------------------------------------------

    def of(self, user_id: str) -> Presence | None:
        """What we know of ``user_id``'s presence."""
        return self.known.get(user_id)

    def receive(self, events: Iterable[Any]) -> None:
        """A sync batch's ``m.presence`` events (called on the database thread)."""
        parsed = [p for p in map(parse_presence, events) if p is not None]
        if parsed:
            with self._lock:
                self._pending.extend(parsed)

    def flush(self) -> None:
        """Apply what :meth:`receive` collected and publish who changed (on the engine's loop)."""
        with self._lock:
            pending, self._pending = self._pending, []
        changed = {user for user, presence in pending if self.known.get(user) != presence}
        for user, presence in pending:
            self.known[user] = presence
        if changed:
            self._publish(PresenceChanged(frozenset(changed)))

    # -- ours -------------------------------------------------------------------------

    @property
    def sync_value(self) -> str | None:
        """``set_presence`` for the next ``/sync`` (``None``: the server's default)."""
        if not self.enabled:
            return None
        return "online" if self.focused else "unavailable"

    def set_focused(self, focused: bool) -> None:
        """The terminal gained or lost focus: say so to the server when the setting is on."""
        if focused == self.focused:
            return
        self.focused = focused
        value = self.sync_value
        if value is not None:
            self._send(value)

    async def set_enabled(self, value: bool) -> None:
        """Turn sharing our presence on or off (kept across restarts)."""
        self.enabled = value
        await self._db.run(self._cache.set_meta, SETTING, "1" if value else "0")
        # Off: back to what a syncing client is by default; on: what the focus says.
        self._send(self.sync_value or "online")

    def _send(self, state: str) -> None:
        """Queue a presence update after the ones before it (their order is the user's)."""
        request = api.set_presence(self._user_id, state)
        previous = self._last

        async def send() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            try:
                await self._connection.send(request, wait_on_rate_limit=False)
            except (MatrixError, NetworkError) as error:
                log.info("presence not sent: %s", error)

        try:
            task = asyncio.get_running_loop().create_task(send())
        except RuntimeError:
            return
        self._last = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- without presence in sync (sliding sync) ---------------------------------------

    async def keep_alive(
        self,
        active: Callable[[], bool],
        watched: Callable[[], Iterable[str]],
        *,
        every: float = KEEP_ALIVE_SECONDS,
    ) -> None:
        """While ``active()`` (a sync that carries no presence: Synapse's sliding sync has
        neither ``set_presence`` nor a presence extension), say ours every ``every``
        seconds (the server marks a device offline 30 s after its last sync or presence
        update) and read the presence of up to :data:`WATCH_LIMIT` ``watched()`` users
        (the open rooms' members), which such a sync does not bring. Runs until cancelled."""
        while True:
            if active():
                self._send(self.sync_value or "online")
                users = [u for u in dict.fromkeys(watched()) if u != self._user_id][:WATCH_LIMIT]
                for user_id in users:
                    try:
                        body = await self._connection.send(
                            api.get_presence(user_id), wait_on_rate_limit=False
                        )
                    except (MatrixError, NetworkError) as error:
                        log.debug("presence of %s not read: %s", user_id, error)
                        continue
                    self.receive([{"type": "m.presence", "sender": user_id, "content": body}])
                self.flush()
            await asyncio.sleep(every)

    def stop(self) -> None:
        """Cancel updates on their way (the client is closing)."""
        for task in list(self._tasks):
            task.cancel()
