"""The backend interface: the Olm/Megolm primitives the machine is built on.

Two implementations exist: :mod:`.vodozemac_backend` (vodozemac, libolm's
maintained successor: the default) and :mod:`.olm_backend` (python-olm, libolm:
deprecated upstream, with unfixed timing side channels). Only
those two modules import ``olm`` or ``vodozemac``; everything else in the client
speaks to the primitives through the abstract classes here, with plain Python
values (unpadded base64 strings for keys, signatures and ciphertexts; ``str`` for
plaintexts, which are always JSON).

Errors: every backend failure surfaces as a :class:`BackendError` subclass, never
as the library's own exception type, so the machine can tell "this message is not
for this session" (:class:`OlmDecryptionError`) from "we never had that ratchet
index" (:class:`UnknownMessageIndexError`).

Pickles: objects are serialised with :meth:`pickle` under a 32-byte pickle key
and restored with the backend's ``*_from_pickle`` constructors. A pickle made by
one backend is only guaranteed to load in that backend. The vodozemac backend
also reads python-olm (libolm) pickles of accounts, Olm sessions and inbound group
sessions (a one-way migration path); python-olm cannot read vodozemac pickles, and
outbound group sessions do not migrate (the machine rotates them).
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from .encoding import is_curve25519_key, is_ed25519_key

__all__ = [
    "Account",
    "BackendError",
    "CryptoBackend",
    "IdentityKeys",
    "InboundGroupSession",
    "KeyFormatError",
    "MegolmDecryptionError",
    "OlmDecryptionError",
    "OlmMessage",
    "OlmSession",
    "OutboundGroupSession",
    "PickleError",
    "PkDecryption",
    "PkDecryptionError",
    "PkEncryption",
    "PkMessage",
    "PkSigning",
    "Sas",
    "SasError",
    "SasMacMethod",
    "SessionCreationError",
    "SessionKeyError",
    "UnknownMessageIndexError",
    "check_pickle_key",
]

PICKLE_KEY_LENGTH = 32


class BackendError(Exception):
    """Base class of every error a backend raises."""


class PickleError(BackendError):
    """A pickle could not be restored (wrong key, corrupt, or made by another backend)."""


class KeyFormatError(BackendError):
    """A public key, signature or one-time key is malformed."""


class SessionCreationError(BackendError):
    """An Olm session could not be created (bad pre-key message, unknown one-time key...)."""


class OlmDecryptionError(BackendError):
    """An Olm message did not decrypt with this session (wrong session, replay, corrupt)."""


class MegolmDecryptionError(BackendError):
    """A Megolm message did not decrypt (bad MAC or signature, corrupt, not UTF-8)."""


class UnknownMessageIndexError(MegolmDecryptionError):
    """The Megolm message's index is below the session's first known index."""

    def __init__(self, message: str, *, first_known_index: int, message_index: int | None):
        super().__init__(message)
        self.first_known_index = first_known_index
        self.message_index = message_index


class SessionKeyError(BackendError):
    """A Megolm session key (shared or exported format) is malformed or badly signed."""


class SasError(BackendError):
    """A SAS operation failed (their key missing or invalid, non-contributory agreement)."""


class PkDecryptionError(BackendError):
    """A PK-encrypted message did not decrypt (wrong key, bad MAC, corrupt)."""


@dataclass(frozen=True, slots=True)
class IdentityKeys:
    """A device's public identity keys (unpadded base64)."""

    curve25519: str
    ed25519: str


@dataclass(frozen=True, slots=True)
class OlmMessage:
    """An Olm message as it travels in ``m.room.encrypted``: type 0 (pre-key) or 1, base64 body."""

    message_type: int
    body: str


@dataclass(frozen=True, slots=True)
class PkMessage:
    """A ``curve25519-aes-sha2`` PK message (the key backup's ``session_data``), all base64."""

    ciphertext: str
    mac: str
    ephemeral_key: str


class SasMacMethod(StrEnum):
    """The SAS ``message_authentication_code`` methods.

    ``hkdf-hmac-sha256.v2`` is the one to use. ``hkdf-hmac-sha256`` computes the
    same HMAC but encodes it with libolm's historical in-place base64 bug; it is
    only for peers that offer nothing else.
    """

    HKDF_HMAC_SHA256_V2 = "hkdf-hmac-sha256.v2"
    HKDF_HMAC_SHA256 = "hkdf-hmac-sha256"


