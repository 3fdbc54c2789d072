"""Secret storage (secrets.md, "Storage"): secrets encrypted in the user's account data.

A *secret storage key* (32 random bytes, or derived from a passphrase) is
described in account data ``m.secret_storage.key.<key ID>``; the description
holds the algorithm, the optional passphrase parameters, and a check value (the
``iv`` and ``mac`` of 32 zero bytes encrypted under the key) so a client can tell
a wrong key at once. ``m.secret_storage.default_key`` names the key to use. Each
secret lives in account data under its own name
(``m.cross_signing.master``, ``m.megolm_backup.v1``, ...) as
``{"encrypted": {<key ID>: {"iv", "ciphertext", "mac"}}}``.

``m.secret_storage.v1.aes-hmac-sha2``: HKDF-SHA256 (salt: 32 zero bytes, info:
the secret's name, or the empty string for the check value) gives a 32-byte
AES-256-CTR key and a 32-byte HMAC-SHA256 key; the IV is random with bit 63
cleared; the MAC covers the ciphertext. Values are unpadded base64; padded
base64 is accepted on input, as the spec asks.

Everything here is pure: the engine reads and writes the account data
(``GET``/``PUT /user/{userId}/account_data/{type}``). A failed check raises and
changes nothing. Keys never appear in reprs, logs or exception messages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .backend import BackendError, CryptoBackend
from .encoding import b64decode, b64encode
from .recovery_key import (
    DEFAULT_PBKDF2_ITERATIONS,
    KEY_LENGTH,
    PassphraseInfo,
    PassphraseInfoError,
    RecoveryKeyError,
    RecoveryKeyProblem,
    decode_recovery_key,
    derive_key_from_passphrase,
    encode_recovery_key,
)

__all__ = [
    "AES_HMAC_SHA2",
    "CROSS_SIGNING_MASTER",
    "CROSS_SIGNING_SELF_SIGNING",
    "CROSS_SIGNING_USER_SIGNING",
    "DEFAULT_KEY_TYPE",
    "KEY_BACKUP_TYPE",
    "KEY_TYPE_PREFIX",
    "MEGOLM_BACKUP_V1",
    "RECOVERY_SECRET_NAMES",
    "AccountDataWrite",
    "KeyDescription",
    "MalformedContentError",
    "SecretDecryptionError",
    "SecretNotStoredError",
    "SecretStorageError",
    "SecretStorageKey",
    "StoredSecrets",
    "UnsupportedAlgorithmError",
    "WrongKeyError",
    "check_cross_signing_secrets",
    "compute_key_check",
    "default_key_content",
    "ed25519_public_key_from_secret",
    "parse_default_key",
    "read_recovery_secrets",
    "recovery_setup_writes",
]

AES_HMAC_SHA2 = "m.secret_storage.v1.aes-hmac-sha2"
DEFAULT_KEY_TYPE = "m.secret_storage.default_key"
KEY_TYPE_PREFIX = "m.secret_storage.key."
#: ``m.key_backup``: the user's "key backup enabled" preference (spec v1.19).
KEY_BACKUP_TYPE = "m.key_backup"

CROSS_SIGNING_MASTER = "m.cross_signing.master"
CROSS_SIGNING_SELF_SIGNING = "m.cross_signing.self_signing"
CROSS_SIGNING_USER_SIGNING = "m.cross_signing.user_signing"
MEGOLM_BACKUP_V1 = "m.megolm_backup.v1"
#: The secrets recovery keeps, in the order they are written.
RECOVERY_SECRET_NAMES = (
    CROSS_SIGNING_MASTER,
    CROSS_SIGNING_SELF_SIGNING,
    CROSS_SIGNING_USER_SIGNING,
    MEGOLM_BACKUP_V1,
)

_ZERO_SECRET = bytes(32)
_HKDF_SALT = bytes(32)
_IV_LENGTH = 16
_MAC_LENGTH = 32
_KEY_ID_LENGTH = 32
_KEY_ID_ALPHABET = string.ascii_letters + string.digits


class SecretStorageError(ValueError):
    """Base class of the secret storage failures (never carries key material)."""


class WrongKeyError(SecretStorageError):
    """The recovery key or passphrase does not match the key description's check value."""


