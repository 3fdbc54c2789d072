"""Files in messages.

Saving: download (authenticated media, falling back to the legacy endpoint on older
servers), decrypt if the room is encrypted (hash checked first), and write it under a safe,
new name in the downloads folder, readable by the user only.

Sending (``/upload <path>``) is engine/uploads.py: streamed from disk, resumable.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..crypto.attachments import AttachmentError, decrypt_attachment
from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError
from ..protocol.media import Attachment, MediaError, parse_attachment
from .paths import downloads_dir

if TYPE_CHECKING:
    from .core import Core
    from .encryption import Encryption

__all__ = ["AttachmentError", "MediaError", "save_attachment"]


async def message_content(core: Core, encryption: Encryption, event_id: str) -> dict[str, Any]:
    """The content of a cached message (its decrypted form in an encrypted room)."""
    events = await core.db.run(core.cache.load_events, [event_id])
    event = events.get(event_id)
    if event is None:
        raise MediaError("the message is not in the cache")
    if event.get("type") == "m.room.encrypted":
        if encryption.machine is None:
            raise MediaError("the message is encrypted and encryption is not available")
        clear = await core.db.run(encryption.store.decrypted, [event_id])
        if event_id not in clear:
            raise MediaError("the message could not be decrypted, so neither can its attachment")
        event = clear[event_id][0]
    content = event.get("content")
    if not isinstance(content, dict):
        raise MediaError("the message has no content")
    return content


async def download(connection: HomeserverConnection, attachment: Attachment) -> bytes:
    """The bytes of the attachment as stored on the server (still encrypted if it is)."""
    try:
        return await connection.send_raw(api.download_media(attachment.server, attachment.media_id))
    except MatrixError as error:
        # Servers without authenticated media (before Matrix 1.11) do not know the route.
        if error.errcode not in ("M_UNRECOGNIZED", "M_NOT_FOUND") and error.status not in (
            404,
            405,
        ):
            raise
        return await connection.send_raw(
            api.download_media(attachment.server, attachment.media_id, legacy=True)
        )


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


async def save_attachment(
    core: Core, encryption: Encryption, event_id: str, folder: Path | None = None
) -> Path:
    """Save the attachment of a message; returns where. Raises :class:`MediaError` (no
    usable attachment), :class:`AttachmentError` (hash mismatch), ``MatrixError``/
    ``NetworkError`` (download), ``OSError`` (writing)."""
    content = await message_content(core, encryption, event_id)
    attachment = parse_attachment(content)
    data = await download(core.connection, attachment)
    if attachment.encrypted is not None:
        data = await asyncio.to_thread(decrypt_attachment, data, attachment.encrypted)
    return await asyncio.to_thread(_write_new, folder or downloads_dir(), attachment.filename, data)
