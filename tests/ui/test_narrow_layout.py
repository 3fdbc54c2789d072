"""At 80x24 the timeline keeps room to read: the side panels narrow below 100 columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_client.ui.app import TuiClientApp
from tui_client.ui.render import TIME_WIDTH, name_column_width
from tui_client.ui.widgets.room_list import RoomList
from tui_client.ui.widgets.space_bar import SpaceBar
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import FakeHomeserver
from .test_snapshots import _settle


@pytest.mark.parametrize("size", [(80, 24), (99, 30), (120, 36)], ids=["80x24", "99x30", "120x36"])
async def test_the_timeline_keeps_a_readable_body_column(
    fake_profile: Path, fake_server: FakeHomeserver, size: tuple[int, int]
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=size) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        timeline = chat.query_one(TimelineView).size.width
        body = timeline - TIME_WIDTH - name_column_width(timeline) - 1
        # Room for a short sentence on one line at every size (13 columns at 80x24 before).
        assert body >= 30, (size, timeline, body)
        # Nothing hidden: the space bar and the room list are still there, only narrower.
        assert chat.query_one(SpaceBar).size.width > 0
        assert chat.query_one(RoomList).size.width >= 20
