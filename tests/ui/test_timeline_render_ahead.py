"""The timeline renders a big batch (a page of history) ahead, in slices between frames,
and applies it once its lines are ready; lines rendered ahead are dropped when what they
show changed meanwhile (an edit, a receipt, new names, a resize): the screen shows the
new text, never the lines of before."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from tui_client.protocol.html import parse_html
from tui_client.protocol.timeline import Diff, TimelineItem
from tui_client.ui.render import palette_from
from tui_client.ui.widgets import timeline as timeline_module
from tui_client.ui.widgets.line_cache import RENDER_AHEAD_MIN
from tui_client.ui.widgets.timeline import TimelineView

BOB = "@bob:example.org"
CAROL = "@carol:example.org"


def _item(n: int, body: str | None = None, sender: str = BOB) -> TimelineItem:
    return TimelineItem(
        f"$e{n}",
        f"$e{n}",
        None,
        sender,
        1_795_000_000_000 + n * 60_000,
        "text",
        body or f"message number {n}",
        "m.room.message",
    )


def _page(first: int, count: int) -> list[Diff]:
    """Older history above what is shown: inserts at the top, oldest first."""
    return [Diff("insert", n, _item(first + n)) for n in range(count)]


class _Room(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelineView()


def _screen(timeline: TimelineView) -> str:
    return "\n".join(timeline.render_line(y).text for y in range(timeline.size.height))


async def _settle(pilot: Pilot[None], timeline: TimelineView) -> None:
    for _ in range(200):
        await pilot.pause()
        if not timeline._pending:
            return
    raise AssertionError("the batch was never applied")


async def _some_rendered_ahead(timeline: TimelineView, count: int = 6) -> None:
    """Let the render-ahead worker draw ``count`` messages (one a slice), not all."""
    drawn: list[str] = []
    render = timeline._render_lines

    def counting(item: TimelineItem, *args: Any) -> Any:
        drawn.append(item.key)
        return render(item, *args)

    timeline._render_lines = counting  # type: ignore[method-assign]
    for _ in range(1000):
        if len(drawn) >= count:
            break
        await asyncio.sleep(0)
    assert len(drawn) >= count and timeline._pending, drawn


async def _room(pilot: Pilot[None]) -> TimelineView:
    timeline = pilot.app.query_one(TimelineView)
    timeline.set_items([_item(100 + n) for n in range(3)])
    await pilot.pause()
    return timeline


async def test_a_page_is_rendered_ahead_then_applied() -> None:
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = await _room(pilot)
        timeline.apply_diffs(_page(0, 30))
        # Not applied in the handler: its lines are rendered first, between frames.
        assert len(timeline.items) == 3
        assert timeline._pending
        await _settle(pilot, timeline)
        assert [i.key for i in timeline.items][:2] == ["$e0", "$e1"]
        assert len(timeline.items) == 33
        timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert "message number 0" in _screen(timeline)
        # The virtual size follows at once (no screen layout needed to scroll there).
        assert timeline.virtual_size.height == timeline._offsets[-1] > timeline.size.height


async def test_a_small_batch_is_applied_at_once() -> None:
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = await _room(pilot)
        timeline.apply_diffs([Diff("insert", 3, _item(200, "a new message"))])
        assert RENDER_AHEAD_MIN >= 1 and len(timeline.items) == 4
        assert not timeline._pending
        await pilot.pause()
        assert "a new message" in _screen(timeline)


async def test_an_edit_queued_behind_a_page_shows_the_new_text() -> None:
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = await _room(pilot)
        timeline.apply_diffs(_page(0, 30))
        # The edit of the newest message comes while the page is rendered ahead.
        timeline.apply_diffs([Diff("update", 32, _item(102, "the edited text"))])
        await _settle(pilot, timeline)
        screen = _screen(timeline)
        assert "the edited text" in screen
        assert "message number 102" not in screen


async def test_changes_while_rendering_ahead_are_not_drawn_from_old_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New names arrive after some of a page's lines were rendered ahead: those lines
    are dropped, the screen shows the new names."""
    # One message a slice: the changes come in the middle of the page.
    monkeypatch.setattr(timeline_module, "RENDER_SLICE_SECONDS", 0.0)
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = await _room(pilot)
        # Carol and Bob take turns: Carol's name is on screen once the page is applied.
        page = [
            Diff("insert", n, _item(n, f"older {n}", CAROL if n % 2 else BOB)) for n in range(30)
        ]
        timeline.apply_diffs(page)
        await _some_rendered_ahead(timeline)
        timeline.name_of = lambda user: "Caroline" if user == CAROL else user
        timeline.refresh_names()
        await _settle(pilot, timeline)
        timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        screen = _screen(timeline)
        assert "older 0" in screen
        assert "Caroline" in screen
        assert "@carol" not in screen


