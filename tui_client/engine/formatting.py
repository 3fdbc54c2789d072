"""What we send: composer text as CommonMark turned into Matrix HTML, with mentions.

The composer's text is the plain ``body``; ``formatted_body`` (``org.matrix.custom.html``)
is added only when the markdown means more than the plain text (``hello`` sends none).
HTML the user types is escaped, never passed through (markdown-it's ``html`` option is
off). Mentions completed in the composer arrive as :class:`Pill` (the text inserted and
the user or room it names); each becomes a ``https://matrix.to`` link in the HTML and a
user ID in ``m.mentions``, which every message carries (an empty object when nobody is
mentioned), as ``mentions.md`` recommends.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, unquote

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = [
    "HTML_FORMAT",
    "Pill",
    "edit_content",
    "html_to_plain",
    "markdown_to_html",
    "mentioned_user_ids",
    "message_content",
    "pill_url",
    "pills_of",
]

HTML_FORMAT = "org.matrix.custom.html"
MATRIX_TO = "https://matrix.to/#/"
# Characters a matrix.to link keeps as they are ('#' of an alias is escaped: it would
# start a second fragment).
_URL_SAFE = "@:!$&'()*+,;=-._~"
# An "@room" written as a word, not inside an address or a longer word.
_ROOM_MENTION = re.compile(r"(?<![\w@.:/-])@room(?![\w:-])")
# Stand-ins for pills while markdown runs, from the private use area: a display name's
# own "*" or "_" never becomes emphasis and never gets linkified.
_PILL_OPEN, _PILL_CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_PILL_OPEN}(\\d+){_PILL_CLOSE}")


@dataclass(frozen=True, slots=True)
class Pill:
    """A mention completed in the composer: the ``text`` inserted and the user ID, room
    alias or room ID it names."""

    text: str
    target: str


def pill_url(target: str) -> str:
    """The ``https://matrix.to`` link of a user ID, room alias or room ID."""
    return MATRIX_TO + quote(target, safe=_URL_SAFE)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    md.enable(["strikethrough", "linkify"])
    md.add_render_rule("image", _render_image)
    return md


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Matrix shows only ``mxc://`` images; any other image becomes a link to it."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    if src.startswith("mxc://"):
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
    return f'<a href="{html.escape(src)}">{html.escape(alt or src)}</a>'


def markdown_to_html(text: str, pills: Sequence[Pill] = ()) -> str | None:
    """The HTML of composer text, or ``None`` when it says nothing the plain text does not.

    Each pill's text (every place it still appears) becomes a link to its target.
    """
    marked, used = _mark_pills(text, pills)
    rendered = _markdown().render(marked).strip()
    if not used and _is_plain(rendered, text):
        return None
    rendered = _unwrap_paragraph(rendered)

    def pill(match: re.Match[str]) -> str:
        chosen = pills[int(match.group(1))]
        return f'<a href="{html.escape(pill_url(chosen.target))}">{html.escape(chosen.text)}</a>'

    return _PLACEHOLDER.sub(pill, rendered)


def _mark_pills(text: str, pills: Sequence[Pill]) -> tuple[str, bool]:
    text = text.replace(_PILL_OPEN, "").replace(_PILL_CLOSE, "")
    used = False
    # Longest first: "Bob Smith" is one pill, not "Bob" followed by " Smith".
    for index, chosen in sorted(enumerate(pills), key=lambda pair: -len(pair[1].text)):
        if chosen.text and chosen.text in text:
            text = text.replace(chosen.text, f"{_PILL_OPEN}{index}{_PILL_CLOSE}")
            used = True
    return text, used


def _unwrap_paragraph(rendered: str) -> str:
    """A message of one paragraph is sent without the ``<p>`` around it (as Element does)."""
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        return rendered[3:-4]
    return rendered


def _is_plain(rendered: str, text: str) -> bool:
    """True when the HTML is only the text again: escaped characters, line breaks and
    paragraphs, nothing a plain-text reader would miss."""
    inner = rendered.replace("</p>\n<p>", "\n\n").replace("<br />\n", "\n")
    if inner.startswith("<p>") and inner.endswith("</p>"):
        inner = inner[3:-4]
    if "<" in inner:
        return False
    return html.unescape(inner) == "\n".join(line.strip() for line in text.strip().splitlines())


