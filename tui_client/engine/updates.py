"""What the engine tells its listeners: plain dataclasses, safe to hand to any thread.

The UI turns each into a Textual message; a bot or a test reads them directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..protocol.room_state import RoomSummary
from ..protocol.timeline import Diff

__all__ = [
    "BatchCommitted",
    "MembersChanged",
    "Notice",
    "RoomListChanged",
    "SessionEnded",
    "SyncState",
    "SyncStatus",
    "TimelineUpdated",
    "TypingChanged",
    "Update",
]


class SyncStatus(enum.Enum):
    """Where the sync loop is."""

    STARTING = "starting"
    SYNCING = "syncing"
    CONNECTED = "connected"
    BACKING_OFF = "retrying"
    OFFLINE = "offline"
    LOGGED_OUT = "logged out"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SyncState:
    """The sync loop's status; ``retry_at`` is a ``time.time()`` when it will try again."""

    status: SyncStatus
    detail: str = ""
    retry_at: float | None = None
    last_success: float | None = None

    def describe(self, now: float) -> str:
        """A short text for the status bar, e.g. ``offline · retrying in 8s``."""
        text = self.status.value
        if self.retry_at is not None:
            seconds = max(0, round(self.retry_at - now))
            text = f"{text} · retrying in {seconds}s" if self.status is SyncStatus.OFFLINE else f"retrying in {seconds}s"
        return text


@dataclass(frozen=True, slots=True)
class RoomListChanged:
    """Some rooms changed; ``rooms`` is the whole current list (any order)."""

    rooms: tuple[RoomSummary, ...]
    changed: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class TimelineUpdated:
    """Diffs to apply to an open room's item list.

    ``version`` counts the room view's updates: a listener that copied the item list
    at version N applies only updates with a higher version.
    """

    room_id: str
    diffs: tuple[Diff, ...]
    version: int = 0


@dataclass(frozen=True, slots=True)
class TypingChanged:
    """Who is typing in a room now."""

    room_id: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MembersChanged:
    """An open room's member list or names changed."""

    room_id: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The server no longer accepts our token. ``soft`` means logging in again keeps the cache."""

    soft: bool
    message: str


@dataclass(frozen=True, slots=True)
class BatchCommitted:
    """A sync batch was committed: every room's new timeline events, raw, in order.

    ``first`` is True for the first batch after the sync loop started; its events
    happened before this session (bots use that to ignore history).
    """

    events: dict[str, tuple[dict[str, Any], ...]]
    first: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to tell the user: ``level`` is ``info``, ``warning`` or ``error``."""

    level: str
    text: str


Update = (
    SyncState
    | RoomListChanged
    | TimelineUpdated
    | TypingChanged
    | MembersChanged
    | SessionEnded
    | Notice
    | BatchCommitted
)
