"""Small builders of raw events for the timeline and render tests."""

from __future__ import annotations

from typing import Any

from tui_client.protocol.events import RoomEvent, parse_event

ME = "@me:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"


def event(
    event_id: str,
    event_type: str,
    content: dict[str, Any],
    *,
    sender: str = ALICE,
    ts: int = 1000,
    state_key: str | None = None,
    unsigned: dict[str, Any] | None = None,
    **top_level: Any,
) -> RoomEvent:
    """A parsed room event; fails the test if it does not parse."""
    raw: dict[str, Any] = {
        "event_id": event_id,
        "type": event_type,
        "sender": sender,
        "origin_server_ts": ts,
        "room_id": ROOM,
        "content": content,
        **top_level,
    }
    if state_key is not None:
        raw["state_key"] = state_key
    if unsigned is not None:
        raw["unsigned"] = unsigned
    parsed = parse_event(raw)
    assert isinstance(parsed, RoomEvent), parsed
    return parsed


def text(
    event_id: str, body: str, *, sender: str = ALICE, ts: int = 1000, **kwargs: Any
) -> RoomEvent:
    """An ``m.text`` message."""
    return event(
        event_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        sender=sender,
        ts=ts,
        **kwargs,
    )


def edit(
    event_id: str, target: str, body: str, *, sender: str = ALICE, ts: int = 2000
) -> RoomEvent:
    """An ``m.replace`` edit of ``target``."""
    return event(
        event_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
        sender=sender,
        ts=ts,
    )


def reaction(
    event_id: str, target: str, key: str, *, sender: str = ALICE, ts: int = 2000
) -> RoomEvent:
    """An ``m.annotation`` reaction to ``target``."""
    return event(
        event_id,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
        sender=sender,
        ts=ts,
    )


def redaction(
    event_id: str, target: str, *, sender: str = ALICE, in_content: bool = True
) -> RoomEvent:
    """An ``m.room.redaction``: ``redacts`` in content (v11+) or at the top level (older)."""
    if in_content:
        return event(event_id, "m.room.redaction", {"redacts": target}, sender=sender, ts=3000)
    return event(event_id, "m.room.redaction", {}, sender=sender, ts=3000, redacts=target)


def reply(
    event_id: str, parent: str, body: str, *, sender: str = BOB, fallback: str | None = None
) -> RoomEvent:
    """A rich reply to ``parent``, optionally with an old-style quoted fallback."""
    full = body if fallback is None else f"> <{ALICE}> {fallback}\n\n{body}"
    return event(
        event_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": full,
            "m.relates_to": {"m.in_reply_to": {"event_id": parent}},
        },
        sender=sender,
        ts=1500,
    )


def thread_reply(event_id: str, root: str, body: str, *, sender: str = BOB) -> RoomEvent:
    """A message in the thread of ``root`` (with the reply fallback clients send)."""
    return event(
        event_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": body,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        },
        sender=sender,
        ts=1500,
    )
