"""A formatted message (``protocol.html.Document``) as styled terminal lines.

The document's text is clean already (the parser ran the sanitiser on every
text node and attribute as it entered); here it only becomes the text of a
``Segment`` with a style we chose. Names looked up for pills come from outside
the tree and are cleaned here.

Links keep their text, styled with an OSC 8 hyperlink (``Style(link=...)``,
which Rich writes only for URLs the parser allowed: http(s), mailto, matrix:)
and, when the text is not the URL, the URL beside it, since not every terminal
(nor every Textual driver) passes OSC 8 on. Pills read ``@Display Name`` or
``#room`` with the names the room knows now. Spoilers stay blanked, with their
reason, until the reader reveals the message.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from rich.cells import cell_len, chop_cells
from rich.console import Console
from rich.segment import Segment
from rich.style import Style

from ..protocol.html import (
    Block,
    Break,
    CodeBlock,
    Details,
    Document,
    Heading,
    Image,
    Inline,
    Link,
    ListBlock,
    Mark,
    Maths,
    Paragraph,
    Pill,
    Quote,
    Rule,
    Spoiler,
    Table,
    Text,
    inline_text,
)
from ..protocol.sanitize import clean_line
from .wrap import styled_lines

if TYPE_CHECKING:
    # Rich's Syntax (and Pygments under it) is imported with the first code block drawn
    # (issue 13: the first painted room list has none).
    from rich.syntax import SyntaxTheme

Line = list[Segment]
Span = tuple[str, Style]
#: Narrowest a nested block gets: deeper nesting stops indenting below this.
MIN_WIDTH = 12
CODE_THEME = "monokai"
#: Longest code block that is highlighted (longer ones are shown plain).
MAX_HIGHLIGHT = 20_000
_BULLETS = ("•", "◦", "▪")
_SUPERSCRIPT = str.maketrans("0123456789+-=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ")
_SUBSCRIPT = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")
_SUPER_CHARS = frozenset("0123456789+-=()ni")
_SUB_CHARS = frozenset("0123456789+-=()")


class _RoomLike(Protocol):
    room_id: str
    canonical_alias: str | None

    @property
    def display_name(self) -> str: ...


def known_room_name(rooms: Mapping[str, _RoomLike], target: str) -> str | None:
    """The name of a room we know, by room ID or canonical alias (for room pills)."""
    summary = rooms.get(target)
    if summary is None and target.startswith("#"):
        summary = next((r for r in rooms.values() if r.canonical_alias == target), None)
    return summary.display_name if summary is not None else None


@dataclass(frozen=True, slots=True)
class Look:
    """What the renderer needs besides the document: colours, name lookups, spoilers."""

    foreground: str
    muted: str
    accent: str
    notice: str
    code: str
    name_of: Callable[[str], str]
    room_name_of: Callable[[str], str | None]
    reveal: bool = False


def render_document(
    document: Document,
    width: int,
    look: Look,
    *,
    base: Style | None = None,
    lead: list[Span] | None = None,
    tail: list[Span] | None = None,
) -> list[Line]:
    """The lines of a document, ``width`` cells wide at most.

    ``base`` styles all text (a notice's colour); ``lead`` goes before the first
    line (an emote's ``* name``), ``tail`` after the last (``(edited)``).
    """
    renderer = _Renderer(look, base or Style(), styled_lines)
    lines = renderer.blocks(document.blocks, max(MIN_WIDTH, width), 0, lead or [])
    if tail:
        used = sum(cell_len(s.text) for s in lines[-1]) if lines else width
        tail_cells = sum(cell_len(text) for text, _ in tail)
        if lines and used + tail_cells <= width:
            lines[-1] = [*lines[-1], *(Segment(text, style) for text, style in tail)]
        else:
            lines.append([Segment(text.lstrip(), style) for text, style in tail])
    return lines or [[]]


@lru_cache(maxsize=64)
def _style_for(marks: Mark, color: str | None, bg: str | None, code: str) -> Style:
    return Style(
        bold=bool(marks & Mark.BOLD) or None,
        italic=bool(marks & Mark.ITALIC) or None,
        underline=bool(marks & Mark.UNDERLINE) or None,
        strike=bool(marks & Mark.STRIKE) or None,
        color=color or (code if marks & Mark.CODE else None),
        bgcolor=bg,
    )


class _Renderer:
    def __init__(
        self, look: Look, base: Style, wrap: Callable[[list[Span], int], list[Line]]
    ) -> None:
        self.look = look
        self.base = base
        self.wrap = wrap
        self.muted = Style(color=look.muted)

    # -- blocks -------------------------------------------------------------------------

    def blocks(
        self, blocks: tuple[Block, ...], width: int, depth: int, lead: list[Span]
    ) -> list[Line]:
        lines: list[Line] = []
        for index, block in enumerate(blocks):
            lines.extend(self.block(block, width, depth, lead if index == 0 else []))
        if not blocks and lead:
            lines.extend(self.wrap(lead, width))
        return lines

    def block(self, block: Block, width: int, depth: int, lead: list[Span]) -> list[Line]:
        if isinstance(block, Paragraph):
            return self.wrap([*lead, *self.spans(block.children, self.base)], width)
        if isinstance(block, Heading):
            style = self.base + Style(
                bold=True,
                underline=block.level == 1,
                color=self.look.accent if block.level <= 2 else None,
            )
            return self.wrap([*lead, *self.spans(block.children, style)], width)
        lines: list[Line] = self.wrap(lead, width) if lead else []
        if isinstance(block, CodeBlock):
            lines.extend(_code_lines(block, width))
        elif isinstance(block, Rule):
            lines.append([Segment("─" * width, self.muted)])
        elif isinstance(block, Quote):
            lines.extend(self.indented(block.children, width, depth, "│ ", "│ "))
        elif isinstance(block, ListBlock):
            lines.extend(self.list_block(block, width, depth))
        elif isinstance(block, Table):
            lines.extend(self.table(block, width))
        elif isinstance(block, Details):
            summary = self.spans(block.summary, self.base + Style(bold=True)) or [
                ("Details", self.base + Style(bold=True))
            ]
            lines.extend(self.wrap([("▾ ", self.muted), *summary], width))
            lines.extend(self.indented(block.children, width, depth, "  ", "  "))
        return lines

    def indented(
        self, blocks: tuple[Block, ...], width: int, depth: int, first: str, rest: str
    ) -> list[Line]:
        prefix_cells = cell_len(first)
        if width - prefix_cells < MIN_WIDTH:
            return self.blocks(blocks, width, depth + 1, [])
        inner = self.blocks(blocks, width - prefix_cells, depth + 1, [])
        return [
            [Segment(first if index == 0 else rest, self.muted), *line]
            for index, line in enumerate(inner)
        ] or [[Segment(first.rstrip(), self.muted)]]

    def list_block(self, block: ListBlock, width: int, depth: int) -> list[Line]:
        count = len(block.items)
        if block.ordered:
            markers = [f"{block.start + n}." for n in range(count)]
            marker_cells = max((len(m) for m in markers), default=2) + 1
            markers = [m.rjust(marker_cells - 1) + " " for m in markers]
        else:
            bullet = _BULLETS[depth % len(_BULLETS)]
            marker_cells = 2
            markers = [bullet + " "] * count
        lines: list[Line] = []
        for marker, item in zip(markers, block.items, strict=True):
            if width - marker_cells < MIN_WIDTH:
                inner = self.blocks(item, width, depth + 1, [(marker, self.muted)])
                lines.extend(inner)
                continue
            inner = self.blocks(item, width - marker_cells, depth + 1, [])
            if not inner:
                inner = [[]]
            pad = " " * marker_cells
            for index, line in enumerate(inner):
                lines.append([Segment(marker if index == 0 else pad, self.muted), *line])
        return lines

    def table(self, table: Table, width: int) -> list[Line]:
        columns = min(20, max(len(row) for row in table.rows))
        cells = [
            [
                (
                    inline_text(cell.children).replace("\n", " "),
                    self.base + Style(bold=True) if cell.header else self.base,
                )
                for cell in row[:columns]
            ]
            for row in table.rows
        ]
        widths = [0] * columns
        for row in cells:
            for index, (text, _) in enumerate(row):
                widths[index] = max(widths[index], min(cell_len(text), 200))
        widths = [max(1, w) for w in widths]
        room = width - 3 * (columns - 1)
        while sum(widths) > room and max(widths) > 3:
            widest = widths.index(max(widths))
            widths[widest] -= 1
        lines: list[Line] = []
        separator = Segment(" │ ", self.muted)
        for row_index, row in enumerate(cells):
            line: Line = []
            for index in range(columns):
                text, style = row[index] if index < len(row) else ("", self.base)
                if cell_len(text) > widths[index]:
                    text = chop_cells(text, max(1, widths[index] - 1))[0] + "…"
                if index:
                    line.append(separator)
                line.append(Segment(text + " " * max(0, widths[index] - cell_len(text)), style))
            lines.append(_cut(line, width))
            header = bool(table.rows[row_index]) and all(
                cell.header for cell in table.rows[row_index]
            )
            if header and row_index == 0 and len(cells) > 1:
                lines.append(
                    _cut([Segment("─┼─".join("─" * w for w in widths), self.muted)], width)
                )
        return lines

    # -- inline -------------------------------------------------------------------------

    def spans(self, children: tuple[Inline, ...], style: Style) -> list[Span]:
        spans: list[Span] = []
        look = self.look
        for child in children:
            if isinstance(child, Text):
                text = child.text
                if child.marks & Mark.SUP:
                    text = (
                        text.translate(_SUPERSCRIPT)
                        if set(text) <= _SUPER_CHARS
                        else "^(" + text + ")"
                    )
                elif child.marks & Mark.SUB:
                    text = (
                        text.translate(_SUBSCRIPT) if set(text) <= _SUB_CHARS else "_(" + text + ")"
                    )
                if child.marks is Mark.NONE and child.color is None and child.bg is None:
                    spans.append((text, style))
                else:
                    spans.append(
                        (text, style + _style_for(child.marks, child.color, child.bg, look.code))
                    )
            elif isinstance(child, Break):
                spans.append(("\n", style))
            elif isinstance(child, Link):
                link_style = style + Style(color=look.accent, underline=True, link=child.href)
                inner = self.spans(child.children, link_style)
                spans.extend(inner)
                shown = "".join(text for text, _ in inner).strip()
                if shown not in (child.href, child.href.removeprefix("mailto:")):
                    spans.append(
                        (f" <{child.href}>", style + Style(color=look.muted, link=child.href))
                    )
            elif isinstance(child, Pill):
                spans.append(
                    (
                        self.pill_label(child),
                        style + Style(color=look.accent, bold=True, link=child.href),
                    )
                )
            elif isinstance(child, Spoiler):
                spans.extend(self.spoiler(child, style))
            elif isinstance(child, Image):
                spans.append(
                    (
                        f"[image: {child.alt}]" if child.alt else "[image]",
                        style + Style(color=look.accent),
                    )
                )
            elif isinstance(child, Maths):
                fence = "$$" if child.display else "$"
                spans.append(
                    (f"{fence}{child.latex}{fence}", style + Style(color=look.notice, italic=True))
                )
        return spans

    def pill_label(self, pill: Pill) -> str:
        if pill.kind == "user":
            name = clean_line(self.look.name_of(pill.target), 80)
            if (
                (not name or name == pill.target)
                and pill.text
                and not pill.text.startswith(("http", "matrix:"))
            ):
                name = pill.text
            name = name or pill.target
            return name if name.startswith("@") else "@" + name
        room = self.look.room_name_of(pill.target)
        if isinstance(room, str) and room.strip():
            label = clean_line(room, 80)
            return label if label.startswith("#") else "#" + label
        return pill.target

    def spoiler(self, spoiler: Spoiler, style: Style) -> list[Span]:
        reason = spoiler.reason.strip()
        if self.look.reveal:
            label = f"(spoiler: {reason}) " if reason else "(spoiler) "
            return [
                (label, style + self.muted),
                *self.spans(spoiler.children, style + Style(italic=True)),
            ]
        hidden = min(20, max(3, cell_len(inline_text(spoiler.children))))
        label = f"spoiler: {reason} " if reason else "spoiler "
        return [
            (label, style + Style(color=self.look.muted, italic=True)),
            ("█" * hidden, Style(color=self.look.muted)),
            (" (v to show)", style + Style(color=self.look.muted, dim=True)),
        ]


def _cut(line: Line, width: int) -> Line:
    out: Line = []
    used = 0
    for segment in line:
        cells = cell_len(segment.text)
        if used + cells <= width:
            out.append(segment)
            used += cells
            continue
        if width - used > 0:
            out.append(Segment(chop_cells(segment.text, width - used)[0], segment.style))
        break
    return out


_console = Console(
    file=io.StringIO(),
    width=400,
    color_system="truecolor",
    force_terminal=True,
    legacy_windows=False,
)


@lru_cache(maxsize=64)
def _lexer(language: str) -> Any:  # (a Pygments ``Lexer``: Pygments has no type stubs)
    """The Pygments lexer of a language name, made once (finding one by name scans every
    lexer: 1-2 ms a code block), as Rich's ``Syntax`` finds it (plain text for a name
    Pygments does not know)."""
    from rich.syntax import Syntax

    syntax = Syntax("", language)
    return syntax.lexer or syntax.default_lexer


@lru_cache(maxsize=1)
def _code_theme() -> SyntaxTheme:
    from rich.syntax import Syntax

    return Syntax.get_theme(CODE_THEME)


def _code_lines(block: CodeBlock, width: int) -> list[Line]:
    """A code block: highlighted by Pygments (through Rich), on its own background."""
    code = block.text
    language = block.language if block.language and len(code) <= MAX_HIGHLIGHT else "text"
    from rich.syntax import Syntax

    syntax = Syntax(code, _lexer(language), theme=_code_theme(), word_wrap=False)
    highlighted = syntax.highlight(code)
    background = (
        Style(bgcolor=highlighted.style.bgcolor)
        if isinstance(highlighted.style, Style)
        else Style()
    )
    rows = highlighted.split("\n", allow_blank=True)
    if len(rows) > 1 and not rows[-1].plain:
        rows.pop()  # the highlighter ends the code with a newline of its own
    inner = max(1, width - 2)
    block_cells = min(inner, max((cell_len(row.plain) for row in rows), default=0))
    lines: list[Line] = []
    for row in rows:
        segments = list(row.render(_console, end=""))
        for piece in _fold(segments, inner):
            used = sum(cell_len(s.text) for s in piece)
            lines.append(
                [
                    Segment(" ", background),
                    *piece,
                    Segment(" " * (max(block_cells - used, 0) + 1), background),
                ]
            )
    return lines


def _fold(segments: list[Segment], width: int) -> list[Line]:
    """Hard-wrap one row of segments every ``width`` cells."""
    lines: list[Line] = [[]]
    used = 0
    for segment in segments:
        text, style = segment.text, segment.style
        while text:
            room = width - used
            if room <= 0:
                lines.append([])
                used, room = 0, width
            cells = cell_len(text)
            if cells <= room:
                lines[-1].append(Segment(text, style))
                used += cells
                break
            head = chop_cells(text, room)[0]
            if not head:
                if used == 0:  # a character wider than a whole line: it goes alone
                    head = text[0]
                else:
                    lines.append([])
                    used = 0
                    continue
            lines[-1].append(Segment(head, style))
            used += cell_len(head)
            text = text[len(head) :]
    return lines
