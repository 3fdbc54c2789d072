"""Room events: parsing that never raises, relations, and the fields the cache indexes.

A well-formed event of any type, known or not, becomes a :class:`RoomEvent`. Input
that is not a usable event (a missing or mistyped ``event_id``, ``type``, ``sender``
or ``content``) becomes an :class:`UnknownEvent` carrying the reason; nothing here
raises into the sync loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DECRYPTION_FAILURE",
    "ENCRYPTION_INFO",
    "EventIndex",
    "Relation",
    "RoomEvent",
    "UnknownEvent",
    "index_event",
    "parse_event",
    "relation_of",
]

MESSAGE_LIKE_WITH_BODY = frozenset({"m.room.message", "m.sticker"})

# Keys the client itself adds to ``unsigned`` of events it decrypted (or could not):
# how a decrypted event was protected ({"trust": ..., "session_id": ...}), and why an
# event could not be decrypted ({"code": ..., "reason": ..., "session_id": ...}).
ENCRYPTION_INFO = "io.tui_client.encryption"
DECRYPTION_FAILURE = "io.tui_client.utd"


@dataclass(frozen=True, slots=True)
class Relation:
    """How an event relates to another (``m.relates_to``).

    ``rel_type`` is ``m.replace``, ``m.annotation``, ``m.thread``, ``m.reference`` or
    another string; ``in_reply_to`` is set for rich replies (also inside threads).
    """

    rel_type: str | None
    event_id: str | None
    key: str | None = None
    in_reply_to: str | None = None
    is_falling_back: bool = False


def relation_of(content: object) -> Relation | None:
    """Parse ``content["m.relates_to"]``; ``None`` when absent or unusable."""
    if not isinstance(content, dict):
        return None
    rel = content.get("m.relates_to")
    if not isinstance(rel, dict):
        return None
    rel_type = rel.get("rel_type")
    event_id = rel.get("event_id")
    key = rel.get("key")
    reply = rel.get("m.in_reply_to")
    in_reply_to = reply.get("event_id") if isinstance(reply, dict) else None
    relation = Relation(
        rel_type=rel_type if isinstance(rel_type, str) else None,
        event_id=event_id if isinstance(event_id, str) and event_id else None,
        key=key if isinstance(key, str) else None,
        in_reply_to=in_reply_to if isinstance(in_reply_to, str) and in_reply_to else None,
        is_falling_back=rel.get("is_falling_back") is True,
    )
    if relation.event_id is None and relation.in_reply_to is None:
        return None
    return relation


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """A well-formed room event (timeline or state), of any type."""

    event_id: str
    type: str
    sender: str
    origin_server_ts: int
    content: dict[str, Any]
    state_key: str | None = None
    unsigned: dict[str, Any] = field(default_factory=dict)
    room_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_state(self) -> bool:
        """True for state events (they carry a ``state_key``)."""
        return self.state_key is not None

    @property
    def relation(self) -> Relation | None:
        """The event's ``m.relates_to``, parsed."""
        return relation_of(self.content)

    @property
    def transaction_id(self) -> str | None:
        """``unsigned.transaction_id``: present on our own events sent from this device."""
        txn = self.unsigned.get("transaction_id")
        return txn if isinstance(txn, str) else None

    @property
    def prev_content(self) -> dict[str, Any]:
        """``unsigned.prev_content`` for state events, or an empty dict."""
        prev = self.unsigned.get("prev_content")
        return prev if isinstance(prev, dict) else {}

    @property
    def encryption_info(self) -> dict[str, Any] | None:
        """For a decrypted event: how it was protected (added by our crypto layer)."""
        info = self.unsigned.get(ENCRYPTION_INFO)
        return info if isinstance(info, dict) else None

    @property
    def decryption_failure(self) -> dict[str, Any] | None:
        """For an event we could not decrypt: the code and reason (added by our crypto layer)."""
        info = self.unsigned.get(DECRYPTION_FAILURE)
        return info if isinstance(info, dict) else None

    @property
    def redacted_because(self) -> dict[str, Any] | None:
        """The redaction event that redacted this event, if the server says so."""
        because = self.unsigned.get("redacted_because")
        return because if isinstance(because, dict) else None

    @property
    def redacts(self) -> str | None:
        """For ``m.room.redaction``: the redacted event (in content since v11, top level before)."""
        if self.type != "m.room.redaction":
            return None
        target = self.content.get("redacts")
        if not isinstance(target, str):
            target = self.raw.get("redacts")
        return target if isinstance(target, str) and target else None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Something in an event's place that is not a usable event, and why."""

    raw: Any
    reason: str
    event_id: str | None = None
    type: str = "m.unknown"


