"""How an event reads in the timeline, as plain safe text (no markup, no styling).

:func:`describe` turns any event into a :class:`Rendered`: a kind that the UI styles
(``text``, ``emote``, ``notice``, ``media``, ``state``, ``redacted``, ``encrypted``,
``unknown``, ``malformed``) and a body that has been through the sanitiser. It never
raises: unknown types and odd contents produce one neutral line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .events import RoomEvent, UnknownEvent
from .sanitize import clean_line, clean_text

if TYPE_CHECKING:  # the HTML parser is imported with the first formatted body (issue 13)
    from .html import Document

__all__ = [
    "HTML_FORMAT",
    "Rendered",
    "describe",
    "formatted_document",
    "message_body",
    "strip_reply_fallback",
]

NameOf = Callable[[str], str]
#: A room's name when it is known (``None`` otherwise), for state lines that name rooms.
RoomNameOf = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered event: its kind and its body text (already sanitised).

    ``formatted`` is the parsed, sanitised ``formatted_body`` of a message sent as
    ``org.matrix.custom.html`` (``None`` otherwise, or when it holds nothing to show).
    """

    kind: str
    body: str
    formatted: Document | None = None


HTML_FORMAT = "org.matrix.custom.html"
_FORMATTED_KINDS = frozenset({"text", "emote", "notice"})


def formatted_document(content: Mapping[str, Any]) -> Document | None:
    """The parsed ``formatted_body`` of message content, if it has one worth showing."""
    if content.get("format") != HTML_FORMAT:
        return None
    html = content.get("formatted_body")
    if not isinstance(html, str) or not html.strip():
        return None
    from .html import parse_html

    try:
        document = parse_html(html)
    except Exception:  # a parser bug must never hide the message: its plain body is shown
        return None
    return document if document.blocks else None


def _default_name(user_id: str) -> str:
    return clean_line(user_id)


