"""Sealing secrets at rest under the pickle key (AES-256-GCM, bound to the secret's name).

The backends encrypt their own pickles; secrets that are not backend objects (the
cross-signing private keys, the key backup's decryption key) are sealed here before
they reach the store. The AES key is derived from the pickle key with HKDF-SHA256 so
the pickle key itself is never used for two purposes, and the name is the associated
data, so a sealed value moved under another name does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .backend import check_pickle_key
from .encoding import b64decode, b64encode

__all__ = ["SecretSealError", "open_secret", "seal_secret"]

_INFO = b"tui_client local secret v1"
_NONCE_LENGTH = 12


class SecretSealError(ValueError):
    """A sealed secret does not open (another pickle key, another name, or corrupt)."""


def _aes(pickle_key: bytes) -> AESGCM:
    check_pickle_key(pickle_key)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(pickle_key)
    return AESGCM(key)


def seal_secret(pickle_key: bytes, name: str, secret: str) -> str:
    """``secret`` encrypted under ``pickle_key`` for ``name``: base64 of nonce and ciphertext."""
    nonce = os.urandom(_NONCE_LENGTH)
    sealed = _aes(pickle_key).encrypt(nonce, secret.encode("utf-8"), name.encode("utf-8"))
    return b64encode(nonce + sealed)


def open_secret(pickle_key: bytes, name: str, sealed: str) -> str:
    """The secret sealed by :func:`seal_secret`; raises :class:`SecretSealError`."""
    try:
        raw = b64decode(sealed)
    except ValueError as exc:
        raise SecretSealError("the sealed secret is not base64") from exc
    if len(raw) <= _NONCE_LENGTH:
        raise SecretSealError("the sealed secret is truncated")
    try:
        plain = _aes(pickle_key).decrypt(
            raw[:_NONCE_LENGTH], raw[_NONCE_LENGTH:], name.encode("utf-8")
        )
    except InvalidTag as exc:
        raise SecretSealError("the sealed secret does not open with this key and name") from exc
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretSealError("the sealed secret is not text") from exc
