"""Uploads that stream from disk, report their progress and survive a restart.

``/upload <path>`` (or a pasted path) checks the server's upload limit first
(``/media/config``), hashes the file (SHA-256, read in pieces) and writes it to the upload
queue in the cache before anything is sent. The file then streams to the server piece by
piece (encrypted piece by piece in an encrypted room: AES-CTR is a stream cipher and
SHA-256 is incremental), so memory stays flat whatever its size. Images get their
``w``/``h``/``mimetype``/``size``, a thumbnail when they are big (uploaded too) and a
blurhash. When the file is on the server, its message goes to the outbox and the upload
leaves the queue in one transaction. An upload cut short by closing the client starts
again on the next start, if the file is unchanged; a file that changed is not sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import mimetypes
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..net.http import HomeserverConnection, backoff_delay
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.media import MediaError, parse_mxc, safe_filename
from ..protocol.room_state import RoomSummary
from ..store.cache import Cache, OutboxEntry
from ..store.uploads import (
    PendingUpload,
    uploads_add,
    uploads_pending,
    uploads_remove,
)
from .dbthread import DatabaseThread
from .updates import UploadProgress

if TYPE_CHECKING:
    from ..crypto.attachments import AttachmentEncryptor

__all__ = [
    "THUMBNAIL_SIDE",
    "ImageDetails",
    "UploadJob",
    "UploadService",
    "file_sha256",
    "image_details",
]

log = logging.getLogger(__name__)

#: How much of the file is read, encrypted and sent at a time.
CHUNK = 256 * 1024
#: Images larger than this on either side get a thumbnail of this size.
THUMBNAIL_SIDE = 800
#: The most progress updates per second (the bar does not need more).
PROGRESS_INTERVAL = 0.1
_FORMAT_MIMETYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}

Finish = Callable[[str, str, dict[str, Any]], Awaitable[OutboxEntry | None]]


class FileChanged(MediaError):
    """The file is not what was queued (edited, replaced or removed): it is not sent."""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in pieces (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            digest.update(piece)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ImageDetails:
    """What an image message says about its image, and the thumbnail to upload."""

    width: int
    height: int
    mimetype: str
    thumbnail: bytes | None = None
    thumbnail_width: int = 0
    thumbnail_height: int = 0
    thumbnail_mimetype: str = ""
    blurhash: str | None = None


def image_details(path: Path, size: int) -> ImageDetails:
    """Size, true mimetype, thumbnail (for a big image, and only when smaller than the
    file) and blurhash of an image file. Blocking (decodes the image): run it in a thread.
    Raises :class:`ImageDecodeError` when the file is not an image we can decode."""
    from .image_decode import decode_image, image_header  # Pillow: when first needed

    fmt, width, height = image_header(path)
    mimetype = _FORMAT_MIMETYPES.get(fmt, "application/octet-stream")
    small = decode_image(path, max_side=THUMBNAIL_SIDE)
    thumbnail: bytes | None = None
    thumb_type = ""
    if max(width, height) > THUMBNAIL_SIDE:
        out = io.BytesIO()
        if small.mode == "RGBA":
            small.save(out, "PNG", optimize=True)
            thumb_type = "image/png"
        else:
            small.save(out, "JPEG", quality=80)
            thumb_type = "image/jpeg"
        # A thumbnail as large as its original would only cost a second download.
        if out.tell() < size:
            thumbnail = out.getvalue()
    return ImageDetails(
        width=width,
        height=height,
        mimetype=mimetype,
        thumbnail=thumbnail,
        thumbnail_width=small.width if thumbnail else 0,
        thumbnail_height=small.height if thumbnail else 0,
        thumbnail_mimetype=thumb_type if thumbnail else "",
        blurhash=_blurhash(small),
    )


def _blurhash(image: Any) -> str | None:
    try:
        import blurhash  # type: ignore[import-untyped]
    except ImportError:
        return None
    tiny = image.convert("RGB")
    tiny.thumbnail((32, 32))
    pixels = list(tiny.get_flattened_data())
    rows = [
        [list(pixels[y * tiny.width + x]) for x in range(tiny.width)] for y in range(tiny.height)
    ]
    try:
        return str(blurhash.encode(rows, components_x=4, components_y=3))
    except (ValueError, ZeroDivisionError):
        return None


def _msgtype(mimetype: str) -> str:
    kind = mimetype.split("/", 1)[0]
    return {"image": "m.image", "video": "m.video", "audio": "m.audio"}.get(kind, "m.file")


def size_text(size: float) -> str:
    """A byte count for people: ``812 B``, ``4.2 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


