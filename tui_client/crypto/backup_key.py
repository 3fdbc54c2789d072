"""The backup key and the backup version (``m.megolm_backup.v1.curve25519-aes-sha2``).

:class:`BackupKey` (create, read from secret storage, a recovery key or a passphrase,
decrypt an entry's ``session_data``), :class:`BackupVersion` (``GET /room_keys/version``
parsed) and :func:`backup_version_body` (the signed ``POST /room_keys/version`` body).
See :mod:`.backup` for the scheme.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .backend import BackendError, CryptoBackend, PkDecryption, PkDecryptionError, PkMessage
from .encoding import b64decode, b64encode, is_curve25519_key
from .recovery_key import (
    KEY_LENGTH,
    PassphraseInfo,
    PassphraseInfoError,
    decode_recovery_key,
    derive_key_from_passphrase,
    encode_recovery_key,
)
from .signing import sign_json

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


class BackupError(ValueError):
    """A backup version, key or entry is unusable (the message says why; never key material)."""


class UnsupportedBackupError(BackupError):
    """The backup uses another algorithm than ``m.megolm_backup.v1.curve25519-aes-sha2``."""


class BackupKey:
    """The backup's private key (a Curve25519 key, 32 bytes) over the backend's PK decryption.

    The repr shows only the public key.
    """

    __slots__ = ("_pk",)

    def __init__(self, decryption: PkDecryption) -> None:
        self._pk = decryption

    def __repr__(self) -> str:
        return f"BackupKey(public_key={self.public_key!r})"

    @classmethod
    def create(cls, backend: CryptoBackend) -> BackupKey:
        """A fresh random backup key."""
        return cls(backend.create_pk_decryption())

    @classmethod
    def from_bytes(cls, backend: CryptoBackend, key: bytes) -> BackupKey:
        """From the 32 private bytes; raises :class:`BackupError` if malformed."""
        if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
            raise BackupError("a backup key is 32 bytes")
        try:
            return cls(backend.pk_decryption_from_private_key(key))
        except BackendError:
            raise BackupError("not a valid backup key") from None

    @classmethod
    def from_secret(cls, backend: CryptoBackend, secret: str) -> BackupKey:
        """From the ``m.megolm_backup.v1`` secret (base64, padded or not)."""
        try:
            raw = b64decode(secret)
        except ValueError:
            raise BackupError("the stored backup key is not base64") from None
        return cls.from_bytes(backend, raw)

    @classmethod
    def from_recovery_key(cls, backend: CryptoBackend, text: str) -> BackupKey:
        """From the key's text form (what older clients showed as the backup's "recovery key").

        Raises :class:`~tui_client.crypto.recovery_key.RecoveryKeyError`.
        """
        return cls.from_bytes(backend, decode_recovery_key(text))

    @classmethod
    def from_passphrase(
        cls, backend: CryptoBackend, passphrase: str, version: BackupVersion
    ) -> BackupKey:
        """From a passphrase, for backups made by older clients without secret storage.

        Their ``auth_data`` carries ``private_key_salt``/``private_key_iterations``
        (``private_key_bits`` optional); the key is PBKDF2-SHA512 as for secret
        storage. Raises :class:`BackupError` if the backup has no such parameters
        or the passphrase gives another key than the backup's.
        """
        auth = version.auth_data
        try:
            info = PassphraseInfo(
                salt=auth["private_key_salt"],
                iterations=auth["private_key_iterations"],
                bits=auth.get("private_key_bits", 256),
            )
            if not isinstance(info.salt, str) or not isinstance(info.iterations, int):
                raise TypeError
            key = derive_key_from_passphrase(passphrase, info)
        except (KeyError, TypeError, PassphraseInfoError):
            raise BackupError("this backup cannot be opened with a passphrase") from None
        opened = cls.from_bytes(backend, key)
        if not opened.matches(version):
            raise BackupError("this passphrase does not open the backup")
        return opened

    @property
    def public_key(self) -> str:
        """The Curve25519 public key (what ``auth_data.public_key`` must be)."""
        return self._pk.public_key

    def to_secret(self) -> str:
        """The ``m.megolm_backup.v1`` secret: unpadded base64 of the private key."""
        return b64encode(self._pk.private_key())

    def recovery_key(self) -> str:
        """The key in the spec's text form (base58, groups of four)."""
        return encode_recovery_key(self._pk.private_key())

    def matches(self, version: BackupVersion) -> bool:
        """True if this key decrypts ``version`` (its public key is ours)."""
        return hmac.compare_digest(self.public_key.encode(), version.public_key.encode())

    def decrypt_session_data(self, session_data: object) -> dict[str, Any]:
        """Decrypt one ``session_data`` object into its ``BackedUpSessionData`` dict.

        Raises :class:`BackupError` (malformed, does not decrypt, or not JSON).
        """
        if not isinstance(session_data, Mapping):
            raise BackupError("session_data is not an object")
        ephemeral = session_data.get("ephemeral")
        ciphertext = session_data.get("ciphertext")
        mac = session_data.get("mac")
        if not (
            isinstance(ephemeral, str) and isinstance(ciphertext, str) and isinstance(mac, str)
        ):
            raise BackupError("session_data lacks ephemeral, ciphertext or mac")
        try:
            plaintext = self._pk.decrypt(PkMessage(ciphertext, mac, ephemeral))
        except PkDecryptionError:
            raise BackupError(
                "did not decrypt (corrupted, or made for another backup key)"
            ) from None
        try:
            value = json.loads(plaintext)
        except ValueError:
            raise BackupError("decrypted to something that is not JSON") from None
        if not isinstance(value, dict):
            raise BackupError("decrypted to something that is not a room key")
        return value


