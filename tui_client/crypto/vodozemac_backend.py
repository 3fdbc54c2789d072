"""The vodozemac backend (vodozemac-python 0.10: libolm's maintained successor).

Differences from the python-olm backend, all behind the same interface:

- Pickles are vodozemac's own format under the raw 32-byte key. Pickles made by
  the python-olm backend (accounts, Olm sessions, inbound group sessions) are
  read too, through vodozemac's libolm import, so a profile can move from
  python-olm to vodozemac; not the other way, and outbound group sessions do not
  migrate (the machine rotates them).
- The binding cannot forget the previous fallback key; vodozemac keeps at most
  the current and the previous one and drops the older one on each rotation,
  which is the bound the spec asks for, so :meth:`forget_old_fallback_key`
  reports ``False``.
- The binding gives SAS output only as emoji indices and decimals, and has no
  Ed25519 secret key type: SAS and cross-signing keys use ``cryptography``
  (:mod:`.sas_x25519`, Ed25519 from a seed), checked in the tests against
  vodozemac's and libolm's own results.
"""

from __future__ import annotations

import vodozemac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .backend import (
    Account,
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
    SessionCreationError,
    SessionKeyError,
    UnknownMessageIndexError,
    check_pickle_key,
)
from .encoding import b64decode, b64encode
from .sas_x25519 import X25519Sas

__all__ = ["VodozemacBackend"]


def _libolm_key(key: bytes) -> bytes:
    # The python-olm backend's passphrase is the pickle key's unpadded base64.
    return b64encode(key).encode("ascii")


def _curve(key: str) -> vodozemac.Curve25519PublicKey:
    try:
        return vodozemac.Curve25519PublicKey.from_base64(key)
    except (vodozemac.KeyException, ValueError, TypeError) as exc:
        raise KeyFormatError("malformed Curve25519 key") from exc


class _Account(Account):
    def __init__(self, inner: vodozemac.Account) -> None:
        self._inner = inner
        self._identity = IdentityKeys(
            curve25519=inner.curve25519_key.to_base64(), ed25519=inner.ed25519_key.to_base64()
        )

    def __repr__(self) -> str:
        return f"VodozemacAccount(curve25519={self._identity.curve25519!r})"

    @property
    def identity_keys(self) -> IdentityKeys:
        return self._identity

    def sign(self, message: bytes) -> str:
        return str(self._inner.sign(message).to_base64())

    @property
    def max_one_time_keys(self) -> int:
        return int(self._inner.max_number_of_one_time_keys)

    def generate_one_time_keys(self, count: int) -> None:
        if count > 0:
            self._inner.generate_one_time_keys(count)

    def one_time_keys(self) -> dict[str, str]:
        return {kid: key.to_base64() for kid, key in self._inner.one_time_keys.items()}

    def generate_fallback_key(self) -> None:
        self._inner.generate_fallback_key()

    def fallback_key(self) -> dict[str, str]:
        return {kid: key.to_base64() for kid, key in self._inner.fallback_key.items()}

    def forget_old_fallback_key(self) -> bool:
        return False

    def mark_keys_as_published(self) -> None:
        self._inner.mark_keys_as_published()

    def create_outbound_session(self, identity_key: str, one_time_key: str) -> OlmSession:
        try:
            inner = self._inner.create_outbound_session(_curve(identity_key), _curve(one_time_key))
        except vodozemac.SessionCreationException as exc:
            raise SessionCreationError(str(exc)) from exc
        return _Session(inner)

    def create_inbound_session(
        self, their_identity_key: str, prekey_body: str
    ) -> tuple[OlmSession, str]:
        try:
            message = vodozemac.PreKeyMessage.from_base64(prekey_body)
            inner, plaintext = self._inner.create_inbound_session(
                _curve(their_identity_key), message
            )
            return _Session(inner), bytes(plaintext).decode("utf-8")
        except (
            vodozemac.SessionCreationException,
            vodozemac.DecodeException,
            KeyFormatError,
            UnicodeDecodeError,
            ValueError,
        ) as exc:
            raise SessionCreationError(str(exc)) from exc

    def pickle(self, key: bytes) -> str:
        check_pickle_key(key)
        return str(self._inner.pickle(key))


