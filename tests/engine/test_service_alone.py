"""Engine services built alone, from a :class:`~tui_client.engine.core.Core` and what
else they take, with no :class:`~tui_client.engine.client.MatrixClient` (issue 17).

The core here is real where it matters: a cache on disk and its database thread, and an
HTTP connection whose transport answers like a homeserver and records what it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tui_client.engine.core import Core, Lazy
from tui_client.engine.dbthread import DatabaseThread
from tui_client.engine.room_admin import RoomAdmin
from tui_client.engine.typing_notices import SETTING, TypingNotices
from tui_client.engine.updates import Update
from tui_client.net.http import HomeserverConnection
from tui_client.protocol.room_state import PowerLevels, RoomSummary
from tui_client.store.cache import Cache

from ..store.cache_batches import batch, create_event, joined_room, state
from ..support.waiting import until

ME = "@me:example.org"
ROOM = "!room:example.org"


class _Homeserver:
    """Answers every request with ``{}`` (or ``room_id`` for /createRoom) and records it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if request.url.path.endswith("/createRoom"):
            return httpx.Response(200, json={"room_id": "!new:example.org"})
        return httpx.Response(200, json={})


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Core, _Homeserver, list[Update]]]:
    server = _Homeserver()
    connection = HomeserverConnection(
        "https://example.org", "token", transport=httpx.MockTransport(server.handle)
    )
    db = DatabaseThread()
    cache = db.call(Cache, tmp_path / "cache.sqlite3", own_user_id=ME)
    published: list[Update] = []
    rooms = {ROOM: RoomSummary(ROOM, membership="join")}
    core = Core(
        connection,
        cache,
        db,
        published.append,
        lambda listener: lambda: None,
        lambda level, text: None,
        ME,
        "DEVICE",
        lambda: rooms,
    )
    try:
        yield core, server, published
    finally:
        db.call(cache.close)
        db.shutdown()


async def test_typing_notices_built_alone_send_and_keep_their_setting(
    parts: tuple[Core, _Homeserver, list[Update]],
) -> None:
    core, server, _ = parts
    typing = TypingNotices(core)
    typing.composing(ROOM, "hello")
    await until(lambda: len(server.requests) == 1, "the typing notice")
    method, path, body = server.requests[0]
    assert (method, body) == ("PUT", {"typing": True, "timeout": 20000})
    assert path.endswith(f"/rooms/{ROOM}/typing/{ME}")
    typing.composing(ROOM, "")
    await until(lambda: len(server.requests) == 2, "the stop notice")
    assert server.requests[1][2] == {"typing": False}
    # The setting goes to the cache it was given, and a new service reads it back.
    await typing.set_enabled(False)
    assert await core.db.run(core.cache.get_meta, SETTING) == "0"
    again = TypingNotices(core)
    await again.load()
    assert again.enabled is False
    typing.stop()


class _Actions:
    """The client's side of room administration, as RoomAdmin asks for it."""

    def __init__(self) -> None:
        self.left: list[str] = []

    async def create_room(self, body: dict[str, Any]) -> str:
        raise AssertionError("no room is created here")

    async def leave(self, room_id: str, reason: str | None = None) -> None:
        self.left.append(room_id)

    async def forget(self, room_id: str) -> None:
        raise AssertionError("nothing is forgotten here")

    def open_power_levels(self, room_id: str) -> PowerLevels | None:
        return None


async def test_room_admin_built_alone_reads_power_from_its_cache(
    parts: tuple[Core, _Homeserver, list[Update]],
) -> None:
    core, server, _ = parts
    admin = RoomAdmin(core, _Actions())
    # No power levels cached: the spec's defaults (a member may not kick).
    assert (await admin.permissions(ROOM)).kick is False
    # The room's power levels, synced into the cache the core holds, give us power.
    levels = state("$power", "m.room.power_levels", "", {"users": {ME: 100}})
    synced = batch("s1", join={ROOM: joined_room([create_event("$create", "11"), levels])})
    await core.db.run(core.cache.ingest_sync, synced, core.rooms)
    assert (await admin.permissions(ROOM)).kick is True
    assert server.requests == []  # read from the cache, nothing asked of the server


def test_lazy_makes_once_and_says_whether_it_did() -> None:
    made: list[int] = []
    lazy = Lazy(lambda: made.append(1) or len(made))
    assert lazy.made is None
    assert lazy.get() == 1
    assert lazy.get() == 1
    assert made == [1] and lazy.made == 1