@dataclass(frozen=True, slots=True)
class BackupVersion:
    """A backup version as ``GET /room_keys/version[/{version}]`` describes it."""

    version: str
    public_key: str
    #: The signed ``auth_data`` object, as received.
    auth_data: dict[str, Any] = field(repr=False)
    algorithm: str = BACKUP_ALGORITHM
    #: Keys stored in it, and the opaque tag of its content (``None`` if not given).
    count: int | None = None
    etag: str | None = None

    @classmethod
    def from_response(cls, response: object) -> BackupVersion:
        """Parse the answer; raises :class:`UnsupportedBackupError` or :class:`BackupError`."""
        if not isinstance(response, Mapping):
            raise BackupError("the backup version is not an object")
        algorithm = response.get("algorithm")
        version = response.get("version")
        auth_data = response.get("auth_data")
        if algorithm != BACKUP_ALGORITHM:
            raise UnsupportedBackupError("the key backup uses an unsupported algorithm")
        if not isinstance(version, str) or not version:
            raise BackupError("the backup version has no version")
        if not isinstance(auth_data, Mapping):
            raise BackupError("the backup version has no auth_data")
        public_key = auth_data.get("public_key")
        if not is_curve25519_key(public_key):
            raise BackupError("the backup's public key is malformed")
        assert isinstance(public_key, str)
        count = response.get("count")
        etag = response.get("etag")
        return cls(
            version=version,
            public_key=public_key,
            auth_data=json.loads(json.dumps(auth_data)),
            algorithm=algorithm,
            count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            etag=etag if isinstance(etag, str) else None,
        )


class DeviceSigner(Protocol):
    """What signs ``auth_data`` as our device (:class:`~tui_client.crypto.machine.OlmMachine` is one)."""

    @property
    def user_id(self) -> str:
        """Our user ID."""
        ...

    def sign_json(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` signed with ``ed25519:<device_id>`` (other signatures kept)."""
        ...


class Ed25519Signer(Protocol):
    """A cross-signing key that can sign (a backend ``PkSigning`` from the master seed is one)."""

    @property
    def public_key(self) -> str:
        """The Ed25519 public key (unpadded base64)."""
        ...

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message`` (unpadded base64)."""
        ...


def backup_version_body(
    public_key: str, device: DeviceSigner, master_key: Ed25519Signer | None = None
) -> dict[str, Any]:
    """The ``POST /room_keys/version`` body (also ``PUT /room_keys/version/{v}`` to re-sign).

    ``auth_data`` = ``{"public_key": ...}`` signed by our master key (if given, as
    ``ed25519:<master public key>``) and by our device.
    """
    if not is_curve25519_key(public_key):
        raise BackupError("the backup's public key is malformed")
    auth_data: dict[str, Any] = {"public_key": public_key}
    if master_key is not None:
        auth_data = sign_json(
            auth_data, device.user_id, f"ed25519:{master_key.public_key}", master_key.sign
        )
    return {"algorithm": BACKUP_ALGORITHM, "auth_data": device.sign_json(auth_data)}
