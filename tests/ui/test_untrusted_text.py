"""Hostile text from the network, checked where it matters: on the screen.

Room names, topics, display names and bodies carry Textual markup, OSC and CSI
escape sequences, C1 controls and bidi overrides. What reaches the screen must be
the literal, cleaned text: no styling or actions from markup, no escape bytes.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any

from rich.segment import Segment
from textual.pilot import Pilot

from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.room_header import RoomHeader
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import Clock, FakeHomeserver, build_sync, make_profile
from .test_snapshots import wait_for

EVIL = "!evil000000000000000000000000000000000000000007"
EVIL_NAME = "[@click=app.quit]Evil[/] \x1b]0;pwned\x07room\u202e"
EVIL_TOPIC = "[b]topic[/b] \x1b[2J\x1b[31mred\x1b[0m \x9b31m"
EVIL_DISPLAYNAME = "Mallory\u202egnp.exe\x1b[5m"
EVIL_BODY = "click [@click=app.quit]here[/] or [link=https://evil.example]this[/link] \x1b]8;;https://evil.example\x1b\\x\x1b]8;;\x1b\\ \x1b[?1049h done\r\x00"


def _evil_room() -> dict[str, Any]:
    clock = Clock()
    mallory = "@mallory:example.org"
    state = [
        clock.event(EVIL, mallory, "m.room.create", {"room_version": "12"}, state_key=""),
        clock.event(EVIL, mallory, "m.room.name", {"name": EVIL_NAME}, state_key=""),
        clock.event(EVIL, mallory, "m.room.topic", {"topic": EVIL_TOPIC}, state_key=""),
        clock.event(
            EVIL,
            mallory,
            "m.room.member",
            {"membership": "join", "displayname": EVIL_DISPLAYNAME},
            state_key=mallory,
        ),
        clock.event(
            EVIL,
            "@alice:example.org",
            "m.room.member",
            {"membership": "join", "displayname": "Alice"},
            state_key="@alice:example.org",
        ),
    ]
    timeline = [
        clock.event(EVIL, mallory, "m.room.message", {"msgtype": "m.text", "body": EVIL_BODY})
    ]
    timeline[0]["origin_server_ts"] = 1795780000000  # newest room, opened first
    return {
        EVIL: {
            "state": {"events": state},
            "timeline": {"events": timeline, "limited": False},
            "summary": {"m.joined_member_count": 2},
        }
    }


def _screen_text(app: TuiClientApp) -> str:
    svg = app.export_screenshot()
    return unescape("".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")


def _segments(app: TuiClientApp) -> list[Segment]:
    timeline = app.screen.query_one(TimelineView)
    segments: list[Segment] = []
    for y in range(timeline.size.height):
        segments.extend(timeline.render_line(y))
    return segments


async def test_hostile_text_reaches_the_screen_as_plain_text(
    tmp_path: Path, memory_keyring: None
) -> None:
    make_profile(tmp_path, build_sync(_evil_room()))
    app = TuiClientApp(base_dir=tmp_path, transport=FakeHomeserver().transport())
    async with app.run_test(size=(160, 40)) as pilot:
        await _open_evil(app, pilot)
        text = _screen_text(app)
        # Markup is shown literally, not interpreted.
        assert "[@click=app.quit]Evil[/]" in text
        assert "[@click=app.quit]here[/]" in text
        assert "[link=https://evil.example]this[/link]" in text
        assert "[b]topic[/b]" in text
        # Escape sequences and controls are gone, the words around them stay.
        for forbidden in ("\x1b", "\x07", "\x9b", "\u202e", "\x00", "\r"):
            assert forbidden not in text
        assert "room" in text and "red" in text and "done" in text
        # No segment carries an action or a link from the untrusted text.
        for segment in _segments(app):
            style = segment.style
            if style is None:
                continue
            assert not style.link, segment
            assert "@click" not in (style.meta or {}), segment
        # Clicking the hostile "links" does nothing: the app keeps running.
        header = app.screen.query_one(RoomHeader)
        await pilot.click(RoomHeader, offset=(3, 0))
        timeline = app.screen.query_one(TimelineView)
        for y in range(timeline.size.height):
            await pilot.click(TimelineView, offset=(40, y))
        await pilot.pause(0.2)
        assert app.is_running and header.is_mounted


async def _open_evil(app: TuiClientApp, pilot: Pilot[None]) -> None:
    await wait_for(
        pilot,
        lambda: app.chat_screen is not None and app.chat_screen.view is not None,
        "the chat screen",
    )
    app.open_room(EVIL)
    chat = app.chat_screen
    assert chat is not None
    await wait_for(
        pilot,
        lambda: (
            chat.current_room == EVIL
            and chat.view is not None
            and bool(chat.query_one(TimelineView).items)
        ),
        "the hostile room",
    )


async def test_the_command_palette_shows_hostile_names_literally(
    tmp_path: Path, memory_keyring: None
) -> None:
    """Textual reads palette titles as markup: room names and user IDs must not be."""
    from textual.command import CommandPalette
    from textual.widgets import Input

    bracketed = "@x[/y]:evil.example"  # a valid historical user ID
    sync = build_sync(_evil_room())
    sync["account_data"]["events"][0]["content"][bracketed] = [EVIL]
    make_profile(tmp_path, sync)
    app = TuiClientApp(base_dir=tmp_path, transport=FakeHomeserver().transport())
    async with app.run_test(size=(160, 40)) as pilot:
        await _open_evil(app, pilot)
        summary = app.client.rooms[EVIL] if app.client else None
        assert summary is not None and summary.dm_user == bracketed
        for query in ("", "Evil", "Verify", "Devices of"):
            await pilot.press("ctrl+p")
            await wait_for(
                pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette"
            )
            palette = app.screen
            palette.query_one(Input).value = query
            expected = {
                "Evil": "[@click=app.quit]Evil[/]",
                "Verify": bracketed,
                "Devices of": bracketed,
            }.get(query)
            if expected is not None:
                # (the palette fills its list in a worker: wait for the literal text)
                await wait_for(
                    pilot,
                    lambda text=expected: text in _screen_text(app),
                    f"the results of {query!r}",
                )
            else:
                await pilot.pause(0.5)
            assert app.is_running, query
            await pilot.press("escape")
            await wait_for(
                pilot, lambda: not isinstance(app.screen, CommandPalette), "the palette closed"
            )
        assert app.is_running


async def test_palette_help_shows_hostile_keywords_and_ignored_ids_literally(
    tmp_path: Path, memory_keyring: None
) -> None:
    """Keywords come from push rules any client of the user wrote; ignored IDs from account
    data: the palette's help line (read as markup by Textual) shows them as typed."""
    from textual.command import CommandPalette
    from textual.widgets import Input

    make_profile(tmp_path, build_sync(_evil_room()))
    app = TuiClientApp(base_dir=tmp_path, transport=FakeHomeserver().transport())
    async with app.run_test(size=(160, 40)) as pilot:
        await _open_evil(app, pilot)
        assert app.client is not None
        notifications = app.client.notifications
        notifications.keywords = lambda: ["[/]", "[b]PROD"]  # type: ignore[method-assign]
        notifications.ignored = frozenset({"@x[/y]:evil.example"})
        for query, expected in (
            ("Remove notification", "Now: [/], [b]PROD"),
            ("Stop ignoring", "Ignored: @x[/y]:evil.example"),
        ):
            await pilot.press("ctrl+p")
            await wait_for(
                pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette"
            )
            app.screen.query_one(Input).value = query
            await wait_for(
                pilot, lambda text=expected: text in _screen_text(app), f"the help of {query!r}"
            )
            assert app.is_running
            await pilot.press("escape")
            await wait_for(
                pilot, lambda: not isinstance(app.screen, CommandPalette), "the palette closed"
            )
