"""Encrypted attachments (the spec's "Sending encrypted attachments"): AES-256-CTR with a
random key and IV, and the SHA-256 of the ciphertext, checked before decrypting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from ..protocol.media import EncryptedFile
from .encoding import b64encode

__all__ = ["AttachmentEncryptor", "AttachmentError", "decrypt_attachment", "encrypt_attachment"]


class AttachmentError(ValueError):
    """The downloaded file does not match its hash (damaged or replaced): nothing is saved."""


def decrypt_attachment(ciphertext: bytes, file: EncryptedFile) -> bytes:
    """The plaintext of a downloaded encrypted attachment; :class:`AttachmentError` if its
    hash does not match."""
    if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), file.sha256):
        raise AttachmentError(
            "the downloaded file does not match its hash: it was damaged or replaced"
        )
    # Imported here: start-up (the first painted room list) needs no cipher (issue 13).
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(file.key), modes.CTR(file.iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def encrypt_attachment(plaintext: bytes) -> tuple[bytes, dict[str, Any]]:
    """Encrypt a file to upload; returns the ciphertext and the ``file`` object to send
    (its ``url`` to be filled in with the upload's content URI)."""
    encryptor = AttachmentEncryptor()
    ciphertext = encryptor.update(plaintext)
    return ciphertext, encryptor.file()


class AttachmentEncryptor:
    """Encrypts a file piece by piece as it streams to the server: AES-CTR is a stream
    cipher (the ciphertext is as long as the plaintext) and SHA-256 is incremental, so
    no piece of the file needs to stay in memory."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        # The spec: the low 64 bits (the counter) start at zero.
        self._iv = secrets.token_bytes(8) + bytes(8)
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._encryptor = Cipher(algorithms.AES(self._key), modes.CTR(self._iv)).encryptor()
        self._hash = hashlib.sha256()

    def update(self, plaintext: bytes) -> bytes:
        """The ciphertext of the next piece of the file."""
        ciphertext = self._encryptor.update(plaintext)
        self._hash.update(ciphertext)
        return ciphertext

    def file(self) -> dict[str, Any]:
        """The ``file`` object to send once every piece went through :meth:`update`
        (its ``url`` to be filled in)."""
        return {
            "v": "v2",
            "key": {
                "alg": "A256CTR",
                "ext": True,
                "k": base64.urlsafe_b64encode(self._key).decode("ascii").rstrip("="),
                "key_ops": ["encrypt", "decrypt"],
                "kty": "oct",
            },
            "iv": b64encode(self._iv),
            "hashes": {"sha256": b64encode(self._hash.digest())},
        }