async def test_a_receipt_while_rendering_ahead_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a receipt (no forget-everything) on a message already rendered ahead."""
    monkeypatch.setattr(timeline_module, "RENDER_SLICE_SECONDS", 0.0)
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = await _room(pilot)
        timeline.apply_diffs(_page(0, 30))
        await _some_rendered_ahead(timeline)
        timeline.set_read_by({"$e1": ("@dave:example.org",)})
        await _settle(pilot, timeline)
        timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert "Seen by @dave:example.org" in _screen(timeline)


async def test_a_resize_while_rendering_ahead_wraps_at_the_new_width() -> None:
    long = "word " * 30
    async with _Room().run_test(size=(100, 24)) as pilot:
        timeline = await _room(pilot)
        timeline.apply_diffs([Diff("insert", n, _item(n, f"{long}end{n}")) for n in range(30)])
        await pilot.resize_terminal(60, 24)
        await _settle(pilot, timeline)
        await pilot.pause()
        width = timeline.scrollable_content_region.width
        for y in range(timeline.size.height):
            assert timeline.render_line(y).cell_length == width
        timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        screen = _screen(timeline)
        assert "end0" in screen
        assert all(len(row.rstrip()) <= width for row in screen.splitlines())


async def test_a_room_opened_meanwhile_drops_the_queued_page() -> None:
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = await _room(pilot)
        timeline.apply_diffs(_page(0, 30))
        timeline.set_items([_item(500, "another room")])
        for _ in range(20):
            await pilot.pause()
        assert [i.key for i in timeline.items] == ["$e500"]
        assert "another room" in _screen(timeline)


async def test_code_blocks_keep_their_highlighting() -> None:
    """Lexers are looked up once per language (ui/formatted.py): a known language is
    still highlighted, an unknown one still shown as plain text."""
    python = parse_html('<pre><code class="language-python">def f():\n    return 1\n</code></pre>')
    unknown = parse_html('<pre><code class="language-nosuchlang">def f(): pass\n</code></pre>')
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = pilot.app.query_one(TimelineView)
        timeline.set_items(
            [
                replace(_item(1, "code"), formatted=python),
                replace(_item(2, "code"), formatted=unknown),
            ]
        )
        await pilot.pause()
        defs = [
            segment.style
            for y in range(timeline.size.height)
            for segment in timeline.render_line(y)
            if segment.text.strip().startswith("def")
        ]
        # The first is Python's keyword, coloured; the second plain text.
        assert len(defs) == 2
        assert defs[0] is not None and defs[1] is not None
        assert defs[0].color is not None
        assert defs[0].color != defs[1].color


async def test_a_theme_change_redraws_the_messages_in_its_colours() -> None:
    """The lines cached in the old theme's colours are dropped: a notice takes the new
    theme's colour (it kept the old one until the client restarted)."""
    notice = replace(_item(1, "the build is green"), kind="notice")
    app = _Room()
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "textual-dark"
        await pilot.pause()
        timeline = app.query_one(TimelineView)
        timeline.palette = palette_from(app)  # as the chat screen does on mount
        timeline.set_items([notice])
        await pilot.pause()

        def colour() -> str | None:
            for y in range(timeline.size.height):
                for segment in timeline.render_line(y):
                    if "the build is green" in segment.text and segment.style is not None:
                        colour = segment.style.color
                        return colour.name if colour is not None else None
            return None

        dark = app.current_theme.secondary
        assert dark is not None and colour() == dark.lower()
        app.theme = "textual-light"
        await pilot.pause()
        light = app.current_theme.secondary
        assert light is not None and light.lower() != dark.lower()
        assert colour() == light.lower()
