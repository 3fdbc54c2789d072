"""The image viewer: one image on the whole screen, Escape to close.

The full image is fetched (decrypted in an encrypted room) and scaled to the screen in
the image service's worker; the screen only draws the lines it gets back: kitty
placeholders, half-blocks, or (sixel, iTerm2) blank cells the picture is written over
after each frame (:mod:`..graphics`).
"""

from __future__ import annotations

import asyncio

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from ...engine.images import ImageDecodeError, ImageService, Picture
from ...protocol.media import ImageRef
from ...protocol.sanitize import clean_line
from ..graphics import HALFBLOCKS, ITERM2, SIXEL, graphics, iterm2_sequence, sixel_sequence
from ..pictures import Line, picture_lines


class PictureView(Widget):
    """Draws lines centred in the widget."""

    DEFAULT_CSS = """
    PictureView { width: 1fr; height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Line] = []
        #: A sixel or iTerm2 picture written over the lines (blank cells) after each frame.
        self.overlay = ""

    def show(self, lines: list[Line], overlay: str = "") -> None:
        """Draw these lines (a picture, or a message), and the overlay over them."""
        self.lines = lines
        self.overlay = overlay
        self.refresh()
        self._place_overlay()

    def on_resize(self) -> None:
        """The picture's cells moved: so does its overlay."""
        self._place_overlay()

    def _place_overlay(self) -> None:
        if not self.overlay:
            placed = graphics().overlay
            if placed is not None and placed[0] is self.screen:
                graphics().overlay = None
            return
        width, height = self.size
        used = sum(segment.cell_length for segment in self.lines[0]) if self.lines else 0
        x = self.region.x + max(0, (width - used) // 2)
        y = self.region.y + max(0, (height - len(self.lines)) // 2)
        graphics().overlay = (self.screen, x, y, self.overlay)

    def render_line(self, y: int) -> Strip:
        """One row of the picture, centred."""
        width = self.size.width
        top = max(0, (self.size.height - len(self.lines)) // 2)
        index = y - top
        if not 0 <= index < len(self.lines):
            return Strip.blank(width)
        line = self.lines[index]
        used = sum(segment.cell_length for segment in line)
        left = max(0, (width - used) // 2)
        return Strip([Segment(" " * left), *line], left + used).adjust_cell_length(width)


class ImageViewer(Screen[None]):
    """One image, as large as the terminal allows."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    DEFAULT_CSS = """
    ImageViewer { background: $background; }
    """

    def __init__(self, service: ImageService, ref: ImageRef, muted: str = "#8a8a8a") -> None:
        super().__init__()
        self.service = service
        self.ref = ref
        self.muted = muted
        self._loaded_for = (0, 0)

    def compose(self) -> ComposeResult:
        yield PictureView(id="picture")

    def on_mount(self) -> None:
        """Start loading at the screen's size."""
        view = self.query_one(PictureView)
        name = clean_line(self.ref.original.filename, 200)
        view.show([[Segment(f"Loading {name}…", Style(color=self.muted, italic=True))]])
        self._loaded_for = (max(1, self.size.width), max(1, self.size.height))
        self._load(*self._loaded_for)

    @work(group="image-viewer", exclusive=True, exit_on_error=False)
    async def _load(self, cols: int, rows: int) -> None:
        view = self.query_one(PictureView)
        protocol = graphics().protocol
        detail = graphics().detail
        try:
            picture = await self.service.picture(self.ref, cols, rows, full=True, detail=detail)
            overlay = ""
            if protocol in (SIXEL, ITERM2) and picture.png:
                overlay = await asyncio.to_thread(_overlay, protocol, picture)
        except ImageDecodeError as error:
            view.show(
                [
                    [
                        Segment(
                            f"⚠ image not shown: {clean_line(str(error), 300)}",
                            Style(color=self.muted, italic=True),
                        )
                    ]
                ]
            )
            return
        if overlay:
            blank = [[Segment(" " * picture.width)] for _ in range(picture.rows)]
            view.show(blank, overlay)
        else:
            view.show(picture_lines(picture, self.app if protocol != HALFBLOCKS else None))

    def on_resize(self) -> None:
        """A new size: the picture again, fitted to it."""
        size = max(1, self.size.width), max(1, self.size.height)
        if self.is_mounted and self.query(PictureView) and size != self._loaded_for:
            self._loaded_for = size
            self._load(*size)

    def on_unmount(self) -> None:
        """Nothing more written over the cells."""
        placed = graphics().overlay
        if placed is not None and placed[0] is self:
            graphics().overlay = None

    def action_close(self) -> None:
        """Back to the timeline."""
        self.dismiss(None)


def _overlay(protocol: str, picture: Picture) -> str:
    if protocol == SIXEL:
        return sixel_sequence(picture.png)
    return iterm2_sequence(picture.png, picture.width, picture.rows)