@dataclass(slots=True)
class UploadJob:
    """One upload: the queued row and the task sending it."""

    pending: PendingUpload
    name: str
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    #: The file is on the server and its message is being queued: too late to cancel.
    finishing: bool = False
    sent: int = 0
    started: float = field(default_factory=time.monotonic)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: The message queued once the file is on the server.
    entry: OutboxEntry | None = None
    error: str | None = None


class UploadService:
    """Streams files to the media repository and queues their messages.

    Built with the few things it uses: the connection, the cache and its thread, where
    updates go, the room list, and ``finish`` (queue the message and drop the upload row
    in one transaction; ``None`` if the upload was cancelled meanwhile).
    """

    def __init__(
        self,
        connection: HomeserverConnection,
        cache: Cache,
        db: DatabaseThread,
        publish: Callable[[UploadProgress], None],
        *,
        rooms: Callable[[], Mapping[str, RoomSummary]],
        finish: Finish,
        notify: Callable[[str, str], None],
    ) -> None:
        self._connection = connection
        self._cache = cache
        self._db = db
        self._publish = publish
        self._rooms = rooms
        self._finish = finish
        self._notify = notify
        self._limit: int | None = None
        self._limit_known = False
        self.jobs: dict[str, UploadJob] = {}

    # -- the server's limit ----------------------------------------------------------

    async def upload_limit(self) -> int | None:
        """The largest upload the server takes (``m.upload.size``), ``None`` if it does
        not say (or cannot be asked right now)."""
        if self._limit_known:
            return self._limit
        answer: Any = None
        for legacy in (False, True):
            try:
                answer = await self._connection.send(api.media_config(legacy=legacy))
                break
            except MatrixError as error:
                if error.errcode in ("M_UNRECOGNIZED", "M_NOT_FOUND") or error.status in (404, 405):
                    continue
                return None
            except NetworkError:
                return None
        size = answer.get("m.upload.size") if isinstance(answer, dict) else None
        self._limit = (
            size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
        )
        self._limit_known = True
        return self._limit

    # -- starting, cancelling, resuming ----------------------------------------------

    async def send_file(self, room_id: str, path: Path) -> UploadJob:
        """Queue ``path`` for ``room_id`` and start streaming it.

        Raises :class:`MediaError` (not in the room, no such file, over the server's
        limit) and ``OSError`` (unreadable) before anything is queued.
        """
        summary = self._rooms().get(room_id)
        if summary is None or summary.membership != "join":
            raise MediaError("you are not in this room (or it has not synced yet)")
        path = path.expanduser()
        if not path.is_file():
            raise MediaError(f"there is no file {path}")
        path = path.resolve()
        size = path.stat().st_size
        limit = await self.upload_limit()
        if limit is not None and size > limit:
            raise MediaError(
                f"{safe_filename(path.name)} is too large for this server: {size_text(size)}, "
                f"and it takes at most {size_text(limit)}"
            )
        digest = await asyncio.to_thread(file_sha256, path)
        upload_id = f"up{int(time.time() * 1000)}.{secrets.token_hex(4)}"
        pending = await self._db.run(
            uploads_add, self._cache, upload_id, room_id, str(path), size, digest
        )
        return self._launch(pending)

    def cancel(self, upload_id: str) -> bool:
        """Stop an upload and forget it (nothing is sent). False if it is not running."""
        job = self.jobs.get(upload_id)
        if job is None or job.task is None or job.task.done() or job.finishing:
            return False
        job.cancelled = True
        job.task.cancel()
        return True

    async def resume(self) -> list[UploadJob]:
        """Start again the uploads a previous run left unfinished, whose files did not
        change; the others are dropped with a notice (``changed since, not sent``)."""
        resumed = []
        for pending in await self._db.run(uploads_pending, self._cache):
            if pending.upload_id in self.jobs:
                continue
            path = Path(pending.path)
            name = safe_filename(path.name)
            try:
                unchanged = path.is_file() and path.stat().st_size == pending.size
                unchanged = (
                    unchanged and await asyncio.to_thread(file_sha256, path) == pending.sha256
                )
            except OSError:
                unchanged = False
            if not unchanged:
                await self._db.run(uploads_remove, self._cache, pending.upload_id)
                self._notify("warning", f"{name} changed since, not sent")
                self._publish(
                    UploadProgress(
                        pending.upload_id,
                        pending.room_id,
                        name,
                        0,
                        pending.size,
                        0.0,
                        "failed",
                        "changed since, not sent",
                    )
                )
                continue
            resumed.append(self._launch(pending))
        if resumed:
            count = len(resumed)
            self._notify(
                "info",
                f"Resuming {count} upload{'s' if count != 1 else ''} left unfinished last time",
            )
        return resumed

    async def stop(self) -> None:
        """Stop every upload without forgetting it (the next start resumes them)."""
        tasks = [
            job.task for job in self.jobs.values() if job.task is not None and not job.task.done()
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def _launch(self, pending: PendingUpload) -> UploadJob:
        job = UploadJob(pending, safe_filename(Path(pending.path).name))
        self.jobs[pending.upload_id] = job
        job.task = asyncio.ensure_future(self._run(job))
        return job

    # -- the upload itself -----------------------------------------------------------

    def _progress(self, job: UploadJob, state: str, error: str | None = None) -> None:
        elapsed = max(time.monotonic() - job.started, 1e-6)
        p = job.pending
        self._publish(
            UploadProgress(
                p.upload_id, p.room_id, job.name, job.sent, p.size, job.sent / elapsed, state, error
            )
        )

    async def _run(self, job: UploadJob) -> None:
        attempt = 0
        try:
            while True:
                try:
                    content = await self._upload(job)
                    break
                except (NetworkError, MatrixError) as error:
                    # Offline, cut, rate limited or a server error (a proxy's 502 while the
                    # homeserver restarts): the file is still queued; try again later.
                    if isinstance(error, MatrixError) and not error.is_transient:
                        raise
                    delay = backoff_delay(attempt, base=2.0, cap=60.0)
                    if isinstance(error, MatrixError) and error.retry_after is not None:
                        delay = max(delay, error.retry_after)
                    attempt += 1
                    job.sent = 0
                    self._progress(job, "waiting", f"{error}; trying again in {delay:.0f}s")
                    await asyncio.sleep(delay)
            # Past this point the message is being queued on the database thread, which a
            # cancel cannot stop: finish it and say "sent" rather than a false "cancelled".
            job.finishing = True
            job.entry = await asyncio.shield(
                self._finish(job.pending.upload_id, job.pending.room_id, content)
            )
            self._progress(job, "sent" if job.entry is not None else "cancelled")
        except asyncio.CancelledError:
            if job.cancelled:
                await asyncio.shield(
                    self._db.run(uploads_remove, self._cache, job.pending.upload_id)
                )
                self._progress(job, "cancelled")
            raise
        except (MatrixError, MediaError, OSError) as error:
            job.error = str(error)
            await self._db.run(uploads_remove, self._cache, job.pending.upload_id)
            self._progress(job, "failed", job.error)
            self._notify("error", f"Could not send {job.name}: {error}")
        except Exception as error:  # never lose the reason
            log.exception("upload failed")
            job.error = str(error)
            self._progress(job, "failed", job.error)
        finally:
            job.done.set()

    async def _upload(self, job: UploadJob) -> dict[str, Any]:
        """Upload the file (and its thumbnail); the message content to send."""
        from ..crypto.attachments import AttachmentEncryptor
        from .image_decode import ImageDecodeError

        p = job.pending
        path = Path(p.path)
        summary = self._rooms().get(p.room_id)
        encrypted = bool(summary and summary.encrypted)
        job.started = time.monotonic()
        self._progress(job, "preparing")
        mimetype = mimetypes.guess_type(job.name)[0] or "application/octet-stream"
        info: dict[str, Any] = {"size": p.size}
        details: ImageDetails | None = None
        if mimetype.startswith("image/"):
            try:
                details = await asyncio.to_thread(image_details, path, p.size)
            except ImageDecodeError:
                details = None  # sent as a plain file
            if details is not None:
                mimetype = details.mimetype
                info.update(w=details.width, h=details.height)
                if details.blurhash:
                    info["xyz.amorgan.blurhash"] = details.blurhash
                if details.thumbnail is not None:
                    thumb_info = {
                        "w": details.thumbnail_width,
                        "h": details.thumbnail_height,
                        "mimetype": details.thumbnail_mimetype,
                        "size": len(details.thumbnail),
                    }
                    where = await self._send_bytes(
                        details.thumbnail, details.thumbnail_mimetype, encrypted
                    )
                    info["thumbnail_" + ("file" if encrypted else "url")] = where
                    info["thumbnail_info"] = thumb_info
        info["mimetype"] = mimetype
        content: dict[str, Any] = {
            # An image we could not read (SVG, damaged) goes as a plain file.
            "msgtype": "m.file"
            if mimetype.startswith("image/") and details is None
            else _msgtype(mimetype),
            "body": job.name,
            "filename": job.name,
            "info": info,
        }
        encryptor = AttachmentEncryptor() if encrypted else None
        request = api.upload_media(
            b"",
            None if encrypted else job.name,
            "application/octet-stream" if encrypted else mimetype,
        )
        answer = await self._connection.send_stream(
            request, self._chunks(job, path, encryptor), p.size
        )
        uri = _content_uri(answer)
        if encryptor is not None:
            file = encryptor.file()
            file["url"] = uri
            content["file"] = file
        else:
            content["url"] = uri
        self._progress(job, "sending")
        return content

    async def _chunks(
        self, job: UploadJob, path: Path, encryptor: AttachmentEncryptor | None
    ) -> AsyncIterator[bytes]:
        """The file piece by piece (encrypted if asked), checked against its queued hash."""
        digest = hashlib.sha256()
        job.sent = 0
        last = 0.0
        with path.open("rb") as handle:
            while True:
                piece = await asyncio.to_thread(handle.read, CHUNK)
                if not piece:
                    break
                digest.update(piece)
                job.sent += len(piece)
                if job.sent > job.pending.size:
                    raise FileChanged(f"{job.name} changed since, not sent")
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL:
                    last = now
                    self._progress(job, "uploading")
                yield encryptor.update(piece) if encryptor is not None else piece
        self._progress(job, "uploading")
        if job.sent != job.pending.size or digest.hexdigest() != job.pending.sha256:
            # The server got different bytes: the upload is abandoned before its message.
            raise FileChanged(f"{job.name} changed since, not sent")

    async def _send_bytes(self, data: bytes, mimetype: str, encrypted: bool) -> Any:
        """Upload a small piece (a thumbnail); its ``url``, or its ``file`` object."""
        if not encrypted:
            answer = await self._connection.send(api.upload_media(data, None, mimetype))
            return _content_uri(answer)
        from ..crypto.attachments import AttachmentEncryptor

        encryptor = AttachmentEncryptor()
        ciphertext = encryptor.update(data)
        answer = await self._connection.send(
            api.upload_media(ciphertext, None, "application/octet-stream")
        )
        file = encryptor.file()
        file["url"] = _content_uri(answer)
        return file


def _content_uri(answer: Any) -> str:
    uri = answer.get("content_uri") if isinstance(answer, dict) else None
    server, media_id = parse_mxc(uri)  # raises MediaError on a bad answer
    return f"mxc://{server}/{media_id}"
