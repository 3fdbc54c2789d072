"""Find the rooms and users a message links to: ``matrix.to`` links, ``matrix:`` URIs,
room aliases in its text, and the pills and links of its formatted body."""

from __future__ import annotations

import re

from .html import Document, Link, Pill, Spoiler, iter_inlines
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


def document_links(
    document: Document, *, limit: int = 20, spoilers: bool = True
) -> list[MatrixLink]:
    """The distinct users and rooms a formatted body links to (its pills, and links to a
    room or an event in one), in order of appearance; inside spoilers only if ``spoilers``
    (a spoiler the reader has not revealed must not be revealed by listing its links)."""
    found: list[MatrixLink] = []
    seen: set[tuple[str, str]] = set()
    for child in iter_inlines(document, spoilers=spoilers):
        if isinstance(child, Pill):
            href, pill = child.href, child
        elif isinstance(child, Link) and child.href.lower().startswith(
            ("https://matrix.to/#/", "http://matrix.to/#/", "matrix:")
        ):
            href, pill = child.href, None
        else:
            continue
        try:
            link = parse_link(href)
        except InvalidIdentifier:
            if pill is None:
                continue
            link = MatrixLink(kind=pill.kind, identifier=pill.target)
        if (link.kind, link.identifier) not in seen and len(found) < limit:
            seen.add((link.kind, link.identifier))
            found.append(link)
    return found


def has_spoiler(document: Document) -> bool:
    """Whether a formatted body hides anything behind a spoiler."""
    return any(isinstance(child, Spoiler) for child in iter_inlines(document, spoilers=False))
