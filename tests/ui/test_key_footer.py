"""The key bar (ui/widgets/key_footer.py, issue 13): one widget, not one per key.

Textual's ``Footer`` composed a widget per key again at every focus change (restyled and laid
out: 10-20 ms of the UI thread each time); ours draws one line. It must show what Textual's
showed (the snapshots under __snapshots__ are unchanged), follow the focus, run a key's
action on a click, and crop cleanly on a narrow terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Static

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.switcher import RoomSwitcher
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.key_footer import KeyFooter
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import FakeHomeserver
from .test_snapshots import wait_for


def screen_lines(app: Any) -> list[str]:
    """What the terminal shows, as plain lines."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def open_chat(pilot: Pilot[None]) -> TuiClientApp:
    app = pilot.app
    assert isinstance(app, TuiClientApp)

    def ready() -> bool:
        chat = app.chat_screen
        return (
            chat is not None and chat.view is not None and bool(chat.query_one(TimelineView).items)
        )

    await wait_for(pilot, ready, "the chat screen with a room open")
    app.clear_notifications()
    await pilot.pause(0.1)
    return app


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
async def test_the_footer_shows_the_focused_widgets_keys(
    fake_profile: Path, fake_server: FakeHomeserver, size: tuple[int, int]
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=size) as pilot:
        await open_chat(pilot)
        chat = app.chat_screen
        assert chat is not None
        footer = chat.query_one(KeyFooter)
        assert not footer.children  # one widget: no FooterKey per key to mount and style
        assert footer.region.y == size[1] - 1 and footer.region.width == size[0]

        chat.query_one(Composer).focus()
        await pilot.pause(0.1)
        bottom = screen_lines(app)[-1]
        assert bottom.startswith(" ^k Rooms  ⏎ Send  shift+⏎ Newline  ^q Quit "), bottom
        assert bottom.endswith("▏^p palette "), bottom
        assert len(bottom) == size[0]
        if size[0] >= 120:
            assert " f1 Help  f2 Members " in bottom

        chat.query_one(TimelineView).focus()
        await pilot.pause(0.1)
        bottom = screen_lines(app)[-1]
        assert "Send" not in bottom and "Newline" not in bottom, bottom
        assert bottom.startswith(" r Reply  e Edit "), bottom  # the timeline's keys come first
        assert " ^q Quit " in bottom and bottom.endswith("▏^p palette "), bottom

        chat.query_one(Composer).focus()
        await pilot.pause(0.1)
        assert " ⏎ Send " in screen_lines(app)[-1]


async def test_a_click_on_a_key_runs_its_action(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_chat(pilot)
        bottom = screen_lines(app)[-1]
        x = bottom.index("Rooms")
        assert await pilot.click(KeyFooter, offset=(x, 0))
        await wait_for(pilot, lambda: isinstance(app.screen, RoomSwitcher), "the room switcher")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat_screen, "the chat screen again")
        # The command palette's key, drawn at the right edge.
        x = screen_lines(app)[-1].index("palette")
        assert await pilot.click(KeyFooter, offset=(x, 0))
        for _ in range(100):
            await pilot.pause(0.05)
            if isinstance(app.screen, CommandPalette):
                break
        assert isinstance(app.screen, CommandPalette), screen_lines(app)[-1]


class Keys(App[None]):
    """Three keys on a bare screen; Gamma disabled (``check_action`` answers None)."""

    BINDINGS = [
        Binding("a", "pressed('alpha')", "Alpha"),
        Binding("b", "pressed('beta')", "Beta"),
        Binding("c", "pressed('gamma')", "Gamma"),
        Binding("x", "pressed('hidden')", "Hidden", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pressed: list[str] = []
        self.bells = 0

    def compose(self) -> ComposeResult:
        yield Static("body")
        yield KeyFooter()

    def action_pressed(self, what: str) -> None:
        self.pressed.append(what)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if parameters == ("gamma",) else True

    def bell(self) -> None:
        self.bells += 1


@pytest.mark.parametrize(
    ("width", "line"),
    [
        (60, " a Alpha  b Beta  c Gamma " + " " * 22 + "▏^p palette "),
        (30, " a Alpha  b Beta  " + "▏^p palette "),
        (20, " a Alpha" + "▏^p palette "),
        (12, "▏^p palette "),
        (7, "▏^p pal"),
    ],
)
async def test_narrow_widths_crop_cleanly(width: int, line: str) -> None:
    app = Keys()
    async with app.run_test(size=(width, 5)) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[-1] == line
        assert lines[-2].strip() == ""  # one line, nothing wrapped onto a second
        footer = app.query_one(KeyFooter)
        assert footer.item_at(width) is None
        if width < 12:
            assert await pilot.click(KeyFooter, offset=(0, 0))  # the rule belongs to the palette
            await pilot.pause()
            assert isinstance(app.screen, CommandPalette)


async def test_clicks_map_to_keys_and_a_disabled_key_rings() -> None:
    app = Keys()
    async with app.run_test(size=(60, 5)) as pilot:
        await pilot.pause()
        line = screen_lines(app)[-1]
        for label, expected in (("Beta", "beta"), ("a Alpha", "alpha")):
            assert await pilot.click(KeyFooter, offset=(line.index(label), 0))
            await pilot.pause()
            assert app.pressed[-1] == expected
        assert await pilot.click(KeyFooter, offset=(line.index("Gamma"), 0))
        await pilot.pause()
        assert app.pressed == ["beta", "alpha"] and app.bells == 1
        assert await pilot.click(KeyFooter, offset=(40, 0))  # between the keys and the palette
        await pilot.pause()
        assert app.pressed == ["beta", "alpha"] and app.bells == 1
        # Gamma is drawn dimmed, as Textual's footer draws a disabled key.
        strip = app.screen._compositor.render_strips()[-1]
        gamma = [seg.style for seg in strip if "Gamma" in seg.text]
        beta = [seg.style for seg in strip if "Beta" in seg.text]
        assert gamma[0] is not None and beta[0] is not None
        assert gamma[0].color != beta[0].color  # dim: Textual blends the colour
        # A key under the mouse is drawn on the hover colour.
        await pilot.hover(KeyFooter, offset=(line.index("Beta"), 0))
        await pilot.pause()
        strip = app.screen._compositor.render_strips()[-1]
        hovered = [seg.style for seg in strip if "Beta" in seg.text]
        other = [seg.style for seg in strip if "Alpha" in seg.text]
        assert hovered[0] is not None and other[0] is not None
        assert hovered[0].bgcolor != other[0].bgcolor


async def test_the_footer_follows_binding_changes_without_a_focus_change() -> None:
    app = Keys()
    async with app.run_test(size=(60, 5)) as pilot:
        await pilot.pause()
        assert " a Alpha " in screen_lines(app)[-1]
        app.bind("z", "pressed('zed')", description="Zed")
        app.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert " z Zed " in screen_lines(app)[-1]
