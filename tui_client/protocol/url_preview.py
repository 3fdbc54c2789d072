"""URL previews: the OpenGraph data a homeserver fetched for a link (``/preview_url``).

The answer comes from an arbitrary web page by way of the server, so every field is
untrusted: only strings are taken, cleaned of escape sequences and control characters,
put on one line and bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .sanitize import clean_line

__all__ = ["UrlPreview", "parse_preview"]

#: Bounds on what a preview line may show.
MAX_TITLE = 120
MAX_DESCRIPTION = 240


@dataclass(frozen=True, slots=True)
class UrlPreview:
    """A link's title, description and site name, cleaned; any may be empty."""

    url: str
    title: str
    description: str
    site_name: str

    @property
    def empty(self) -> bool:
        """Whether there is nothing worth showing."""
        return not (self.title or self.description)


def _field(answer: dict[str, Any], key: str, limit: int) -> str:
    value = answer.get(key)
    return clean_line(value, limit).strip() if isinstance(value, str) else ""


def parse_preview(url: str, answer: Any) -> UrlPreview | None:
    """The preview in a ``/preview_url`` answer; ``None`` when it is not an object or
    has neither a title nor a description."""
    if not isinstance(answer, dict):
        return None
    preview = UrlPreview(
        url=url,
        title=_field(answer, "og:title", MAX_TITLE),
        description=_field(answer, "og:description", MAX_DESCRIPTION),
        site_name=_field(answer, "og:site_name", 60),
    )
    return None if preview.empty else preview
