"""The document tree :func:`~.html.parse_html` makes of a ``formatted_body``: blocks of
clean, styled inline text, and the walks over it."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "Block",
    "Break",
    "CodeBlock",
    "Details",
    "Document",
    "Heading",
    "Image",
    "Inline",
    "Link",
    "ListBlock",
    "Mark",
    "Maths",
    "Paragraph",
    "Pill",
    "Quote",
    "Rule",
    "Spoiler",
    "Table",
    "TableCell",
    "Text",
    "block_inlines",
    "iter_blocks",
    "iter_inlines",
]


class Mark(enum.Flag):
    """Inline styles a run of text carries."""

    NONE = 0
    BOLD = enum.auto()
    ITALIC = enum.auto()
    UNDERLINE = enum.auto()
    STRIKE = enum.auto()
    CODE = enum.auto()
    SUP = enum.auto()
    SUB = enum.auto()


# -- the tree ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A run of clean text with its styles and colours (``#rrggbb`` or ``None``)."""

    text: str
    marks: Mark = Mark.NONE
    color: str | None = None
    bg: str | None = None


@dataclass(frozen=True, slots=True)
class Break:
    """A line break (``<br>``)."""


@dataclass(frozen=True, slots=True)
class Link:
    """A hyperlink; ``href`` is an http(s), mailto or matrix: URL (never anything else)."""

    href: str
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Pill:
    """A link to a user or room: ``kind`` is ``user``, ``room_alias`` or ``room_id``.

    ``text`` is the sender's fallback text (the name they saw), ``href`` the link.
    """

    kind: str
    target: str
    text: str
    href: str


@dataclass(frozen=True, slots=True)
class Spoiler:
    """Text hidden until the reader asks for it; ``reason`` may be empty."""

    reason: str
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Image:
    """An inline image (``mxc://`` only): shown as its alt text and a media marker."""

    alt: str
    src: str


@dataclass(frozen=True, slots=True)
class Maths:
    """LaTeX source from ``data-mx-maths`` (``display`` for a ``div``)."""

    latex: str
    display: bool = False


Inline: TypeAlias = Text | Break | Link | Pill | Spoiler | Image | Maths


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A run of inline content."""

    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Heading:
    """``h1``..``h6``."""

    level: int
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """``pre``: verbatim text, and the language of its ``language-*`` class if any."""

    language: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Quote:
    """``blockquote``."""

    children: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ListBlock:
    """``ul`` / ``ol``; ``start`` is the first number of an ordered list."""

    ordered: bool
    start: int
    items: tuple[tuple[Block, ...], ...]


@dataclass(frozen=True, slots=True)
class TableCell:
    """A cell; ``header`` for ``th``."""

    header: bool
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of cells (``caption`` becomes a paragraph before the table)."""

    rows: tuple[tuple[TableCell, ...], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """``hr``."""


@dataclass(frozen=True, slots=True)
class Details:
    """``details`` with its ``summary``."""

    summary: tuple[Inline, ...]
    children: tuple[Block, ...]


Block: TypeAlias = Paragraph | Heading | CodeBlock | Quote | ListBlock | Table | Rule | Details


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed ``formatted_body``: blocks of clean, styled text."""

    blocks: tuple[Block, ...]


def iter_blocks(document: Document) -> Iterator[Block]:
    """Every block of ``document``, nested ones included, in document order."""
    stack: list[Block] = list(reversed(document.blocks))
    while stack:
        block = stack.pop()
        yield block
        if isinstance(block, Quote | Details):
            stack.extend(reversed(block.children))
        elif isinstance(block, ListBlock):
            for item in reversed(block.items):
                stack.extend(reversed(item))


def block_inlines(block: Block, *, spoilers: bool = True) -> Iterator[Inline]:
    """The inlines a block holds itself (not those of its nested blocks), nested ones
    included, in order; a spoiler's contents only if ``spoilers`` (the spoiler itself always)."""
    if isinstance(block, Paragraph | Heading):
        yield from _walk_inlines(block.children, spoilers)
    elif isinstance(block, Table):
        for row in block.rows:
            for cell in row:
                yield from _walk_inlines(cell.children, spoilers)
    elif isinstance(block, Details):
        yield from _walk_inlines(block.summary, spoilers)


def iter_inlines(document: Document, *, spoilers: bool = True) -> Iterator[Inline]:
    """Every inline of ``document``, in document order (see :func:`block_inlines`)."""
    for block in iter_blocks(document):
        yield from block_inlines(block, spoilers=spoilers)


def _walk_inlines(children: tuple[Inline, ...], spoilers: bool) -> Iterator[Inline]:
    for child in children:
        yield child
        if isinstance(child, Link) or (isinstance(child, Spoiler) and spoilers):
            yield from _walk_inlines(child.children, spoilers)
