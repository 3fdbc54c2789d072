"""Small things a new user meets in the first minutes, checked on the rendered screen:
state lines that name rooms, the quit key in the footer, the Ctrl+C toast, and
start-up warnings said once."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from tui_client.store.cache import StoredEvent
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import GENERAL_ID, PROJECT_SPACE, FakeHomeserver
from .test_snapshots import _settle, wait_for

SMALL = (80, 24)


def _app(base_dir: Path, server: FakeHomeserver) -> TuiClientApp:
    return TuiClientApp(base_dir=base_dir, transport=server.transport())


def screen_lines(pilot: Pilot[None]) -> list[str]:
    """The text of every row on the terminal, as drawn (toasts and dialogs included)."""
    return [
        "".join(segment.text for segment in strip)
        for strip in pilot.app.screen._compositor.render_strips()
    ]


def timeline_lines(timeline: TimelineView) -> list[str]:
    return [
        "".join(segment.text for segment in timeline.render_line(y))
        for y in range(timeline.size.height)
    ]


async def test_state_lines_name_the_rooms_they_point_at(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        app.open_room(GENERAL_ID)
        await _settle(pilot, GENERAL_ID)
        assert chat.view is not None
        events = [
            {
                "event_id": "$parent",
                "type": "m.space.parent",
                "state_key": PROJECT_SPACE,
                "sender": "@alice:example.org",
                "origin_server_ts": 1795779999000,
                "content": {"via": ["example.org"], "canonical": True},
            },
            {
                "event_id": "$elsewhere",
                "type": "m.space.parent",
                "state_key": "!notjoined:example.org",
                "sender": "@alice:example.org",
                "origin_server_ts": 1795779999001,
                "content": {"via": ["example.org"]},
            },
        ]
        chat.view.on_sync_events([StoredEvent(10_000 + i, event) for i, event in enumerate(events)])
        timeline = chat.query_one(TimelineView)
        await wait_for(
            pilot,
            lambda: any(i.event_id == "$elsewhere" for i in timeline.items),
            "the state events",
        )
        shown = "\n".join(timeline_lines(timeline))
        assert "Alice set the parent space to Project Space" in shown
        assert PROJECT_SPACE not in shown
        # A room this client does not know is named by its ID.
        bodies = {item.event_id: item.body for item in timeline.items}
        assert bodies["$elsewhere"] == "Alice set the parent space to !notjoined:example.org"
