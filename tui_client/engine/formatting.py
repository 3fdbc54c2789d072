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

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..protocol.sanitize import clean_text, is_clean

if TYPE_CHECKING:  # markdown-it is imported when the first message is formatted
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

__all__ = [
    "HTML_FORMAT",
    "Pill",
    "clean_composed",
    "edit_content",
    "html_to_plain",
    "markdown_to_html",
    "mentioned_user_ids",
    "message_content",
    "pill_url",
    "pills_in",
    "pills_of",
    "place_pills",
    "shift_pills",
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
    """A mention completed in the composer: the ``text`` inserted, the user ID, room
    alias or room ID it names, and where in the message it was completed.

    ``start`` is the offset of that one occurrence in the message text: only it becomes
    a link, never the same words typed elsewhere. ``None`` (a pill read back from a sent
    message) stands for the first occurrence.
    """

    text: str
    target: str
    start: int | None = None

    def at(self, start: int | None) -> Pill:
        """The same pill at another offset."""
        return Pill(self.text, self.target, start)


def pill_url(target: str) -> str:
    """The ``https://matrix.to`` link of a user ID, room alias or room ID."""
    return MATRIX_TO + quote(target, safe=_URL_SAFE)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    md.enable(["strikethrough", "linkify"])
    md.add_render_rule("image", _render_image)
    return md


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Matrix shows only ``mxc://`` images; any other image becomes a link to it."""
    import html  # (with markdown-it, at the first message formatted)

    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    if src.startswith("mxc://"):
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
    return f'<a href="{html.escape(src)}">{html.escape(alt or src)}</a>'


def markdown_to_html(text: str, pills: Sequence[Pill] = ()) -> str | None:
    """The HTML of composer text, or ``None`` when it says nothing the plain text does not.

    Each pill becomes a link to its target at its own place in the text, unless markdown
    puts that place inside code or inside another link: there it stays the text it was.
    """
    import html  # (with markdown-it, at the first message formatted: not at start-up)

    marked = _mark_pills(text, pills)
    md = _markdown()
    env: EnvType = {}
    tokens = md.parse(marked, env)
    _unmark_code_and_links(tokens, pills)
    rendered = md.renderer.render(tokens, md.options, env).strip()
    used = _PLACEHOLDER.search(rendered) is not None
    if not used and _is_plain(rendered, text):
        return None
    rendered = _unwrap_paragraph(rendered)

    def pill(match: re.Match[str]) -> str:
        chosen = pills[int(match.group(1))]
        return f'<a href="{html.escape(pill_url(chosen.target))}">{html.escape(chosen.text)}</a>'

    return _PLACEHOLDER.sub(pill, rendered)


def _mark_pills(text: str, pills: Sequence[Pill]) -> str:
    """The text with each pill's occurrence replaced by a private placeholder (characters
    the composer text cannot hold: any there are dropped first)."""
    if _PILL_OPEN in text or _PILL_CLOSE in text:
        text, pills = _without_markers(text, pills)
    spans: list[tuple[int, int, int]] = []  # start, end, pill index

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in spans)

    for index, chosen in enumerate(pills):
        if not chosen.text:
            continue
        if chosen.start is not None:
            start = chosen.start
            if text.startswith(chosen.text, start) and free(start, start + len(chosen.text)):
                spans.append((start, start + len(chosen.text), index))
            continue
        start = text.find(chosen.text)
        while start != -1 and not free(start, start + len(chosen.text)):
            start = text.find(chosen.text, start + 1)
        if start != -1:
            spans.append((start, start + len(chosen.text), index))
    for start, end, index in sorted(spans, reverse=True):
        text = f"{text[:start]}{_PILL_OPEN}{index}{_PILL_CLOSE}{text[end:]}"
    return text


def _without_markers(text: str, pills: Sequence[Pill]) -> tuple[str, list[Pill]]:
    """Drop placeholder characters from the text, moving the pills after them back."""
    cleaned: list[str] = []
    removed_before: list[int] = []
    removed = 0
    for character in text:
        removed_before.append(removed)
        if character in (_PILL_OPEN, _PILL_CLOSE):
            removed += 1
        else:
            cleaned.append(character)
    removed_before.append(removed)
    moved = [
        chosen
        if chosen.start is None or chosen.start > len(text)
        else chosen.at(chosen.start - removed_before[chosen.start])
        for chosen in pills
    ]
    return "".join(cleaned), moved


def _unmark_code_and_links(
    tokens: Sequence[Token], pills: Sequence[Pill], inside_link: bool = False
) -> None:
    """Put a pill's own text back where markdown made code, a link's text or an image's
    description of it: a mention is never a link inside code or inside another link."""

    def unmark(content: str) -> str:
        return _PLACEHOLDER.sub(lambda match: pills[int(match.group(1))].text, content)

    depth = 1 if inside_link else 0
    for token in tokens:
        if token.type in ("code_inline", "code_block", "fence") or (depth and token.type == "text"):
            token.content = unmark(token.content)
        elif token.type == "link_open":
            depth += 1
        elif token.type == "link_close":
            depth = max(0, depth - 1)
        if token.children:
            _unmark_code_and_links(
                token.children, pills, inside_link=bool(depth) or token.type == "image"
            )


