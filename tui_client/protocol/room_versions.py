"""What a room's version decides for a client: the redaction algorithm and who is a creator.

The room version comes from ``m.room.create``'s ``room_version`` (``"1"`` when absent).
Unknown versions are treated as the newest rules we know, which is what a server
serving them most likely applies.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["RoomVersionRules", "redact", "rules_for"]

_TOP_LEVEL_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
_TOP_LEVEL_V11 = _TOP_LEVEL_V1 - {"prev_state", "origin", "membership"}

_POWER_LEVEL_KEYS = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)

_CONTENT_V1: dict[str, tuple[str, ...]] = {
    "m.room.member": ("membership",),
    "m.room.create": ("creator",),
    "m.room.join_rules": ("join_rule",),
    "m.room.power_levels": _POWER_LEVEL_KEYS,
    "m.room.aliases": ("aliases",),
    "m.room.history_visibility": ("history_visibility",),
}
_CONTENT_V6 = {k: v for k, v in _CONTENT_V1.items() if k != "m.room.aliases"}
_CONTENT_V8 = {**_CONTENT_V6, "m.room.join_rules": ("join_rule", "allow")}
_CONTENT_V9 = {
    **_CONTENT_V8,
    "m.room.member": ("membership", "join_authorised_via_users_server"),
}
_CONTENT_V11 = {
    **_CONTENT_V9,
    "m.room.power_levels": (*_POWER_LEVEL_KEYS, "invite"),
    "m.room.redaction": ("redacts",),
}


@dataclass(frozen=True, slots=True)
class RoomVersionRules:
    """The client-visible rules of one room version."""

    version: str
    top_level_keys: frozenset[str]
    content_keys: dict[str, tuple[str, ...]]
    create_keeps_all_content: bool
    member_keeps_signed_invite: bool
    creators_have_infinite_power: bool
    room_id_has_domain: bool


def rules_for(version: str | None) -> RoomVersionRules:
    """The rules for a room version string (``None`` or ``""`` means version 1)."""
    version = version or "1"
    number = int(version) if version.isascii() and version.isdigit() else None
    if number is not None and number <= 5:
        content, generation = _CONTENT_V1, 1
    elif number is not None and number <= 7:
        content, generation = _CONTENT_V6, 6
    elif number == 8:
        content, generation = _CONTENT_V8, 8
    elif number is not None and number <= 10:
        content, generation = _CONTENT_V9, 9
    elif number == 11:
        content, generation = _CONTENT_V11, 11
    else:
        # 12 and anything newer or unknown (e.g. "org.matrix.hydra.11").
        content, generation = _CONTENT_V11, 12
    return RoomVersionRules(
        version=version,
        top_level_keys=_TOP_LEVEL_V11 if generation >= 11 else _TOP_LEVEL_V1,
        content_keys=content,
        create_keeps_all_content=generation >= 11,
        member_keeps_signed_invite=generation >= 11,
        creators_have_infinite_power=generation >= 12,
        room_id_has_domain=generation < 12,
    )


def redact(
    event: dict[str, Any], room_version: str | None, because: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply the room version's redaction algorithm to an event, as a client does locally.

    Returns a new dict; ``unsigned.redacted_because`` records the redaction event.
    """
    rules = rules_for(room_version)
    redacted = {k: copy.deepcopy(v) for k, v in event.items() if k in rules.top_level_keys}
    event_type = event.get("type")
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    if event_type == "m.room.create" and rules.create_keeps_all_content:
        kept = copy.deepcopy(content)
    else:
        allowed = rules.content_keys.get(event_type, ()) if isinstance(event_type, str) else ()
        kept = {k: copy.deepcopy(content[k]) for k in allowed if k in content}
        if event_type == "m.room.member" and rules.member_keeps_signed_invite:
            invite = content.get("third_party_invite")
            if isinstance(invite, dict) and "signed" in invite:
                kept["third_party_invite"] = {"signed": copy.deepcopy(invite["signed"])}
    redacted["content"] = kept
    unsigned: dict[str, Any] = {}
    if because is not None:
        unsigned["redacted_because"] = because
    old_unsigned = event.get("unsigned")
    if isinstance(old_unsigned, dict) and "transaction_id" in old_unsigned:
        unsigned["transaction_id"] = old_unsigned["transaction_id"]
    redacted["unsigned"] = unsigned
    return redacted