class UnsupportedAlgorithmError(SecretStorageError):
    """The key (or its passphrase) uses an algorithm this client does not implement."""


class MalformedContentError(SecretStorageError):
    """An account-data content is not in the shape the spec gives it."""


class SecretNotStoredError(SecretStorageError):
    """The secret is not in account data, or not encrypted with this key."""


class SecretDecryptionError(SecretStorageError):
    """A stored secret's MAC does not verify (another key, or corrupted data)."""


# --------------------------------------------------------------------------- primitives


def _derive(key: bytes, info: str) -> tuple[bytes, bytes]:
    """HKDF-SHA256(salt = 32 zero bytes, info) -> (AES key, MAC key)."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=_HKDF_SALT, info=info.encode()).derive(
        key
    )
    return okm[:32], okm[32:]


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    transform = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return transform.update(data) + transform.finalize()


def _new_iv() -> bytes:
    iv = bytearray(secrets.token_bytes(_IV_LENGTH))
    # Bit 63 cleared (the spec's work-around for AES-CTR implementations that
    # disagree on counter overflow).
    iv[8] &= 0x7F
    return bytes(iv)


def _mac(mac_key: bytes, data: bytes) -> bytes:
    return hmac.new(mac_key, data, hashlib.sha256).digest()


def _decode_field(value: object, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise MalformedContentError(f"the {what} is missing")
    try:
        raw = b64decode(value)
    except ValueError:
        raise MalformedContentError(f"the {what} is not base64") from None
    if length is not None and len(raw) != length:
        raise MalformedContentError(f"the {what} has the wrong length")
    return raw


def compute_key_check(key: bytes, iv: bytes | None = None) -> tuple[str, str]:
    """The description's check value ``(iv, mac)`` for ``key`` (a fresh IV unless given).

    32 zero bytes encrypted under the key's HKDF keys with the empty info; the MAC of
    that ciphertext (the ciphertext itself is discarded).
    """
    if len(key) != KEY_LENGTH:
        raise ValueError("a secret storage key is 32 bytes")
    iv = _new_iv() if iv is None else iv
    aes_key, mac_key = _derive(key, "")
    mac = _mac(mac_key, _aes_ctr(aes_key, iv, _ZERO_SECRET))
    return b64encode(iv), b64encode(mac)


def _random_key_id() -> str:
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(_KEY_ID_LENGTH))


# --------------------------------------------------------------------------- descriptions


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """An ``m.secret_storage.key.<key_id>`` account-data content, parsed.

    ``iv`` and ``mac`` (base64 as stored) are the optional check value; without
    them the spec says any key must be assumed valid (:attr:`can_check` is false).
    """

    key_id: str
    algorithm: str = AES_HMAC_SHA2
    name: str | None = None
    passphrase: PassphraseInfo | None = None
    iv: str | None = None
    mac: str | None = None

    @classmethod
    def from_content(cls, key_id: str, content: object) -> KeyDescription:
        """Parse a key description; raises :class:`SecretStorageError` subclasses.

        An unknown algorithm is :class:`UnsupportedAlgorithmError`; a passphrase
        property that cannot be used (unknown algorithm, absurd iteration count)
        is dropped, so the key can still be entered as a recovery key.
        """
        if not isinstance(content, Mapping):
            raise MalformedContentError("the key description is not an object")
        if not isinstance(key_id, str) or not key_id:
            raise MalformedContentError("the key ID is empty")
        algorithm = content.get("algorithm")
        if algorithm != AES_HMAC_SHA2:
            raise UnsupportedAlgorithmError("the secret storage key uses an unsupported algorithm")
        name = content.get("name")
        passphrase: PassphraseInfo | None = None
        if content.get("passphrase") is not None:
            try:
                passphrase = PassphraseInfo.from_content(content["passphrase"])
            except PassphraseInfoError:
                passphrase = None
        iv, mac = content.get("iv"), content.get("mac")
        # Empty strings count as absent: some clients wrote them so.
        return cls(
            key_id=key_id,
            algorithm=algorithm,
            name=name if isinstance(name, str) else None,
            passphrase=passphrase,
            iv=iv if isinstance(iv, str) and iv else None,
            mac=mac if isinstance(mac, str) and mac else None,
        )

    @property
    def event_type(self) -> str:
        """``m.secret_storage.key.<key_id>``."""
        return KEY_TYPE_PREFIX + self.key_id

    @property
    def can_check(self) -> bool:
        """True if the description carries a check value (a wrong key is detected at once)."""
        return self.iv is not None and self.mac is not None

    def to_content(self) -> dict[str, Any]:
        """The account-data content."""
        content: dict[str, Any] = {"algorithm": self.algorithm}
        if self.name is not None:
            content["name"] = self.name
        if self.passphrase is not None:
            content["passphrase"] = self.passphrase.to_content()
        if self.iv is not None:
            content["iv"] = self.iv
        if self.mac is not None:
            content["mac"] = self.mac
        return content

    def check_key(self, key: bytes) -> bool:
        """Whether ``key`` matches the check value (constant-time); True if there is none.

        Raises :class:`MalformedContentError` if the check value is malformed.
        """
        if self.iv is None or self.mac is None:
            return True
        iv = _decode_field(self.iv, "key check IV", _IV_LENGTH)
        expected = _decode_field(self.mac, "key check MAC", _MAC_LENGTH)
        if len(key) != KEY_LENGTH:
            return False
        aes_key, mac_key = _derive(key, "")
        actual = _mac(mac_key, _aes_ctr(aes_key, iv, _ZERO_SECRET))
        return hmac.compare_digest(actual, expected)


def parse_default_key(content: object) -> str | None:
    """The key ID an ``m.secret_storage.default_key`` content names (``None`` if unusable)."""
    if isinstance(content, Mapping):
        key = content.get("key")
        if isinstance(key, str) and key:
            return key
    return None


def default_key_content(key_id: str) -> dict[str, Any]:
    """The ``m.secret_storage.default_key`` content naming ``key_id``."""
    return {"key": key_id}


# --------------------------------------------------------------------------- the key


class SecretStorageKey:
    """An opened secret storage key: its ID, its 32 bytes, and its description.

    Build one with :meth:`create` (set up recovery) or :meth:`unlock` (the user
    typed a recovery key or passphrase for an existing description). The repr
    shows only the key ID.
    """

    __slots__ = ("_key", "description", "verified")

    def __init__(self, key: bytes, description: KeyDescription, *, verified: bool) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
            raise ValueError("a secret storage key is 32 bytes")
        self._key = key
        #: The account-data description this key matches.
        self.description = description
        #: True if the description's check value confirmed the key (False: it had none).
        self.verified = verified

    def __repr__(self) -> str:
        return f"SecretStorageKey(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """The key's ID (the suffix of its description's event type)."""
        return self.description.key_id

    # -- building ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        passphrase: str | None = None,
        name: str | None = None,
        key_id: str | None = None,
        iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    ) -> SecretStorageKey:
        """A new key: 32 random bytes, or PBKDF2 of ``passphrase`` with a fresh salt.

        Its description carries a fresh check value. A passphrase-derived key can
        be opened with the passphrase or with its recovery key.
        """
        key_id = key_id or _random_key_id()
        info: PassphraseInfo | None = None
        if passphrase is not None:
            info = PassphraseInfo.generate(iterations)
            key = derive_key_from_passphrase(passphrase, info)
        else:
            key = secrets.token_bytes(KEY_LENGTH)
        iv, mac = compute_key_check(key)
        description = KeyDescription(key_id=key_id, name=name, passphrase=info, iv=iv, mac=mac)
        return cls(key, description, verified=True)

    @classmethod
    def from_bytes(cls, key: bytes, description: KeyDescription) -> SecretStorageKey:
        """Open ``description`` with raw key bytes; :class:`WrongKeyError` if they do not match."""
        if description.algorithm != AES_HMAC_SHA2:
            raise UnsupportedAlgorithmError("the secret storage key uses an unsupported algorithm")
        if not description.check_key(key):
            raise WrongKeyError("this key does not unlock the secret storage")
        return cls(key, description, verified=description.can_check)

    @classmethod
    def from_recovery_key(cls, text: str, description: KeyDescription) -> SecretStorageKey:
        """Open with a recovery key text.

        Raises :class:`~tui_client.crypto.recovery_key.RecoveryKeyError` (not a
        recovery key) or :class:`WrongKeyError` (a recovery key, but another one).
        """
        key = decode_recovery_key(text)
        try:
            return cls.from_bytes(key, description)
        except WrongKeyError:
            raise WrongKeyError("this recovery key does not unlock the secret storage") from None

    @classmethod
    def from_passphrase(cls, passphrase: str, description: KeyDescription) -> SecretStorageKey:
        """Open with a passphrase (PBKDF2 per the description: slow by design).

        Raises :class:`SecretStorageError` if the key has no usable passphrase,
        :class:`WrongKeyError` if the passphrase is wrong.
        """
        info = description.passphrase
        if info is None:
            raise SecretStorageError(
                "this key was not made from a passphrase: enter the recovery key"
            )
        if info.bits != 8 * KEY_LENGTH:
            raise UnsupportedAlgorithmError("the passphrase derives a key of an unsupported size")
        try:
            key = derive_key_from_passphrase(passphrase, info)
        except PassphraseInfoError as exc:
            raise SecretStorageError(str(exc)) from None
        try:
            return cls.from_bytes(key, description)
        except WrongKeyError:
            raise WrongKeyError("this passphrase does not unlock the secret storage") from None

    @classmethod
    def unlock(cls, text: str, description: KeyDescription) -> SecretStorageKey:
        """Open with what the user typed: a recovery key, or the passphrase if the key has one.

        A text that is a well-formed recovery key is used as one (its parity byte
        makes a passphrase of that shape vanishingly unlikely); otherwise, if the
        description has passphrase parameters, the text is tried as the
        passphrase. Errors: :class:`WrongKeyError`, or
        :class:`~tui_client.crypto.recovery_key.RecoveryKeyError` when the text
        looks like a mistyped recovery key (and is not the passphrase either).
        """
        try:
            key = decode_recovery_key(text)
        except RecoveryKeyError as exc:
            if description.passphrase is None or exc.problem is RecoveryKeyProblem.EMPTY:
                raise
            try:
                return cls.from_passphrase(text, description)
            except WrongKeyError:
                if _looks_like_recovery_key(text, exc):
                    raise exc from None
                raise WrongKeyError(
                    "this recovery key or passphrase does not unlock the secret storage"
                ) from None
        try:
            return cls.from_bytes(key, description)
        except WrongKeyError:
            raise WrongKeyError("this recovery key does not unlock the secret storage") from None

    # -- using ---------------------------------------------------------------------

    def recovery_key(self) -> str:
        """The key in the spec's text form (show it once; never log it)."""
        return encode_recovery_key(self._key)

    def encrypt(self, name: str, secret: str) -> dict[str, str]:
        """``AesHmacSha2EncryptedData`` of ``secret`` under ``name``: ``{iv, ciphertext, mac}``."""
        aes_key, mac_key = _derive(self._key, name)
        iv = _new_iv()
        ciphertext = _aes_ctr(aes_key, iv, secret.encode("utf-8"))
        return {
            "iv": b64encode(iv),
            "ciphertext": b64encode(ciphertext),
            "mac": b64encode(_mac(mac_key, ciphertext)),
        }

    def decrypt(self, name: str, data: object) -> str:
        """The secret from an ``AesHmacSha2EncryptedData`` object (MAC checked in constant time).

        Raises :class:`MalformedContentError` or :class:`SecretDecryptionError`.
        """
        if not isinstance(data, Mapping):
            raise MalformedContentError("the encrypted secret is not an object")
        iv = _decode_field(data.get("iv"), "secret's IV", _IV_LENGTH)
        ciphertext = _decode_field(data.get("ciphertext"), "secret's ciphertext")
        mac = _decode_field(data.get("mac"), "secret's MAC")
        aes_key, mac_key = _derive(self._key, name)
        if not hmac.compare_digest(_mac(mac_key, ciphertext), mac):
            raise SecretDecryptionError(
                f"the stored {name} does not verify with this key (corrupted, or another key)"
            )
        try:
            return _aes_ctr(aes_key, iv, ciphertext).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretDecryptionError(f"the stored {name} is not text") from None

    def secret_content(self, name: str, secret: str) -> dict[str, Any]:
        """The account-data content storing ``secret`` under this key only."""
        return {"encrypted": {self.key_id: self.encrypt(name, secret)}}

    def open_secret(self, name: str, content: object) -> str:
        """Decrypt the secret ``name`` from its account-data content.

        Raises :class:`SecretNotStoredError` (no content, or nothing for this key),
        :class:`MalformedContentError` or :class:`SecretDecryptionError`.
        """
        if content is None:
            raise SecretNotStoredError(f"{name} is not in secret storage")
        if not isinstance(content, Mapping):
            raise MalformedContentError(f"the account data of {name} is not an object")
        encrypted = content.get("encrypted")
        if not isinstance(encrypted, Mapping):
            raise SecretNotStoredError(f"{name} is not in secret storage")
        data = encrypted.get(self.key_id)
        if data is None:
            raise SecretNotStoredError(f"{name} is stored, but not with this key")
        return self.decrypt(name, data)