class Account(ABC):
    """A device's Olm account: identity keys, one-time and fallback keys, signing."""

    @property
    @abstractmethod
    def identity_keys(self) -> IdentityKeys:
        """The account's Curve25519 and Ed25519 public keys."""

    @abstractmethod
    def sign(self, message: bytes) -> str:
        """Sign ``message`` with the account's Ed25519 key; the signature in unpadded base64."""

    @property
    @abstractmethod
    def max_one_time_keys(self) -> int:
        """How many one-time keys the account can hold."""

    @abstractmethod
    def generate_one_time_keys(self, count: int) -> None:
        """Create ``count`` new (unpublished) one-time keys."""

    @abstractmethod
    def one_time_keys(self) -> dict[str, str]:
        """Unpublished one-time keys: key ID to Curve25519 public key."""

    @abstractmethod
    def generate_fallback_key(self) -> None:
        """Create a new fallback key; the previous one is kept until forgotten."""

    @abstractmethod
    def fallback_key(self) -> dict[str, str]:
        """The unpublished fallback key, if any: key ID to Curve25519 public key."""

    @abstractmethod
    def forget_old_fallback_key(self) -> bool:
        """Drop the fallback key that preceded the current one; ``False`` if unsupported."""

    @abstractmethod
    def mark_keys_as_published(self) -> None:
        """Mark every unpublished one-time and fallback key as published."""

    @abstractmethod
    def create_outbound_session(self, identity_key: str, one_time_key: str) -> OlmSession:
        """Start an Olm session to a device from its Curve25519 identity key and a claimed key."""

    @abstractmethod
    def create_inbound_session(
        self, their_identity_key: str, prekey_body: str
    ) -> tuple[OlmSession, str]:
        """Create a session from a pre-key message, decrypt it, and consume the one-time key.

        The one-time key is only removed once decryption succeeded (the spec's
        "must not persist a session or remove one-time keys until it has
        successfully decrypted a message"). Raises :class:`SessionCreationError`.
        """

    @abstractmethod
    def pickle(self, key: bytes) -> str:
        """Serialise the account, encrypted under ``key`` (32 bytes)."""


class OlmSession(ABC):
    """A pairwise Olm session (double ratchet) with one device."""

    @property
    @abstractmethod
    def session_id(self) -> str:
        """The session's ID."""

    @abstractmethod
    def encrypt(self, plaintext: str) -> OlmMessage:
        """Encrypt ``plaintext``; a pre-key message (type 0) until the peer has answered."""

    @abstractmethod
    def decrypt(self, message: OlmMessage) -> str:
        """Decrypt; raises :class:`OlmDecryptionError` if this session cannot."""

    @abstractmethod
    def matches_prekey(self, prekey_body: str) -> bool:
        """True if a pre-key message belongs to this (inbound) session."""

    @abstractmethod
    def pickle(self, key: bytes) -> str:
        """Serialise the session, encrypted under ``key``."""


class OutboundGroupSession(ABC):
    """Our sending side of a Megolm session."""

    @property
    @abstractmethod
    def session_id(self) -> str:
        """The session ID (its Ed25519 public key)."""

    @property
    @abstractmethod
    def session_key(self) -> str:
        """The signed session-sharing key at the current index (what ``m.room_key`` carries)."""

    @property
    @abstractmethod
    def message_index(self) -> int:
        """The index the next message will be encrypted at."""

    @abstractmethod
    def encrypt(self, plaintext: str) -> str:
        """Encrypt and advance the ratchet; the Megolm message in base64."""

    @abstractmethod
    def pickle(self, key: bytes) -> str:
        """Serialise the session, encrypted under ``key``."""


class InboundGroupSession(ABC):
    """The receiving side of a Megolm session."""

    @property
    @abstractmethod
    def session_id(self) -> str:
        """The session ID."""

    @property
    @abstractmethod
    def first_known_index(self) -> int:
        """The lowest message index this session can decrypt."""

    @abstractmethod
    def decrypt(self, ciphertext: str) -> tuple[str, int]:
        """Decrypt a Megolm message: ``(plaintext, message_index)``.

        Raises :class:`UnknownMessageIndexError` for an index below
        :attr:`first_known_index`, :class:`MegolmDecryptionError` otherwise.
        """

    @abstractmethod
    def export_at(self, index: int) -> str | None:
        """The session in export format at ``index`` (``None`` if below the first known)."""

    @abstractmethod
    def pickle(self, key: bytes) -> str:
        """Serialise the session, encrypted under ``key``."""


class Sas(ABC):
    """One side of a SAS key agreement (``curve25519-hkdf-sha256``)."""

    @property
    @abstractmethod
    def public_key(self) -> str:
        """Our ephemeral Curve25519 public key (unpadded base64)."""

    @abstractmethod
    def set_their_public_key(self, key: str) -> None:
        """Complete the agreement with the other side's ephemeral key."""

    @abstractmethod
    def generate_bytes(self, info: str, count: int) -> bytes:
        """HKDF-SHA256 output of ``count`` bytes from the shared secret (no salt, ``info``)."""

    @abstractmethod
    def calculate_mac(
        self, message: str, info: str, method: SasMacMethod = SasMacMethod.HKDF_HMAC_SHA256_V2
    ) -> str:
        """HMAC-SHA256 of ``message`` under an HKDF key from ``info``, base64 per ``method``."""

    def verify_mac(
        self,
        message: str,
        info: str,
        mac: str,
        method: SasMacMethod = SasMacMethod.HKDF_HMAC_SHA256_V2,
    ) -> bool:
        """Compare a received MAC with ours in constant time."""
        expected = self.calculate_mac(message, info, method)
        return hmac.compare_digest(expected.encode(), mac.encode())


