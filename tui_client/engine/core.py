"""The narrow door every engine service is built with, instead of the whole client.

A service takes a :class:`Core` (the connection, the cache and its thread, the publish
function, who we are, the room list) and, as typed constructor arguments, the few other
services or callables it really uses. None of them imports :mod:`.client`, so the engine
has no import circle and a service can be built alone in a test (tests/engine/test_service_alone.py).

:class:`Lazy` holds a service created on first use and says whether it exists yet
(a client stops only the services it made).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..net.http import HomeserverConnection
from ..protocol.room_state import RoomSummary
from ..store.cache import Cache
from .dbthread import DatabaseThread
from .updates import Update

__all__ = ["Core", "Lazy", "Listener", "Notify", "Publish", "Subscribe"]

T = TypeVar("T")

#: Sends an update to the UI (and to the services that listen).
Publish = Callable[[Update], None]
#: Receives every update.
Listener = Callable[[Update], None]
#: Adds a listener; returns the function that removes it.
Subscribe = Callable[[Listener], Callable[[], None]]
#: A short message to the user: ``(level, text)``.
Notify = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Core:
    """What nearly every service uses, and nothing of the other services."""

    connection: HomeserverConnection
    cache: Cache
    db: DatabaseThread
    publish: Publish
    subscribe: Subscribe
    notify: Notify
    user_id: str
    device_id: str
    #: The engine's current room list (the dict is replaced when the cache is opened).
    room_list: Callable[[], dict[str, RoomSummary]]

    @property
    def rooms(self) -> dict[str, RoomSummary]:
        """The room list as it is now."""
        return self.room_list()


class Lazy(Generic[T]):
    """A value made on first use; :attr:`made` is ``None`` until then."""

    __slots__ = ("_make", "made")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self.made: T | None = None

    def get(self) -> T:
        """The value, made now if it was not yet."""
        if self.made is None:
            self.made = self._make()
        return self.made