class _Session(OlmSession):
    def __init__(self, inner: vodozemac.Session) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"VodozemacSession(id={self._inner.session_id!r})"

    @property
    def session_id(self) -> str:
        return str(self._inner.session_id)

    def encrypt(self, plaintext: str) -> OlmMessage:
        message_type, body = self._inner.encrypt(plaintext.encode("utf-8")).to_parts()
        return OlmMessage(int(message_type), b64encode(bytes(body)))

    def decrypt(self, message: OlmMessage) -> str:
        if message.message_type not in (0, 1):
            raise OlmDecryptionError("unknown Olm message type")
        try:
            wire = vodozemac.AnyOlmMessage.from_parts(message.message_type, b64decode(message.body))
            return bytes(self._inner.decrypt(wire)).decode("utf-8")
        except (
            vodozemac.OlmDecryptionException,
            vodozemac.DecodeException,
            UnicodeDecodeError,
            ValueError,
        ) as exc:
            raise OlmDecryptionError(str(exc)) from exc

    def matches_prekey(self, prekey_body: str) -> bool:
        try:
            return bool(
                self._inner.session_matches(vodozemac.PreKeyMessage.from_base64(prekey_body))
            )
        except (vodozemac.DecodeException, ValueError):
            return False

    def pickle(self, key: bytes) -> str:
        check_pickle_key(key)
        return str(self._inner.pickle(key))


class _OutboundGroupSession(OutboundGroupSession):
    def __init__(self, inner: vodozemac.GroupSession) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"VodozemacGroupSession(id={self._inner.session_id!r})"

    @property
    def session_id(self) -> str:
        return str(self._inner.session_id)

    @property
    def session_key(self) -> str:
        return str(self._inner.session_key.to_base64())

    @property
    def message_index(self) -> int:
        return int(self._inner.message_index)

    def encrypt(self, plaintext: str) -> str:
        return str(self._inner.encrypt(plaintext.encode("utf-8")).to_base64())

    def pickle(self, key: bytes) -> str:
        check_pickle_key(key)
        return str(self._inner.pickle(key))


class _InboundGroupSession(InboundGroupSession):
    def __init__(self, inner: vodozemac.InboundGroupSession) -> None:
        self._inner = inner
        self._id = str(inner.session_id)
        self._first = int(inner.first_known_index)

    def __repr__(self) -> str:
        return f"VodozemacInboundGroupSession(id={self._id!r}, first_known_index={self._first})"

    @property
    def session_id(self) -> str:
        return self._id

    @property
    def first_known_index(self) -> int:
        return self._first

    def decrypt(self, ciphertext: str) -> tuple[str, int]:
        try:
            message = vodozemac.MegolmMessage.from_base64(ciphertext)
        except (vodozemac.DecodeException, ValueError, TypeError) as exc:
            raise MegolmDecryptionError(str(exc)) from exc
        try:
            decrypted = self._inner.decrypt(message)
        except vodozemac.MegolmDecryptionException as exc:
            index = int(message.message_index())
            if index < self._first:
                raise UnknownMessageIndexError(
                    str(exc), first_known_index=self._first, message_index=index
                ) from exc
            raise MegolmDecryptionError(str(exc)) from exc
        try:
            plaintext = bytes(decrypted.plaintext).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MegolmDecryptionError("plaintext is not UTF-8") from exc
        return plaintext, int(decrypted.message_index)

    def export_at(self, index: int) -> str | None:
        if index < self._first:
            return None
        exported = self._inner.export_at(index)
        return None if exported is None else str(exported.to_base64())

    def pickle(self, key: bytes) -> str:
        check_pickle_key(key)
        return str(self._inner.pickle(key))


class _PkEncryption(PkEncryption):
    def __init__(self, public_key: str) -> None:
        self._inner = vodozemac.PkEncryption.from_key(_curve(public_key))

    def encrypt(self, plaintext: str) -> PkMessage:
        message = self._inner.encrypt(plaintext.encode("utf-8"))
        return PkMessage(
            ciphertext=b64encode(bytes(message.ciphertext)),
            mac=b64encode(bytes(message.mac)),
            ephemeral_key=b64encode(bytes(message.ephemeral_key)),
        )


class _PkDecryption(PkDecryption):
    def __init__(self, inner: vodozemac.PkDecryption) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"VodozemacPkDecryption(public_key={self.public_key!r})"

    @property
    def public_key(self) -> str:
        return str(self._inner.public_key.to_base64())

    def private_key(self) -> bytes:
        return bytes(self._inner.key.to_bytes())

    def decrypt(self, message: PkMessage) -> str:
        try:
            wire = vodozemac.Message(
                b64decode(message.ciphertext),
                b64decode(message.mac),
                b64decode(message.ephemeral_key),
            )
            return bytes(self._inner.decrypt(wire)).decode("utf-8")
        except (
            vodozemac.PkDecodeException,
            vodozemac.PkInvalidKeySizeException,
            vodozemac.KeyException,
            UnicodeDecodeError,
            ValueError,
            TypeError,
        ) as exc:
            raise PkDecryptionError(str(exc)) from exc