def parse_event(raw: object, room_id: str | None = None) -> RoomEvent | UnknownEvent:
    """Parse one room event from decoded JSON. Never raises."""
    if not isinstance(raw, dict):
        return UnknownEvent(raw, f"event is a {type(raw).__name__}, not an object")
    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return UnknownEvent(raw, "event has no event_id")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type:
        return UnknownEvent(raw, "event has no type", event_id)
    sender = raw.get("sender")
    if not isinstance(sender, str) or not sender:
        return UnknownEvent(raw, "event has no sender", event_id, event_type)
    content = raw.get("content")
    if not isinstance(content, dict):
        return UnknownEvent(raw, "event content is not an object", event_id, event_type)
    ts = raw.get("origin_server_ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        ts = 0
    state_key = raw.get("state_key")
    unsigned = raw.get("unsigned")
    rid = raw.get("room_id")
    return RoomEvent(
        event_id=event_id,
        type=event_type,
        sender=sender,
        origin_server_ts=ts,
        content=content,
        state_key=state_key if isinstance(state_key, str) else None,
        unsigned=unsigned if isinstance(unsigned, dict) else {},
        room_id=rid if isinstance(rid, str) else room_id,
        raw=raw,
    )


# The columns the cache indexes for every stored event, in this order.
EventIndex = tuple[
    str,  # event_id
    str,  # type
    str,  # sender
    int,  # origin_server_ts
    "str | None",  # state_key
    "str | None",  # rel_type ("m.in_reply_to" is not a relation type and is not indexed)
    "str | None",  # relates_to (event ID)
    "str | None",  # rel_key (annotation key)
    "str | None",  # transaction_id
]


def index_event(raw: object) -> EventIndex | None:
    """Extract the indexed fields of an event, fast; ``None`` if it is not a usable event.

    This runs once per event during sync ingest, so it reads the dict directly
    instead of building a :class:`RoomEvent`.
    """
    if type(raw) is not dict:
        return None
    event_id = raw.get("event_id")
    event_type = raw.get("type")
    sender = raw.get("sender")
    content = raw.get("content")
    # Only an ID and a type are needed to store an event; one whose sender or content
    # is broken is kept too, and shown as a single "malformed event" line.
    if type(event_id) is not str or type(event_type) is not str or not event_id or not event_type:
        return None
    if type(sender) is not str:
        sender = ""
    if type(content) is not dict:
        content = {}
    ts = raw.get("origin_server_ts")
    if type(ts) is not int:
        ts = 0
    state_key = raw.get("state_key")
    if state_key is not None and type(state_key) is not str:
        state_key = None
    rel_type = relates_to = rel_key = None
    rel = content.get("m.relates_to")
    if type(rel) is dict:
        value = rel.get("rel_type")
        target = rel.get("event_id")
        if type(value) is str and type(target) is str:
            rel_type, relates_to = value, target
            key = rel.get("key")
            if type(key) is str:
                rel_key = key
    txn_id = None
    unsigned = raw.get("unsigned")
    if type(unsigned) is dict:
        txn = unsigned.get("transaction_id")
        if type(txn) is str:
            txn_id = txn
    return (event_id, event_type, sender, ts, state_key, rel_type, relates_to, rel_key, txn_id)
