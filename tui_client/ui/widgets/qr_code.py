"""A QR code drawn with half blocks, so a phone can scan it from an ordinary terminal.

Each cell holds two modules, one above the other: ``▀`` with the upper module's colour
in front and the lower one's behind. The colours are fixed black and white whatever
the theme (a scanner wants dark on light), and a light quiet zone surrounds the code:
four modules when there is room, down to one on a small terminal (phones read that
too). The code is encoded by segno, in byte mode, with the lowest error correction
(the smallest code: a version 5 verification code is 45 cells by 23 rows with its
quiet zone, which fits 80x24).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["QrCodeView", "half_block_rows", "qr_matrix", "quiet_zone"]

#: The widest quiet zone drawn (the QR standard's).
MAX_QUIET = 4
_DARK = "#000000"
_LIGHT = "#ffffff"
_STYLES = {
    (top, bottom): Style(color=_DARK if top else _LIGHT, bgcolor=_DARK if bottom else _LIGHT)
    for top in (False, True)
    for bottom in (False, True)
}


def qr_matrix(data: bytes | str) -> list[list[bool]]:
    """The code's modules (``True`` is dark), without a quiet zone."""
    import segno  # imported when a code is first drawn: start-up needs none (issue 13)

    code = segno.make(data, error="l", micro=False, boost_error=False)
    return [[bool(module) for module in row] for row in code.matrix]


def quiet_zone(size: int, width: int, height: int) -> int:
    """The widest quiet zone (1 to :data:`MAX_QUIET` modules) that fits ``width`` x ``height`` cells."""
    fits = min((width - size) // 2, (height * 2 - size) // 2)
    return max(1, min(MAX_QUIET, fits))


def half_block_rows(matrix: list[list[bool]], quiet: int) -> list[list[tuple[bool, bool]]]:
    """Each text row of the drawing: ``(upper dark, lower dark)`` per cell, quiet zone included."""
    size = len(matrix)
    side = size + 2 * quiet
    light_row = [False] * side
    modules = [light_row] * quiet
    modules += [[False] * quiet + row + [False] * quiet for row in matrix]
    modules += [light_row] * quiet
    if len(modules) % 2:
        modules.append(light_row)
    return [list(zip(modules[y], modules[y + 1], strict=True)) for y in range(0, len(modules), 2)]


class QrCodeView(Widget):
    """Shows one QR code (centred across, from the top), as large a quiet zone as fits."""

    DEFAULT_CSS = """
    QrCodeView {
        width: auto;
        height: auto;
    }
    """

    def __init__(self, data: bytes | str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._data: bytes | str | None = None
        self._matrix: list[list[bool]] = []
        self._rows: list[list[tuple[bool, bool]]] = []
        self._rows_for: tuple[int, int] | None = None
        self.show(data)

    @property
    def data(self) -> bytes | str | None:
        """What the code encodes."""
        return self._data

    def show(self, data: bytes | str | None) -> None:
        """Draw ``data`` (``None``: nothing)."""
        if data == self._data:
            return
        self._data = data
        self._matrix = qr_matrix(data) if data is not None else []
        self._rows_for = None
        self.refresh(layout=True)

    @property
    def modules(self) -> int:
        """The code's side in modules (0 when empty)."""
        return len(self._matrix)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self.modules + 2 * MAX_QUIET if self._matrix else 0

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return (self.modules + 2 * MAX_QUIET + 1) // 2 if self._matrix else 0

    def _drawing(self) -> list[list[tuple[bool, bool]]]:
        size = self.content_size
        key = (size.width, size.height)
        if self._rows_for != key:
            quiet = quiet_zone(self.modules, size.width, size.height)
            self._rows = half_block_rows(self._matrix, quiet) if self._matrix else []
            self._rows_for = key
        return self._rows

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        rows = self._drawing()
        top = 0
        if not rows or not top <= y < top + len(rows):
            return Strip.blank(width, self.rich_style)
        cells = rows[y - top]
        left = max(0, (width - len(cells)) // 2)
        segments = [Segment(" " * left, self.rich_style)] if left else []
        segments += [Segment("▀", _STYLES[cell]) for cell in cells]
        return Strip(segments).adjust_cell_length(width, self.rich_style)
