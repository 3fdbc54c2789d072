"""Reading HTML bodies we sent (:mod:`.formatting`): the ``matrix.to`` links of a formatted
body and its plain text. Apart so that :mod:`html.parser` is imported with the first body
read, not with the composer at start-up (issue 13)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import unquote

__all__ = ["Anchors", "html_text"]


class Anchors(HTMLParser):
    """Collects the targets of the links starting with ``prefix`` (``https://matrix.to/#/``),
    with their text."""

    def __init__(self, prefix: str) -> None:
        super().__init__(convert_charrefs=True)
        self.prefix = prefix
        self.targets: list[str] = []
        self.texts: list[str] = []
        self._inside = False

    @classmethod
    def read(cls, formatted_body: str, prefix: str) -> Anchors:
        """The links of a whole body."""
        parser = cls(prefix)
        parser.feed(formatted_body)
        parser.close()
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        for name, value in attrs:
            if name == "href" and value and value.startswith(self.prefix):
                target = unquote(value[len(self.prefix) :].split("?", 1)[0])
                self.targets.append(target)
                self.texts.append("")
                self._inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.texts[-1] += data


class _Text(HTMLParser):
    """The text of an HTML body: block ends and ``<br>`` become line breaks."""

    _BLOCKS = frozenset(
        {
            "p",
            "div",
            "li",
            "tr",
            "pre",
            "blockquote",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "ul",
            "ol",
            "hr",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "mx-reply":
            self._skip += 1
        elif tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(formatted_body: str) -> str:
    """The text of an HTML body, block ends and ``<br>`` as line breaks, replies left out."""
    parser = _Text()
    parser.feed(formatted_body)
    parser.close()
    return "".join(parser.parts)
