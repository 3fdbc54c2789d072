"""Pictures as terminal lines: Unicode half-blocks (``▀`` with the upper pixel as the
foreground and the lower one as the background), built as Rich segments for the
line-API timeline, so an image is a few more lines of its message.

Also the one :class:`~tui_client.engine.images.ImageService` per client the views share.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import App, SystemCommand

from ..engine.client import MatrixClient
from ..engine.images import (
    IMAGE_MODES,
    ImageService,
    Picture,
    blurhash_colour,
    blurhash_picture,
)
from ..protocol.media import ImageRef
from .graphics import HALFBLOCKS, KITTY, Terminal, graphics, set_graphics

__all__ = [
    "INLINE_BOX",
    "STICKER_BOX",
    "avatar_text",
    "box_for",
    "half_block_lines",
    "image_service",
    "picture_lines",
    "placeholder_lines",
]

Line = list[Segment]

#: The largest box (columns, rows) of an inline image, and of a sticker.
INLINE_BOX = (40, 12)
STICKER_BOX = (16, 8)

_loading: set[asyncio.Task[None]] = set()
_services: weakref.WeakKeyDictionary[MatrixClient, ImageService] = weakref.WeakKeyDictionary()


def image_service(client: MatrixClient) -> ImageService:
    """The image service of a client (made on first use)."""
    service = _services.get(client)
    if service is None:
        service = _services[client] = ImageService(client)
        if graphics().protocol == KITTY:
            # Pictures in pixels in the timeline too (sixel and iTerm2: in the viewer only).
            service.detail = graphics().detail
        task = asyncio.get_running_loop().create_task(service.load_settings())
        _loading.add(task)
        task.add_done_callback(_loading.discard)
    return service


def box_for(ref: ImageRef, body_width: int) -> tuple[int, int]:
    """The box an image of a message may fill, at this body width."""
    cols, rows = STICKER_BOX if ref.sticker else INLINE_BOX
    return max(1, min(cols, body_width)), rows


@lru_cache(maxsize=16384)
def _colour(rgb: tuple[int, int, int]) -> Color:
    # (Color.from_rgb, without its detour through floats and a second triplet)
    return Color(
        f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}", ColorType.TRUECOLOR, triplet=ColorTriplet(*rgb)
    )


@lru_cache(maxsize=65536)
def _style(top: tuple[int, int, int] | None, bottom: tuple[int, int, int] | None) -> Style:
    return Style(
        color=_colour(top) if top is not None else None,
        bgcolor=_colour(bottom) if bottom is not None else None,
    )


def picture_lines(picture: Picture, app: Any = None) -> list[Line]:
    """The lines of a picture: kitty placeholders when the terminal has kitty graphics and
    the picture has its PNG (sent to the terminal through ``app``'s driver the first time),
    else half-blocks."""
    if app is not None and picture.png and graphics().protocol == KITTY:
        return graphics().kitty_image(app, picture.png, picture.width, picture.rows)
    return half_block_lines(picture)


def half_block_lines(picture: Picture) -> list[Line]:
    """The half-block lines of a picture (a transparent pixel is left to the terminal's
    background: ``▄`` or a space)."""
    rgba = picture.rgba
    width = picture.width
    lines: list[Line] = []
    for row in range(picture.rows):
        top_row = 2 * row * width * 4
        bottom_y = 2 * row + 1
        line: Line = []
        run_text = ""
        run_style: Style | None = None
        for x in range(width):
            at = top_row + x * 4
            top = (rgba[at], rgba[at + 1], rgba[at + 2]) if rgba[at + 3] >= 128 else None
            bottom: tuple[int, int, int] | None = None
            if bottom_y < picture.height:
                below = at + width * 4
                if rgba[below + 3] >= 128:
                    bottom = (rgba[below], rgba[below + 1], rgba[below + 2])
            if top is not None:
                char, style = "▀", _style(top, bottom)
            elif bottom is not None:
                char, style = "▄", _style(bottom, None)
            else:
                char, style = " ", _style(None, None)
            if style is run_style:
                run_text += char
            else:
                if run_text:
                    line.append(Segment(run_text, run_style))
                run_text, run_style = char, style
        if run_text:
            line.append(Segment(run_text, run_style))
        lines.append(line)
    return lines


def placeholder_lines(ref: ImageRef, cols: int, rows: int, label: str, muted: str) -> list[Line]:
    """What stands for an image while it loads: its blurhash drawn (in half-blocks) over
    the box it will take, with ``label`` over the start of the first line (without a
    blurhash, the label and blank lines: the space is kept either way, so what is below
    does not jump, and only the images really on screen are fetched)."""
    picture = blurhash_picture(ref.blurhash, cols, rows) if ref.blurhash else None
    if picture is None:
        return [[Segment(label, Style(color=muted, italic=True))], *([] for _ in range(rows - 1))]
    lines = half_block_lines(picture)
    text = label[:cols]
    colour = blurhash_colour(ref.blurhash) if ref.blurhash else None
    fill = Style(
        bgcolor=Color.from_rgb(*colour) if colour is not None else None, color=muted, italic=True
    )
    _, rest = Segment.divide(lines[0], [len(text), cols])
    lines[0] = [Segment(text, fill), *rest]
    return lines


def avatar_text(service: ImageService, mxc: str, loaded: Callable[[str], None]) -> Text:
    """An avatar as 2 cells of half-blocks and a space while avatars are on (blank while it
    loads: ``loaded(mxc)`` once it is there; nothing with avatars off)."""
    if not service.avatars:
        return Text()
    picture = service.avatar(mxc)
    if picture is None:
        service.request_avatar(mxc, loaded)
        return Text("   ")
    text = Text()
    for segment in picture_lines(picture)[0]:
        text.append(segment.text, style=segment.style)
    text.append(" ")
    return text


def media_commands(app: App[Any], client: MatrixClient) -> Iterable[SystemCommand]:
    """The palette's entries for pictures: the images setting (off, thumbnails, full, in
    turn) and whether ``O`` may copy to the clipboard."""
    service = image_service(client)
    following = IMAGE_MODES[(IMAGE_MODES.index(service.mode) + 1) % len(IMAGE_MODES)]

    async def set_mode() -> None:
        await service.set_mode(following)
        app.notify(f"Images: {following}", markup=False, timeout=4)

    async def toggle_copy() -> None:
        await service.set_copy_links(not service.copy_links)
        app.notify(
            f"Copying links to the clipboard: {'on' if service.copy_links else 'off'}",
            markup=False,
            timeout=4,
        )

    yield SystemCommand(
        f"Images: {service.mode} → {following}",
        "Pictures in the timeline: off, server thumbnails, or full images",
        lambda: app.run_worker(set_mode(), exit_on_error=False),
    )

    async def toggle_avatars() -> None:
        await service.set_avatars(not service.avatars)
        app.notify(f"Avatars: {'on' if service.avatars else 'off'}", markup=False, timeout=4)

    yield SystemCommand(
        f"Avatars: {'on → off' if service.avatars else 'off → on'}",
        "Rooms' pictures in the room list",
        lambda: app.run_worker(toggle_avatars(), exit_on_error=False),
    )
    detected = graphics().detected
    if detected.protocol != HALFBLOCKS:
        drawn = graphics().protocol
        other = HALFBLOCKS if drawn != HALFBLOCKS else detected.protocol

        def switch() -> None:
            graphics().forget(app)  # the kitty images sent so far
            set_graphics(Terminal(other, detected.cell), detected)
            service.set_detail(graphics().detail if other == KITTY else None)
            app.notify(f"Pictures drawn with {other}", markup=False, timeout=4)

        yield SystemCommand(
            f"Pictures drawn with: {drawn} → {other}",
            "How the terminal draws pictures (this run; images.protocol in the config file keeps it)",
            switch,
        )
    yield SystemCommand(
        f"Copy links with O: {'on → off' if service.copy_links else 'off → on'}",
        "O copies a message's link to the terminal's clipboard (OSC 52)",
        lambda: app.run_worker(toggle_copy(), exit_on_error=False),
    )
