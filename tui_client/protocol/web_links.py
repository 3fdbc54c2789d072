"""The web (http/https) links of a message, for ``o`` (open) and ``O`` (copy).

Pure: found in the formatted body's links (skipping spoilers the reader has not revealed
and links to Matrix entities, which open inside the client) and in the plain body.
Every URL returned is clean (no controls, no spaces) and at most 2,000 characters.
"""

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
    Quote,
    Spoiler,
    Table,
    safe_href,
)

__all__ = ["web_links"]

_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_MAX_URL = 2000
_MATRIX = ("https://matrix.to/", "http://matrix.to/")


def _clean(url: str) -> str | None:
    url = url.rstrip(".,;:!?)]}'\"")
    safe = safe_href(url)
    if safe is None or len(safe) > _MAX_URL or not safe.lower().startswith(("http://", "https://")):
        return None
    if safe.lower().startswith(_MATRIX):
        return None
    return safe


def web_links(
    body: str, document: Document | None = None, *, spoilers: bool = True, limit: int = 20
) -> list[str]:
    """The distinct http(s) links of a message, formatted ones first, in order."""
    found: list[str] = []

    def add(url: str) -> None:
        cleaned = _clean(url)
        if cleaned is not None and cleaned not in found and len(found) < limit:
            found.append(cleaned)

    def inlines(children: tuple[Inline, ...]) -> None:
        for child in children:
            if isinstance(child, Link):
                add(child.href)
                inlines(child.children)
            elif isinstance(child, Spoiler) and spoilers:
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

    if document is not None:
        blocks(document.blocks)
    if document is None or spoilers:
        # The plain body holds a spoiler's text too: read it only when nothing is hidden.
        for match in _URL.finditer(body[:20000]):
            add(match.group())
    return found
