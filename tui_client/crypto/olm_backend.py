"""The python-olm (libolm) backend: the default.

libolm pickles take a text passphrase; the 32-byte pickle key is passed as its
unpadded base64 (the vodozemac backend uses the same convention to read these
pickles). Plaintexts are decoded as strict UTF-8: a message that is not valid
UTF-8 is a decryption failure, never silently "repaired".
"""

from __future__ import annotations

import secrets

import olm
import olm.pk

from .backend import (
    Account,
    BackendError,
    CryptoBackend,
    IdentityKeys,
    InboundGroupSession,
    KeyFormatError,
    MegolmDecryptionError,
    OlmDecryptionError,
    OlmMessage,
    OlmSession,
    OutboundGroupSession,
    PickleError,
    PkDecryption,
    PkDecryptionError,
    PkEncryption,
    PkMessage,
    PkSigning,
    Sas,
    SasError,
    SasMacMethod,
    SessionCreationError,
    SessionKeyError,
    UnknownMessageIndexError,
    check_pickle_key,
)
from .encoding import b64encode, is_curve25519_key, megolm_message_index

__all__ = ["OlmBackend"]

_CURVE = "curve25519"


def _passphrase(key: bytes) -> str:
    check_pickle_key(key)
    return b64encode(key)


def _text(value: object) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


class _Account(Account):
    def __init__(self, inner: olm.Account) -> None:
        self._inner = inner
        keys = inner.identity_keys
        self._identity = IdentityKeys(curve25519=keys["curve25519"], ed25519=keys["ed25519"])

    def __repr__(self) -> str:
        return f"OlmAccount(curve25519={self._identity.curve25519!r})"

    @property
    def identity_keys(self) -> IdentityKeys:
        return self._identity

    def sign(self, message: bytes) -> str:
        return str(self._inner.sign(message))

    @property
    def max_one_time_keys(self) -> int:
        return int(self._inner.max_one_time_keys)

    def generate_one_time_keys(self, count: int) -> None:
        if count > 0:
            self._inner.generate_one_time_keys(count)

    def one_time_keys(self) -> dict[str, str]:
        return dict(self._inner.one_time_keys.get(_CURVE, {}))

    def generate_fallback_key(self) -> None:
        self._inner.generate_fallback_key()

    def fallback_key(self) -> dict[str, str]:
        return dict(self._inner.fallback_key.get(_CURVE, {}))

    def forget_old_fallback_key(self) -> bool:
        self._inner.forget_old_fallback_key()
        return True

    def mark_keys_as_published(self) -> None:
        self._inner.mark_keys_as_published()

    def create_outbound_session(self, identity_key: str, one_time_key: str) -> OlmSession:
        if not (is_curve25519_key(identity_key) and is_curve25519_key(one_time_key)):
            raise KeyFormatError("malformed Curve25519 key")
        try:
            return _Session(olm.OutboundSession(self._inner, identity_key, one_time_key))
        except olm.OlmSessionError as exc:
            raise SessionCreationError(str(exc)) from exc

    def create_inbound_session(
        self, their_identity_key: str, prekey_body: str
    ) -> tuple[OlmSession, str]:
        message = olm.OlmPreKeyMessage(prekey_body)
        try:
            inner = olm.InboundSession(self._inner, message, their_identity_key)
        except (olm.OlmSessionError, ValueError) as exc:
            raise SessionCreationError(str(exc)) from exc
        try:
            plaintext = inner.decrypt(message, unicode_errors="strict")
        except (olm.OlmSessionError, UnicodeDecodeError, ValueError) as exc:
            raise SessionCreationError(f"pre-key message did not decrypt: {exc}") from exc
        self._inner.remove_one_time_keys(inner)
        return _Session(inner), plaintext

    def pickle(self, key: bytes) -> str:
        return _text(self._inner.pickle(_passphrase(key)))


class _Session(OlmSession):
    def __init__(self, inner: olm.Session) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"OlmSession(id={self._inner.id!r})"

    @property
    def session_id(self) -> str:
        return str(self._inner.id)

    def encrypt(self, plaintext: str) -> OlmMessage:
        message = self._inner.encrypt(plaintext)
        return OlmMessage(int(message.message_type), str(message.ciphertext))

    def decrypt(self, message: OlmMessage) -> str:
        if message.message_type == 0:
            wire: olm.OlmMessage | olm.OlmPreKeyMessage = olm.OlmPreKeyMessage(message.body)
        elif message.message_type == 1:
            wire = olm.OlmMessage(message.body)
        else:
            raise OlmDecryptionError("unknown Olm message type")
        try:
            return str(self._inner.decrypt(wire, unicode_errors="strict"))
        except (olm.OlmSessionError, UnicodeDecodeError, ValueError) as exc:
            raise OlmDecryptionError(str(exc)) from exc

    def matches_prekey(self, prekey_body: str) -> bool:
        try:
            return bool(self._inner.matches(olm.OlmPreKeyMessage(prekey_body)))
        except (olm.OlmSessionError, ValueError):
            return False

    def pickle(self, key: bytes) -> str:
        return _text(self._inner.pickle(_passphrase(key)))


