"""The room key export file format (end_to_end_encryption.md, "Key exports").

PBKDF2-HMAC-SHA512 turns the passphrase into K (AES-256-CTR key) and K'
(HMAC-SHA256 key); the payload is ``0x01 | salt | IV | rounds | ciphertext``
followed by its HMAC, base64-encoded between the ``MEGOLM SESSION DATA`` armour
lines. Files from Element, matrix-nio and the other clients read here, and ours
read there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .encoding import b64decode

__all__ = [
    "FOOTER",
    "HEADER",
    "KeyExportError",
    "decrypt_key_export",
    "encrypt_key_export",
]

HEADER = "-----BEGIN MEGOLM SESSION DATA-----"
FOOTER = "-----END MEGOLM SESSION DATA-----"
_VERSION = 1
_LINE = 96
_MIN_ROUNDS = 1
# A file may name any round count; refuse absurd ones rather than hang for hours.
_MAX_ROUNDS = 10_000_000
_HEAD_LEN = 1 + 16 + 16 + 4
_MAC_LEN = 32


class KeyExportError(ValueError):
    """The file is not a key export, or the passphrase is wrong (the message says which)."""


def _keys(passphrase: str, salt: bytes, rounds: int) -> tuple[bytes, bytes]:
    derived = hashlib.pbkdf2_hmac("sha512", passphrase.encode("utf-8"), salt, rounds, 64)
    return derived[:32], derived[32:]


def _ctr128(key: bytes, iv: bytes, data: bytes) -> bytes:
    transform = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return transform.update(data) + transform.finalize()


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CTR with a 64-bit counter in the IV's low half, as Element's WebCrypto uses.

    Our IVs have bit 63 clear, so the counter never wraps; a file from elsewhere may
    not, and then the low half wraps to zero without carrying into the high half
    (a 128-bit counter would carry and garble the rest).
    """
    blocks_to_wrap = 2**64 - int.from_bytes(iv[8:], "big")
    split = blocks_to_wrap * 16
    if len(data) <= split:
        return _ctr128(key, iv, data)
    return _ctr128(key, iv, data[:split]) + _ctr128(key, iv[:8] + bytes(8), data[split:])


def encrypt_key_export(plaintext: bytes | str, passphrase: str, rounds: int = 500_000) -> str:
    """Encrypt ``plaintext`` (the JSON array of sessions) into the armoured export text."""
    if not passphrase:
        raise KeyExportError("an empty passphrase protects nothing")
    if not _MIN_ROUNDS <= rounds <= _MAX_ROUNDS:
        raise KeyExportError("unreasonable PBKDF2 round count")
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    salt = secrets.token_bytes(16)
    iv = bytearray(secrets.token_bytes(16))
    # Bit 63 of the IV cleared, as the spec asks, so counter overflow behaves the
    # same in every AES-CTR implementation.
    iv[8] &= 0x7F
    aes_key, mac_key = _keys(passphrase, salt, rounds)
    body = (
        bytes([_VERSION])
        + salt
        + bytes(iv)
        + rounds.to_bytes(4, "big")
        + _ctr(aes_key, bytes(iv), data)
    )
    mac = hmac.new(mac_key, body, hashlib.sha256).digest()
    encoded = base64.b64encode(body + mac).decode("ascii")
    lines = [encoded[i : i + _LINE] for i in range(0, len(encoded), _LINE)]
    return "\n".join([HEADER, *lines, FOOTER]) + "\n"


def _armoured_body(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    try:
        start = lines.index(HEADER)
    except ValueError:
        raise KeyExportError("not a key export: header line not found") from None
    try:
        end = lines.index(FOOTER, start + 1)
    except ValueError:
        raise KeyExportError("not a key export: trailer line not found") from None
    return "".join(lines[start + 1 : end])


def decrypt_key_export(text: str, passphrase: str) -> bytes:
    """Decrypt an armoured export; the JSON bytes. Raises :class:`KeyExportError`."""
    try:
        raw = b64decode(_armoured_body(text))
    except ValueError as exc:
        if isinstance(exc, KeyExportError):
            raise
        raise KeyExportError("not a key export: invalid base64") from exc
    if len(raw) < _HEAD_LEN + _MAC_LEN:
        raise KeyExportError("not a key export: too short")
    if raw[0] != _VERSION:
        raise KeyExportError(f"unsupported key export version {raw[0]}")
    salt, iv = raw[1:17], raw[17:33]
    rounds = int.from_bytes(raw[33:37], "big")
    if not _MIN_ROUNDS <= rounds <= _MAX_ROUNDS:
        raise KeyExportError("unreasonable PBKDF2 round count in the file")
    aes_key, mac_key = _keys(passphrase, salt, rounds)
    expected = hmac.new(mac_key, raw[:-_MAC_LEN], hashlib.sha256).digest()
    if not hmac.compare_digest(expected, raw[-_MAC_LEN:]):
        raise KeyExportError("wrong passphrase (or a corrupted file)")
    return _ctr(aes_key, iv, raw[_HEAD_LEN:-_MAC_LEN])
