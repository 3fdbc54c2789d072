"""The QR code of key verification: its bytes (the spec's "QR code format"), pure.

``MATRIX``, version ``0x02``, a mode byte, the flow's ID (two bytes of big-endian
length, then UTF-8), two 32-byte Ed25519 keys, then the shared secret (the rest of
the segment). What the keys are depends on the mode:

========  ============================  =====================================
mode      first key                     second key
========  ============================  =====================================
``0x00``  our master key                the other user's master key (as we see it)
``0x01``  our master key (trusted)      the other device's key (as we see it)
``0x02``  this device's key             our master key (as we see it, not trusted)
========  ============================  =====================================
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import IntEnum

from ..encoding import b64decode, b64encode

__all__ = ["SECRET_BYTES", "QrCode", "QrCodeError", "QrMode"]

_HEADER = b"MATRIX"
_VERSION = 0x02
_KEY_BYTES = 32
#: The secret we put in our codes (the spec suggests about 8 bytes; the code stays small).
SECRET_BYTES = 8
#: The shortest secret accepted in a code we scan.
_MIN_SECRET_BYTES = 8


class QrMode(IntEnum):
    """The verification mode byte."""

    #: Verifying another user with cross-signing.
    VERIFY_OTHER_USER = 0x00
    #: Self-verifying; the device showing the code trusts the master key.
    SELF_TRUSTED = 0x01
    #: Self-verifying; the device showing the code does not trust the master key yet.
    SELF_UNTRUSTED = 0x02


class QrCodeError(ValueError):
    """Bytes that are not a verification QR code (the message says why)."""


def _key_bytes(key: str) -> bytes:
    try:
        raw = b64decode(key)
    except ValueError as exc:
        raise QrCodeError("a key is not base64") from exc
    if len(raw) != _KEY_BYTES:
        raise QrCodeError("a key is not 32 bytes")
    return raw


@dataclass(frozen=True, slots=True)
class QrCode:
    """One verification QR code (keys as unpadded base64, as everywhere else)."""

    mode: QrMode
    #: The ``transaction_id``, or the request's event ID in a room.
    flow_id: str
    first_key: str
    second_key: str
    secret: bytes

    @classmethod
    def new(cls, mode: QrMode, flow_id: str, first_key: str, second_key: str) -> QrCode:
        """A code with a fresh random secret."""
        return cls(mode, flow_id, first_key, second_key, secrets.token_bytes(SECRET_BYTES))

    @property
    def secret_b64(self) -> str:
        """The secret as the ``m.reciprocate.v1`` start carries it (unpadded base64)."""
        return b64encode(self.secret)

    def to_bytes(self) -> bytes:
        """The code's binary segment."""
        flow_id = self.flow_id.encode("utf-8")
        if len(flow_id) > 0xFFFF:
            raise QrCodeError("the flow ID is too long")
        return b"".join(
            (
                _HEADER,
                bytes((_VERSION, int(self.mode))),
                len(flow_id).to_bytes(2, "big"),
                flow_id,
                _key_bytes(self.first_key),
                _key_bytes(self.second_key),
                self.secret,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> QrCode:
        """Parse a scanned code; raises :class:`QrCodeError` if it is not one."""
        if not data.startswith(_HEADER):
            raise QrCodeError("not a Matrix verification code")
        at = len(_HEADER)
        if len(data) < at + 4:
            raise QrCodeError("the code is cut short")
        if data[at] != _VERSION:
            raise QrCodeError(f"unsupported code version {data[at]}")
        try:
            mode = QrMode(data[at + 1])
        except ValueError as exc:
            raise QrCodeError(f"unknown verification mode {data[at + 1]}") from exc
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        at += 4
        if len(data) < at + length + 2 * _KEY_BYTES + _MIN_SECRET_BYTES:
            raise QrCodeError("the code is cut short")
        try:
            flow_id = data[at : at + length].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QrCodeError("the flow ID is not UTF-8") from exc
        at += length
        first = data[at : at + _KEY_BYTES]
        second = data[at + _KEY_BYTES : at + 2 * _KEY_BYTES]
        secret = data[at + 2 * _KEY_BYTES :]
        return cls(mode, flow_id, b64encode(first), b64encode(second), bytes(secret))
