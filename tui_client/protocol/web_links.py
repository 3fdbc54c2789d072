"""The web (http/https) links of a message, for ``o`` (open) and ``O`` (copy).

Pure: found in the formatted body's links (skipping spoilers the reader has not revealed
and links to Matrix entities, which open inside the client) and in the plain body.
Every URL returned is clean (no controls, no spaces) and at most 2,000 characters.
"""

from __future__ import annotations

import re

from .html import Document, Link, iter_inlines, safe_href

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

    if document is not None:
        for child in iter_inlines(document, spoilers=spoilers):
            if isinstance(child, Link):
                add(child.href)
    if document is None or spoilers:
        # The plain body holds a spoiler's text too: read it only when nothing is hidden.
        for match in _URL.finditer(body[:20000]):
            add(match.group())
    return found
