"""What the engine tells its listeners: plain dataclasses, safe to hand to any thread.

The UI turns each into a Textual message; a bot or a test reads them directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol.room_state import RoomSummary
from ..protocol.spaces import SpaceGraph
from ..protocol.timeline import Diff

if TYPE_CHECKING:
    # Named in annotations only: start-up need not import cross-signing or verification.
    from ..crypto.cross_signing import CrossSigningStatus, UserIdentity
    from ..crypto.verification import Verification

__all__ = [
    "BackupStatus",
    "BatchCommitted",
    "CrossSigningChanged",
    "CryptoStoreUpgrade",
    "IdentityWarnings",
    "JoinProgress",
    "JoinStatus",
    "KeyRestoreProgress",
    "MembersChanged",
    "Notice",
    "PresenceChanged",
    "PushNotification",
    "ReceiptsChanged",
    "RecoverySuggested",
    "Reminder",
    "RoomListChanged",
    "SessionEnded",
    "SpacesChanged",
    "SyncState",
    "SyncStatus",
    "ThreadUnreadChanged",
    "ThreadUpdated",
    "TimelineUpdated",
    "TrustChanged",
    "TypingChanged",
    "Update",
    "UploadProgress",
    "VerificationChanged",
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
    #: Which sync runs (``sync v2``, ``sliding sync``); the status bar names it.
    mode: str = ""

    def describe(self, now: float) -> str:
        """A short text for the status bar, e.g. ``offline · retrying in 8s``."""
        text = self.status.value
        if self.retry_at is not None:
            seconds = max(0, round(self.retry_at - now))
            text = (
                f"{text} · retrying in {seconds}s"
                if self.status is SyncStatus.OFFLINE
                else f"retrying in {seconds}s"
            )
        if self.mode:
            text = f"{text} · {self.mode}"
        return text


@dataclass(frozen=True, slots=True)
class StorageChanged:
    """The cache cannot be written (``problem``: "the disk is full", ...) or, with None,
    can be again (engine/storage.py)."""

    problem: str | None


@dataclass(frozen=True, slots=True)
class CacheDamageFound:
    """The cache file was found damaged while running (engine/cache_damage.py): nothing
    more is written to it; the UI offers the rebuild (``reason``: SQLite's words)."""

    reason: str


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
class ThreadUpdated:
    """Diffs to apply to an open thread's item list (as :class:`TimelineUpdated` for a room)."""

    room_id: str
    root_id: str
    diffs: tuple[Diff, ...]
    version: int = 0


@dataclass(frozen=True, slots=True)
class ThreadUnreadChanged:
    """A room's unread counts per thread changed: ``counts`` is root -> (notifications,
    highlights), threads with nothing unread left out."""

    room_id: str
    counts: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class ReceiptsChanged:
    """Someone's read receipt moved in an open room (``RoomView.read_by`` changed)."""

    room_id: str


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
    """The session ended. ``soft`` means logging in again keeps the cache; ``by_user``: the
    user logged out here (nothing to explain), rather than the server ending it."""

    soft: bool
    message: str
    by_user: bool = False


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


@dataclass(frozen=True, slots=True)
class CryptoStoreUpgrade:
    """The crypto store is being moved from python-olm's format to vodozemac's, at open.

    Published only when the move takes long enough to be noticed (engine/encryption.py:
    ``done`` False, with the pickles rewritten so far), then once more when it is done.
    """

    migrated: int
    done: bool


@dataclass(frozen=True, slots=True)
class PushNotification:
    """A live event the user's push rules say to notify of (engine/notifications.py).

    Never for the first batch after start, our own events, or a muted room. Names and
    ``body`` are as sent (untrusted); ``body`` is ``None`` when the event has no text.
    """

    room_id: str
    event_id: str
    sender: str
    sender_name: str
    room_name: str
    body: str | None
    highlight: bool
    sound: str | None
    encrypted: bool
    is_dm: bool


@dataclass(frozen=True, slots=True)
class Reminder:
    """A notice already said on an earlier start (see :func:`~.notices.say_once`): for a
    status line, not for a pop-up. ``level`` is as for :class:`Notice`."""

    level: str
    text: str


@dataclass(frozen=True, slots=True)
class SpacesChanged:
    """The space graph was rebuilt (a space's children or a room's parents changed).

    The graph is shared and must be treated as read-only.
    """

    graph: SpaceGraph


@dataclass(frozen=True, slots=True)
class JoinStatus:
    """Where one queued join is.

    ``state`` is ``queued``, ``joining``, ``waiting`` (rate limited or retrying after
    a fault, until ``retry_at``, a ``time.time()``; ``error`` says why), ``joined``
    or ``failed`` (``error`` says why).
    ``required_spaces`` names the spaces to join first when a restricted room
    refused the user.
    """

    job_id: int
    target: str
    label: str
    state: str
    room_id: str | None = None
    error: str | None = None
    retry_at: float | None = None
    required_spaces: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """Joined or failed: nothing more will happen to it."""
        return self.state in ("joined", "failed")


@dataclass(frozen=True, slots=True)
class JoinProgress:
    """The join queue's current batch: every join since the queue was last idle."""

    jobs: tuple[JoinStatus, ...]

    @property
    def total(self) -> int:
        """Joins in the batch."""
        return len(self.jobs)

    @property
    def joined(self) -> int:
        """Joins that succeeded."""
        return sum(1 for j in self.jobs if j.state == "joined")

    @property
    def failed(self) -> int:
        """Joins that failed for good."""
        return sum(1 for j in self.jobs if j.state == "failed")

    @property
    def busy(self) -> bool:
        """True while some join is not finished."""
        return any(not j.finished for j in self.jobs)

    def describe(self, now: float) -> str:
        """A short line for a status bar: ``Joining 3/10 · rate limited, next try in 4s``."""
        if not self.jobs:
            return ""
        done = self.joined + self.failed
        if not self.busy:
            text = f"Joined {self.joined} of {self.total} room{'s' if self.total != 1 else ''}"
            return text + (f", {self.failed} failed" if self.failed else "")
        text = f"Joining {done + 1}/{self.total}"
        waiting = sorted(
            (j for j in self.jobs if j.state == "waiting" and j.retry_at is not None),
            key=lambda j: j.retry_at or 0,
        )
        if waiting:
            first = waiting[0]
            seconds = max(0, round((first.retry_at or now) - now))
            text += f" · {first.error or 'waiting'}, next try in {seconds}s"
        return text


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """Where the server-side key backup stands (published when it changes).

    ``state``: ``unknown`` (not checked yet), ``none`` (the account has no backup),
    ``active`` (trusted: room keys are uploaded to it), ``untrusted`` (not signed by
    a key we trust: not used), ``unsupported`` (another algorithm, or malformed),
    ``unreachable`` (the check failed; retried), ``off`` (no encryption here).
    ``keys_total``/``keys_backed_up`` count the room keys on this device.
    """

    state: str
    version: str | None = None
    keys_total: int = 0
    keys_backed_up: int = 0
    #: Keys in the backup, as the server last said.
    server_count: int | None = None
    #: This device holds the backup's decryption key (it can restore from it).
    key_cached: bool = False
    #: Why the backup is trusted or not, in a sentence.
    detail: str = ""
    #: The last upload failure (cleared by the next success).
    error: str | None = None

    @property
    def up_to_date(self) -> bool:
        """Every room key on this device is in a trusted backup."""
        return self.state == "active" and self.keys_backed_up >= self.keys_total


@dataclass(frozen=True, slots=True)
class KeyRestoreProgress:
    """A restore from the key backup: ``stage`` is ``unlocking``, ``verifying``,
    ``downloading``, ``restoring``, ``done`` or ``failed`` (``detail`` says why)."""

    stage: str
    done: int = 0
    total: int = 0
    imported: int = 0
    failed: int = 0
    detail: str = ""

    @property
    def finished(self) -> bool:
        """Nothing more will happen to this restore."""
        return self.stage in ("done", "failed")


@dataclass(frozen=True, slots=True)
class RecoverySuggested:
    """Something the user should do about recovery: ``kind`` is ``restore`` when the account
    has secret storage and this device is not verified (offered once per device)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class VerificationChanged:
    """A verification flow changed (engine/verification.py): its new snapshot."""

    verification: Verification


@dataclass(frozen=True, slots=True)
class TrustChanged:
    """What this session knows of these users' identities and devices changed (engine/devices.py)."""

    user_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class IdentityWarnings:
    """Users whose identity changed: warn until acknowledged or verified again (engine/devices.py).

    The whole current list (empty when nothing needs attention), verified users first.
    """

    identities: tuple[UserIdentity, ...]


@dataclass(frozen=True, slots=True)
class CrossSigningChanged:
    """This session's cross-signing state changed (engine/cross_signing.py)."""

    status: CrossSigningStatus
    #: The account has an identity this session cannot vouch for yet: verify this session
    #: from another of the account's sessions.
    needs_verification: bool
    #: Why setting up cross-signing failed, if it did.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """The server told us these users' presence (engine/presence.py)."""

    user_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class UploadProgress:
    """How an upload goes (engine/uploads.py): ``state`` is ``preparing``, ``uploading``,
    ``waiting`` (offline, to be tried again), ``sending`` (the file is up, its message
    queued next), ``sent``, ``failed`` (``error`` says why) or ``cancelled``."""

    upload_id: str
    room_id: str
    name: str
    sent: int
    total: int
    bytes_per_second: float
    state: str
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Whether nothing more will happen to this upload."""
        return self.state in ("sent", "failed", "cancelled")


Update = (
    SyncState
    | RoomListChanged
    | TimelineUpdated
    | TypingChanged
    | ReceiptsChanged
    | MembersChanged
    | SessionEnded
    | Notice
    | CryptoStoreUpgrade
    | Reminder
    | BatchCommitted
    | SpacesChanged
    | JoinProgress
    | BackupStatus
    | KeyRestoreProgress
    | RecoverySuggested
    | VerificationChanged
    | TrustChanged
    | IdentityWarnings
    | CrossSigningChanged
    | PresenceChanged
    | PushNotification
    | ThreadUpdated
    | ThreadUnreadChanged
    | UploadProgress
    | StorageChanged
    | CacheDamageFound
)