def _looks_like_recovery_key(text: str, error: RecoveryKeyError) -> bool:
    """A mistyped recovery key rather than a wrong passphrase (for the better message)."""
    if error.problem in (RecoveryKeyProblem.WRONG_PARITY, RecoveryKeyProblem.WRONG_PREFIX):
        return True
    compact = "".join(text.split())
    return 44 <= len(compact) <= 52 and compact.startswith("Es")


# --------------------------------------------------------------------------- recovery


@dataclass(frozen=True, slots=True)
class AccountDataWrite:
    """One ``PUT /user/{userId}/account_data/{event_type}`` with ``content``."""

    event_type: str
    content: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class StoredSecrets:
    """The secrets recovery keeps (unpadded base64 of each 32-byte private key, or ``None``)."""

    master_key: str | None = field(default=None, repr=False)
    self_signing_key: str | None = field(default=None, repr=False)
    user_signing_key: str | None = field(default=None, repr=False)
    backup_key: str | None = field(default=None, repr=False)

    def by_name(self) -> dict[str, str | None]:
        """Secret name to value, in :data:`RECOVERY_SECRET_NAMES` order."""
        return {
            CROSS_SIGNING_MASTER: self.master_key,
            CROSS_SIGNING_SELF_SIGNING: self.self_signing_key,
            CROSS_SIGNING_USER_SIGNING: self.user_signing_key,
            MEGOLM_BACKUP_V1: self.backup_key,
        }

    @property
    def has_cross_signing(self) -> bool:
        """All three cross-signing private keys are present."""
        return None not in (self.master_key, self.self_signing_key, self.user_signing_key)

    def __repr__(self) -> str:
        held = [name for name, value in self.by_name().items() if value is not None]
        return f"StoredSecrets(held={held!r})"


