"""Snapshot of an image in the timeline, drawn in half-blocks, with the fake world: a
picture sent by Bob in General (a server's thumbnail, here the fake server's file)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from textual.pilot import Pilot

from tui_client.store.cache import StoredEvent
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, SIZE, _app, _settle, show_general, wait_for


def sunset_png() -> bytes:
    """A small deterministic picture: sky, sun, sea, a boat (64 x 32 pixels)."""
    image = Image.new("RGB", (64, 32), (40, 60, 140))
    draw = ImageDraw.Draw(image)
    for y in range(16):
        draw.line([(0, y), (63, y)], fill=(250 - y * 6, 120 + y * 4, 60 + y * 5))
    draw.ellipse([24, 6, 40, 22], fill=(255, 220, 80))
    draw.rectangle([0, 16, 63, 31], fill=(20, 70, 130))
    for y in range(18, 32, 3):
        draw.line([(4 + y % 7, y), (60 - y % 5, y)], fill=(60, 120, 190))
    draw.polygon([(40, 22), (54, 22), (50, 26), (44, 26)], fill=(90, 50, 30))
    draw.line([(47, 12), (47, 22)], fill=(230, 230, 230))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def image_event() -> dict[str, Any]:
    return {
        "event_id": "$sunset",
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "origin_server_ts": 1795779995000,
        "content": {
            "msgtype": "m.image",
            "body": "sunset.png",
            "url": "mxc://example.org/sunset",
            "info": {"mimetype": "image/png", "w": 64, "h": 32, "size": len(sunset_png())},
        },
    }


def test_image_in_half_blocks(
    snap_compare, fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """General ends with Bob's picture: 40 x 10 cells of ▀ under its file line."""
    fake_server.media["sunset"] = sunset_png()
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await show_general(pilot)
        chat = app.chat_screen
        assert chat is not None and chat.view is not None
        timeline = chat.query_one(TimelineView)
        chat.view.on_sync_events([StoredEvent(10_000, image_event())])

        def drawn() -> int:
            return sum(
                1 for y in range(timeline.size.height) if "▀" in timeline.render_line(y).text
            )

        # 64 x 32 pixels in a 40 x 12 box: 40 cells wide, 20 pixel rows, 10 lines.
        try:
            await wait_for(pilot, lambda: drawn() == 10, "the picture drawn")
        except AssertionError:
            raise AssertionError(
                [timeline.render_line(y).text for y in range(timeline.size.height)][-16:],
                [r.url.path for r in fake_server.requests if "media" in r.url.path],
            ) from None
        app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_o_and_O_in_the_thread_panel_act_as_in_the_room(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """A thread reply without file or link: o and O say so (they did nothing in the panel)."""
    from .test_snapshots import _open_thread

    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        panel = await _open_thread(pilot, app)
        thread = panel.query_one("#thread-timeline", TimelineView)
        reply = next(item for item in thread.items if item.body == "Key backup")
        assert reply.event_id is not None and thread.select_event(reply.event_id)
        thread.focus()
        app.clear_notifications()
        await pilot.press("o")
        await wait_for(
            pilot,
            lambda: any(
                "links to no room or person, and has no file or web link" in n.message
                for n in app._notifications
            ),
            "o's answer",
        )
        await pilot.press("O")
        await wait_for(
            pilot,
            lambda: any("no link to copy" in n.message for n in app._notifications),
            "O's answer",
        )


async def test_kitty_placeholders_in_the_timeline_and_the_palette_switch_to_half_blocks(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """With kitty graphics, Bob's picture is placeholder cells (U+10EEEE, the image ID as
    colour), as many as the half-blocks would take; the palette switches to half-blocks
    and back."""
    from tui_client.ui.graphics import HALFBLOCKS, KITTY, PLACEHOLDER, Terminal, set_graphics

    fake_server.media["sunset"] = sunset_png()
    set_graphics(Terminal(KITTY, (10, 20)))
    try:
        app = _app(fake_profile, fake_server)
        async with app.run_test(size=SIZE) as pilot:
            await _settle(pilot)
            app.open_room(GENERAL)
            await _settle(pilot, GENERAL)
            chat = app.chat_screen
            assert chat is not None and chat.view is not None
            timeline = chat.query_one(TimelineView)
            chat.view.on_sync_events([StoredEvent(10_000, image_event())])

            def rows_of(mark: str) -> list[str]:
                lines = [timeline.render_line(y).text for y in range(timeline.size.height)]
                return [line for line in lines if mark in line]

            await wait_for(pilot, lambda: len(rows_of(PLACEHOLDER)) == 10, "the placeholders")
            assert all(row.count(PLACEHOLDER) == 40 for row in rows_of(PLACEHOLDER))
            assert not rows_of("▀")

            async def run_command(title: str) -> None:
                await pilot.press("ctrl+p")
                await pilot.pause(0.2)
                await pilot.press(*title)
                await pilot.pause(0.5)
                await pilot.press("enter")

            await run_command("Pictures drawn with")
            await wait_for(pilot, lambda: len(rows_of("▀")) == 10, "half-blocks")
            assert not rows_of(PLACEHOLDER)
            await run_command("Pictures drawn with")
            await wait_for(pilot, lambda: len(rows_of(PLACEHOLDER)) == 10, "placeholders again")
    finally:
        set_graphics(Terminal(HALFBLOCKS))


def harbour_event() -> dict[str, Any]:
    """A second picture, still loading: its sender's blurhash (of the sunset) stands in."""
    import blurhash

    with Image.open(io.BytesIO(sunset_png())) as image:
        rgb = image.convert("RGB")
        pixels = [[list(rgb.getpixel((x, y))) for x in range(64)] for y in range(32)]  # type: ignore[arg-type]
    return {
        "event_id": "$harbour",
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "origin_server_ts": 1795779996000,
        "content": {
            "msgtype": "m.image",
            "body": "harbour.png",
            "url": "mxc://example.org/harbour",
            "info": {
                "mimetype": "image/png",
                "w": 64,
                "h": 32,
                "xyz.amorgan.blurhash": blurhash.encode(pixels, components_x=4, components_y=3),
            },
        },
    }


def test_images_and_a_blurhash_while_loading(
    snap_compare, fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """Bob's picture drawn, then a second one still loading: its blurhash as a blurred
    picture of the box it will take (the README's screenshot of pictures)."""
    from .conftest import save_screenshot

    fake_server.media["sunset"] = sunset_png()
    fake_server.held_media.add("harbour")
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await show_general(pilot)
        chat = app.chat_screen
        assert chat is not None and chat.view is not None
        timeline = chat.query_one(TimelineView)
        chat.view.on_sync_events(
            [StoredEvent(10_000, image_event()), StoredEvent(10_001, harbour_event())]
        )

        def lines() -> list[str]:
            return [timeline.render_line(y).text for y in range(timeline.size.height)]

        # The sunset (10 lines), then the harbour's 10 lines of blurhash, its label over
        # the first.
        try:
            await wait_for(
                pilot,
                lambda: (
                    sum(1 for line in lines() if "▀" in line) == 20
                    and any("loading image…▀" in line for line in lines())
                ),
                "the picture and the blurhash",
            )
        except AssertionError:
            raise AssertionError(lines()) from None
        app.clear_notifications()
        await pilot.pause(0.1)
        save_screenshot("images", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
