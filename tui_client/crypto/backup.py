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

The parts: :mod:`.backup_key` (the key and the version), :mod:`.backup_trust`
(may we use it), :mod:`.backup_upload` and :mod:`.backup_restore`; this module
gathers their names.
"""

from __future__ import annotations

from .backup_key import (
    BACKUP_ALGORITHM,
    BackupError,
    BackupKey,
    BackupVersion,
    DeviceSigner,
    Ed25519Signer,
    UnsupportedBackupError,
    backup_version_body,
)
from .backup_restore import (
    DEFAULT_RESTORE_BATCH,
    RestoreBatch,
    RestoreFailure,
    RestoreFailureKind,
    RestoreProgress,
    RestoreResult,
    backup_entries,
    count_backup_entries,
    decrypt_backup,
    restore_backup,
)
from .backup_trust import (
    BackupTrust,
    MachineView,
    SignatureCheck,
    SignatureState,
    SignerKind,
    TrustedBy,
    check_backup_trust,
    check_backup_trust_for,
)
from .backup_upload import (
    DEFAULT_UPLOAD_BATCH,
    BackupUpload,
    BackupUploader,
    UploadOutcome,
    backed_up_session_data,
    encrypt_session_data,
)

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
