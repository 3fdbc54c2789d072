"""Simplified sliding sync (MSC4186): the request body and the response as a :class:`SyncBatch`.

The response is normalised into the same :class:`~tui_client.protocol.sync.SyncBatch`
that ``/sync`` v2 produces, so the store, crypto and the UI do not know which ran:

- ``rooms`` entries with ``invite_state`` become invited rooms; a room whose newest own
  membership event says ``leave`` or ``ban`` becomes a left room; the rest are joined
  rooms (``required_state`` is their state, ``heroes`` their hero user IDs);
- the extensions fill what v2 has at the top level: ``to_device`` events,
  ``e2ee`` device lists and key counts, global ``account_data``; room account data,
  receipts and typing go to their rooms (a room only named by an extension becomes a
  joined room with just those).

The position the loop passes around is one string holding both ``pos`` and the
``to_device`` extension's ``next_batch`` (:func:`encode_token`); the store keeps them
under their own meta keys (:data:`POS_KEY`, :data:`TO_DEVICE_KEY`), committed with the
batch in :attr:`SyncBatch.tokens`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .requests import Request
from .sync import InvitedRoom, JoinedRoom, LeftRoom, MalformedResponse, SyncBatch

__all__ = [
    "FEATURE",
    "POS_KEY",
    "REQUIRED_STATE",
    "TO_DEVICE_KEY",
    "SlidingResponse",
    "decode_token",
    "encode_token",
    "parse_sliding_sync",
    "sliding_sync",
    "sliding_sync_body",
]

#: The ``/versions`` ``unstable_features`` flag of servers offering it.
FEATURE = "org.matrix.simplified_msc3575"
PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
#: Meta keys of the connection position and of the ``to_device`` extension's token.
POS_KEY = "sliding_pos"
TO_DEVICE_KEY = "to_device_since"
UNKNOWN_POS = "M_UNKNOWN_POS"

#: State every listed room comes with: what the room list, crypto and the space graph read.
REQUIRED_STATE: list[list[str]] = [
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.encryption", ""],
    ["m.room.power_levels", ""],
    ["m.room.join_rules", ""],
    ["m.room.history_visibility", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.tombstone", ""],
    ["m.space.child", "*"],
    ["m.space.parent", "*"],
]

Event = dict[str, Any]


def encode_token(pos: str | None, to_device_since: str | None) -> str:
    """One string for the loop: the connection position and the to-device token."""
    return json.dumps([pos, to_device_since])


def decode_token(token: str | None) -> tuple[str | None, str | None]:
    """The inverse of :func:`encode_token`; anything else is a fresh start."""
    if not token:
        return None, None
    try:
        value = json.loads(token)
    except ValueError:
        return None, None
    if not isinstance(value, list) or len(value) != 2:
        return None, None
    pos, since = value
    return (pos if isinstance(pos, str) else None, since if isinstance(since, str) else None)


def sliding_sync(*, pos: str | None, timeout_ms: int, body: dict[str, Any]) -> Request:
    """``POST .../org.matrix.simplified_msc3575/sync`` (long-polls ``timeout_ms`` when ``pos`` is set)."""
    query: list[tuple[str, str]] = []
    if pos is not None:
        query.append(("pos", pos))
    query.append(("timeout", str(timeout_ms)))
    # A read (the position is only moved on by the next request): repeatable.
    return Request(
        "POST", PATH, query=tuple(query), body=body, timeout=timeout_ms / 1000.0, idempotent=True
    )


def sliding_sync_body(
    *,
    range_end: int,
    to_device_since: str | None,
    subscriptions: Iterable[str] = (),
    list_timeline_limit: int = 10,
    room_timeline_limit: int = 50,
    side_lists: int = 100,
    conn_id: str = "tui_client",
) -> dict[str, Any]:
    """The request body: every room by recency up to ``range_end``, the first
    ``side_lists`` invites, DMs and spaces whatever their place, the open rooms with a
    longer timeline, and the extensions."""

    def listed(end: int, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ranges": [[0, end]],
            "required_state": REQUIRED_STATE,
            "timeline_limit": list_timeline_limit,
        }
        if filters:
            entry["filters"] = filters
        return entry

    side = side_lists - 1
    to_device: dict[str, Any] = {"enabled": True}
    if to_device_since is not None:
        to_device["since"] = to_device_since
    return {
        "conn_id": conn_id,
        "lists": {
            "all": listed(range_end),
            "invites": listed(side, {"is_invite": True}),
            "dms": listed(side, {"is_dm": True}),
            "spaces": listed(side, {"room_types": ["m.space"]}),
        },
        "room_subscriptions": {
            room_id: {"required_state": REQUIRED_STATE, "timeline_limit": room_timeline_limit}
            for room_id in subscriptions
        },
        "extensions": {
            "to_device": to_device,
            "e2ee": {"enabled": True},
            "account_data": {"enabled": True},
            "receipts": {"enabled": True},
            "typing": {"enabled": True},
        },
    }


@dataclass(slots=True)
class SlidingResponse:
    """A parsed response: the batch, its two tokens and each list's room count."""

    batch: SyncBatch
    pos: str
    to_device_since: str | None
    list_counts: dict[str, int] = field(default_factory=dict)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _events(value: object) -> list[Event]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_list(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _own_membership(events: list[Event], own_user_id: str) -> str | None:
    for event in reversed(events):
        if event.get("type") == "m.room.member" and event.get("state_key") == own_user_id:
            membership = _dict(event.get("content")).get("membership")
            return membership if isinstance(membership, str) else None
    return None


def _room(
    room_id: str, data: dict[str, Any], own_user_id: str
) -> JoinedRoom | InvitedRoom | LeftRoom:
    if "invite_state" in data:
        return InvitedRoom(room_id, _events(data.get("invite_state")))
    state = _events(data.get("required_state"))
    timeline = _events(data.get("timeline"))
    prev_batch = data.get("prev_batch")
    prev = prev_batch if isinstance(prev_batch, str) else None
    limited = data.get("limited") is True
    membership = _own_membership(timeline, own_user_id) or _own_membership(state, own_user_id)
    if membership in ("leave", "ban"):
        return LeftRoom(room_id, state=state, timeline=timeline, limited=limited, prev_batch=prev)
    heroes = data.get("heroes")
    hero_ids = (
        [h["user_id"] for h in heroes if isinstance(h, dict) and isinstance(h.get("user_id"), str)]
        if isinstance(heroes, list)
        else None
    )
    return JoinedRoom(
        room_id=room_id,
        state=state,
        timeline=timeline,
        limited=limited,
        prev_batch=prev,
        # Synapse's ``notification_count``/``highlight_count`` are always 0 (and it has no
        # counts per thread): the client counts (engine/notifications.py), so these are
        # left unset and the cache keeps the counts it has.
        heroes=hero_ids or None,
        joined_count=_int(data.get("joined_count")),
        invited_count=_int(data.get("invited_count")),
    )


def parse_sliding_sync(
    data: object, own_user_id: str, *, sent_to_device_since: str | None
) -> SlidingResponse:
    """Normalise a decoded response; :class:`MalformedResponse` only without ``pos``.

    ``sent_to_device_since`` is the token the request carried: kept when the response
    does not move it."""
    if not isinstance(data, dict):
        raise MalformedResponse("sliding sync response is not a JSON object")
    pos = data.get("pos")
    if not isinstance(pos, str) or not pos:
        raise MalformedResponse("sliding sync response has no pos")
    extensions = _dict(data.get("extensions"))
    to_device = _dict(extensions.get("to_device"))
    since = to_device.get("next_batch")
    to_device_since = since if isinstance(since, str) and since else sent_to_device_since

    batch = SyncBatch(next_batch=encode_token(pos, to_device_since))
    batch.tokens = {POS_KEY: pos}
    if to_device_since is not None:
        batch.tokens[TO_DEVICE_KEY] = to_device_since
    joined: dict[str, JoinedRoom] = {}
    left: dict[str, LeftRoom] = {}
    invited: set[str] = set()
    for room_id, room in _dict(data.get("rooms")).items():
        if not isinstance(room_id, str) or not isinstance(room, dict):
            continue
        parsed = _room(room_id, room, own_user_id)
        if isinstance(parsed, InvitedRoom):
            batch.invited.append(parsed)
            invited.add(room_id)
        elif isinstance(parsed, LeftRoom):
            batch.left.append(parsed)
            left[room_id] = parsed
        else:
            batch.joined.append(parsed)
            joined[room_id] = parsed

    def joined_room(room_id: str) -> JoinedRoom | None:
        if room_id in invited or room_id in left:
            return None
        room = joined.get(room_id)
        if room is None:
            room = joined[room_id] = JoinedRoom(room_id)
            batch.joined.append(room)
        return room

    batch.to_device = _events(to_device.get("events"))
    e2ee = _dict(extensions.get("e2ee"))
    device_lists = _dict(e2ee.get("device_lists"))
    batch.device_lists_changed = _str_list(device_lists.get("changed"))
    batch.device_lists_left = _str_list(device_lists.get("left"))
    otk = _dict(e2ee.get("device_one_time_keys_count"))
    batch.one_time_keys_count = {k: v for k, v in otk.items() if _int(v) is not None}
    fallback = e2ee.get("device_unused_fallback_key_types")
    if isinstance(fallback, list):
        batch.unused_fallback_key_types = _str_list(fallback)

    account_data = _dict(extensions.get("account_data"))
    batch.account_data = _events(account_data.get("global"))
    for room_id, events in _dict(account_data.get("rooms")).items():
        if room_id in left:
            left[room_id].account_data.extend(_events(events))
        elif (room := joined_room(room_id)) is not None:
            room.account_data.extend(_events(events))
    for name in ("receipts", "typing"):
        for room_id, event in _dict(_dict(extensions.get(name)).get("rooms")).items():
            if isinstance(event, dict) and (room := joined_room(room_id)) is not None:
                room.ephemeral.append(event)

    counts: dict[str, int] = {}
    for name, entry in _dict(data.get("lists")).items():
        count = _int(_dict(entry).get("count"))
        if count is not None:
            counts[name] = count
    return SlidingResponse(batch, pos, to_device_since, counts)
