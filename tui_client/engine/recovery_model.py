"""What recovery reports: the results of setting up, recovering and restoring, and the
encryption health screen's content (:mod:`.recovery` does the work)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..crypto.types import FailureReason

if TYPE_CHECKING:
    from ..crypto.backup import RestoreFailure
    from ..crypto.cross_signing import CrossSigningStatus
    from ..crypto.secret_storage import KeyDescription
    from .updates import BackupStatus

__all__ = [
    "FIXES",
    "EncryptionHealth",
    "RecoveryError",
    "RecoveryResult",
    "RecoverySetup",
    "RestoreSummary",
    "SecretStorageInfo",
    "Undecryptable",
    "save_recovery_key",
    "undecryptable_group",
]


class RecoveryError(Exception):
    """Recovery could not be done; the message is for the user (and never holds a key)."""


@dataclass(frozen=True, slots=True)
class SecretStorageInfo:
    """The account's secret storage: its default key, if it has a usable one."""

    key_id: str | None
    description: KeyDescription | None
    #: Why there is no usable key (``None`` when there is one, or simply none at all).
    problem: str | None = None

    @property
    def exists(self) -> bool:
        """The account has a usable default secret storage key."""
        return self.description is not None

    @property
    def has_passphrase(self) -> bool:
        """The key can also be opened with a passphrase."""
        return self.description is not None and self.description.passphrase is not None


@dataclass(frozen=True, slots=True)
class RecoverySetup:
    """What :meth:`Recovery.set_up` did; show ``recovery_key`` once, never log it."""

    recovery_key: str = field(repr=False)
    backup_version: str
    new_backup: bool
    new_identity: bool
    passphrase: bool


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    """A restore from the key backup."""

    version: str
    total: int
    imported: int
    #: Entries skipped (corrupted, undecryptable, not a room key).
    failures: tuple[RestoreFailure, ...]
    #: Stored events decrypted thanks to the restored keys.
    redecrypted: int


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What :meth:`Recovery.recover` did."""

    #: This device is now signed by our self-signing key and trusts our identity.
    device_verified: bool
    #: The secrets taken from secret storage (names).
    imported: tuple[str, ...]
    #: What could not be used, in sentences.
    problems: tuple[str, ...]
    restore: RestoreSummary | None


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """Messages that could not be decrypted for one reason, and what would fix them."""

    code: str
    events: int
    sessions: int
    reason: str
    #: Keys of :data:`FIXES`.
    fixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EncryptionHealth:
    """Everything the encryption health screen shows."""

    available: bool
    error: str | None
    user_id: str
    device_id: str
    cross_signing: CrossSigningStatus | None
    secret_storage: bool
    secret_storage_passphrase: bool
    secrets_cached: tuple[str, ...]
    backup: BackupStatus
    one_time_keys: int | None
    undecryptable: tuple[Undecryptable, ...] = ()
    #: Why the access token and keys are in a file instead of the system keyring, if so.
    keyring_warning: str | None = None
    #: The crypto backend this device runs on (``vodozemac`` or ``olm``).
    crypto_backend: str = ""

    @property
    def device_verified(self) -> bool:
        """This device is cross-signed by our trusted identity."""
        status = self.cross_signing
        return status is not None and status.master_trusted and status.this_device_signed


def save_recovery_key(path: Path, recovery_key: str, user_id: str) -> None:
    """Write the recovery key to ``path``, readable by the user only (mode 0600)."""
    text = (
        f"Matrix recovery key for {user_id}\n\n{recovery_key}\n\n"
        "Keep it safe: it unlocks your encrypted messages on a new device.\n"
    )
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


#: What can be done about undecryptable messages (:attr:`Undecryptable.fixes`), in words.
FIXES = {
    "restore": "restore the keys from the key backup",
    "request": "request the keys from your other sessions (they answer verified sessions only)",
    "import": "import a room key file exported from another session",
    "ask_sender": "ask the sender to share their keys with this session (they may want it verified)",
    "none": "none: these cannot be fixed here",
}


def undecryptable_group(code: str, events: int, sessions: int) -> Undecryptable:
    """The undecryptable messages of one failure ``code``: why, and what would fix them."""
    if code in (FailureReason.MISSING_ROOM_KEY, FailureReason.UNKNOWN_MESSAGE_INDEX):
        reason = (
            "the key has not arrived"
            if code == FailureReason.MISSING_ROOM_KEY
            else "sent before this device could receive the key"
        )
        return Undecryptable(code, events, sessions, reason, ("restore", "request", "import"))
    if code == FailureReason.WITHHELD:
        return Undecryptable(
            code, events, sessions, "the sender withheld the key", ("ask_sender", "import")
        )
    labels = {
        FailureReason.DECRYPTION_ERROR.value: "damaged, or not encrypted for this key",
        FailureReason.MISMATCHED_ROOM.value: "failed a security check",
        FailureReason.MISMATCHED_SENDER.value: "failed a security check",
        FailureReason.REPLAY.value: "a replay of an earlier message",
        FailureReason.UNKNOWN_DEVICE.value: "from a device not in the sender's list",
        FailureReason.UNSUPPORTED_ALGORITHM.value: "an algorithm this client does not support",
    }
    return Undecryptable(code, events, sessions, labels.get(code, "malformed"), ("none",))
