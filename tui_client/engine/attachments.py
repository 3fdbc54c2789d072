"""Files in messages.

Saving: download (authenticated media, falling back to the legacy endpoint on older
servers), decrypt if the room is encrypted (hash checked first), and write it under a safe,
new name in the downloads folder, readable by the user only.

Sending (``/upload <path>``): the file is uploaded (encrypted first, with no name given to
the server, in an encrypted room) and the message goes through the send queue like any
other (so it is encrypted, kept and retried the same way).
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..crypto.attachments import AttachmentError, decrypt_attachment, encrypt_attachment
from ..protocol import requests as api
from ..protocol.errors import MatrixError
from ..protocol.media import Attachment, MediaError, parse_attachment, parse_mxc, safe_filename
from ..store.cache import OutboxEntry
from .paths import downloads_dir

if TYPE_CHECKING:
    from .client import MatrixClient

__all__ = ["MAX_UPLOAD", "AttachmentError", "MediaError", "save_attachment", "send_file"]

#: The largest file sent (servers usually refuse more than 50-100 MB anyway).
MAX_UPLOAD = 100 * 1024 * 1024


async def message_content(client: MatrixClient, event_id: str) -> dict[str, Any]:
    """The content of a cached message (its decrypted form in an encrypted room)."""
    events = await client.db.run(client.cache.load_events, [event_id])
    event = events.get(event_id)
    if event is None:
        raise MediaError("the message is not in the cache")
    if event.get("type") == "m.room.encrypted":
        if client.encryption.machine is None:
            raise MediaError("the message is encrypted and encryption is not available")
        clear = await client.db.run(client.encryption.store.decrypted, [event_id])
        if event_id not in clear:
            raise MediaError("the message could not be decrypted, so neither can its attachment")
        event = clear[event_id][0]
    content = event.get("content")
    if not isinstance(content, dict):
        raise MediaError("the message has no content")
    return content


async def download(client: MatrixClient, attachment: Attachment) -> bytes:
    """The bytes of the attachment as stored on the server (still encrypted if it is)."""
    try:
        return await client.connection.send_raw(api.download_media(attachment.server, attachment.media_id))
    except MatrixError as error:
        # Servers without authenticated media (before Matrix 1.11) do not know the route.
        if error.errcode not in ("M_UNRECOGNIZED", "M_NOT_FOUND") and error.status not in (404, 405):
            raise
        return await client.connection.send_raw(api.download_media(attachment.server, attachment.media_id, legacy=True))


def _write_new(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a file of ``folder`` that did not exist (``name``, ``name (1)``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, dot, suffix = name, "", ""
    for n in range(1000):
        candidate = folder / (name if n == 0 else f"{stem} ({n}){dot}{suffix}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return candidate
    raise OSError(f"no free file name for {name} in {folder}")


async def save_attachment(client: MatrixClient, event_id: str, folder: Path | None = None) -> Path:
    """Save the attachment of a message; returns where. Raises :class:`MediaError` (no
    usable attachment), :class:`AttachmentError` (hash mismatch), ``MatrixError``/
    ``NetworkError`` (download), ``OSError`` (writing)."""
    content = await message_content(client, event_id)
    attachment = parse_attachment(content)
    data = await download(client, attachment)
    if attachment.encrypted is not None:
        data = await asyncio.to_thread(decrypt_attachment, data, attachment.encrypted)
    return await asyncio.to_thread(_write_new, folder or downloads_dir(), attachment.filename, data)


def _msgtype(mimetype: str) -> str:
    kind = mimetype.split("/", 1)[0]
    return {"image": "m.image", "video": "m.video", "audio": "m.audio"}.get(kind, "m.file")


async def send_file(client: MatrixClient, room_id: str, path: Path) -> OutboxEntry:
    """Upload ``path`` and send it to ``room_id`` (encrypted in an encrypted room).

    Raises :class:`MediaError` (no such file, too large, not in the room, a bad answer),
    ``MatrixError``/``NetworkError`` (the upload), ``OSError`` (reading).
    """
    summary = client.rooms.get(room_id)
    if summary is None or summary.membership != "join":
        raise MediaError("you are not in this room (or it has not synced yet)")
    path = path.expanduser()
    if not path.is_file():
        raise MediaError(f"there is no file {path}")
    size = path.stat().st_size
    if size > MAX_UPLOAD:
        raise MediaError(f"the file is too large to send ({size:,} bytes; at most {MAX_UPLOAD:,})")
    data = await asyncio.to_thread(path.read_bytes)
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    name = safe_filename(path.name)
    content: dict[str, Any] = {
        "msgtype": _msgtype(mimetype),
        "body": name,
        "filename": name,
        "info": {"mimetype": mimetype, "size": len(data)},
    }
    if summary.encrypted:
        # Never in clear to an encrypted room: the bytes too.
        ciphertext, file = await asyncio.to_thread(encrypt_attachment, data)
        file["url"] = await _upload(client, ciphertext, None, "application/octet-stream")
        content["file"] = file
    else:
        content["url"] = await _upload(client, data, name, mimetype)
    return await client.send_event(room_id, "m.room.message", content)


async def _upload(client: MatrixClient, data: bytes, name: str | None, mimetype: str) -> str:
    answer = await client.connection.send(api.upload_media(data, name, mimetype))
    uri = answer.get("content_uri") if isinstance(answer, dict) else None
    server, media_id = parse_mxc(uri)  # raises MediaError on a bad answer
    return f"mxc://{server}/{media_id}"
