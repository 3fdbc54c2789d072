"""Cross-signing: parsing and checking published identities, trust, and key generation.

The spec's "Cross-signing" section: each user has a master key (their identity), a
self-signing key that signs their devices, and a user-signing key that signs other
users' master keys. Alice trusts Bob's device when:

- Alice trusts her own master key (this device created it, verified it with SAS
  against another of her devices, or holds its private key),
- her user-signing key, signed by her master key, signed Bob's master key, or
  Alice verified Bob's master key on this device with SAS,
- Bob's self-signing key is signed by Bob's master key, and
- Bob's self-signing key signed Bob's device keys.

Every link is an Ed25519 signature checked here, never assumed; a device whose ID
equals one of its owner's cross-signing public keys is never trusted through
cross-signing (the spec's "Key and signature security"). The user's own decisions
on a device (verified, blocked) come first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tui_client.protocol.canonical_json import CanonicalJsonError, canonical_json

from .backend import CryptoBackend, PkSigning
from .encoding import is_ed25519_key
from .signing import sign_json, verify_signed_json
from .store_api import (
    CrossSigningKeysRecord,
    CryptoStore,
    DeviceRecord,
    UserIdentityRecord,
)
from .types import Device, DeviceTrust, LocalTrust

__all__ = [
    "CROSS_SIGNING_SECRET_NAMES",
    "MASTER",
    "SELF_SIGNING",
    "USER_SIGNING",
    "CrossSigningError",
    "CrossSigningKey",
    "CrossSigningStatus",
    "CrossSigningTrustPolicy",
    "OwnKeysNotQueried",
    "PublishedIdentity",
    "UserIdentity",
    "cross_signing_key_object",
    "identity_upload_body",
    "new_identity_record",
    "parse_cross_signing_key",
    "published_public_keys",
    "signed_key_object",
]

MASTER = "master"
SELF_SIGNING = "self_signing"
USER_SIGNING = "user_signing"
#: The secret names of the private keys (the Secrets module; also ``m.secret.request``).
CROSS_SIGNING_SECRET_NAMES = {
    MASTER: "m.cross_signing.master",
    SELF_SIGNING: "m.cross_signing.self_signing",
    USER_SIGNING: "m.cross_signing.user_signing",
}
_RECORD_FIELDS = {
    MASTER: "master_key_json",
    SELF_SIGNING: "self_signing_key_json",
    USER_SIGNING: "user_signing_key_json",
}


class CrossSigningError(RuntimeError):
    """A cross-signing operation cannot be done (the message says why, for the user)."""


class OwnKeysNotQueried(CrossSigningError):
    """Our own keys are not known to be current (never fetched, or changed since): fetch
    them with ``/keys/query`` and try again. Whether the account already has an identity
    is only known from a current answer, so nothing is created before that."""


@dataclass(frozen=True, slots=True)
class CrossSigningKey:
    """A cross-signing public key object whose shape was checked (its signatures not yet)."""

    user_id: str
    usage: tuple[str, ...]
    public_key: str
    #: The object as published (``unsigned`` removed), signatures included.
    signed: Mapping[str, Any]
    #: Its canonical JSON (the memo key of signature checks).
    canonical: str

    @property
    def key_id(self) -> str:
        """``ed25519:<public key>``: how signatures made with it are named."""
        return f"ed25519:{self.public_key}"


def parse_cross_signing_key(obj: object, user_id: str, usage: str) -> CrossSigningKey | None:
    """``obj`` as a cross-signing key of ``user_id`` for ``usage``; ``None`` if malformed.

    The spec's CrossSigningKey: ``user_id`` must match, ``usage`` must list the
    usage, and ``keys`` must hold exactly one ``ed25519:<key>`` entry whose value is
    that same key.
    """
    if not isinstance(obj, Mapping) or obj.get("user_id") != user_id:
        return None
    usages = obj.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        return None
    keys = obj.get("keys")
    if not isinstance(keys, Mapping) or len(keys) != 1:
        return None
    ((key_id, public_key),) = keys.items()
    if not isinstance(key_id, str) or not is_ed25519_key(public_key):
        return None
    assert isinstance(public_key, str)
    if key_id != f"ed25519:{public_key}":
        return None
    signed = {k: v for k, v in obj.items() if k != "unsigned"}
    try:
        text = canonical_json(signed).decode("utf-8")
    except CanonicalJsonError:
        return None
    return CrossSigningKey(
        user_id=user_id,
        usage=tuple(u for u in usages if isinstance(u, str)),
        public_key=public_key,
        signed=signed,
        canonical=text,
    )


def cross_signing_key_object(user_id: str, usage: str, public_key: str) -> dict[str, Any]:
    """An unsigned cross-signing key object for ``/keys/device_signing/upload``."""
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public_key}": public_key}}


def published_public_keys(record: CrossSigningKeysRecord | None, user_id: str) -> frozenset[str]:
    """Every cross-signing public key listed for ``user_id`` (shape-checked, signatures not).

    For the device-ID collision check: a device may never be named like any of them.
    """
    if record is None:
        return frozenset()
    found: set[str] = set()
    for usage, field in _RECORD_FIELDS.items():
        text = record.get(field)
        if isinstance(text, str):
            try:
                key = parse_cross_signing_key(json.loads(text), user_id, usage)
            except ValueError:
                key = None
            if key is not None:
                found.add(key.public_key)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class PublishedIdentity:
    """A user's published cross-signing keys after the signature checks.

    ``self_signing`` and ``user_signing`` are ``None`` when absent or not validly
    signed by ``master`` (then they are worthless). ``user_signing`` is only ever
    published to its owner.
    """

    user_id: str
    master: CrossSigningKey
    self_signing: CrossSigningKey | None
    user_signing: CrossSigningKey | None

    def public_keys(self) -> frozenset[str]:
        """The public keys of the valid keys."""
        keys = {self.master.public_key}
        for key in (self.self_signing, self.user_signing):
            if key is not None:
                keys.add(key.public_key)
        return frozenset(keys)


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """A user's cross-signing identity as this device sees it (for the UI)."""

    user_id: str
    #: The published master key (``None``: the user has no cross-signing identity).
    master_key: str | None
    #: The published self-signing key, if validly signed by the master key.
    self_signing_key: str | None
    #: Our own user-signing key (only published to us), if validly signed.
    user_signing_key: str | None
    #: The master key is trusted here (see :class:`CrossSigningTrustPolicy`).
    verified: bool
    #: How: ``own`` (our identity, trusted by this device), ``user_signing_key`` (signed
    #: by our user-signing key) or ``local`` (verified with SAS on this device).
    verified_by: str | None
    #: The master key accepted before (first seen, acknowledged or verified).
    pinned_master_key: str | None
    #: The published master key is not the pinned one: the identity changed.
    changed: bool
    #: The identity was verified and no longer is (a new master key): warn until the
    #: user acknowledges (``acknowledge_identity_change``) or verifies again.
    verification_violation: bool
    is_own: bool
    #: The server lists a device named like one of this user's cross-signing keys: the
    #: user cannot be verified, and cross-signing does not count for them, until it goes.
    device_id_collision: bool = False

    @property
    def needs_attention(self) -> bool:
        """A change to show the user before they keep talking."""
        return (
            self.verification_violation
            or self.device_id_collision
            or (self.changed and not self.verified)
        )


