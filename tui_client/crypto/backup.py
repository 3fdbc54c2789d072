"""Server-side key backup, ``m.megolm_backup.v1.curve25519-aes-sha2`` (sans-I/O).

end_to_end_encryption.md, "Server-side key backups". The backup is a Curve25519
key pair: the public key goes in the backup version's ``auth_data`` (signed by
our device and, when we have it, our master cross-signing key); the private key
(the *backup key*) is kept in secret storage as ``m.megolm_backup.v1``. Each room
key is uploaded as ``session_data`` = the backend's PK encryption of its
``BackedUpSessionData`` JSON: an ephemeral Curve25519 key, ECDH with the backup
key, HKDF-SHA256 to an AES-256-CBC key, MAC key and IV, and the first 8 bytes of
an HMAC-SHA256 (of the empty string: libolm's historical bug, which every
implementation now reproduces, so the MAC authenticates the key agreement and
not the ciphertext; corrupted ciphertext shows as bad padding or bad JSON).

What is here, for the engine to drive (it does all the HTTP):

- :class:`BackupKey`: create, read from secret storage / a recovery key, decrypt.
- :func:`backup_version_body`: the ``POST /room_keys/version`` body.
- :class:`BackupVersion` and :func:`check_backup_trust`: parse ``GET
  /room_keys/version`` and decide whether we may use it (signed by this device,
  by one of our verified devices, or by our trusted master key; or its public
  key is the one of the backup key we hold from a trusted source).
- :class:`BackupUploader`: the ``PUT /room_keys/keys`` batches, resumable through
  the store's ``backed_up`` flags.
- :func:`decrypt_backup` / :func:`restore_backup`: a ``GET /room_keys/keys``
  answer back into sessions for ``OlmMachine.import_sessions(...,
  origin=KeyOrigin.BACKUP)``, in batches with progress; a corrupted entry is
  skipped and reported, the others restored.

Sessions are read straight from the :class:`CryptoStore` and unpickled with the
backend and the pickle key, so this module needs no change to the machine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .backend import (
    BackendError,
    CryptoBackend,
    IdentityKeys,
    PkDecryption,
    PkDecryptionError,
    PkEncryption,
    PkMessage,
)
from .encoding import b64decode, b64encode, is_curve25519_key
from .recovery_key import (
    KEY_LENGTH,
    PassphraseInfo,
    PassphraseInfoError,
    decode_recovery_key,
    derive_key_from_passphrase,
    encode_recovery_key,
)
from .signing import sign_json, verify_signed_json
from .store_api import CryptoStore, InboundGroupSessionRecord
from .types import MEGOLM_ALGORITHM, Device, DeviceTrust, ImportResult, KeyOrigin, RoomKeyInfo

__all__ = [
    "BACKUP_ALGORITHM",
    "DEFAULT_RESTORE_BATCH",
    "DEFAULT_UPLOAD_BATCH",
    "BackupError",
    "BackupKey",
    "BackupTrust",
    "BackupUpload",
    "BackupUploader",
    "BackupVersion",
    "DeviceSigner",
    "Ed25519Signer",
    "MachineView",
    "RestoreBatch",
    "RestoreFailure",
    "RestoreFailureKind",
    "RestoreProgress",
    "RestoreResult",
    "SignatureCheck",
    "SignatureState",
    "SignerKind",
    "TrustedBy",
    "UnsupportedBackupError",
    "UploadOutcome",
    "backed_up_session_data",
    "backup_entries",
    "backup_version_body",
    "check_backup_trust",
    "check_backup_trust_for",
    "count_backup_entries",
    "decrypt_backup",
    "encrypt_session_data",
    "restore_backup",
]

log = logging.getLogger(__name__)

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
#: Sessions per ``PUT /room_keys/keys`` (Element uses 200).
DEFAULT_UPLOAD_BATCH = 200
#: Entries decrypted before each import (one store transaction per batch).
DEFAULT_RESTORE_BATCH = 1000
_AUTHENTICATED_ORIGINS = frozenset({KeyOrigin.ROOM_KEY.value, KeyOrigin.OWN.value})


class BackupError(ValueError):
    """A backup version, key or entry is unusable (the message says why; never key material)."""


class UnsupportedBackupError(BackupError):
    """The backup uses another algorithm than ``m.megolm_backup.v1.curve25519-aes-sha2``."""


# --------------------------------------------------------------------------- the key


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


# --------------------------------------------------------------------------- versions


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


# --------------------------------------------------------------------------- trust


class SignerKind(StrEnum):
    """Whose key a signature on ``auth_data`` claims to be."""

    THIS_DEVICE = "this_device"
    OWN_DEVICE = "own_device"
    MASTER_KEY = "master_key"
    #: A key ID we cannot attribute (unknown device, other algorithm).
    UNKNOWN = "unknown"


class SignatureState(StrEnum):
    """The result of checking one signature."""

    VALID_TRUSTED = "valid_trusted"
    #: Valid, but the signer is not trusted (an unverified device, an untrusted master key).
    VALID_UNTRUSTED = "valid_untrusted"
    INVALID = "invalid"
    #: Not checked: we do not know the signing key.
    UNKNOWN_SIGNER = "unknown_signer"


class TrustedBy(StrEnum):
    """Why a backup version is trusted."""

    THIS_DEVICE = "this_device"
    VERIFIED_DEVICE = "verified_device"
    MASTER_KEY = "master_key"
    #: Its public key is the one of the backup key we hold (from secret storage or the user).
    PRIVATE_KEY = "private_key"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One signature by our own user on ``auth_data``."""

    key_id: str
    signer: SignerKind
    state: SignatureState
    #: The device, for device signatures.
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class BackupTrust:
    """Whether a backup version may be used, and every signature that was checked."""

    trusted: bool
    trusted_by: tuple[TrustedBy, ...]
    signatures: tuple[SignatureCheck, ...]
    #: Whether the backup key we hold matches the version (``None``: we hold none).
    key_matches: bool | None

    def explain(self) -> str:
        """A sentence for the encryption health screen."""
        if self.trusted:
            reasons = {
                TrustedBy.THIS_DEVICE: "this device",
                TrustedBy.VERIFIED_DEVICE: "a verified device of yours",
                TrustedBy.MASTER_KEY: "your cross-signing identity",
                TrustedBy.PRIVATE_KEY: "the backup key from your recovery",
            }
            return (
                "The backup is trusted: signed by or matching "
                + " and ".join(reasons[r] for r in self.trusted_by)
                + "."
            )
        if self.key_matches is False:
            return "The backup on the server was made with another key than yours."
        if not self.signatures:
            return "The backup is not signed by any of your keys: it is not used."
        if any(s.state is SignatureState.INVALID for s in self.signatures):
            return "The backup's signatures do not verify: it is not used."
        return "The backup is signed only by keys you have not verified: it is not used."


