"""Find the rooms and users a message links to: ``matrix.to`` links, ``matrix:`` URIs,
room aliases in its text, and the pills and links of its formatted body."""

from __future__ import annotations

import re

from .html import (
    Block,
    Details,
    Document,
    Heading,
    Inline,
    Link,
    ListBlock,
    Paragraph,
    Pill,
    Quote,
    Spoiler,
    Table,
)
from .ids import InvalidIdentifier, MatrixLink, parse_link

__all__ = ["document_links", "find_room_links"]

_CANDIDATES = re.compile(
    r"""
      https?://matrix\.to/\#/[^\s<>"']+
    | matrix:(?:r|room|roomid)/[^\s<>"']+
    | (?<![\w/#@!])\#[^\s:#'"<>]+:[A-Za-z0-9.\-]+(?::[0-9]{1,5})?
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Punctuation that ends a sentence rather than the link.
_TRAILING = ".,;:!?)]}>'\""


def find_room_links(text: str, *, limit: int = 20) -> list[MatrixLink]:
    """The distinct rooms ``text`` links to, in order of appearance (users are left out)."""
    found: list[MatrixLink] = []
    seen: set[str] = set()
    for match in _CANDIDATES.finditer(text):
        candidate = match.group(0).rstrip(_TRAILING)
        try:
            link = parse_link(candidate)
        except InvalidIdentifier:
            continue
        if link.kind not in ("room_id", "room_alias") or link.identifier in seen:
            continue
        seen.add(link.identifier)
        found.append(link)
        if len(found) >= limit:
            break
    return found


def document_links(document: Document, *, limit: int = 20, spoilers: bool = True) -> list[MatrixLink]:
    """The distinct users and rooms a formatted body links to (its pills, and links to a
    room or an event in one), in order of appearance; inside spoilers only if ``spoilers``
    (a spoiler the reader has not revealed must not be revealed by listing its links)."""
    return _walk_links(document, limit, spoilers)[0]


def has_spoiler(document: Document) -> bool:
    """Whether a formatted body hides anything behind a spoiler."""
    return bool(_walk_links(document, 0, False)[1])


def _walk_links(document: Document, limit: int, spoilers: bool) -> tuple[list[MatrixLink], list[Spoiler]]:
    found: list[MatrixLink] = []
    hidden: list[Spoiler] = []
    seen: set[tuple[str, str]] = set()

    def add(href: str, pill: Pill | None = None) -> None:
        try:
            link = parse_link(href)
        except InvalidIdentifier:
            if pill is None:
                return
            link = MatrixLink(kind=pill.kind, identifier=pill.target)
        if (link.kind, link.identifier) not in seen and len(found) < limit:
            seen.add((link.kind, link.identifier))
            found.append(link)

    def inlines(children: tuple[Inline, ...]) -> None:
        for child in children:
            if isinstance(child, Pill):
                add(child.href, child)
            elif isinstance(child, Link):
                if child.href.lower().startswith(("https://matrix.to/#/", "http://matrix.to/#/", "matrix:")):
                    add(child.href)
                inlines(child.children)
            elif isinstance(child, Spoiler):
                hidden.append(child)
                if spoilers:
                    inlines(child.children)

    def blocks(children: tuple[Block, ...]) -> None:
        for block in children:
            if isinstance(block, Paragraph | Heading):
                inlines(block.children)
            elif isinstance(block, Quote):
                blocks(block.children)
            elif isinstance(block, ListBlock):
                for item in block.items:
                    blocks(item)
            elif isinstance(block, Table):
                for row in block.rows:
                    for cell in row:
                        inlines(cell.children)
            elif isinstance(block, Details):
                inlines(block.summary)
                blocks(block.children)

    blocks(document.blocks)
    return found, hidden
