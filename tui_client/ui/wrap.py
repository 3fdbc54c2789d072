"""Word-wrapping styled text to a width in terminal cells (the timeline's and the
formatted bodies' wrapper)."""

from __future__ import annotations

import re

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style

__all__ = ["Line", "Span", "styled_lines", "truncate", "wrap_offsets"]

Line = list[Segment]
Span = tuple[str, Style]
_TOKEN = re.compile(r"\s*\S+")


def wrap_offsets(text: str, width: int) -> list[tuple[int, int]]:
    """Greedy word wrap by terminal cells: ``(start, end)`` offsets of each line in ``text``.

    Newlines always break; spaces at a break are dropped; a word wider than a line
    is folded.
    """
    width = max(1, width)
    lines: list[tuple[int, int]] = []
    base = 0
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(paragraph, base, width))
        base += len(paragraph) + 1
    return lines


def _wrap_paragraph(paragraph: str, base: int, width: int) -> list[tuple[int, int]]:
    if cell_len(paragraph) <= width:
        return [(base, base + len(paragraph))]
    lines: list[tuple[int, int]] = []
    start = end = cells = 0
    for match in _TOKEN.finditer(paragraph):
        token = match.group()
        token_cells = cell_len(token)
        if cells + token_cells <= width:
            end = match.end()
            cells += token_cells
            continue
        word_start = match.end() - len(token.lstrip())
        word = paragraph[word_start : match.end()]
        word_cells = cell_len(word)
        if end > start:
            lines.append((base + start, base + end))
        if word_cells <= width:
            start, end, cells = word_start, match.end(), word_cells
            continue
        position = word_start
        pieces = chop_cells(word, width)
        for piece in pieces[:-1]:
            lines.append((base + position, base + position + len(piece)))
            position += len(piece)
        start, end, cells = position, match.end(), cell_len(pieces[-1])
    if end > start or not lines:
        lines.append((base + start, base + end))
    return lines


def styled_lines(spans: list[Span], width: int) -> list[Line]:
    """Wrap a run of styled spans to ``width`` cells, keeping each span's style."""
    plain = "".join(text for text, _ in spans)
    bounds = []
    offset = 0
    for text, style in spans:
        bounds.append((offset, offset + len(text), style))
        offset += len(text)
    lines: list[Line] = []
    for start, end in wrap_offsets(plain, width):
        line: Line = []
        for low, high, style in bounds:
            lo, hi = max(low, start), min(high, end)
            if lo < hi:
                line.append(Segment(plain[lo:hi], style))
        lines.append(line)
    return lines


def truncate(spans: list[Span], width: int) -> Line:
    """One line of spans cut to ``width`` cells with an ellipsis."""
    line: Line = []
    used = 0
    for text, style in spans:
        cells = cell_len(text)
        if used + cells <= width:
            line.append(Segment(text, style))
            used += cells
            continue
        room = width - used - 1
        if room > 0:
            line.append(Segment(chop_cells(text, room)[0], style))
        line.append(Segment("…", style))
        break
    return line
