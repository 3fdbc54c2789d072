"""The image viewer: one image on the whole screen, in half-blocks, Escape to close.

The full image is fetched (decrypted in an encrypted room) and scaled to the screen in
the image service's worker; the screen only draws the lines it gets back.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from ...engine.images import ImageDecodeError, ImageService
from ...protocol.media import ImageRef
from ...protocol.sanitize import clean_line
from ..pictures import Line, picture_lines


class PictureView(Widget):
    """Draws lines centred in the widget."""

    DEFAULT_CSS = """
    PictureView { width: 1fr; height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Line] = []

    def show(self, lines: list[Line]) -> None:
        """Draw these lines (a picture, or a message)."""
        self.lines = lines
        self.refresh()

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

    def compose(self) -> ComposeResult:
        yield PictureView(id="picture")

    def on_mount(self) -> None:
        """Start loading at the screen's size."""
        view = self.query_one(PictureView)
        name = clean_line(self.ref.original.filename, 200)
        view.show([[Segment(f"Loading {name}…", Style(color=self.muted, italic=True))]])
        self._load(max(1, self.size.width), max(1, self.size.height))

    @work(group="image-viewer", exclusive=True, exit_on_error=False)
    async def _load(self, cols: int, rows: int) -> None:
        view = self.query_one(PictureView)
        try:
            picture = await self.service.picture(self.ref, cols, rows, full=True)
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
        view.show(picture_lines(picture))

    def action_close(self) -> None:
        """Back to the timeline."""
        self.dismiss(None)