def check_backup_trust(
    version: BackupVersion,
    *,
    backend: CryptoBackend,
    user_id: str,
    device_id: str,
    device_ed25519: str,
    own_devices: Iterable[Device] = (),
    is_verified: Callable[[Device], bool] = lambda _device: False,
    master_key: str | None = None,
    master_key_trusted: bool = False,
    backup_key: BackupKey | None = None,
) -> BackupTrust:
    """Decide whether ``version`` may be used (the spec's two ways), checking every signature.

    Trusted if ``auth_data`` carries a valid signature by this device, by one of
    ``own_devices`` for which ``is_verified`` holds, or by ``master_key`` when
    ``master_key_trusted``; or if ``backup_key`` (held from a trusted source: secret
    storage opened by the user, or typed in) has the version's public key.
    A key ID equal to our master key is only ever checked against the master key
    (device IDs and cross-signing keys share a namespace, and a server could
    invent a device so named). Signatures by other users are ignored.
    """
    auth_data = version.auth_data
    devices = {d.device_id: d for d in own_devices if d.user_id == user_id}
    checks: list[SignatureCheck] = []
    trusted_by: list[TrustedBy] = []
    signatures = auth_data.get("signatures")
    mine = signatures.get(user_id) if isinstance(signatures, Mapping) else None
    if isinstance(mine, Mapping):
        for key_id in sorted(k for k in mine if isinstance(k, str)):
            algorithm, _, name = key_id.partition(":")
            if algorithm != "ed25519" or not name:
                checks.append(
                    SignatureCheck(key_id, SignerKind.UNKNOWN, SignatureState.UNKNOWN_SIGNER)
                )
                continue
            if master_key is not None and name == master_key:
                valid = verify_signed_json(backend, auth_data, user_id, key_id, master_key)
                state = _state(valid, master_key_trusted)
                checks.append(SignatureCheck(key_id, SignerKind.MASTER_KEY, state))
                if state is SignatureState.VALID_TRUSTED:
                    trusted_by.append(TrustedBy.MASTER_KEY)
            elif name == device_id:
                valid = verify_signed_json(backend, auth_data, user_id, key_id, device_ed25519)
                state = _state(valid, True)
                checks.append(SignatureCheck(key_id, SignerKind.THIS_DEVICE, state, name))
                if state is SignatureState.VALID_TRUSTED:
                    trusted_by.append(TrustedBy.THIS_DEVICE)
            elif name in devices:
                device = devices[name]
                valid = verify_signed_json(backend, auth_data, user_id, key_id, device.ed25519)
                state = _state(valid, not device.deleted and is_verified(device))
                checks.append(SignatureCheck(key_id, SignerKind.OWN_DEVICE, state, name))
                if (
                    state is SignatureState.VALID_TRUSTED
                    and TrustedBy.VERIFIED_DEVICE not in trusted_by
                ):
                    trusted_by.append(TrustedBy.VERIFIED_DEVICE)
            else:
                checks.append(
                    SignatureCheck(key_id, SignerKind.UNKNOWN, SignatureState.UNKNOWN_SIGNER)
                )
    key_matches = None if backup_key is None else backup_key.matches(version)
    if key_matches:
        trusted_by.append(TrustedBy.PRIVATE_KEY)
    return BackupTrust(
        trusted=bool(trusted_by),
        trusted_by=tuple(sorted(set(trusted_by), key=list(TrustedBy).index)),
        signatures=tuple(checks),
        key_matches=key_matches,
    )


