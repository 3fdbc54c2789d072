"""The upload queue in the cache: files being uploaded, kept until their message is queued.

A row names the file (its path, size and SHA-256) rather than holding it; when the
upload is done, the message goes into the outbox and the row leaves the queue in one
transaction, so a crash never sends a file twice nor forgets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .cache import Cache, outbox_insert
from .records import OutboxEntry

__all__ = ["PendingUpload", "uploads_add", "uploads_finish", "uploads_pending", "uploads_remove"]


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A file to upload to a room (and then send as a message)."""

    upload_id: str
    room_id: str
    path: str
    size: int
    sha256: str
    created_ts: int


def uploads_add(
    cache: Cache, upload_id: str, room_id: str, path: str, size: int, sha256: str
) -> PendingUpload:
    """Queue an upload (durably, before its first byte is sent)."""
    now = int(time.time() * 1000)
    db = cache._db
    with db:
        db.execute("BEGIN")
        (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM pending_uploads").fetchone()
        db.execute(
            "INSERT INTO pending_uploads (upload_id, seq, room_id, path, size, sha256, created_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (upload_id, seq, room_id, path, size, sha256, now),
        )
    return PendingUpload(upload_id, room_id, path, size, sha256, now)


def uploads_pending(cache: Cache) -> list[PendingUpload]:
    """The uploads not finished yet, in the order they were asked for."""
    rows = cache._db.execute(
        "SELECT upload_id, room_id, path, size, sha256, created_ts FROM pending_uploads ORDER BY seq"
    ).fetchall()
    return [PendingUpload(*row) for row in rows]


def uploads_remove(cache: Cache, upload_id: str) -> None:
    """Drop an upload (cancelled, refused, or its file changed)."""
    db = cache._db
    with db:
        db.execute("BEGIN")
        db.execute("DELETE FROM pending_uploads WHERE upload_id = ?", (upload_id,))


def uploads_finish(
    cache: Cache,
    upload_id: str,
    txn_id: str,
    room_id: str,
    event_type: str,
    content: dict[str, Any],
) -> OutboxEntry | None:
    """The file is on the server: queue its message and drop the upload, together.

    ``None`` if the upload was no longer queued (cancelled meanwhile): nothing is sent.
    """
    db = cache._db
    with db:
        db.execute("BEGIN")
        if (
            db.execute("DELETE FROM pending_uploads WHERE upload_id = ?", (upload_id,)).rowcount
            == 0
        ):
            return None
        return outbox_insert(db, txn_id, room_id, event_type, content)
