"""A room with a long history, seeded in the background while other tests run.

Seeding 1,000 events takes Synapse about half a minute of CPU. When the long-room
test is part of the run, the seeding starts as soon as the first integration test
does, and goes on while the others mostly wait on timers and long polls.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from ..engine.support import create_room, seed_messages

LONG_ROOM_SIZE = 1000
LONG_ROOM_TESTS = ("test_backfill_of_a_long_room",)


@dataclass
class LongRoom:
    """A room with :data:`LONG_ROOM_SIZE` messages ``message 0000``..., being seeded."""

    author: RegisteredUser
    room_id: str
    texts: list[str]
    _thread: threading.Thread | None = None
    _error: BaseException | None = field(default=None, repr=False)

    def start(self, synapse: SynapseServer) -> None:
        def seed() -> None:
            try:
                asyncio.run(seed_messages(synapse, self.author, self.room_id, self.texts))
            except BaseException as error:
                self._error = error

        self._thread = threading.Thread(target=seed, name="seed-long-room", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 300) -> None:
        """Block until every message is on the server (re-raises a seeding failure)."""
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "seeding the long room did not finish"
        if self._error is not None:
            raise self._error


@pytest.fixture(scope="session")
def long_room(synapse: SynapseServer) -> Iterator[LongRoom]:
    """The long room; its messages are sent in a background thread."""
    localpart = f"historian-{secrets.token_hex(3)}"
    author = synapse.register_user(localpart, f"password-{localpart}", displayname="Historian")
    room_id = create_room(synapse, author, name="History")
    room = LongRoom(author, room_id, [f"message {n:04d}" for n in range(LONG_ROOM_SIZE)])
    room.start(synapse)
    yield room
    if room._thread is not None:
        room._thread.join(60)


@pytest.fixture(scope="session", autouse=True)
def _seed_long_room_early(request: pytest.FixtureRequest) -> None:
    if any(
        getattr(item, "originalname", item.name) in LONG_ROOM_TESTS
        for item in request.session.items
    ):
        request.getfixturevalue("long_room")
