"""Attachments of messages (``m.file``, ``m.image``, ``m.audio``, ``m.video``): where the
content is, whether it is encrypted, and a safe name to save it under.

Pure parsing: downloading is :mod:`tui_client.net`, decrypting :mod:`tui_client.crypto.attachments`.
Everything here is untrusted input from other users: malformed content raises
:class:`MediaError` with a message meant for the user.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .ids import InvalidIdentifier, parse_server_name
from .sanitize import clean_line

__all__ = [
    "MEDIA_MSGTYPES",
    "Attachment",
    "EncryptedFile",
    "ImageRef",
    "MediaError",
    "parse_attachment",
    "parse_image",
    "parse_mxc",
    "safe_filename",
]

MEDIA_MSGTYPES = frozenset({"m.file", "m.image", "m.audio", "m.video"})
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]+")


class MediaError(ValueError):
    """The message has no usable attachment (the text says why)."""


@dataclass(frozen=True, slots=True)
class EncryptedFile:
    """The spec's ``EncryptedFile``: AES-256-CTR key and IV, and the SHA-256 of the ciphertext."""

    key: bytes
    iv: bytes
    sha256: bytes


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment: ``mxc://server/media_id``, a file name, and its key if encrypted."""

    server: str
    media_id: str
    filename: str
    mimetype: str | None = None
    size: int | None = None
    encrypted: EncryptedFile | None = None

    @property
    def mxc(self) -> str:
        """The content URI."""
        return f"mxc://{self.server}/{self.media_id}"


def parse_mxc(uri: object) -> tuple[str, str]:
    """``mxc://<server-name>/<media-id>`` -> (server, media ID); :class:`MediaError` otherwise."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        raise MediaError("the attachment has no content URI")
    server, _, media_id = uri[len("mxc://") :].partition("/")
    try:
        server = parse_server_name(server)
    except InvalidIdentifier:
        raise MediaError("the attachment's content URI names no valid server") from None
    if not _MEDIA_ID.fullmatch(media_id):
        raise MediaError("the attachment's content URI has an invalid media ID")
    return server, media_id


def _unpadded(value: object, what: str, *, urlsafe: bool = False) -> bytes:
    if not isinstance(value, str):
        raise MediaError(f"the encrypted attachment has no {what}")
    text = value.rstrip("=")
    try:
        padded = text + "=" * (-len(text) % 4)
        if urlsafe:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"the encrypted attachment's {what} is malformed") from None


def _encrypted_file(file: Mapping[str, Any]) -> tuple[str, EncryptedFile]:
    if file.get("v") != "v2":
        raise MediaError(
            f"unsupported encrypted attachment version {clean_line(str(file.get('v')), 20)!r}"
        )
    key = file.get("key")
    if not isinstance(key, Mapping) or key.get("alg") != "A256CTR" or key.get("kty") != "oct":
        raise MediaError("the encrypted attachment's key is not an AES-256-CTR key")
    raw_key = _unpadded(key.get("k"), "key", urlsafe=True)
    iv = _unpadded(file.get("iv"), "IV")
    hashes = file.get("hashes")
    digest = _unpadded(
        hashes.get("sha256") if isinstance(hashes, Mapping) else None, "SHA-256 hash"
    )
    if len(raw_key) != 32 or len(iv) != 16 or len(digest) != 32:
        raise MediaError("the encrypted attachment's key, IV or hash has the wrong length")
    url = file.get("url")
    if not isinstance(url, str):
        raise MediaError("the encrypted attachment has no content URI")
    return url, EncryptedFile(raw_key, iv, digest)


def parse_attachment(content: Mapping[str, Any]) -> Attachment:
    """The attachment of ``m.room.message`` content (``url``, or ``file`` when encrypted)."""
    msgtype = content.get("msgtype")
    if msgtype not in MEDIA_MSGTYPES:
        raise MediaError("this message has no attachment")
    file = content.get("file")
    encrypted: EncryptedFile | None = None
    uri: object
    if isinstance(file, Mapping):
        uri, encrypted = _encrypted_file(file)
    else:
        uri = content.get("url")
    server, media_id = parse_mxc(uri)
    filename = content.get("filename")
    body = content.get("body")
    name = (
        filename
        if isinstance(filename, str) and filename.strip()
        else body
        if isinstance(body, str)
        else ""
    )
    info = content.get("info")
    info = info if isinstance(info, Mapping) else {}
    mimetype = info.get("mimetype")
    size = info.get("size")
    return Attachment(
        server=server,
        media_id=media_id,
        filename=safe_filename(name, fallback=f"{str(msgtype)[2:]}-{media_id}"),
        mimetype=mimetype if isinstance(mimetype, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        encrypted=encrypted,
    )


def safe_filename(name: str, *, fallback: str = "attachment") -> str:
    """A file name chosen by someone else, made safe to create in a folder of ours: no
    folders, no controls or escape sequences, no leading dots, at most 120 characters."""
    cleaned = clean_line(name[:1000].replace("\\", "/").rsplit("/", 1)[-1])
    cleaned = "".join(c for c in cleaned if c not in '<>:"|?*').strip().lstrip(".").strip()
    if len(cleaned) > 120:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = (
            (stem[: 120 - len(suffix) - 1] + dot + suffix)
            if dot and len(suffix) <= 10
            else cleaned[:120]
        )
    return cleaned or fallback


#: The largest dimension taken from an image's ``info`` (anything above is nonsense).
_MAX_DIMENSION = 100_000
_BLURHASH = re.compile(r"[0-9A-Za-z#$%*+,\-.:;=?@\[\]^_{|}~]{6,200}")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image to draw (``m.image`` or ``m.sticker``): the original, its thumbnail when
    the sender gave one (encrypted rooms carry it as ``thumbnail_file``), the size the
    sender says it has, and its blurhash (``xyz.amorgan.blurhash``)."""

    original: Attachment
    thumbnail: Attachment | None = None
    width: int | None = None
    height: int | None = None
    blurhash: str | None = None
    sticker: bool = False

    @property
    def key(self) -> str:
        """What identifies the image (its original's content URI)."""
        return self.original.mxc


