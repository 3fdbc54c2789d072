"""A large first ``/sync`` (read in slices of rooms, net/sync_stream.py) that breaks part
way: the user reads why on the status line at 80x24, the room list shows none of the
rooms read before the break (nothing of the response was committed), and the next
answer, whole, fills it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bench.sync_frames import build_profile
from bench.synthetic import initial_sync
from tui_client.engine.sync import SLICE_BYTES
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.room_list import RoomList

from ..resilience.support import status_line
from .test_login_errors import until

ROOMS = 120


async def test_a_large_first_sync_broken_part_way_is_said_and_stores_nothing(
    tmp_path: Path,
) -> None:
    good = initial_sync(rooms=ROOMS)
    assert len(good) > SLICE_BYTES  # read in slices
    broken = good[: len(good) * 2 // 3]  # the head and most rooms, then the end is missing
    answers = [broken, good]
    build_profile(tmp_path)

    async def homeserver(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            if "since" in request.url.params:
                await asyncio.sleep(3600)
            raw = answers.pop(0) if len(answers) > 1 else answers[0]
            return httpx.Response(200, content=raw, headers={"content-type": "application/json"})
        if request.url.path.endswith("/messages"):
            return httpx.Response(200, json={"chunk": [], "start": "x"})
        return httpx.Response(200, json={})

    app = TuiClientApp(
        profile="bench", base_dir=tmp_path, transport=httpx.MockTransport(homeserver)
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.chat_screen is not None, "the chat screen")
        chat = app.chat_screen
        assert chat is not None
        await until(pilot, lambda: "bad response" in status_line(app), "the error said")
        assert "bad response: sync response is not JSON" in status_line(app)
        # None of the rooms read before the break was kept: not listed, not cached.
        client = chat.client
        assert chat.query_one(RoomList).room_ids == []
        stats = await client.db.run(client.cache.stats)
        assert stats["events"] == 0 and client.sync_token is None
        # The next answer (whole) is stored, and the error is gone.
        assert client.sync_loop is not None
        client.sync_loop.retry_now()
        await until(
            pilot, lambda: len(chat.query_one(RoomList).room_ids) == ROOMS, "the rooms listed"
        )
        await until(pilot, lambda: "bad response" not in status_line(app), "the error cleared")