def strip_reply_fallback(body: str) -> str:
    """Remove the ``> <@user> quoted`` fallback that older clients prepend to replies."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and lines[index] == "":
        index += 1
    return "\n".join(lines[index:])


_MEDIA_LABELS = {
    "m.image": "image",
    "m.file": "file",
    "m.audio": "audio",
    "m.video": "video",
    "m.location": "location",
}


def message_body(content: Mapping[str, Any], *, is_reply: bool = False) -> Rendered:
    """Render ``m.room.message`` content (also used for an edit's ``m.new_content``)."""
    rendered = _message_body(content, is_reply=is_reply)
    if rendered.kind in _FORMATTED_KINDS:
        document = formatted_document(content)
        if document is not None:
            return Rendered(rendered.kind, rendered.body, document)
    return rendered


def _message_body(content: Mapping[str, Any], *, is_reply: bool = False) -> Rendered:
    msgtype = content.get("msgtype")
    body = content.get("body")
    text = clean_text(body) if isinstance(body, str) else ""
    if is_reply:
        text = strip_reply_fallback(text)
    if msgtype == "m.emote":
        return Rendered("emote", text)
    if msgtype in ("m.notice", "m.server_notice"):
        return Rendered("notice", text)
    if msgtype in _MEDIA_LABELS:
        label = _MEDIA_LABELS[msgtype]
        filename = content.get("filename")
        name = clean_line(filename) if isinstance(filename, str) and filename else clean_line(text)
        if msgtype == "m.location":
            uri = content.get("geo_uri")
            where = clean_line(uri) if isinstance(uri, str) else ""
            return Rendered("media", f"[location] {name} {where}".strip())
        info = content.get("info")
        size = info.get("size") if isinstance(info, dict) else None
        extra = f" ({_human_size(size)})" if isinstance(size, int) and size >= 0 else ""
        return Rendered("media", f"[{label}] {name or label}{extra}")
    if msgtype == "m.key.verification.request":
        return Rendered("notice", "requested to verify keys (verification request)")
    if not isinstance(body, str):
        return Rendered("unknown", "sent a message with no text")
    return Rendered("text", text)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def describe(
    event: RoomEvent | UnknownEvent,
    name_of: NameOf | None = None,
    room_name: RoomNameOf | None = None,
) -> Rendered:
    """Render any event, never raising.

    ``name_of`` gives users' display names; ``room_name`` the names of rooms a state
    event points at (a space's child, a room's parent space), else their ID is shown.
    """
    if isinstance(event, UnknownEvent):
        return Rendered("malformed", f"malformed event ({clean_line(event.reason)})")
    names = name_of or _default_name
    try:
        return _describe(event, names, room_name)
    except Exception as error:  # a renderer bug must never break the timeline
        return Rendered(
            "unknown", f"event of type {clean_line(event.type)} ({type(error).__name__})"
        )


def _describe(event: RoomEvent, names: NameOf, room_name: RoomNameOf | None) -> Rendered:
    content = event.content
    if event.redacted_because is not None and not content:
        return Rendered("redacted", "message deleted")
    event_type = event.type
    if event_type == "m.room.message":
        relation = event.relation
        return message_body(content, is_reply=bool(relation and relation.in_reply_to))
    if event_type == "m.sticker":
        body = content.get("body")
        return Rendered(
            "media", f"[sticker] {clean_line(body) if isinstance(body, str) else ''}".strip()
        )
    if event_type == "m.room.encrypted":
        failure = event.decryption_failure
        reason = failure.get("reason") if failure else None
        if isinstance(reason, str) and reason:
            return Rendered("encrypted", f"unable to decrypt: {clean_line(reason, 200)}")
        return Rendered("encrypted", "encrypted message (waiting for the key)")
    if event_type == "m.room.member":
        return Rendered("state", _membership(event, names))
    if event.state_key is not None:
        return Rendered("state", _state_change(event, names, room_name))
    if event_type.startswith("m.call."):
        return Rendered("notice", _call(event_type))
    if event_type == "m.room.redaction":
        return Rendered("state", "deleted a message")
    if event_type == "m.reaction":
        key = _relates_key(content)
        return Rendered("state", f"reacted with {clean_line(key)}" if key else "reacted")
    return Rendered("unknown", f"sent an event of type {clean_line(event_type, 80)}")


def _relates_key(content: Mapping[str, Any]) -> str | None:
    rel = content.get("m.relates_to")
    key = rel.get("key") if isinstance(rel, dict) else None
    return key if isinstance(key, str) else None


def _call(event_type: str) -> str:
    return {
        "m.call.invite": "started a call",
        "m.call.answer": "answered the call",
        "m.call.hangup": "ended the call",
        "m.call.reject": "rejected the call",
    }.get(event_type, "call signalling")


def _membership(event: RoomEvent, names: NameOf) -> str:
    content = event.content
    prev = event.prev_content
    target = event.state_key or ""
    membership = content.get("membership")
    prev_membership = prev.get("membership")
    target_name = _member_name(content, prev, target)
    actor = names(event.sender)
    reason = content.get("reason")
    because = f": {clean_line(reason, 200)}" if isinstance(reason, str) and reason else ""
    by_self = event.sender == target
    if membership == "join":
        if prev_membership == "join":
            old_name, new_name = prev.get("displayname"), content.get("displayname")
            if old_name != new_name:
                if isinstance(new_name, str) and new_name:
                    if isinstance(old_name, str) and old_name:
                        return f"{clean_line(old_name)} changed their display name to {clean_line(new_name)}"
                    return f"{clean_line(target)} set their display name to {clean_line(new_name)}"
                return f"{clean_line(old_name) if isinstance(old_name, str) else clean_line(target)} removed their display name"
            if prev.get("avatar_url") != content.get("avatar_url"):
                return f"{target_name} changed their avatar"
            return f"{target_name} updated their profile"
        return f"{target_name} joined"
    if membership == "invite":
        return f"{actor} invited {target_name}{because}"
    if membership == "leave":
        if by_self:
            if prev_membership == "invite":
                return f"{target_name} rejected the invitation{because}"
            if prev_membership == "knock":
                return f"{target_name} withdrew their request to join"
            return f"{target_name} left{because}"
        if prev_membership == "ban":
            return f"{actor} unbanned {target_name}{because}"
        if prev_membership == "invite":
            return f"{actor} withdrew {target_name}'s invitation{because}"
        if prev_membership == "knock":
            return f"{actor} rejected {target_name}'s request to join{because}"
        return f"{actor} removed {target_name}{because}"
    if membership == "ban":
        return f"{actor} banned {target_name}{because}"
    if membership == "knock":
        return f"{target_name} asked to join{because}"
    return f"{target_name}'s membership changed"


def _member_name(content: Mapping[str, Any], prev: Mapping[str, Any], user_id: str) -> str:
    for source in (content, prev):
        name = source.get("displayname")
        if isinstance(name, str) and name:
            return clean_line(name)
    return clean_line(user_id)


def _room_label(room_id: str, room_name: RoomNameOf | None) -> str:
    name = room_name(room_id) if room_name is not None and room_id else None
    return (
        clean_line(name, 80) if isinstance(name, str) and name.strip() else clean_line(room_id, 80)
    )


def _state_change(event: RoomEvent, names: NameOf, room_name: RoomNameOf | None = None) -> str:
    actor = names(event.sender)
    content = event.content
    event_type = event.type

    def text(key: str, limit: int = 300) -> str | None:
        value = content.get(key)
        return clean_line(value, limit) if isinstance(value, str) and value else None

    if event_type == "m.room.create":
        kind = "space" if content.get("type") == "m.space" else "room"
        return f"{actor} created the {kind}"
    if event_type == "m.room.name":
        name = text("name")
        return (
            f"{actor} changed the room name to {name}" if name else f"{actor} removed the room name"
        )
    if event_type == "m.room.topic":
        topic = text("topic")
        return f"{actor} changed the topic to: {topic}" if topic else f"{actor} removed the topic"
    if event_type == "m.room.avatar":
        return (
            f"{actor} changed the room avatar"
            if content.get("url")
            else f"{actor} removed the room avatar"
        )
    if event_type == "m.room.canonical_alias":
        alias = text("alias")
        return (
            f"{actor} set the main address to {alias}"
            if alias
            else f"{actor} changed the room addresses"
        )
    if event_type == "m.room.encryption":
        return f"{actor} turned on end-to-end encryption"
    if event_type == "m.room.history_visibility":
        visibility = text("history_visibility") or "unknown"
        return f"{actor} made future history visible to: {visibility}"
    if event_type == "m.room.join_rules":
        rule = text("join_rule") or "unknown"
        return f"{actor} changed who can join to: {rule}"
    if event_type == "m.room.guest_access":
        access = text("guest_access") or "unknown"
        return f"{actor} set guest access to: {access}"
    if event_type == "m.room.power_levels":
        return f"{actor} changed the power levels"
    if event_type == "m.room.pinned_events":
        return f"{actor} changed the pinned messages"
    if event_type == "m.room.server_acl":
        return f"{actor} changed the server access control list"
    if event_type == "m.room.tombstone":
        body = text("body")
        return f"{actor} replaced this room" + (f": {body}" if body else "")
    if event_type == "m.room.third_party_invite":
        name = text("display_name")
        return f"{actor} invited {name or 'someone'} by third-party invite"
    if event_type == "m.space.child":
        room = _room_label(event.state_key or "", room_name)
        return (
            f"{actor} added {room} to the space"
            if content.get("via")
            else f"{actor} removed {room} from the space"
        )
    if event_type == "m.space.parent":
        room = _room_label(event.state_key or "", room_name)
        return (
            f"{actor} set the parent space to {room}"
            if content.get("via")
            else f"{actor} removed a parent space"
        )
    return f"{actor} changed the room state ({clean_line(event_type, 80)})"