@dataclass(frozen=True, slots=True)
class CrossSigningStatus:
    """Our own cross-signing state on this device."""

    #: The account has a cross-signing identity on the server (as last queried).
    published: bool
    #: This device trusts our published master key.
    master_trusted: bool
    #: Private keys held here that match the published public keys.
    has_master: bool
    has_self_signing: bool
    has_user_signing: bool
    #: This device's keys carry a valid signature of our self-signing key.
    this_device_signed: bool
    #: A bootstrap's upload is under way (or keys were made here and the account has no
    #: identity yet): send or retry it.
    pending_upload: bool

    @property
    def complete(self) -> bool:
        """Everything is in place: published, trusted, all private keys here, device signed."""
        return (
            self.published
            and self.master_trusted
            and self.has_master
            and self.has_self_signing
            and self.has_user_signing
            and self.this_device_signed
        )


class CrossSigningTrustPolicy:
    """Device trust from local decisions and cross-signing signatures (the machine's default).

    A device is ``BLOCKED`` or ``VERIFIED`` if the user said so on this client;
    otherwise ``VERIFIED`` if its owner's valid self-signing key signed it and its
    owner's master key is trusted here; ``UNVERIFIED`` otherwise. Results of the
    Ed25519 checks are memoised by the exact signed bytes, so the store stays the
    only source of truth (a rolled-back transaction cannot leave a stale verdict).
    """

    def __init__(
        self,
        store: CryptoStore,
        backend: CryptoBackend,
        own_user_id: str,
        *,
        cache_size: int = 4096,
    ) -> None:
        self._store = store
        self._backend = backend
        self._own_user_id = own_user_id
        self._cache_size = cache_size
        self._signatures: dict[tuple[str, str, str, str], bool] = {}
        self._parsed: dict[tuple[str, str | None, str | None, str | None], PublishedIdentity | None]
        self._parsed = {}

    def __repr__(self) -> str:
        return f"CrossSigningTrustPolicy({self._own_user_id!r})"

    # -- signature checks, memoised ----------------------------------------------------

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        if len(cache) > self._cache_size:
            del cache[next(iter(cache))]

    def signed_by(
        self, canonical: str, obj: Mapping[str, Any] | None, user_id: str, key: CrossSigningKey
    ) -> bool:
        """True if the object (canonical JSON ``canonical``) carries ``key``'s valid signature."""
        memo = (canonical, user_id, key.key_id, key.public_key)
        cached = self._signatures.get(memo)
        if cached is not None:
            return cached
        if obj is None:
            try:
                loaded = json.loads(canonical)
            except ValueError:
                loaded = None
            obj = loaded if isinstance(loaded, Mapping) else {}
        verdict = verify_signed_json(self._backend, obj, user_id, key.key_id, key.public_key)
        self._remember(self._signatures, memo, verdict)
        return verdict

    def signed_by_device(
        self, key: CrossSigningKey, user_id: str, device_id: str, ed25519: str
    ) -> bool:
        """True if ``key``'s object carries a valid signature of device ``device_id``."""
        memo = (key.canonical, user_id, f"ed25519:{device_id}", ed25519)
        cached = self._signatures.get(memo)
        if cached is not None:
            return cached
        verdict = verify_signed_json(
            self._backend, key.signed, user_id, f"ed25519:{device_id}", ed25519
        )
        self._remember(self._signatures, memo, verdict)
        return verdict

    # -- published identities ------------------------------------------------------------

    def published(self, user_id: str) -> PublishedIdentity | None:
        """``user_id``'s published identity with its internal signatures checked."""
        record = self._store.get_cross_signing_keys(user_id)
        if record is None:
            return None
        return self.parse_record(record)

    def parse_record(self, record: CrossSigningKeysRecord) -> PublishedIdentity | None:
        """A stored record as a :class:`PublishedIdentity` (``None`` without a valid master key)."""
        memo = (
            record["user_id"],
            record["master_key_json"],
            record["self_signing_key_json"],
            record["user_signing_key_json"],
        )
        if memo in self._parsed:
            return self._parsed[memo]
        identity = self._parse(record)
        self._remember(self._parsed, memo, identity)
        return identity

    def _parse(self, record: CrossSigningKeysRecord) -> PublishedIdentity | None:
        user_id = record["user_id"]

        def load(field: str, usage: str) -> CrossSigningKey | None:
            text = record.get(field)
            if not isinstance(text, str):
                return None
            try:
                return parse_cross_signing_key(json.loads(text), user_id, usage)
            except ValueError:
                return None

        master = load("master_key_json", MASTER)
        if master is None:
            return None
        sub: dict[str, CrossSigningKey | None] = {}
        for usage, field in (
            (SELF_SIGNING, "self_signing_key_json"),
            (USER_SIGNING, "user_signing_key_json"),
        ):
            key = load(field, usage)
            if key is not None and (
                key.public_key == master.public_key
                or not self.signed_by(key.canonical, key.signed, user_id, master)
            ):
                key = None
            sub[usage] = key
        return PublishedIdentity(user_id, master, sub[SELF_SIGNING], sub[USER_SIGNING])

    # -- master key trust -----------------------------------------------------------------

    def own_master_trusted(self, own: PublishedIdentity | None = None) -> bool:
        """True if this device trusts our own published master key."""
        own = own if own is not None else self.published(self._own_user_id)
        if own is None:
            return False
        record = self._store.get_user_identity(self._own_user_id)
        return (
            record is not None
            and not record["device_id_collision"]
            and record["verified_master_key"] == own.master.public_key
        )

    def master_trust(self, user_id: str, identity: PublishedIdentity | None = None) -> str | None:
        """How ``user_id``'s master key is trusted (``own``, ``user_signing_key``, ``local``) or ``None``."""
        identity = identity if identity is not None else self.published(user_id)
        if identity is None:
            return None
        if user_id == self._own_user_id:
            return "own" if self.own_master_trusted(identity) else None
        record = self._store.get_user_identity(user_id)
        if record is not None and record["device_id_collision"]:
            return None
        own = self.published(self._own_user_id)
        if (
            own is not None
            and own.user_signing is not None
            and self.own_master_trusted(own)
            and self.signed_by(
                identity.master.canonical,
                identity.master.signed,
                self._own_user_id,
                own.user_signing,
            )
        ):
            return "user_signing_key"
        if record is not None and record["verified_master_key"] == identity.master.public_key:
            return "local"
        return None

    # -- device trust -----------------------------------------------------------------------

    def is_cross_signed(self, record: DeviceRecord) -> bool:
        """True if the device is signed by its owner's valid self-signing key and that owner is trusted."""
        user_id = record["user_id"]
        identity = self.published(user_id)
        if identity is None or identity.self_signing is None:
            return False
        if record["device_id"] in identity.public_keys():
            return False
        if not self.signed_by(record["keys_json"], None, user_id, identity.self_signing):
            return False
        return self.master_trust(user_id, identity) is not None

    def record_trust(self, record: DeviceRecord) -> DeviceTrust:
        """The trust of a stored device (the machine's hot path)."""
        local = record["local_trust"]
        if local == LocalTrust.BLOCKED.value:
            return DeviceTrust.BLOCKED
        if local == LocalTrust.VERIFIED.value:
            return DeviceTrust.VERIFIED
        return DeviceTrust.VERIFIED if self.is_cross_signed(record) else DeviceTrust.UNVERIFIED

    def device_trust(self, device: Device) -> DeviceTrust:
        """:class:`~tui_client.crypto.trust.TrustPolicy`: local decision, then cross-signing."""
        if device.local_trust is LocalTrust.BLOCKED:
            return DeviceTrust.BLOCKED
        if device.local_trust is LocalTrust.VERIFIED:
            return DeviceTrust.VERIFIED
        record = DeviceRecord(
            user_id=device.user_id,
            device_id=device.device_id,
            curve25519=device.curve25519,
            ed25519=device.ed25519,
            algorithms=list(device.algorithms),
            keys_json=device.keys_json,
            display_name=device.display_name,
            local_trust=device.local_trust.value,
            deleted=device.deleted,
            first_seen_ms=0,
        )
        return DeviceTrust.VERIFIED if self.is_cross_signed(record) else DeviceTrust.UNVERIFIED

    # -- the identity as shown --------------------------------------------------------------

    def user_identity(self, user_id: str) -> UserIdentity | None:
        """What the UI shows about ``user_id``'s identity (``None``: nothing known at all)."""
        identity = self.published(user_id)
        record = self._store.get_user_identity(user_id)
        if identity is None and record is None:
            return None
        how = self.master_trust(user_id, identity) if identity is not None else None
        master = identity.master.public_key if identity is not None else None
        pinned = record["pinned_master_key"] if record is not None else None
        previously = record["previously_verified"] if record is not None else False
        return UserIdentity(
            user_id=user_id,
            master_key=master,
            self_signing_key=(
                identity.self_signing.public_key
                if identity is not None and identity.self_signing is not None
                else None
            ),
            user_signing_key=(
                identity.user_signing.public_key
                if identity is not None and identity.user_signing is not None
                else None
            ),
            verified=how is not None,
            verified_by=how,
            pinned_master_key=pinned,
            changed=master is not None and pinned is not None and pinned != master,
            verification_violation=previously and how is None,
            is_own=user_id == self._own_user_id,
            device_id_collision=record is not None and record["device_id_collision"],
        )


