"""Uploading room keys to the backup: ``PUT /room_keys/keys`` batches, resumable
through the store's ``backed_up`` flags (:class:`BackupUploader`)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .backend import BackendError, CryptoBackend, PkEncryption
from .backup_key import BackupVersion
from .store_api import CryptoStore, InboundGroupSessionRecord
from .types import MEGOLM_ALGORITHM, KeyOrigin

log = logging.getLogger(__name__)

#: Sessions per ``PUT /room_keys/keys`` (Element uses 200).
DEFAULT_UPLOAD_BATCH = 200
_AUTHENTICATED_ORIGINS = frozenset({KeyOrigin.ROOM_KEY.value, KeyOrigin.OWN.value})


def backed_up_session_data(record: InboundGroupSessionRecord, session_key: str) -> dict[str, Any]:
    """The ``BackedUpSessionData`` of a stored session, given its exported key."""
    return {
        "algorithm": MEGOLM_ALGORITHM,
        "sender_key": record["sender_key"],
        "sender_claimed_keys": {"ed25519": record["signing_key"]},
        "forwarding_curve25519_key_chain": list(record["forwarding_chain"]),
        "session_key": session_key,
        "shared_history": record["shared_history"],
    }


def encrypt_session_data(encryption: PkEncryption, data: Mapping[str, Any]) -> dict[str, str]:
    """The ``session_data`` object: ``data`` as compact JSON, PK-encrypted to the backup."""
    message = encryption.encrypt(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return {
        "ephemeral": message.ephemeral_key,
        "ciphertext": message.ciphertext,
        "mac": message.mac,
    }


def _forwarded_count(record: InboundGroupSessionRecord) -> int:
    # The server only compares counts between copies: 0 for a key straight from its
    # creator (or our own), otherwise the hops we know of, at least one.
    if record["origin"] in _AUTHENTICATED_ORIGINS:
        return 0
    return max(1, len(record["forwarding_chain"]))


def _fingerprint(record: InboundGroupSessionRecord) -> bytes:
    # Everything uploaded for the session: a copy upgraded in place (same pickle, now
    # Olm-authenticated) must be uploaded again with is_verified / forwarded_count.
    digest = hashlib.sha256(record["pickle"].encode())
    for part in (
        record["origin"],
        record["sender_user_id"] or "",
        str(record["first_known_index"]),
        "\x1f".join(record["forwarding_chain"]),
    ):
        digest.update(b"\x1e" + part.encode())
    return digest.digest()[:16]


@dataclass(frozen=True, slots=True)
class BackupUpload:
    """One ``PUT /room_keys/keys?version=<version>`` with ``body``.

    ``sessions`` lists what it carries as ``(room_id, session_id, fingerprint)``,
    so only sessions unchanged since are marked backed up afterwards;
    ``unreadable`` lists the stored sessions of the batch that could not be
    exported (already flagged, so they do not block the queue).
    """

    version: str
    body: dict[str, Any] = field(repr=False)
    sessions: tuple[tuple[str, str, bytes], ...] = field(repr=False)
    unreadable: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        """Sessions in the body."""
        return len(self.sessions)


@dataclass(frozen=True, slots=True)
class UploadOutcome:
    """What marking an upload sent changed."""

    marked: int
    #: The server's count of keys in the backup and its new etag (``None`` if not given).
    server_count: int | None
    etag: str | None


class BackupUploader:
    """What to upload next to one trusted backup version, batch by batch.

    Resumable: progress is the store's ``backed_up`` flag on each session, so a
    restart (or a failed request) picks up where the last acknowledged batch
    ended. One upload is in flight at a time: :meth:`next_upload` returns the
    same upload until it is marked sent or failed. Call it on the engine's
    database thread (it reads the store); the PUT itself happens outside any
    transaction, and :meth:`mark_sent` runs in one.

    The uploader assumes the store's flags belong to ``version``: when the
    version changes (ours replaced, or another client made a new one), call
    :meth:`reset_flags` first. The engine must remember which version the flags
    are for across restarts (the store has no field for it yet).
    """

    def __init__(
        self,
        store: CryptoStore,
        backend: CryptoBackend,
        pickle_key: bytes,
        version: BackupVersion,
        *,
        batch_size: int = DEFAULT_UPLOAD_BATCH,
        is_verified: Callable[[InboundGroupSessionRecord], bool] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._store = store
        self._backend = backend
        self._pickle_key = pickle_key
        self.version = version
        self._encryption = backend.pk_encryption(version.public_key)
        self._batch_size = batch_size
        self._is_verified = is_verified
        self._in_flight: BackupUpload | None = None

    def __repr__(self) -> str:
        return f"BackupUploader(version={self.version.version!r})"

    def reset_flags(self) -> None:
        """Mark every session as not backed up (a new backup version)."""
        self._in_flight = None
        self._store.reset_inbound_group_sessions_backup()

    def counts(self) -> tuple[int, int]:
        """``(sessions, backed up)`` in the store."""
        return self._store.count_inbound_group_sessions()

    def remaining(self) -> int:
        """Sessions still to upload."""
        total, done = self.counts()
        return total - done

    def _is_verified_record(self, record: InboundGroupSessionRecord) -> bool:
        if record["origin"] == KeyOrigin.OWN.value:
            return True
        if self._is_verified is None or record["origin"] != KeyOrigin.ROOM_KEY.value:
            return False
        return self._is_verified(record)

    def _export(self, record: InboundGroupSessionRecord) -> tuple[int, str] | None:
        """``(first known index, exported session key)``, or ``None`` if unreadable."""
        try:
            session = self._backend.inbound_group_session_from_pickle(
                record["pickle"], self._pickle_key
            )
        except BackendError:
            return None
        first_index = session.first_known_index
        session_key = session.export_at(first_index)
        return None if session_key is None else (first_index, session_key)

    def next_upload(self) -> BackupUpload | None:
        """The next batch to PUT (the one in flight, if any); ``None`` when all are backed up.

        Stored sessions that cannot be exported (a pickle that no longer opens) are
        flagged as backed up on the spot, so they never block the queue: this may
        write to the store, so call it inside a transaction.
        """
        if self._in_flight is not None:
            return self._in_flight
        while True:
            records = self._store.inbound_group_sessions_to_back_up(self._batch_size)
            if not records:
                return None
            upload = self._build(records)
            if upload.unreadable:
                log.warning(
                    "%d stored room keys cannot be exported; not backed up", len(upload.unreadable)
                )
                self._store.mark_inbound_group_sessions_backed_up(list(upload.unreadable))
            if upload.sessions:
                self._in_flight = upload
                return upload

    def _build(self, records: list[InboundGroupSessionRecord]) -> BackupUpload:
        rooms: dict[str, dict[str, Any]] = {}
        sessions: list[tuple[str, str, bytes]] = []
        unreadable: list[tuple[str, str]] = []
        for record in records:
            room_id, session_id = record["room_id"], record["session_id"]
            exported = self._export(record)
            if exported is None:
                unreadable.append((room_id, session_id))
                continue
            first_index, session_key = exported
            data = backed_up_session_data(record, session_key)
            rooms.setdefault(room_id, {"sessions": {}})["sessions"][session_id] = {
                "first_message_index": first_index,
                "forwarded_count": _forwarded_count(record),
                "is_verified": self._is_verified_record(record),
                "session_data": encrypt_session_data(self._encryption, data),
            }
            sessions.append((room_id, session_id, _fingerprint(record)))
        return BackupUpload(
            version=self.version.version,
            body={"rooms": rooms},
            sessions=tuple(sessions),
            unreadable=tuple(unreadable),
        )

    def mark_sent(
        self, upload: BackupUpload, response: Mapping[str, Any] | None = None
    ) -> UploadOutcome:
        """The server stored ``upload``: flag its sessions (those unchanged since) as backed up."""
        if self._in_flight is upload:
            self._in_flight = None
        keys = []
        for room_id, session_id, fingerprint in upload.sessions:
            record = self._store.get_inbound_group_session(room_id, session_id)
            if record is not None and _fingerprint(record) == fingerprint:
                keys.append((room_id, session_id))
        if keys:
            self._store.mark_inbound_group_sessions_backed_up(keys)
        response = response or {}
        count, etag = response.get("count"), response.get("etag")
        return UploadOutcome(
            marked=len(keys),
            server_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            etag=etag if isinstance(etag, str) else None,
        )

    def mark_failed(self, upload: BackupUpload) -> None:
        """The PUT failed: the batch is rebuilt on the next :meth:`next_upload`."""
        if self._in_flight is upload:
            self._in_flight = None