def _state(valid: bool, signer_trusted: bool) -> SignatureState:
    if not valid:
        return SignatureState.INVALID
    return SignatureState.VALID_TRUSTED if signer_trusted else SignatureState.VALID_UNTRUSTED


class MachineView(Protocol):
    """The parts of :class:`~tui_client.crypto.machine.OlmMachine` the trust check reads."""

    @property
    def user_id(self) -> str:
        """Our user ID."""
        ...

    @property
    def device_id(self) -> str:
        """Our device ID."""
        ...

    @property
    def identity_keys(self) -> IdentityKeys:
        """Our device's keys."""
        ...

    @property
    def backend(self) -> CryptoBackend:
        """The primitives."""
        ...

    def get_user_devices(self, user_id: str) -> list[Device]:
        """A user's known devices."""
        ...

    def device_trust(self, device: Device) -> DeviceTrust:
        """A device's trust under the machine's policy."""
        ...


def check_backup_trust_for(
    machine: MachineView,
    version: BackupVersion,
    *,
    master_key: str | None = None,
    master_key_trusted: bool = False,
    backup_key: BackupKey | None = None,
) -> BackupTrust:
    """:func:`check_backup_trust` with our devices and their trust taken from the machine.

    ``master_key`` (our master public key) and whether it is trusted come from
    the cross-signing layer (issue 5): ours is trusted once this device is
    verified against it, or its private key came from secret storage.
    """
    return check_backup_trust(
        version,
        backend=machine.backend,
        user_id=machine.user_id,
        device_id=machine.device_id,
        device_ed25519=machine.identity_keys.ed25519,
        own_devices=machine.get_user_devices(machine.user_id),
        is_verified=lambda device: machine.device_trust(device) is DeviceTrust.VERIFIED,
        master_key=master_key,
        master_key_trusted=master_key_trusted,
        backup_key=backup_key,
    )


