"""Restoring from the backup: a ``GET /room_keys/keys`` answer decrypted back into
sessions for ``OlmMachine.import_sessions(..., origin=KeyOrigin.BACKUP)``, in batches
with progress; a corrupted entry is skipped and reported, the others restored."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .backup_key import BackupError, BackupKey
from .types import MEGOLM_ALGORITHM, ImportResult, RoomKeyInfo

#: Entries decrypted before each import (one store transaction per batch).
DEFAULT_RESTORE_BATCH = 1000


class RestoreFailureKind(StrEnum):
    """Why one backup entry was not restored."""

    MALFORMED = "malformed"
    UNDECRYPTABLE = "undecryptable"
    NOT_A_ROOM_KEY = "not_a_room_key"


@dataclass(frozen=True, slots=True)
class RestoreFailure:
    """A backup entry skipped (``session_id`` is ``*`` for a whole malformed room)."""

    room_id: str
    session_id: str
    kind: RestoreFailureKind
    detail: str


@dataclass(frozen=True, slots=True)
class RestoreBatch:
    """Decrypted sessions (``ExportedSessionData`` dicts) ready for ``import_sessions``."""

    sessions: list[dict[str, Any]] = field(repr=False)
    failures: list[RestoreFailure]
    #: Entries handled so far (this batch included) and in all.
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class RestoreProgress:
    """Progress of a restore, for a progress bar."""

    done: int
    total: int
    imported: int
    failed: int


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did: ``room_keys`` are the sessions imported or improved (redecrypt)."""

    total: int
    decrypted: int
    imported: int
    failures: list[RestoreFailure]
    room_keys: list[RoomKeyInfo] = field(repr=False)

    @property
    def not_imported(self) -> int:
        """Decrypted but not imported: invalid session keys, or no better than what we had."""
        return self.decrypted - self.imported


Entry = tuple[str, str, object]


def backup_entries(
    response: object, *, room_id: str | None = None, session_id: str | None = None
) -> tuple[list[Entry], list[RestoreFailure]]:
    """Flatten a ``GET /room_keys/keys`` answer into ``(room_id, session_id, KeyBackupData)``.

    Accepts the three shapes: ``{"rooms": {...}}``; one room's ``{"sessions": {...}}``
    (pass ``room_id``); one session's ``KeyBackupData`` (pass both IDs). Parts that
    are not objects are reported as failures.
    """
    entries: list[Entry] = []
    failures: list[RestoreFailure] = []
    if room_id is not None and session_id is not None:
        entries.append((room_id, session_id, response))
        return entries, failures
    if room_id is not None:
        rooms: object = {room_id: response}
    else:
        rooms = response.get("rooms") if isinstance(response, Mapping) else None
        if not isinstance(rooms, Mapping):
            raise BackupError("the backup answer has no rooms")
    assert isinstance(rooms, Mapping)
    for room, room_data in rooms.items():
        sessions = room_data.get("sessions") if isinstance(room_data, Mapping) else None
        if not isinstance(room, str) or not isinstance(sessions, Mapping):
            failures.append(
                RestoreFailure(
                    str(room), "*", RestoreFailureKind.MALFORMED, "room entry is not an object"
                )
            )
            continue
        for session, data in sessions.items():
            entries.append((room, str(session), data))
    return entries, failures


def count_backup_entries(response: object) -> int:
    """How many sessions a full ``GET /room_keys/keys`` answer holds (without decrypting)."""
    rooms = response.get("rooms") if isinstance(response, Mapping) else None
    if not isinstance(rooms, Mapping):
        return 0
    total = 0
    for room_data in rooms.values():
        sessions = room_data.get("sessions") if isinstance(room_data, Mapping) else None
        if isinstance(sessions, Mapping):
            total += len(sessions)
    return total