def recovery_setup_writes(
    key: SecretStorageKey,
    stored: StoredSecrets,
    *,
    make_default: bool = True,
    backup_enabled: bool | None = None,
) -> list[AccountDataWrite]:
    """The account-data writes that set up (or re-key) recovery, in the order to send them.

    1. the key description (``m.secret_storage.key.<id>``);
    2. each secret held in ``stored``, encrypted under this key only;
    3. ``m.secret_storage.default_key`` (last: until it is written, other clients
       keep using the previous default key, so an interrupted setup is harmless
       and is simply run again);
    4. ``m.key_backup`` ``{"enabled": ...}`` if ``backup_enabled`` is given.
    """
    writes = [AccountDataWrite(key.description.event_type, key.description.to_content())]
    for name, value in stored.by_name().items():
        if value is not None:
            writes.append(AccountDataWrite(name, key.secret_content(name, value)))
    if make_default:
        writes.append(AccountDataWrite(DEFAULT_KEY_TYPE, default_key_content(key.key_id)))
    if backup_enabled is not None:
        writes.append(AccountDataWrite(KEY_BACKUP_TYPE, {"enabled": backup_enabled}))
    return writes


def read_recovery_secrets(
    key: SecretStorageKey, account_data: Mapping[str, object]
) -> tuple[StoredSecrets, dict[str, SecretStorageError]]:
    """Open every recovery secret found in ``account_data`` (event type -> content).

    Returns the secrets (``None`` where absent or unreadable) and, per secret name,
    the error that made it unreadable (a secret simply absent is not an error).
    """
    values: dict[str, str | None] = {}
    problems: dict[str, SecretStorageError] = {}
    for name in RECOVERY_SECRET_NAMES:
        values[name] = None
        content = account_data.get(name)
        if content is None:
            continue
        try:
            values[name] = key.open_secret(name, content)
        except SecretNotStoredError:
            continue
        except SecretStorageError as exc:
            problems[name] = exc
    stored = StoredSecrets(
        master_key=values[CROSS_SIGNING_MASTER],
        self_signing_key=values[CROSS_SIGNING_SELF_SIGNING],
        user_signing_key=values[CROSS_SIGNING_USER_SIGNING],
        backup_key=values[MEGOLM_BACKUP_V1],
    )
    return stored, problems


