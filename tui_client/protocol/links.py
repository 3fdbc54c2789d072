"""Find the rooms a message links to: ``matrix.to`` links, ``matrix:`` URIs, room aliases."""

from __future__ import annotations

import re

from .ids import InvalidIdentifier, MatrixLink, parse_link

__all__ = ["find_room_links"]

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
