"""Unpadded base64, key-shape checks and Megolm message peeking: pure helpers.

The spec's binary values travel as unpadded base64 (appendices, "Unpadded
Base64"); decoding accepts padding too, as the spec asks. Nothing here needs a
crypto backend.
"""

from __future__ import annotations

import base64
import binascii

__all__ = [
    "b64decode",
    "b64encode",
    "is_curve25519_key",
    "is_ed25519_key",
    "megolm_message_index",
]


def b64encode(data: bytes) -> str:
    """Standard base64 without ``=`` padding."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Decode standard base64 with or without padding; raise ``ValueError`` if malformed."""
    if not isinstance(text, str):
        raise ValueError("base64 value must be a string")
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("base64 value has an impossible length")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64") from exc


def _is_32_byte_key(value: object) -> bool:
    if not isinstance(value, str) or len(value) not in (43, 44):
        return False
    try:
        return len(b64decode(value)) == 32
    except ValueError:
        return False


def is_curve25519_key(value: object) -> bool:
    """True if ``value`` is a base64 string of a 32-byte (Curve25519) public key."""
    return _is_32_byte_key(value)


def is_ed25519_key(value: object) -> bool:
    """True if ``value`` is a base64 string of a 32-byte (Ed25519) public key."""
    return _is_32_byte_key(value)


def megolm_message_index(ciphertext: str) -> int | None:
    """The ratchet index a Megolm message claims (``None`` if the message is malformed).

    The Megolm message format (olm-megolm/megolm.md, "Message format"): a version
    byte ``0x03`` then a protobuf-style payload whose tag ``0x08`` is the varint
    message index. The index is unauthenticated until decryption succeeds; it is
    only used to explain a failure ("sent before you joined").
    """
    try:
        raw = b64decode(ciphertext)
    except ValueError:
        return None
    if len(raw) < 3 or raw[0] != 0x03 or raw[1] != 0x08:
        return None
    value = 0
    shift = 0
    for byte in raw[2:12]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    return None
