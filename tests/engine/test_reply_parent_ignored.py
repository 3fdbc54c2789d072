"""A reply whose parent is not cached: the parent fetched from the server (/event) is
quoted as hidden when its sender is ignored, and nothing of its text is shown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
import pytest

from tests.ui.fake_world import Clock, FakeHomeserver, build_sync, make_profile, use_memory_keyring
from tui_client.engine.client import MatrixClient
from tui_client.protocol.timeline import HIDDEN_QUOTE

ROOM = "!replies0000000000000000000000000000000000014"
ME = "@alice:example.org"
EVE = "@eve:example.org"
PARENT = "$parent-from-eve"


class ParentServer(FakeHomeserver):
    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if "/event/" in request.url.path:
            self.fetched.append(request.url.path)
            parent = {
                "event_id": PARENT,
                "room_id": ROOM,
                "type": "m.room.message",
                "sender": EVE,
                "origin_server_ts": 1795780000000,
                "content": {"msgtype": "m.text", "body": "eve's unwanted words"},
            }
            return httpx.Response(200, content=json.dumps(parent))
        return await super().handle(request)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    previous = keyring.get_keyring()
    use_memory_keyring()
    clock = Clock()
    state = [
        clock.event(ROOM, ME, "m.room.create", {"room_version": "12"}, state_key=""),
        clock.event(ROOM, ME, "m.room.member", {"membership": "join"}, state_key=ME),
    ]
    reply = clock.event(
        ROOM,
        "@bob:example.org",
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "I disagree",
            "m.relates_to": {"m.in_reply_to": {"event_id": PARENT}},
        },
    )
    sync = build_sync(
        {ROOM: {"state": {"events": state}, "timeline": {"events": [reply], "limited": False}}}
    )
    sync["account_data"]["events"].append(
        {"type": "m.ignored_user_list", "content": {"ignored_users": {EVE: {}}}}
    )
    make_profile(tmp_path, sync)
    yield tmp_path
    keyring.set_keyring(previous)


async def test_a_fetched_reply_parent_of_an_ignored_user_is_quoted_as_hidden(folder: Path) -> None:
    server = ParentServer()
    client = MatrixClient.restore(base_dir=folder, transport=server.transport())
    assert client is not None
    await client.open()
    try:
        assert client.notifications.is_ignored(EVE)
        view = client.new_view(ROOM)
        client.views[ROOM] = view
        await view.load()
        for _ in range(50):
            if server.fetched and not view._background:
                break
            await asyncio.sleep(0.02)
        assert server.fetched  # the parent was not cached: it came from the server
        reply = next(i for i in view.model.items if i.body == "I disagree")
        assert reply.reply is not None
        assert reply.reply.body == HIDDEN_QUOTE
        shown: list[Any] = [(i.body, i.reply) for i in view.model.items]
        assert "eve's unwanted words" not in repr(shown)
    finally:
        await client.close()