def ed25519_public_key_from_secret(backend: CryptoBackend, secret: str) -> str:
    """The Ed25519 public key of a cross-signing secret (base64 of the 32-byte seed).

    Raises :class:`MalformedContentError` if the secret is not such a seed.
    """
    try:
        seed = b64decode(secret)
    except ValueError:
        raise MalformedContentError("the cross-signing secret is not base64") from None
    if len(seed) != KEY_LENGTH:
        raise MalformedContentError("the cross-signing secret has the wrong length")
    try:
        return backend.pk_signing_from_seed(seed).public_key
    except BackendError:
        raise MalformedContentError("the cross-signing secret is not a valid key") from None


def check_cross_signing_secrets(
    backend: CryptoBackend,
    stored: StoredSecrets,
    *,
    master: str | None,
    self_signing: str | None,
    user_signing: str | None,
) -> dict[str, bool]:
    """Per stored cross-signing secret: does it match the published public key?

    ``master``/``self_signing``/``user_signing`` are the public keys from our own
    ``/keys/query``. A secret that does not match (another client reset the
    identity and left stale secrets, or a malformed one) must not be used.
    Secrets not held are left out of the answer.
    """
    result: dict[str, bool] = {}
    for name, secret, published in (
        (CROSS_SIGNING_MASTER, stored.master_key, master),
        (CROSS_SIGNING_SELF_SIGNING, stored.self_signing_key, self_signing),
        (CROSS_SIGNING_USER_SIGNING, stored.user_signing_key, user_signing),
    ):
        if secret is None:
            continue
        try:
            derived = ed25519_public_key_from_secret(backend, secret)
        except MalformedContentError:
            result[name] = False
            continue
        result[name] = published is not None and hmac.compare_digest(
            derived.encode(), published.rstrip("=").encode()
        )
    return result
