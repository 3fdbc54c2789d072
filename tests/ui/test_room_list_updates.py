"""The room list follows the engine at the cost of what changed (issue 13): the updates
published in one go reach the screen as one batch, the room list is refreshed once for
them, and a superseded room list update loses none of the rooms it named. At 80x24."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tui_client.engine.updates import RoomListChanged, TypingChanged
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.room_header import RoomHeader
from tui_client.ui.widgets.room_list import RoomList

from .fake_world import FakeHomeserver
from .test_login_errors import screen_text
from .test_snapshots import GENERAL, _settle

RANDOM = "!random00000000000000000000000000000000000004"
SIZE = (80, 24)


async def test_updates_published_together_refresh_the_room_list_once(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, None)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        chat, client = app.chat_screen, app.client
        assert chat is not None and client is not None
        room_list = chat.query_one(RoomList)
        shown: list[int] = []
        show_rooms = room_list.show_rooms

        def counted(*args: Any, **kwargs: Any) -> None:
            shown.append(1)
            show_rooms(*args, **kwargs)

        monkeypatch.setattr(room_list, "show_rooms", counted)

        def rename(room_id: str, name: str) -> None:
            summary = client.rooms[room_id].copy()
            summary.name = summary.display_name = name
            client.rooms[room_id] = summary
            client.publish(RoomListChanged(tuple(client.rooms.values()), frozenset({room_id})))

        # As a sync batch publishes: room lists and typing of many rooms, interleaved.
        rename(GENERAL, "General renamed")
        for n in range(40):
            client.publish(TypingChanged(GENERAL, (f"@user{n}:example.org",)))
            rename(RANDOM, f"Random {n}")
        await pilot.pause(0.2)

        assert len(shown) == 1  # once for the 41 room lists (was once each)
        screen = screen_text(app)
        assert "Random 39" in screen and "Random 38" not in screen
        # The room on screen was renamed by the first update only: its header follows.
        header = chat.query_one(RoomHeader)
        assert header.room is not None and header.room.display_name == "General renamed"
        assert "General renamed" in screen
        assert "user39" in screen  # the last typist of the room on screen