def _room_key(room_id: str, session_id: str, value: dict[str, Any]) -> dict[str, Any] | None:
    """The decrypted ``BackedUpSessionData`` as ``ExportedSessionData``, or ``None``."""
    claimed = value.get("sender_claimed_keys")
    if not (
        value.get("algorithm") == MEGOLM_ALGORITHM
        and isinstance(value.get("session_key"), str)
        and isinstance(value.get("sender_key"), str)
        and isinstance(claimed, Mapping)
        and isinstance(claimed.get("ed25519"), str)
    ):
        return None
    chain = value.get("forwarding_curve25519_key_chain")
    if not isinstance(chain, list):
        value["forwarding_curve25519_key_chain"] = []
    if "shared_history" not in value and isinstance(value.get("m.shared_history"), bool):
        # matrix-js-sdk wrote the field under its unstable name.
        value["shared_history"] = value["m.shared_history"]
    # The IDs come from where the server filed the entry; the importer checks the
    # session ID against the key, and decryption checks the room in each payload.
    value["room_id"] = room_id
    value["session_id"] = session_id
    return value


def decrypt_backup(
    backup_key: BackupKey,
    response: object,
    *,
    batch_size: int = DEFAULT_RESTORE_BATCH,
    room_id: str | None = None,
    session_id: str | None = None,
) -> Iterator[RestoreBatch]:
    """Decrypt a ``GET /room_keys/keys`` answer in batches of ``batch_size`` entries.

    Each :class:`RestoreBatch` holds the sessions to import and the entries of
    that batch that were skipped (malformed, undecryptable, not a room key). The
    caller imports each batch (one transaction each) and shows ``done``/``total``.
    CPU-bound: run it off the UI/event loop.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    entries, failures = backup_entries(response, room_id=room_id, session_id=session_id)
    total = len(entries)
    decrypt = backup_key.decrypt_session_data
    done = 0
    if not entries:
        yield RestoreBatch([], failures, 0, 0)
        return
    for start in range(0, total, batch_size):
        sessions: list[dict[str, Any]] = []
        for room, session, data in entries[start : start + batch_size]:
            session_data = data.get("session_data") if isinstance(data, Mapping) else None
            if session_data is None:
                failures.append(
                    RestoreFailure(room, session, RestoreFailureKind.MALFORMED, "no session_data")
                )
                continue
            try:
                value = decrypt(session_data)
            except BackupError as exc:
                failures.append(
                    RestoreFailure(room, session, RestoreFailureKind.UNDECRYPTABLE, str(exc))
                )
                continue
            key = _room_key(room, session, value)
            if key is None:
                failures.append(
                    RestoreFailure(
                        room, session, RestoreFailureKind.NOT_A_ROOM_KEY, "not a Megolm room key"
                    )
                )
                continue
            sessions.append(key)
        done = min(total, start + batch_size)
        yield RestoreBatch(sessions, failures, done, total)
        failures = []


def restore_backup(
    backup_key: BackupKey,
    response: object,
    import_sessions: Callable[[list[dict[str, Any]]], ImportResult],
    *,
    batch_size: int = DEFAULT_RESTORE_BATCH,
    progress: Callable[[RestoreProgress], None] | None = None,
    room_id: str | None = None,
    session_id: str | None = None,
) -> RestoreResult:
    """Decrypt and import a backup answer, batch by batch, reporting progress.

    ``import_sessions`` imports one batch, typically in its own transaction::

        lambda batch: machine.import_sessions(batch, origin=KeyOrigin.BACKUP)

    (the machine marks backup-restored sessions as already backed up). A bad
    entry never stops the restore: it is listed in ``failures``.
    """
    decrypted = imported = 0
    failures: list[RestoreFailure] = []
    room_keys: list[RoomKeyInfo] = []
    total = 0
    for batch in decrypt_backup(
        backup_key, response, batch_size=batch_size, room_id=room_id, session_id=session_id
    ):
        total = batch.total
        failures.extend(batch.failures)
        if batch.sessions:
            result = import_sessions(batch.sessions)
            decrypted += len(batch.sessions)
            imported += result.imported
            room_keys.extend(result.room_keys)
        if progress is not None:
            progress(RestoreProgress(batch.done, total, imported, len(failures)))
    return RestoreResult(total, decrypted, imported, failures, room_keys)
