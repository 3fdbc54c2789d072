"""The thread panel's timeline draws pictures as the room's does: half-blocks, or kitty
placeholders when the terminal has kitty graphics (the image sent once through the
driver, its cells carrying the image ID)."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image
from textual.app import App, ComposeResult

from tui_client.engine.images import ImageService
from tui_client.protocol.media import ImageRef, parse_image
from tui_client.protocol.timeline import TimelineItem
from tui_client.ui.graphics import HALFBLOCKS, KITTY, PLACEHOLDER, Terminal, set_graphics
from tui_client.ui.screens.threads import ThreadTimeline


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 32), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


class _Local(ImageService):
    async def fetch(self, ref: ImageRef, *, full: bool) -> bytes:
        return _png()


def _reply() -> TimelineItem:
    content = {
        "msgtype": "m.image",
        "body": "red.png",
        "url": "mxc://example.org/red",
        "info": {"w": 64, "h": 32, "mimetype": "image/png"},
    }
    return TimelineItem(
        "$r",
        "$r",
        None,
        "@bob:example.org",
        1_795_000_000_000,
        "media",
        "[image] red.png",
        "m.room.message",
        image=parse_image("m.room.message", content),
    )


@pytest.mark.parametrize("protocol", [KITTY, HALFBLOCKS])
async def test_a_picture_in_the_thread_panel(protocol: str) -> None:
    set_graphics(Terminal(protocol, (10, 20)))
    service = _Local(None)
    if protocol == KITTY:
        service.detail = (10, 20)
    written: list[str] = []

    class Panel(App[None]):
        def compose(self) -> ComposeResult:
            thread = ThreadTimeline(id="thread-timeline")
            thread.images = service
            yield thread

    try:
        app = Panel()
        async with app.run_test(size=(80, 30)) as pilot:
            # (headless, the driver writes nothing: what would go to the terminal is kept)
            app._driver.write = written.append  # type: ignore[method-assign,union-attr]
            thread = app.query_one(ThreadTimeline)
            thread.set_items([_reply()])
            mark = PLACEHOLDER if protocol == KITTY else "▀"

            def rows() -> int:
                return sum(mark in thread.render_line(y).text for y in range(thread.size.height))

            for _ in range(200):
                if rows():
                    break
                await asyncio.sleep(0.02)
                await pilot.pause()
            assert rows() >= 4
            sent = [w for w in written if w.startswith("\x1b_Ga=T,U=1,")]
            assert len(sent) == (1 if protocol == KITTY else 0)
    finally:
        set_graphics(Terminal(HALFBLOCKS))