def _dimension(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_DIMENSION:
        return value
    return None


def parse_image(event_type: str, content: Mapping[str, Any]) -> ImageRef | None:
    """The image of an ``m.image`` message or an ``m.sticker`` event; ``None`` for any
    other event or for one whose content is unusable (it then shows as text only)."""
    if event_type == "m.sticker":
        content = {**content, "msgtype": "m.image"}
    elif event_type != "m.room.message" or content.get("msgtype") != "m.image":
        return None
    try:
        original = parse_attachment(content)
    except MediaError:
        return None
    info = content.get("info")
    info = info if isinstance(info, Mapping) else {}
    thumbnail: Attachment | None = None
    thumbnail_file = info.get("thumbnail_file")
    thumbnail_url = info.get("thumbnail_url")
    if isinstance(thumbnail_file, Mapping) or isinstance(thumbnail_url, str):
        thumbnail_info = info.get("thumbnail_info")
        thumbnail_content: dict[str, Any] = {
            "msgtype": "m.image",
            "body": "thumbnail",
            "info": thumbnail_info if isinstance(thumbnail_info, Mapping) else {},
        }
        if isinstance(thumbnail_file, Mapping):
            thumbnail_content["file"] = thumbnail_file
        else:
            thumbnail_content["url"] = thumbnail_url
        try:
            thumbnail = parse_attachment(thumbnail_content)
        except MediaError:
            thumbnail = None
    blurhash = info.get("xyz.amorgan.blurhash", content.get("xyz.amorgan.blurhash"))
    return ImageRef(
        original=original,
        thumbnail=thumbnail,
        width=_dimension(info.get("w")),
        height=_dimension(info.get("h")),
        blurhash=blurhash if isinstance(blurhash, str) and _BLURHASH.fullmatch(blurhash) else None,
        sticker=event_type == "m.sticker",
    )
