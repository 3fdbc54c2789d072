"""While a completion has several candidates, they are listed above the composer (at most
six rows, the one put in highlighted): Tab / Shift+Tab move, Enter or Space accept, Escape
puts the word back; keys typed in a burst keep their order."""

from __future__ import annotations

from pathlib import Path

from textual import events

from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.completion_list import CompletionList
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import FakeHomeserver
from .test_snapshots import SIZE, _settle, wait_for

GENERAL = "!general0000000000000000000000000000000000001"


def screen_lines(app: TuiClientApp) -> list[str]:
    """What the terminal shows, row by row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def listed(app: TuiClientApp) -> list[str]:
    """The rows drawn where the candidate list is (empty when it is not drawn)."""
    widget = app.screen.query_one(CompletionList)
    if widget not in app.screen._compositor.visible_widgets:
        return []
    region = widget.region
    lines = screen_lines(app)
    return [lines[y][region.x : region.right].strip() for y in range(region.y, region.bottom)]


async def test_candidates_are_listed_and_chosen_from_the_keyboard(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        composer = app.screen.query_one(Composer)
        composer.focus()

        await pilot.press(*"hi @", "tab")
        await wait_for(pilot, lambda: len(listed(app)) == 5, "the candidates")
        rows = listed(app)
        assert rows[0] == "▶ Bob  @bob:example.org  1/5"
        # (@room: we may notify the room)
        assert rows[1:] == [
            "Carol  @carol:example.org",
            "Dave  @dave:example.org",
            "Helper bot  @helper:example.org",
            "@room",
        ]
        # The list sits right above the composer.
        assert app.screen.query_one(CompletionList).region.bottom == composer.region.y
        assert composer.text == "hi Bob "

        await pilot.press("tab")
        await wait_for(
            pilot,
            lambda: listed(app)[1:2] == ["▶ Carol  @carol:example.org  2/5"],
            "Carol highlighted",
        )
        assert composer.text == "hi Carol "
        await pilot.press("shift+tab", "shift+tab")
        await wait_for(pilot, lambda: listed(app)[4:] == ["▶ @room  5/5"], "wrapped to the last")
        assert composer.text == "hi @room "

        # Enter accepts (nothing is sent), and the list goes away.
        await pilot.press("enter")
        await wait_for(pilot, lambda: listed(app) == [], "the list closed")
        assert composer.text == "hi @room " and composer.has_focus

        # Escape puts back what was typed; Space accepts without a second space.
        await pilot.press(*"and @", "tab", "tab")
        await wait_for(pilot, lambda: len(listed(app)) == 5, "the candidates")
        await pilot.press("escape")
        await wait_for(pilot, lambda: listed(app) == [], "the list closed")
        assert composer.text == "hi @room and @"
        await pilot.press("tab", "tab", "space")
        await wait_for(pilot, lambda: listed(app) == [], "the list closed")
        assert composer.text == "hi @room and Carol "

        # Many candidates: six rows at most, the window following the one put in.
        await pilot.press(*":th", "tab")
        await wait_for(pilot, lambda: len(listed(app)) == 6, "six rows")
        for _ in range(8):
            await pilot.press("tab")
        await wait_for(pilot, lambda: any(row.endswith("9/13") for row in listed(app)), "the ninth")
        rows = listed(app)
        assert (
            len(rows) == 6 and rows[3].startswith("▶ ") and not any("1/13" in row for row in rows)
        )
        await pilot.press("x")
        await wait_for(pilot, lambda: listed(app) == [], "the list closed by typing on")


async def test_a_burst_with_completions_keeps_every_key_in_order(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        composer = app.screen.query_one(Composer)
        composer.focus()
        timeline = app.screen.query_one(TimelineView)
        burst = [
            *"@",
            "tab",
            "tab",
            "enter",
            *"hi",
            "enter",
            *"@",
            "tab",
            "escape",
            *"x",
            "enter",
            *"@",
            "tab",
            "space",
            *"yo",
            "enter",
        ]
        for key in burst:
            app.post_message(
                events.Key(key, " " if key == "space" else key if len(key) == 1 else None)
            )
        expected = ["Carol hi", "@x", "Bob yo"]
        await wait_for(
            pilot,
            lambda: [i.body for i in timeline.items if i.is_local_echo][-3:] == expected,
            "the three lines",
        )
        assert composer.text == "" and listed(app) == []
