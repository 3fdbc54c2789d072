"""`o` on a selected message follows the pills and links of its formatted body: a user
pill shows what can be done with that person (as the member list's Enter does), a room
pill opens the room or its preview, several give a choice, as drawn on the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.store.cache import StoredEvent
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ChoiceDialog
from tui_client.ui.screens.room_preview import RoomPreviewScreen
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import FakeHomeserver
from .test_snapshots import SIZE, _settle, wait_for

GENERAL = "!general0000000000000000000000000000000000001"
RANDOM = "!random00000000000000000000000000000000000004"
_next_ts = iter(range(1795779990000, 1795779999999, 1000))


def screen_text(app: TuiClientApp) -> str:
    """What the terminal shows, as plain lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _formatted(event_id: str, body: str, html: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "origin_server_ts": next(_next_ts),
        "content": {
            "msgtype": "m.text",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        },
    }


async def _select(pilot: Any, app: TuiClientApp, event: dict[str, Any], position: int) -> None:
    chat = app.chat_screen
    assert chat is not None and chat.view is not None
    timeline = chat.query_one(TimelineView)
    chat.view.on_sync_events([StoredEvent(position, event)])
    await wait_for(
        pilot, lambda: any(i.event_id == event["event_id"] for i in timeline.items), "the message"
    )
    timeline.focus()
    timeline.selected_key = next(i.key for i in timeline.items if i.event_id == event["event_id"])
    await pilot.pause(0.05)


async def test_o_follows_user_and_room_pills(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)

        # Three pills, none of them written out in the plain body.
        several = _formatted(
            "$pills",
            "Carol: see rust, and random",
            '<a href="https://matrix.to/#/@carol:example.org">Carol</a>: see '
            '<a href="https://matrix.to/#/%23rust:example.org?via=example.org">#rust</a>, and '
            f'<blockquote><a href="https://matrix.to/#/{RANDOM}">random</a></blockquote>',
        )
        await _select(pilot, app, several, 10_000)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the choice of links")
        shown = screen_text(app)
        assert "Open which?" in shown
        assert "Carol (@carol:example.org)" in shown
        assert "#rust:example.org" in shown
        assert f"Random ({RANDOM})" in shown
        # The user: the member's actions, as Enter in the member list shows them.
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: (
                "Carol (@carol:example.org)" in screen_text(app)
                and "Direct message" in screen_text(app)
            ),
            "Carol's actions",
        )
        assert "Devices and trust" in screen_text(app)
        await pilot.press("escape")

        # The room we have joined opens; the one we have not is previewed to join.
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the choice of links")
        await pilot.press("down", "down", "enter")
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.current_room == RANDOM,
            "Random opened",
        )

        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        one_room = _formatted(
            "$room",
            "join us",
            'join <a href="https://matrix.to/#/%23rust:example.org?via=example.org">#rust</a>',
        )
        await _select(pilot, app, one_room, 10_001)
        await pilot.press("o")
        await wait_for(
            pilot, lambda: isinstance(app.screen, RoomPreviewScreen), "the preview of #rust"
        )
        preview = app.screen
        assert isinstance(preview, RoomPreviewScreen)
        assert preview.target == "#rust:example.org" and preview.via == ("example.org",)


async def test_a_message_without_links_says_so(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        code = _formatted("$code", "run @carol:example.org", "run <code>@carol:example.org</code>")
        await _select(pilot, app, code, 10_000)
        await pilot.press("o")
        await wait_for(
            pilot,
            lambda: "links to no room or person" in " ".join(screen_text(app).split()),
            "the notice",
        )


async def test_o_does_not_reveal_links_behind_an_unrevealed_spoiler(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        hidden = _formatted(
            "$spoiler",
            f"the party is in https://matrix.to/#/{RANDOM}",
            f'the party is in <span data-mx-spoiler="surprise"><a href="https://matrix.to/#/{RANDOM}">random</a></span>',
        )
        await _select(pilot, app, hidden, 10_000)
        await pilot.press("o")
        await wait_for(
            pilot,
            lambda: "links to no room or person" in " ".join(screen_text(app).split()),
            "the notice",
        )
        assert app.chat_screen is not None and app.chat_screen.current_room == GENERAL
        # Revealed with v, the same key follows the link.
        await pilot.press("v", "o")
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.current_room == RANDOM,
            "Random opened",
        )
