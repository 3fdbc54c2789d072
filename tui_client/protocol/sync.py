"""The ``/sync`` response, normalised into a :class:`SyncBatch`.

The batch is what the cache ingests in one transaction. Every section is optional
and a section of the wrong shape is treated as empty, so one bad room never stops
the others; only a response without ``next_batch`` is rejected. Events are kept as
the decoded dicts (no copies): the store indexes and serialises them directly.

The request side lives elsewhere (``/sync`` v2 today, simplified sliding sync next):
both produce this same batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "InvitedRoom",
    "JoinedRoom",
    "LeftRoom",
    "MalformedResponse",
    "SyncBatch",
    "joined_room",
    "parse_sync",
]

Event = dict[str, Any]


class MalformedResponse(ValueError):
    """A response we cannot use at all (not JSON, no ``next_batch``)."""


@dataclass(slots=True)
class JoinedRoom:
    """A joined room's changes in one sync batch."""

    room_id: str
    state: list[Event] = field(default_factory=list)
    timeline: list[Event] = field(default_factory=list)
    limited: bool = False
    prev_batch: str | None = None
    ephemeral: list[Event] = field(default_factory=list)
    account_data: list[Event] = field(default_factory=list)
    notification_count: int | None = None
    highlight_count: int | None = None
    heroes: list[str] | None = None
    joined_count: int | None = None
    invited_count: int | None = None
    #: ``unread_thread_notifications``: thread root -> (notifications, highlights). With it
    #: the server counts only the main timeline in ``unread_notifications``; the room's
    #: counts above are the sum of both, as before threads were counted apart.
    thread_counts: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class InvitedRoom:
    """A room we are invited to: only stripped state is visible."""

    room_id: str
    invite_state: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class LeftRoom:
    """A room we left or were removed from, with its last events."""

    room_id: str
    state: list[Event] = field(default_factory=list)
    timeline: list[Event] = field(default_factory=list)
    limited: bool = False
    prev_batch: str | None = None
    account_data: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class SyncBatch:
    """One ``/sync`` response, normalised."""

    next_batch: str
    joined: list[JoinedRoom] = field(default_factory=list)
    invited: list[InvitedRoom] = field(default_factory=list)
    left: list[LeftRoom] = field(default_factory=list)
    knocked: list[str] = field(default_factory=list)
    account_data: list[Event] = field(default_factory=list)
    presence: list[Event] = field(default_factory=list)
    to_device: list[Event] = field(default_factory=list)
    device_lists_changed: list[str] = field(default_factory=list)
    device_lists_left: list[str] = field(default_factory=list)
    one_time_keys_count: dict[str, int] = field(default_factory=dict)
    unused_fallback_key_types: list[str] | None = None
    #: Meta keys committed with the batch; ``None``: ``{"next_batch": next_batch}`` (v2).
    tokens: dict[str, str] | None = None

    @property
    def event_count(self) -> int:
        """Timeline and state events in the batch (for statistics)."""
        return sum(len(r.state) + len(r.timeline) for r in self.joined) + sum(
            len(r.state) + len(r.timeline) for r in self.left
        )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _events(section: object) -> list[Event]:
    events = _dict(section).get("events")
    if not isinstance(events, list):
        return []
    return [e for e in events if isinstance(e, dict)]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_list(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def joined_room(room_id: str, data: dict[str, Any]) -> JoinedRoom:
    """One joined room of a response, normalised (sections of the wrong shape: empty)."""
    timeline = _dict(data.get("timeline"))
    summary = _dict(data.get("summary"))
    counts = _dict(data.get("unread_notifications"))
    heroes = summary.get("m.heroes")
    prev_batch = timeline.get("prev_batch")
    thread_counts = _thread_counts(data.get("unread_thread_notifications"))
    notification_count = _int(counts.get("notification_count"))
    highlight_count = _int(counts.get("highlight_count"))
    if thread_counts:
        notification_count = (notification_count or 0) + sum(n for n, _h in thread_counts.values())
        highlight_count = (highlight_count or 0) + sum(h for _n, h in thread_counts.values())
    return JoinedRoom(
        room_id=room_id,
        state=_events(data.get("state")),
        timeline=_events(timeline),
        limited=timeline.get("limited") is True,
        prev_batch=prev_batch if isinstance(prev_batch, str) else None,
        ephemeral=_events(data.get("ephemeral")),
        account_data=_events(data.get("account_data")),
        notification_count=notification_count,
        highlight_count=highlight_count,
        heroes=_str_list(heroes) if isinstance(heroes, list) else None,
        joined_count=_int(summary.get("m.joined_member_count")),
        invited_count=_int(summary.get("m.invited_member_count")),
        thread_counts=thread_counts,
    )


def _thread_counts(value: object) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for root, entry in _dict(value).items():
        if isinstance(root, str) and isinstance(entry, dict):
            notifications = _int(entry.get("notification_count")) or 0
            highlights = _int(entry.get("highlight_count")) or 0
            if notifications or highlights:
                counts[root] = (max(0, notifications), max(0, highlights))
    return counts


def _left(room_id: str, data: dict[str, Any]) -> LeftRoom:
    timeline = _dict(data.get("timeline"))
    prev_batch = timeline.get("prev_batch")
    return LeftRoom(
        room_id=room_id,
        state=_events(data.get("state")),
        timeline=_events(timeline),
        limited=timeline.get("limited") is True,
        prev_batch=prev_batch if isinstance(prev_batch, str) else None,
        account_data=_events(data.get("account_data")),
    )


def parse_sync(data: object) -> SyncBatch:
    """Normalise a decoded ``/sync`` response. Raises :class:`MalformedResponse` only when
    there is no ``next_batch`` (without it, nothing can be committed)."""
    if not isinstance(data, dict):
        raise MalformedResponse("sync response is not a JSON object")
    next_batch = data.get("next_batch")
    if not isinstance(next_batch, str) or not next_batch:
        raise MalformedResponse("sync response has no next_batch")
    rooms = _dict(data.get("rooms"))
    batch = SyncBatch(next_batch=next_batch)
    for room_id, room in _dict(rooms.get("join")).items():
        if isinstance(room, dict):
            batch.joined.append(joined_room(room_id, room))
    for room_id, room in _dict(rooms.get("invite")).items():
        if isinstance(room, dict):
            batch.invited.append(InvitedRoom(room_id, _events(room.get("invite_state"))))
    for room_id, room in _dict(rooms.get("leave")).items():
        if isinstance(room, dict):
            batch.left.append(_left(room_id, room))
    batch.knocked = [r for r in _dict(rooms.get("knock")) if isinstance(r, str)]
    batch.account_data = _events(data.get("account_data"))
    batch.presence = _events(data.get("presence"))
    batch.to_device = _events(data.get("to_device"))
    device_lists = _dict(data.get("device_lists"))
    batch.device_lists_changed = _str_list(device_lists.get("changed"))
    batch.device_lists_left = _str_list(device_lists.get("left"))
    otk = _dict(data.get("device_one_time_keys_count"))
    batch.one_time_keys_count = {k: v for k, v in otk.items() if _int(v) is not None}
    fallback = data.get("device_unused_fallback_key_types")
    if isinstance(fallback, list):
        batch.unused_fallback_key_types = _str_list(fallback)
    return batch
