"""Builders for crafted ``/sync`` responses and events, shared by the store tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tui_client.protocol.room_state import RoomSummary
from tui_client.protocol.sync import SyncBatch, parse_sync
from tui_client.store.cache import Cache, IngestResult

OWN = "@me:example.org"
_ts = itertools.count(1_700_000_000_000)


def event(
    event_id: str,
    event_type: str = "m.room.message",
    sender: str = "@alice:example.org",
    content: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A timeline event; a text message unless told otherwise."""
    if content is None:
        content = (
            {"msgtype": "m.text", "body": f"body of {event_id}"}
            if event_type == "m.room.message"
            else {}
        )
    return {
        "event_id": event_id,
        "type": event_type,
        "sender": sender,
        "origin_server_ts": next(_ts),
        "content": content,
        **extra,
    }


def message(
    event_id: str, body: str | None = None, sender: str = "@alice:example.org", **extra: Any
) -> dict[str, Any]:
    """An ``m.text`` message."""
    return event(
        event_id,
        content={"msgtype": "m.text", "body": body or f"body of {event_id}"},
        sender=sender,
        **extra,
    )


def state(
    event_id: str,
    event_type: str,
    state_key: str,
    content: dict[str, Any],
    sender: str = "@alice:example.org",
) -> dict[str, Any]:
    """A state event."""
    return event(event_id, event_type, sender, content, state_key=state_key)


def create_event(
    event_id: str, room_version: str, sender: str = "@alice:example.org"
) -> dict[str, Any]:
    """``m.room.create`` of the given room version."""
    return state(
        event_id, "m.room.create", "", {"room_version": room_version, "creator": sender}, sender
    )


def joined_room(
    events: list[dict[str, Any]],
    *,
    state_events: list[dict[str, Any]] | None = None,
    limited: bool = False,
    prev_batch: str | None = None,
    ephemeral: list[dict[str, Any]] | None = None,
    summary: dict[str, Any] | None = None,
    account_data: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``rooms.join`` entry."""
    timeline: dict[str, Any] = {"events": events, "limited": limited}
    if prev_batch is not None:
        timeline["prev_batch"] = prev_batch
    room: dict[str, Any] = {"timeline": timeline, "state": {"events": state_events or []}}
    if ephemeral is not None:
        room["ephemeral"] = {"events": ephemeral}
    if summary is not None:
        room["summary"] = summary
    if account_data is not None:
        room["account_data"] = {"events": account_data}
    return room


def sync_response(
    next_batch: str,
    *,
    join: dict[str, Any] | None = None,
    invite: dict[str, Any] | None = None,
    leave: dict[str, Any] | None = None,
    account_data: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole ``/sync`` response body."""
    rooms: dict[str, Any] = {}
    if join:
        rooms["join"] = join
    if invite:
        rooms["invite"] = invite
    if leave:
        rooms["leave"] = leave
    body: dict[str, Any] = {"next_batch": next_batch, "rooms": rooms}
    if account_data is not None:
        body["account_data"] = {"events": account_data}
    return body


def batch(next_batch: str, **sections: Any) -> SyncBatch:
    """A parsed batch, as the engine hands it to the cache."""
    return parse_sync(sync_response(next_batch, **sections))


class Account:
    """A cache plus the in-memory room list the engine keeps beside it."""

    def __init__(self, path: Path | str, own: str = OWN) -> None:
        self.path = path
        self.cache = Cache(path, own_user_id=own)
        self.rooms: dict[str, RoomSummary] = self.cache.load_summaries()

    def ingest(self, sync: SyncBatch | dict[str, Any]) -> IngestResult:
        """Commit a batch and adopt its summaries, as the engine does."""
        parsed = sync if isinstance(sync, SyncBatch) else parse_sync(sync)
        result = self.cache.ingest_sync(parsed, self.rooms)
        self.rooms.update(result.changed_rooms)
        return result

    def timeline_ids(self, room_id: str) -> list[str]:
        """The room's cached timeline, oldest first, by position."""
        rows = self.cache.execute_readonly(
            "SELECT event_id FROM events WHERE room_id = ? AND pos IS NOT NULL ORDER BY pos",
            (room_id,),
        )
        return [r[0] for r in rows]

    def stored(self, event_id: str) -> dict[str, Any] | None:
        """One cached event."""
        return self.cache.load_events([event_id]).get(event_id)

    def close(self) -> None:
        """Close the cache."""
        self.cache.close()
