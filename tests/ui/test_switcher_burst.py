"""The room switcher with keys posted in one burst, not waited for one by one (as a
terminal delivers them typed quickly): the keys typed behind the Enter or Escape that
closes it go to the composer, after the room has changed, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual import events

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.switcher import RoomSwitcher
from tui_client.ui.widgets.composer import Composer

from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, wait_for


@pytest.mark.parametrize(
    ("typed", "opens_general"),
    [("general\r", True), ("gen\x1b", False)],
    ids=["enter", "escape"],
)
async def test_keys_typed_behind_the_key_closing_the_switcher_reach_the_composer(
    fake_profile: Path, typed: str, opens_general: bool
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await _a_room_open(pilot, app)
        chat = app.chat_screen
        assert chat is not None
        start = chat.current_room
        assert start != GENERAL
        composer = app.screen.query_one(Composer)
        composer.focus()
        await pilot.press(*"draft ")
        names = {"\r": "enter", "\x1b": "escape"}
        keys = [("ctrl+k", None)] + [(names.get(c, c), c) for c in typed + "hi"]
        for key, character in keys:
            app.post_message(events.Key(key, character))
        await wait_for(
            pilot,
            lambda: not isinstance(app.screen, RoomSwitcher) and composer.text != "draft ",
            "the switcher closed and the composer typed into",
        )
        await pilot.pause(0.1)
        assert chat.current_room == (GENERAL if opens_general else start)
        assert composer.text == "draft hi"
        assert app.focused is composer


async def test_a_rebound_cancel_key_closes_it_and_escape_holds_nothing(fake_profile: Path) -> None:
    """[keys] may rebind the switcher's Escape (dialogs.cancel): the keys behind the key
    that really closes it are handed on, and Escape, bound to nothing then, holds nothing
    (held by its name, every key after it was kept and the switcher never closed)."""
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await _a_room_open(pilot, app)
        app.set_keymap({"dialogs.cancel": "ctrl+g"})
        chat = app.chat_screen
        assert chat is not None
        start = chat.current_room
        composer = app.screen.query_one(Composer)
        composer.focus()
        keys = [("ctrl+k", None), ("escape", None), ("g", "g"), ("e", "e")]
        keys += [("ctrl+g", None), ("h", "h"), ("i", "i")]
        for key, character in keys:
            app.post_message(events.Key(key, character))
        await wait_for(
            pilot,
            lambda: not isinstance(app.screen, RoomSwitcher) and composer.text == "hi",
            "the switcher closed by Ctrl+G and 'hi' in the composer",
        )
        assert chat.current_room == start
        assert app.focused is composer


async def _a_room_open(pilot: Any, app: TuiClientApp) -> None:
    await wait_for(
        pilot,
        lambda: app.chat_screen is not None and app.chat_screen.view is not None,
        "a room",
    )