# --------------------------------------------------------------------------- upload


def backed_up_session_data(record: InboundGroupSessionRecord, session_key: str) -> dict[str, Any]:
    """The ``BackedUpSessionData`` of a stored session, given its exported key."""
    return {
        "algorithm": MEGOLM_ALGORITHM,
        "sender_key": record["sender_key"],
        "sender_claimed_keys": {"ed25519": record["signing_key"]},
        "forwarding_curve25519_key_chain": list(record["forwarding_chain"]),
        "session_key": session_key,
        "shared_history": record["shared_history"],
    }


def encrypt_session_data(encryption: PkEncryption, data: Mapping[str, Any]) -> dict[str, str]:
    """The ``session_data`` object: ``data`` as compact JSON, PK-encrypted to the backup."""
    message = encryption.encrypt(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return {
        "ephemeral": message.ephemeral_key,
        "ciphertext": message.ciphertext,
        "mac": message.mac,
    }


def _forwarded_count(record: InboundGroupSessionRecord) -> int:
    # The server only compares counts between copies: 0 for a key straight from its
    # creator (or our own), otherwise the hops we know of, at least one.
    if record["origin"] in _AUTHENTICATED_ORIGINS:
        return 0
    return max(1, len(record["forwarding_chain"]))


def _fingerprint(record: InboundGroupSessionRecord) -> bytes:
    # Everything uploaded for the session: a copy upgraded in place (same pickle, now
    # Olm-authenticated) must be uploaded again with is_verified / forwarded_count.
    digest = hashlib.sha256(record["pickle"].encode())
    for part in (
        record["origin"],
        record["sender_user_id"] or "",
        str(record["first_known_index"]),
        "\x1f".join(record["forwarding_chain"]),
    ):
        digest.update(b"\x1e" + part.encode())
    return digest.digest()[:16]


@dataclass(frozen=True, slots=True)
class BackupUpload:
    """One ``PUT /room_keys/keys?version=<version>`` with ``body``.

    ``sessions`` lists what it carries as ``(room_id, session_id, fingerprint)``,
    so only sessions unchanged since are marked backed up afterwards;
    ``unreadable`` lists the stored sessions of the batch that could not be
    exported (already flagged, so they do not block the queue).
    """

    version: str
    body: dict[str, Any] = field(repr=False)
    sessions: tuple[tuple[str, str, bytes], ...] = field(repr=False)
    unreadable: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        """Sessions in the body."""
        return len(self.sessions)


@dataclass(frozen=True, slots=True)
class UploadOutcome:
    """What marking an upload sent changed."""

    marked: int
    #: The server's count of keys in the backup and its new etag (``None`` if not given).
    server_count: int | None
    etag: str | None


class BackupUploader:
    """What to upload next to one trusted backup version, batch by batch.

    Resumable: progress is the store's ``backed_up`` flag on each session, so a
    restart (or a failed request) picks up where the last acknowledged batch
    ended. One upload is in flight at a time: :meth:`next_upload` returns the
    same upload until it is marked sent or failed. Call it on the engine's
    database thread (it reads the store); the PUT itself happens outside any
    transaction, and :meth:`mark_sent` runs in one.

    The uploader assumes the store's flags belong to ``version``: when the
    version changes (ours replaced, or another client made a new one), call
    :meth:`reset_flags` first. The engine must remember which version the flags
    are for across restarts (the store has no field for it yet).
    """

    def __init__(
        self,
        store: CryptoStore,
        backend: CryptoBackend,
        pickle_key: bytes,
        version: BackupVersion,
        *,
        batch_size: int = DEFAULT_UPLOAD_BATCH,
        is_verified: Callable[[InboundGroupSessionRecord], bool] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._store = store
        self._backend = backend
        self._pickle_key = pickle_key
        self.version = version
        self._encryption = backend.pk_encryption(version.public_key)
        self._batch_size = batch_size
        self._is_verified = is_verified
        self._in_flight: BackupUpload | None = None

    def __repr__(self) -> str:
        return f"BackupUploader(version={self.version.version!r})"

    def reset_flags(self) -> None:
        """Mark every session as not backed up (a new backup version)."""
        self._in_flight = None
        self._store.reset_inbound_group_sessions_backup()

    def counts(self) -> tuple[int, int]:
        """``(sessions, backed up)`` in the store."""
        return self._store.count_inbound_group_sessions()

    def remaining(self) -> int:
        """Sessions still to upload."""
        total, done = self.counts()
        return total - done

    def _is_verified_record(self, record: InboundGroupSessionRecord) -> bool:
        if record["origin"] == KeyOrigin.OWN.value:
            return True
        if self._is_verified is None or record["origin"] != KeyOrigin.ROOM_KEY.value:
            return False
        return self._is_verified(record)

    def _export(self, record: InboundGroupSessionRecord) -> tuple[int, str] | None:
        """``(first known index, exported session key)``, or ``None`` if unreadable."""
        try:
            session = self._backend.inbound_group_session_from_pickle(
                record["pickle"], self._pickle_key
            )
        except BackendError:
            return None
        first_index = session.first_known_index
        session_key = session.export_at(first_index)
        return None if session_key is None else (first_index, session_key)

    def next_upload(self) -> BackupUpload | None:
        """The next batch to PUT (the one in flight, if any); ``None`` when all are backed up.

        Stored sessions that cannot be exported (a pickle that no longer opens) are
        flagged as backed up on the spot, so they never block the queue: this may
        write to the store, so call it inside a transaction.
        """
        if self._in_flight is not None:
            return self._in_flight
        while True:
            records = self._store.inbound_group_sessions_to_back_up(self._batch_size)
            if not records:
                return None
            upload = self._build(records)
            if upload.unreadable:
                log.warning(
                    "%d stored room keys cannot be exported; not backed up", len(upload.unreadable)
                )
                self._store.mark_inbound_group_sessions_backed_up(list(upload.unreadable))
            if upload.sessions:
                self._in_flight = upload
                return upload

    def _build(self, records: list[InboundGroupSessionRecord]) -> BackupUpload:
        rooms: dict[str, dict[str, Any]] = {}
        sessions: list[tuple[str, str, bytes]] = []
        unreadable: list[tuple[str, str]] = []
        for record in records:
            room_id, session_id = record["room_id"], record["session_id"]
            exported = self._export(record)
            if exported is None:
                unreadable.append((room_id, session_id))
                continue
            first_index, session_key = exported
            data = backed_up_session_data(record, session_key)
            rooms.setdefault(room_id, {"sessions": {}})["sessions"][session_id] = {
                "first_message_index": first_index,
                "forwarded_count": _forwarded_count(record),
                "is_verified": self._is_verified_record(record),
                "session_data": encrypt_session_data(self._encryption, data),
            }
            sessions.append((room_id, session_id, _fingerprint(record)))
        return BackupUpload(
            version=self.version.version,
            body={"rooms": rooms},
            sessions=tuple(sessions),
            unreadable=tuple(unreadable),
        )

    def mark_sent(
        self, upload: BackupUpload, response: Mapping[str, Any] | None = None
    ) -> UploadOutcome:
        """The server stored ``upload``: flag its sessions (those unchanged since) as backed up."""
        if self._in_flight is upload:
            self._in_flight = None
        keys = []
        for room_id, session_id, fingerprint in upload.sessions:
            record = self._store.get_inbound_group_session(room_id, session_id)
            if record is not None and _fingerprint(record) == fingerprint:
                keys.append((room_id, session_id))
        if keys:
            self._store.mark_inbound_group_sessions_backed_up(keys)
        response = response or {}
        count, etag = response.get("count"), response.get("etag")
        return UploadOutcome(
            marked=len(keys),
            server_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            etag=etag if isinstance(etag, str) else None,
        )

    def mark_failed(self, upload: BackupUpload) -> None:
        """The PUT failed: the batch is rebuilt on the next :meth:`next_upload`."""
        if self._in_flight is upload:
            self._in_flight = None


# --------------------------------------------------------------------------- restore


class RestoreFailureKind(StrEnum):
    """Why one backup entry was not restored."""

    MALFORMED = "malformed"
    UNDECRYPTABLE = "undecryptable"
    NOT_A_ROOM_KEY = "not_a_room_key"


@dataclass(frozen=True, slots=True)
class RestoreFailure:
    """A backup entry skipped (``session_id`` is ``*`` for a whole malformed room)."""

    room_id: str
    session_id: str
    kind: RestoreFailureKind
    detail: str


@dataclass(frozen=True, slots=True)
class RestoreBatch:
    """Decrypted sessions (``ExportedSessionData`` dicts) ready for ``import_sessions``."""

    sessions: list[dict[str, Any]] = field(repr=False)
    failures: list[RestoreFailure]
    #: Entries handled so far (this batch included) and in all.
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class RestoreProgress:
    """Progress of a restore, for a progress bar."""

    done: int
    total: int
    imported: int
    failed: int


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did: ``room_keys`` are the sessions imported or improved (redecrypt)."""

    total: int
    decrypted: int
    imported: int
    failures: list[RestoreFailure]
    room_keys: list[RoomKeyInfo] = field(repr=False)

    @property
    def not_imported(self) -> int:
        """Decrypted but not imported: invalid session keys, or no better than what we had."""
        return self.decrypted - self.imported


Entry = tuple[str, str, object]


def backup_entries(
    response: object, *, room_id: str | None = None, session_id: str | None = None
) -> tuple[list[Entry], list[RestoreFailure]]:
    """Flatten a ``GET /room_keys/keys`` answer into ``(room_id, session_id, KeyBackupData)``.

    Accepts the three shapes: ``{"rooms": {...}}``; one room's ``{"sessions": {...}}``
    (pass ``room_id``); one session's ``KeyBackupData`` (pass both IDs). Parts that
    are not objects are reported as failures.
    """
    entries: list[Entry] = []
    failures: list[RestoreFailure] = []
    if room_id is not None and session_id is not None:
        entries.append((room_id, session_id, response))
        return entries, failures
    if room_id is not None:
        rooms: object = {room_id: response}
    else:
        rooms = response.get("rooms") if isinstance(response, Mapping) else None
        if not isinstance(rooms, Mapping):
            raise BackupError("the backup answer has no rooms")
    assert isinstance(rooms, Mapping)
    for room, room_data in rooms.items():
        sessions = room_data.get("sessions") if isinstance(room_data, Mapping) else None
        if not isinstance(room, str) or not isinstance(sessions, Mapping):
            failures.append(
                RestoreFailure(
                    str(room), "*", RestoreFailureKind.MALFORMED, "room entry is not an object"
                )
            )
            continue
        for session, data in sessions.items():
            entries.append((room, str(session), data))
    return entries, failures


def count_backup_entries(response: object) -> int:
    """How many sessions a full ``GET /room_keys/keys`` answer holds (without decrypting)."""
    rooms = response.get("rooms") if isinstance(response, Mapping) else None
    if not isinstance(rooms, Mapping):
        return 0
    total = 0
    for room_data in rooms.values():
        sessions = room_data.get("sessions") if isinstance(room_data, Mapping) else None
        if isinstance(sessions, Mapping):
            total += len(sessions)
    return total


def _room_key(room_id: str, session_id: str, value: dict[str, Any]) -> dict[str, Any] | None:
    """The decrypted ``BackedUpSessionData`` as ``ExportedSessionData``, or ``None``."""
    claimed = value.get("sender_claimed_keys")
    if not (
        value.get("algorithm") == MEGOLM_ALGORITHM
        and isinstance(value.get("session_key"), str)
        and isinstance(value.get("sender_key"), str)
        and isinstance(claimed, Mapping)
        and isinstance(claimed.get("ed25519"), str)
    ):
        return None
    chain = value.get("forwarding_curve25519_key_chain")
    if not isinstance(chain, list):
        value["forwarding_curve25519_key_chain"] = []
    if "shared_history" not in value and isinstance(value.get("m.shared_history"), bool):
        # matrix-js-sdk wrote the field under its unstable name.
        value["shared_history"] = value["m.shared_history"]
    # The IDs come from where the server filed the entry; the importer checks the
    # session ID against the key, and decryption checks the room in each payload.
    value["room_id"] = room_id
    value["session_id"] = session_id
    return value


def decrypt_backup(
    backup_key: BackupKey,
    response: object,
    *,
    batch_size: int = DEFAULT_RESTORE_BATCH,
    room_id: str | None = None,
    session_id: str | None = None,
) -> Iterator[RestoreBatch]:
    """Decrypt a ``GET /room_keys/keys`` answer in batches of ``batch_size`` entries.

    Each :class:`RestoreBatch` holds the sessions to import and the entries of
    that batch that were skipped (malformed, undecryptable, not a room key). The
    caller imports each batch (one transaction each) and shows ``done``/``total``.
    CPU-bound: run it off the UI/event loop.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    entries, failures = backup_entries(response, room_id=room_id, session_id=session_id)
    total = len(entries)
    decrypt = backup_key.decrypt_session_data
    done = 0
    if not entries:
        yield RestoreBatch([], failures, 0, 0)
        return
    for start in range(0, total, batch_size):
        sessions: list[dict[str, Any]] = []
        for room, session, data in entries[start : start + batch_size]:
            session_data = data.get("session_data") if isinstance(data, Mapping) else None
            if session_data is None:
                failures.append(
                    RestoreFailure(room, session, RestoreFailureKind.MALFORMED, "no session_data")
                )
                continue
            try:
                value = decrypt(session_data)
            except BackupError as exc:
                failures.append(
                    RestoreFailure(room, session, RestoreFailureKind.UNDECRYPTABLE, str(exc))
                )
                continue
            key = _room_key(room, session, value)
            if key is None:
                failures.append(
                    RestoreFailure(
                        room, session, RestoreFailureKind.NOT_A_ROOM_KEY, "not a Megolm room key"
                    )
                )
                continue
            sessions.append(key)
        done = min(total, start + batch_size)
        yield RestoreBatch(sessions, failures, done, total)
        failures = []


def restore_backup(
    backup_key: BackupKey,
    response: object,
    import_sessions: Callable[[list[dict[str, Any]]], ImportResult],
    *,
    batch_size: int = DEFAULT_RESTORE_BATCH,
    progress: Callable[[RestoreProgress], None] | None = None,
    room_id: str | None = None,
    session_id: str | None = None,
) -> RestoreResult:
    """Decrypt and import a backup answer, batch by batch, reporting progress.

    ``import_sessions`` imports one batch, typically in its own transaction::

        lambda batch: machine.import_sessions(batch, origin=KeyOrigin.BACKUP)

    (the machine marks backup-restored sessions as already backed up). A bad
    entry never stops the restore: it is listed in ``failures``.
    """
    decrypted = imported = 0
    failures: list[RestoreFailure] = []
    room_keys: list[RoomKeyInfo] = []
    total = 0
    for batch in decrypt_backup(
        backup_key, response, batch_size=batch_size, room_id=room_id, session_id=session_id
    ):
        total = batch.total
        failures.extend(batch.failures)
        if batch.sessions:
            result = import_sessions(batch.sessions)
            decrypted += len(batch.sessions)
            imported += result.imported
            room_keys.extend(result.room_keys)
        if progress is not None:
            progress(RestoreProgress(batch.done, total, imported, len(failures)))
    return RestoreResult(total, decrypted, imported, failures, room_keys)