def _unwrap_paragraph(rendered: str) -> str:
    """A message of one paragraph is sent without the ``<p>`` around it (as Element does)."""
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        return rendered[3:-4]
    return rendered


def _is_plain(rendered: str, text: str) -> bool:
    """True when the HTML is only the text again: escaped characters, line breaks and
    paragraphs, nothing a plain-text reader would miss."""
    import html

    inner = rendered.replace("</p>\n<p>", "\n\n").replace("<br />\n", "\n")
    if inner.startswith("<p>") and inner.endswith("</p>"):
        inner = inner[3:-4]
    if "<" in inner:
        return False
    return html.unescape(inner) == "\n".join(line.strip() for line in text.strip().splitlines())


def mentioned_user_ids(formatted_body: str, own_user_id: str | None = None) -> list[str]:
    """The users a formatted body links to (in order, once each, never ourselves)."""
    from .html_text import Anchors  # (html.parser: imported with the first formatted body)

    parser = Anchors.read(formatted_body, MATRIX_TO)
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
    from .html_text import Anchors

    parser = Anchors.read(formatted_body, MATRIX_TO)
    return [
        Pill(text, target)
        for text, target in zip(parser.texts, parser.targets, strict=True)
        if text
    ]


def place_pills(text: str, pills: Iterable[Pill]) -> list[Pill]:
    """The pills of a sent message placed in its plain text, in order: each at the first
    occurrence of its text after the pill before it (pills not found are left out)."""
    placed: list[Pill] = []
    position = 0
    for chosen in pills:
        start = text.find(chosen.text, position) if chosen.text else -1
        if start != -1:
            placed.append(chosen.at(start))
            position = start + len(chosen.text)
    return placed


def html_to_plain(formatted_body: str) -> str:
    """A plain ``body`` for HTML sent as is (``/html``)."""
    from .html_text import html_text

    text = re.sub(r"[ \t]*\n[ \t]*", "\n", html_text(formatted_body))
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
    text, pills = clean_composed(text, pills)
    if formatted_body is not None:
        formatted_body = clean_text(formatted_body)
    elif markdown:
        formatted_body = markdown_to_html(text, pills)
    content: dict[str, Any] = {"msgtype": msgtype, "body": text}
    if formatted_body is not None:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = formatted_body
    content["m.mentions"] = _mentions(text, formatted_body, own_user_id, may_mention_room)
    return content


def clean_composed(text: str, pills: Sequence[Pill] = ()) -> tuple[str, list[Pill]]:
    """The text as it may be sent: no C0 control but newline and tab, no DEL, C1,
    escape sequence or bidi override (``protocol.sanitize.clean_text``), with the pills
    moved to where their text now is.

    The pills and the text between them are cleaned apart, so a pill keeps its place
    and a control character next to it cannot join it into an escape sequence.
    """
    placed = sorted(
        (chosen for chosen in pills_in(text, pills) if chosen.start is not None),
        key=lambda chosen: chosen.start or 0,
    )
    if is_clean(text):
        return text, list(pills_in(text, pills))
    parts: list[str] = []
    moved: list[Pill] = []
    length = 0
    position = 0
    for chosen in placed:
        start = chosen.start or 0
        if start < position:
            continue  # overlaps the pill before it
        between = clean_text(text[position:start])
        parts.append(between)
        length += len(between)
        name = clean_text(chosen.text)
        if name:
            moved.append(Pill(name, chosen.target, length))
        parts.append(name)
        length += len(name)
        position = start + len(chosen.text)
    parts.append(clean_text(text[position:]))
    cleaned = "".join(parts)
    moved.extend(
        Pill(clean_text(chosen.text), chosen.target)
        for chosen in pills
        if chosen.start is None and clean_text(chosen.text)
    )
    return cleaned, moved


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
    """The pills still in ``text`` (the user may have deleted some): at their own offset,
    or anywhere for a pill without one."""
    return [
        chosen
        for chosen in pills
        if chosen.text
        and (
            text.startswith(chosen.text, chosen.start)
            if chosen.start is not None
            else chosen.text in text
        )
    ]


def shift_pills(pills: Iterable[Pill], offset: int) -> list[Pill]:
    """The pills of a text of which the first ``offset`` characters were taken away (a
    command's name, the escape of ``//``); pills inside what was taken are dropped."""
    return [
        chosen if chosen.start is None else chosen.at(chosen.start - offset)
        for chosen in pills
        if chosen.start is None or chosen.start >= offset
    ]
