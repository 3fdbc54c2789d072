"""Who types in a room is published when it changes, not for every room a batch names.

A ``/sync`` v2 response says ``m.typing`` for rooms (Synapse's first sync: every joined
room, most with nobody typing), as sliding sync's typing extension does for the rooms in
its window: an empty list is "nobody types", no news when nobody was. Each
``TypingChanged`` was one UI update (1,000 of them in the frame of a first sync, issue 13).
The engine against a fake homeserver serving the benchmark's synthetic account.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from bench.sync_frames import build_profile
from bench.synthetic import initial_sync
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import TypingChanged

from ..support.updates import Recorder
from .support import wait_until

ROOMS = 1000


def _typing(user_ids: list[str]) -> dict[str, Any]:
    return {"type": "m.typing", "content": {"user_ids": user_ids}}


def _batch(token: str, rooms: list[str], typing: dict[str, list[str]]) -> dict[str, Any]:
    """An incremental batch naming every room's typing (nobody, but for ``typing``)."""
    return {
        "next_batch": token,
        "rooms": {
            "join": {
                room: {"ephemeral": {"events": [_typing(typing.get(room, []))]}} for room in rooms
            }
        },
    }


async def test_typing_is_published_only_for_rooms_where_it_changed(tmp_path: Path) -> None:
    first = json.loads(initial_sync(rooms=ROOMS))
    rooms = list(first["rooms"]["join"])
    for room in first["rooms"]["join"].values():
        for event in room["ephemeral"]["events"]:
            if event["type"] == "m.typing":
                event["content"]["user_ids"] = []  # nobody types anywhere
    one, other = rooms[7], rooms[8]
    batches = [
        first,
        _batch("t2", rooms, {one: ["@ann:bench.example"]}),
        _batch("t3", rooms, {one: ["@ann:bench.example"]}),  # still Ann alone
        _batch("t4", rooms, {one: ["@ann:bench.example", "@bo:bench.example"]}),
        _batch("t5", rooms, {}),  # both stopped
    ]
    served = asyncio.Queue[dict[str, Any]]()  # each batch once the test hands it over
    served.put_nowait(batches.pop(0))

    async def homeserver(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            return httpx.Response(200, json=await served.get())
        if request.url.path.endswith("/messages"):
            return httpx.Response(200, json={"chunk": [], "start": "x"})
        return httpx.Response(200, json={})

    build_profile(tmp_path)
    client = MatrixClient.restore(
        profile="bench", base_dir=tmp_path, transport=httpx.MockTransport(homeserver)
    )
    assert client is not None
    recorder = Recorder(client)
    try:
        await client.open()
        client.start()

        async def published_after(token: str) -> list[TypingChanged]:
            before = len(recorder.of(TypingChanged))
            served.put_nowait(batches.pop(0))
            await wait_until(lambda: client.sync_token == token, what=f"batch {token}", timeout=60)
            return recorder.of(TypingChanged)[before:]

        # The first sync: 1,000 rooms, nobody typing: nothing to say.
        await wait_until(lambda: len(client.rooms) == ROOMS, what="first sync", timeout=120)
        assert recorder.of(TypingChanged) == []
        assert await published_after("t2") == [TypingChanged(one, ("@ann:bench.example",))]
        assert await published_after("t3") == []
        assert await published_after("t4") == [
            TypingChanged(one, ("@ann:bench.example", "@bo:bench.example"))
        ]
        assert await published_after("t5") == [TypingChanged(one, ())]
        assert all(u.room_id != other for u in recorder.of(TypingChanged))
    finally:
        await client.close()