class _OutboundGroupSession(OutboundGroupSession):
    def __init__(self, inner: olm.OutboundGroupSession) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"OlmOutboundGroupSession(id={self._inner.id!r})"

    @property
    def session_id(self) -> str:
        return str(self._inner.id)

    @property
    def session_key(self) -> str:
        return str(self._inner.session_key)

    @property
    def message_index(self) -> int:
        return int(self._inner.message_index)

    def encrypt(self, plaintext: str) -> str:
        return str(self._inner.encrypt(plaintext))

    def pickle(self, key: bytes) -> str:
        return _text(self._inner.pickle(_passphrase(key)))


class _InboundGroupSession(InboundGroupSession):
    def __init__(self, inner: olm.InboundGroupSession) -> None:
        self._inner = inner
        self._id = str(inner.id)
        self._first = int(inner.first_known_index)

    def __repr__(self) -> str:
        return f"OlmInboundGroupSession(id={self._id!r}, first_known_index={self._first})"

    @property
    def session_id(self) -> str:
        return self._id

    @property
    def first_known_index(self) -> int:
        return self._first

    def decrypt(self, ciphertext: str) -> tuple[str, int]:
        try:
            plaintext, index = self._inner.decrypt(ciphertext, unicode_errors="strict")
        except olm.OlmGroupSessionError as exc:
            if "UNKNOWN_MESSAGE_INDEX" in str(exc):
                raise UnknownMessageIndexError(
                    str(exc),
                    first_known_index=self._first,
                    message_index=megolm_message_index(ciphertext),
                ) from exc
            raise MegolmDecryptionError(str(exc)) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise MegolmDecryptionError(str(exc)) from exc
        return str(plaintext), int(index)

    def export_at(self, index: int) -> str | None:
        if index < self._first:
            return None
        try:
            return str(self._inner.export_session(index))
        except olm.OlmGroupSessionError:
            return None

    def pickle(self, key: bytes) -> str:
        return _text(self._inner.pickle(_passphrase(key)))


class _Sas(Sas):
    def __init__(self) -> None:
        self._inner = olm.Sas()

    def __repr__(self) -> str:
        return f"OlmSas(public_key={self.public_key!r})"

    @property
    def public_key(self) -> str:
        return str(self._inner.pubkey)

    def set_their_public_key(self, key: str) -> None:
        if not is_curve25519_key(key):
            raise SasError("invalid SAS public key")
        try:
            self._inner.set_their_pubkey(key)
        except olm.OlmSasError as exc:
            raise SasError(str(exc)) from exc

    def _require_their_key(self) -> None:
        if not self._inner.other_key_set:
            raise SasError("the other side's public key is not set")

    def generate_bytes(self, info: str, count: int) -> bytes:
        self._require_their_key()
        try:
            return bytes(self._inner.generate_bytes(info, count))
        except olm.OlmSasError as exc:
            raise SasError(str(exc)) from exc

    def calculate_mac(
        self, message: str, info: str, method: SasMacMethod = SasMacMethod.HKDF_HMAC_SHA256_V2
    ) -> str:
        self._require_their_key()
        try:
            if method is SasMacMethod.HKDF_HMAC_SHA256_V2:
                return str(self._inner.calculate_mac_fixed_base64(message, info))
            if method is SasMacMethod.HKDF_HMAC_SHA256:
                return str(self._inner.calculate_mac(message, info))
        except olm.OlmSasError as exc:
            raise SasError(str(exc)) from exc
        raise SasError(f"unsupported MAC method {method!r}")


class _PkEncryption(PkEncryption):
    def __init__(self, public_key: str) -> None:
        self._inner = olm.PkEncryption(public_key)

    def encrypt(self, plaintext: str) -> PkMessage:
        message = self._inner.encrypt(plaintext)
        return PkMessage(
            ciphertext=str(message.ciphertext),
            mac=str(message.mac),
            ephemeral_key=str(message.ephemeral_key),
        )


class _PkDecryption(PkDecryption):
    def __init__(self, inner: olm.PkDecryption, private_key: bytes) -> None:
        self._inner = inner
        self._private = private_key

    def __repr__(self) -> str:
        return f"OlmPkDecryption(public_key={self.public_key!r})"

    @property
    def public_key(self) -> str:
        return str(self._inner.public_key)

    def private_key(self) -> bytes:
        return self._private

    def decrypt(self, message: PkMessage) -> str:
        try:
            wire = olm.PkMessage(message.ephemeral_key, message.mac, message.ciphertext)
            return str(self._inner.decrypt(wire, unicode_errors="strict"))
        except (olm.PkDecryptionError, UnicodeDecodeError, ValueError) as exc:
            raise PkDecryptionError(str(exc)) from exc