class PkEncryption(ABC):
    """Encrypt to a Curve25519 public key (``m.megolm_backup.v1.curve25519-aes-sha2``)."""

    @abstractmethod
    def encrypt(self, plaintext: str) -> PkMessage:
        """Encrypt ``plaintext`` with a fresh ephemeral key."""


class PkDecryption(ABC):
    """The private side of a PK encryption key (the key backup's decryption key)."""

    @property
    @abstractmethod
    def public_key(self) -> str:
        """The Curve25519 public key (unpadded base64)."""

    @abstractmethod
    def private_key(self) -> bytes:
        """The 32-byte private key (a secret: never log it)."""

    @abstractmethod
    def decrypt(self, message: PkMessage) -> str:
        """Decrypt; raises :class:`PkDecryptionError`."""


class PkSigning(ABC):
    """An Ed25519 signing key from a 32-byte seed (cross-signing keys)."""

    @property
    @abstractmethod
    def public_key(self) -> str:
        """The Ed25519 public key (unpadded base64)."""

    @abstractmethod
    def sign(self, message: bytes) -> str:
        """Sign ``message``; the signature in unpadded base64."""


class CryptoBackend(ABC):
    """Factory for the primitives, plus stateless helpers (signature checks)."""

    name: str = "abstract"

    @abstractmethod
    def create_account(self) -> Account:
        """A fresh account with new identity keys."""

    @abstractmethod
    def account_from_pickle(self, pickle: str, key: bytes) -> Account:
        """Restore an account; raises :class:`PickleError`."""

    @abstractmethod
    def session_from_pickle(self, pickle: str, key: bytes) -> OlmSession:
        """Restore an Olm session; raises :class:`PickleError`."""

    @abstractmethod
    def create_outbound_group_session(self) -> OutboundGroupSession:
        """A fresh Megolm session for sending."""

    @abstractmethod
    def outbound_group_session_from_pickle(self, pickle: str, key: bytes) -> OutboundGroupSession:
        """Restore an outbound Megolm session; raises :class:`PickleError`."""

    @abstractmethod
    def inbound_group_session(self, session_key: str) -> InboundGroupSession:
        """From a signed session-sharing key (``m.room_key``); raises :class:`SessionKeyError`."""

    @abstractmethod
    def import_inbound_group_session(self, exported_key: str) -> InboundGroupSession:
        """From an unsigned exported key (forwarded, file, backup); raises :class:`SessionKeyError`."""

    @abstractmethod
    def inbound_group_session_from_pickle(self, pickle: str, key: bytes) -> InboundGroupSession:
        """Restore an inbound Megolm session; raises :class:`PickleError`."""

    @abstractmethod
    def create_sas(self) -> Sas:
        """A SAS object with a fresh ephemeral key pair."""

    @abstractmethod
    def pk_encryption(self, public_key: str) -> PkEncryption:
        """Encryption to ``public_key``; raises :class:`KeyFormatError`."""

    @abstractmethod
    def create_pk_decryption(self) -> PkDecryption:
        """A fresh PK key pair."""

    @abstractmethod
    def pk_decryption_from_private_key(self, private_key: bytes) -> PkDecryption:
        """A PK key pair from its 32-byte private key; raises :class:`KeyFormatError`."""

    @abstractmethod
    def pk_signing_from_seed(self, seed: bytes) -> PkSigning:
        """An Ed25519 signing key from its 32-byte seed; raises :class:`KeyFormatError`."""

    @abstractmethod
    def verify_ed25519(self, public_key: str, message: bytes, signature: str) -> bool:
        """True if ``signature`` (base64) is ``public_key``'s Ed25519 signature of ``message``.

        Malformed keys or signatures are a ``False``, never an exception.
        """

    def is_valid_curve25519_key(self, key: object) -> bool:
        """True if ``key`` is a base64 32-byte Curve25519 public key."""
        return is_curve25519_key(key)

    def is_valid_ed25519_key(self, key: object) -> bool:
        """True if ``key`` is a base64 32-byte Ed25519 public key."""
        return is_ed25519_key(key)


def check_pickle_key(key: bytes) -> None:
    """Raise ``ValueError`` unless ``key`` is a 32-byte pickle key."""
    if not isinstance(key, bytes) or len(key) != PICKLE_KEY_LENGTH:
        raise ValueError("the pickle key must be 32 bytes")