def new_identity_record(user_id: str) -> UserIdentityRecord:
    """An identity record with nothing decided yet."""
    return UserIdentityRecord(
        user_id=user_id,
        pinned_master_key=None,
        verified_master_key=None,
        previously_verified=False,
        device_id_collision=False,
    )


def signed_key_object(
    user_id: str, usage: str, public_key: str, signer_key_id: str, sign: Callable[[bytes], str]
) -> dict[str, Any]:
    """A cross-signing key object signed by ``signer_key_id`` (for the upload body)."""
    return sign_json(
        cross_signing_key_object(user_id, usage, public_key), user_id, signer_key_id, sign
    )


def identity_upload_body(
    user_id: str,
    device_id: str,
    device_sign: Callable[[bytes], str],
    master: PkSigning,
    self_signing: PkSigning,
    user_signing: PkSigning,
) -> dict[str, Any]:
    """The ``/keys/device_signing/upload`` body (without ``auth``).

    The master key is signed by this device (so our other clients can move trust
    from device verification to cross-signing, as the spec allows), the two others
    by the master key.
    """
    master_obj = sign_json(
        cross_signing_key_object(user_id, MASTER, master.public_key),
        user_id,
        f"ed25519:{device_id}",
        device_sign,
    )
    master_key_id = f"ed25519:{master.public_key}"
    return {
        "master_key": master_obj,
        "self_signing_key": signed_key_object(
            user_id, SELF_SIGNING, self_signing.public_key, master_key_id, master.sign
        ),
        "user_signing_key": signed_key_object(
            user_id, USER_SIGNING, user_signing.public_key, master_key_id, master.sign
        ),
    }