def _pk_decryption_from_private(private_key: bytes) -> olm.PkDecryption:
    # python-olm only creates random keys; libolm's olm_pk_key_from_private is the
    # same call its constructor makes, given our key instead of fresh randomness.
    if not isinstance(private_key, bytes) or len(private_key) != 32:
        raise KeyFormatError("a PK private key is 32 bytes")
    ffi, lib = olm.pk.ffi, olm.pk.lib
    obj = olm.PkDecryption.__new__(olm.PkDecryption)
    key_length = lib.olm_pk_key_length()
    key_buffer = ffi.new("char[]", key_length)
    private_buffer = ffi.new("char[]", private_key)
    try:
        ret = lib.olm_pk_key_from_private(
            obj._pk_decryption, key_buffer, key_length, private_buffer, len(private_key)
        )
        obj._check_error(ret)
    except olm.PkDecryptionError as exc:
        raise KeyFormatError(str(exc)) from exc
    finally:
        ffi.memmove(private_buffer, bytes(len(private_key)), len(private_key))
    obj.public_key = ffi.unpack(key_buffer, key_length).decode()
    return obj


class _PkSigning(PkSigning):
    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyFormatError("an Ed25519 seed is 32 bytes")
        self._inner = olm.PkSigning(seed)

    def __repr__(self) -> str:
        return f"OlmPkSigning(public_key={self.public_key!r})"

    @property
    def public_key(self) -> str:
        return str(self._inner.public_key)

    def sign(self, message: bytes) -> str:
        return str(self._inner.sign(message))


class OlmBackend(CryptoBackend):
    """Olm primitives from python-olm (libolm 3.2)."""

    name = "olm"

    def create_account(self) -> Account:
        """A fresh account."""
        return _Account(olm.Account())

    def account_from_pickle(self, pickle: str, key: bytes) -> Account:
        """Restore an account (see the module docstring for pickle formats)."""
        try:
            return _Account(olm.Account.from_pickle(pickle.encode(), _passphrase(key)))
        except (olm.OlmAccountError, ValueError) as exc:
            raise PickleError(str(exc)) from exc

    def session_from_pickle(self, pickle: str, key: bytes) -> OlmSession:
        """Restore an Olm session."""
        try:
            return _Session(olm.Session.from_pickle(pickle.encode(), _passphrase(key)))
        except (olm.OlmSessionError, ValueError) as exc:
            raise PickleError(str(exc)) from exc

    def create_outbound_group_session(self) -> OutboundGroupSession:
        """A fresh outbound Megolm session."""
        return _OutboundGroupSession(olm.OutboundGroupSession())

    def outbound_group_session_from_pickle(self, pickle: str, key: bytes) -> OutboundGroupSession:
        """Restore an outbound Megolm session."""
        try:
            inner = olm.OutboundGroupSession.from_pickle(pickle.encode(), _passphrase(key))
        except (olm.OlmGroupSessionError, ValueError) as exc:
            raise PickleError(str(exc)) from exc
        return _OutboundGroupSession(inner)

    def inbound_group_session(self, session_key: str) -> InboundGroupSession:
        """An inbound session from a signed session-sharing key."""
        try:
            return _InboundGroupSession(olm.InboundGroupSession(session_key))
        except (olm.OlmGroupSessionError, ValueError, TypeError) as exc:
            raise SessionKeyError(str(exc)) from exc

    def import_inbound_group_session(self, exported_key: str) -> InboundGroupSession:
        """An inbound session from an exported (unsigned) key."""
        try:
            return _InboundGroupSession(olm.InboundGroupSession.import_session(exported_key))
        except (olm.OlmGroupSessionError, ValueError, TypeError) as exc:
            raise SessionKeyError(str(exc)) from exc

    def inbound_group_session_from_pickle(self, pickle: str, key: bytes) -> InboundGroupSession:
        """Restore an inbound Megolm session."""
        try:
            inner = olm.InboundGroupSession.from_pickle(pickle.encode(), _passphrase(key))
        except (olm.OlmGroupSessionError, ValueError) as exc:
            raise PickleError(str(exc)) from exc
        return _InboundGroupSession(inner)

    def create_sas(self) -> Sas:
        """A SAS side with a fresh ephemeral key."""
        return _Sas()

    def pk_encryption(self, public_key: str) -> PkEncryption:
        """Encryption to a Curve25519 public key."""
        if not is_curve25519_key(public_key):
            raise KeyFormatError("malformed Curve25519 key")
        return _PkEncryption(public_key)

    def create_pk_decryption(self) -> PkDecryption:
        """A fresh PK key pair."""
        return self.pk_decryption_from_private_key(secrets.token_bytes(32))

    def pk_decryption_from_private_key(self, private_key: bytes) -> PkDecryption:
        """A PK key pair from its private key."""
        return _PkDecryption(_pk_decryption_from_private(private_key), private_key)

    def pk_signing_from_seed(self, seed: bytes) -> PkSigning:
        """An Ed25519 signing key from its seed."""
        try:
            return _PkSigning(seed)
        except olm.PkSigningError as exc:
            raise KeyFormatError(str(exc)) from exc

    def verify_ed25519(self, public_key: str, message: bytes, signature: str) -> bool:
        """Check an Ed25519 signature; never raises."""
        if not isinstance(public_key, str) or not isinstance(signature, str):
            return False
        try:
            olm.ed25519_verify(public_key, message, signature)
        except (olm.OlmVerifyError, ValueError, TypeError, BackendError):
            return False
        return True