class _PkSigning(PkSigning):
    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyFormatError("an Ed25519 seed is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = b64encode(self._key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"Ed25519Signing(public_key={self._public!r})"

    @property
    def public_key(self) -> str:
        return self._public

    def sign(self, message: bytes) -> str:
        return b64encode(self._key.sign(message))


class VodozemacBackend(CryptoBackend):
    """Olm primitives from vodozemac."""

    name = "vodozemac"

    def create_account(self) -> Account:
        """A fresh account."""
        return _Account(vodozemac.Account())

    def account_from_pickle(self, pickle: str, key: bytes) -> Account:
        """Restore an account (see the module docstring for pickle formats)."""
        check_pickle_key(key)
        try:
            return _Account(vodozemac.Account.from_pickle(pickle, key))
        except (vodozemac.PickleException, ValueError):
            pass
        try:
            return _Account(vodozemac.Account.from_libolm_pickle(pickle, _libolm_key(key)))
        except (vodozemac.LibolmPickleException, ValueError) as exc:
            raise PickleError(str(exc)) from exc

    def session_from_pickle(self, pickle: str, key: bytes) -> OlmSession:
        """Restore an Olm session."""
        check_pickle_key(key)
        try:
            return _Session(vodozemac.Session.from_pickle(pickle, key))
        except (vodozemac.PickleException, ValueError):
            pass
        try:
            return _Session(vodozemac.Session.from_libolm_pickle(pickle, _libolm_key(key)))
        except (vodozemac.LibolmPickleException, ValueError) as exc:
            raise PickleError(str(exc)) from exc

    def create_outbound_group_session(self) -> OutboundGroupSession:
        """A fresh outbound Megolm session."""
        return _OutboundGroupSession(vodozemac.GroupSession())

    def outbound_group_session_from_pickle(self, pickle: str, key: bytes) -> OutboundGroupSession:
        """Restore an outbound Megolm session."""
        check_pickle_key(key)
        try:
            return _OutboundGroupSession(vodozemac.GroupSession.from_pickle(pickle, key))
        except (vodozemac.PickleException, ValueError) as exc:
            raise PickleError(str(exc)) from exc

    def inbound_group_session(self, session_key: str) -> InboundGroupSession:
        """An inbound session from a signed session-sharing key."""
        try:
            key = vodozemac.SessionKey(session_key)
            return _InboundGroupSession(vodozemac.InboundGroupSession(key))
        except (vodozemac.SessionKeyDecodeException, ValueError, TypeError) as exc:
            raise SessionKeyError(str(exc)) from exc

    def import_inbound_group_session(self, exported_key: str) -> InboundGroupSession:
        """An inbound session from an exported (unsigned) key."""
        try:
            key = vodozemac.ExportedSessionKey(exported_key)
            return _InboundGroupSession(vodozemac.InboundGroupSession.import_session(key))
        except (vodozemac.SessionKeyDecodeException, ValueError, TypeError) as exc:
            raise SessionKeyError(str(exc)) from exc

    def inbound_group_session_from_pickle(self, pickle: str, key: bytes) -> InboundGroupSession:
        """Restore an inbound Megolm session."""
        check_pickle_key(key)
        try:
            return _InboundGroupSession(vodozemac.InboundGroupSession.from_pickle(pickle, key))
        except (vodozemac.PickleException, ValueError):
            pass
        try:
            inner = vodozemac.InboundGroupSession.from_libolm_pickle(pickle, _libolm_key(key))
        except (vodozemac.LibolmPickleException, ValueError) as exc:
            raise PickleError(str(exc)) from exc
        return _InboundGroupSession(inner)

    def create_sas(self) -> Sas:
        """A SAS side with a fresh ephemeral key."""
        return X25519Sas()

    def pk_encryption(self, public_key: str) -> PkEncryption:
        """Encryption to a Curve25519 public key."""
        return _PkEncryption(public_key)

    def create_pk_decryption(self) -> PkDecryption:
        """A fresh PK key pair."""
        return _PkDecryption(vodozemac.PkDecryption())

    def pk_decryption_from_private_key(self, private_key: bytes) -> PkDecryption:
        """A PK key pair from its private key."""
        if not isinstance(private_key, bytes) or len(private_key) != 32:
            raise KeyFormatError("a PK private key is 32 bytes")
        try:
            secret = vodozemac.Curve25519SecretKey.from_bytes(private_key)
            return _PkDecryption(vodozemac.PkDecryption.from_key(secret))
        except (vodozemac.KeyException, ValueError) as exc:
            raise KeyFormatError(str(exc)) from exc

    def pk_signing_from_seed(self, seed: bytes) -> PkSigning:
        """An Ed25519 signing key from its seed."""
        return _PkSigning(seed)

    def verify_ed25519(self, public_key: str, message: bytes, signature: str) -> bool:
        """Check an Ed25519 signature; never raises."""
        if not isinstance(public_key, str) or not isinstance(signature, str):
            return False
        try:
            key = vodozemac.Ed25519PublicKey.from_base64(public_key)
            key.verify_signature(message, vodozemac.Ed25519Signature.from_base64(signature))
        except (vodozemac.KeyException, vodozemac.SignatureException, ValueError, TypeError):
            return False
        return True