class _Anchors(HTMLParser):
    """Collects the targets of ``https://matrix.to`` links, with their text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.targets: list[str] = []
        self.texts: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        for name, value in attrs:
            if name == "href" and value and value.startswith(MATRIX_TO):
                target = unquote(value[len(MATRIX_TO) :].split("?", 1)[0])
                self.targets.append(target)
                self.texts.append("")
                self._inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.texts[-1] += data


def mentioned_user_ids(formatted_body: str, own_user_id: str | None = None) -> list[str]:
    """The users a formatted body links to (in order, once each, never ourselves)."""
    parser = _Anchors()
    parser.feed(formatted_body)
    parser.close()
    found: list[str] = []
    for target in parser.targets:
        if (
            target.startswith("@")
            and ":" in target
            and target != own_user_id
            and target not in found
        ):
            found.append(target)
    return found


def pills_of(formatted_body: str) -> list[Pill]:
    """The pills of a message we sent (to keep them when it is edited)."""
    parser = _Anchors()
    parser.feed(formatted_body)
    parser.close()
    return [
        Pill(text, target)
        for text, target in zip(parser.texts, parser.targets, strict=True)
        if text
    ]


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


def html_to_plain(formatted_body: str) -> str:
    """A plain ``body`` for HTML sent as is (``/html``)."""
    parser = _Text()
    parser.feed(formatted_body)
    parser.close()
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(parser.parts))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _mentions(
    body: str, formatted_body: str | None, own_user_id: str | None, may_mention_room: bool
) -> dict[str, Any]:
    mentions: dict[str, Any] = {}
    if formatted_body is not None:
        users = mentioned_user_ids(formatted_body, own_user_id)
        if users:
            mentions["user_ids"] = users
    if may_mention_room and _ROOM_MENTION.search(body):
        mentions["room"] = True
    return mentions


def message_content(
    text: str,
    *,
    msgtype: str = "m.text",
    pills: Sequence[Pill] = (),
    own_user_id: str | None = None,
    may_mention_room: bool = False,
    markdown: bool = True,
    formatted_body: str | None = None,
) -> dict[str, Any]:
    """The content of a message written in the composer.

    ``markdown=False`` sends the text as it is (``/plain``); ``formatted_body`` sends
    that HTML (already sanitised) with ``text`` as its plain body (``/html``).
    ``may_mention_room`` is whether our power level lets ``@room`` notify the room.
    """
    if formatted_body is None and markdown:
        formatted_body = markdown_to_html(text, pills)
    content: dict[str, Any] = {"msgtype": msgtype, "body": text}
    if formatted_body is not None:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = formatted_body
    content["m.mentions"] = _mentions(text, formatted_body, own_user_id, may_mention_room)
    return content


def edit_content(
    event_id: str, new_content: Mapping[str, Any], original_content: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An ``m.replace`` of ``event_id`` with ``new_content`` (see ``event_replacements.md``).

    The outer content is the ``* `` fallback for clients without edits; its
    ``m.mentions`` holds only the users this edit newly mentions, so nobody already
    notified by the original is notified again.
    """
    content: dict[str, Any] = {
        "msgtype": new_content.get("msgtype", "m.text"),
        "body": f"* {new_content.get('body', '')}",
    }
    if "formatted_body" in new_content:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = f"* {new_content['formatted_body']}"
    new_mentions = new_content.get("m.mentions")
    outer: dict[str, Any] = {}
    if isinstance(new_mentions, dict):
        before = _user_ids(original_content.get("m.mentions") if original_content else None)
        added = [user for user in _user_ids(new_mentions) if user not in before]
        if added:
            outer["user_ids"] = added
        if new_mentions.get("room") is True and not (
            original_content and _said_room(original_content)
        ):
            outer["room"] = True
    content["m.mentions"] = outer
    content["m.new_content"] = dict(new_content)
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": event_id}
    return content


def _user_ids(mentions: object) -> list[str]:
    if not isinstance(mentions, dict):
        return []
    users = mentions.get("user_ids")
    return [user for user in users if isinstance(user, str)] if isinstance(users, list) else []


def _said_room(content: Mapping[str, Any]) -> bool:
    mentions = content.get("m.mentions")
    return isinstance(mentions, dict) and mentions.get("room") is True


def pills_in(text: str, pills: Iterable[Pill]) -> list[Pill]:
    """The pills whose text is still in ``text`` (the user may have deleted some)."""
    return [chosen for chosen in pills if chosen.text and chosen.text in text]
