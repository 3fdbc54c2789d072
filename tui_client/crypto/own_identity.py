"""Our own identity: the cross-signing private keys this device holds (bootstrap,
import, export), the signatures they owe (``/keys/signatures/upload``), and the
secrets kept on this device, sealed under the pickle key.

State: the identity upload in flight (until the server accepted it), the signature
upload in flight, whether the owed signatures must be computed again, and which
signatures were accepted since our keys were last queried.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from tui_client.protocol.canonical_json import canonical_json

from .account_keys import AccountKeys
from .backend import (
    BackendError,
    PkSigning,
)
from .cross_signing import (
    CROSS_SIGNING_SECRET_NAMES,
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    CrossSigningError,
    CrossSigningStatus,
    OwnKeysNotQueried,
    PublishedIdentity,
    identity_upload_body,
    new_identity_record,
)
from .devices import DeviceTracker
from .encoding import b64decode, b64encode
from .local_secrets import SecretSealError, open_secret, seal_secret
from .machine_core import (
    SHAREABLE_SECRETS,
    MachineCore,
    MachinePart,
    new_id,
)
from .requests import (
    DeviceSigningUploadRequest,
    SignatureUploadRequest,
)
from .signing import sign_json
from .types import (
    LocalTrust,
    RequestOutcome,
)

__all__ = ["OwnIdentity"]

log = logging.getLogger(__name__)


class OwnIdentity(MachinePart):
    """Cross-signing keys held here, the signatures they owe, and local secrets."""

    def __init__(self, core: MachineCore, keys: AccountKeys, devices: DeviceTracker) -> None:
        super().__init__(core)
        self._keys = keys
        self._devices = devices
        self._identity = keys.identity
        self._device_signing_in_flight: dict[str, DeviceSigningUploadRequest] = {}
        self._signature_upload: SignatureUploadRequest | None = None
        self._signatures_dirty = True
        self._signatures_retry_at = 0
        self._signatures_sent: set[tuple[str, str, str]] = set()

    def signatures_changed(self) -> None:
        """Trust changed here (a device verified, a key imported): recompute owed signatures."""
        self._signatures_dirty = True

    def users_queried(self, users: Iterable[str]) -> None:
        """Fresh keys of ``users`` arrived: what the server shows is known again."""
        queried = set(users)
        if not queried:
            return
        self._signatures_sent = {s for s in self._signatures_sent if s[0] not in queried}
        self._signatures_dirty = True

    def mark_sent(self, request_id: str, response: Mapping[str, Any]) -> RequestOutcome | None:
        """Apply the answer to a signature or identity upload; ``None`` if not ours."""
        signatures = self._signature_upload
        if signatures is not None and signatures.request_id == request_id:
            self._signature_upload = None
            return self._signatures_done(signatures, response)
        device_signing = self._device_signing_in_flight.pop(request_id, None)
        if device_signing is not None:
            self._device_signing_done(device_signing)
            return RequestOutcome()
        return None

    def mark_failed(self, request_id: str) -> bool:
        """A signature upload is recomputed after a pause; a refused identity upload keeps its
        keys for a later bootstrap. ``False``: not ours."""
        if self._signature_upload is not None and self._signature_upload.request_id == request_id:
            # Recomputed from the stored state after a pause (not retried in a tight loop).
            self._signature_upload = None
            self._signatures_dirty = True
            self._signatures_retry_at = self._clock() + self._config.query_retry_ms
            return True
        if request_id in self._device_signing_in_flight:
            # The caller gave up (UIA cancelled, refused): the keys stay for a later bootstrap.
            del self._device_signing_in_flight[request_id]
            return True
        return False

    def save_secret(self, name: str, secret: str) -> None:
        """Keep a secret on this device, sealed under the pickle key (e.g. ``m.megolm_backup.v1``).

        Cross-signing private keys go through :meth:`import_cross_signing_keys`,
        which checks them against our published keys.
        """
        self._store.save_secret(
            {"name": name, "sealed": seal_secret(self._pickle_key, name, secret)}
        )
        if name in SHAREABLE_SECRETS:
            self._signatures_dirty = True

    def get_secret(self, name: str) -> str | None:
        """A secret kept on this device (``None`` if absent or unreadable with our pickle key)."""
        record = self._store.get_secret(name)
        if record is None:
            return None
        try:
            return open_secret(self._pickle_key, name, record["sealed"])
        except SecretSealError:
            log.warning("a stored secret could not be opened with this pickle key")
            return None

    def delete_secret(self, name: str) -> None:
        """Forget a secret kept on this device."""
        self._store.delete_secret(name)

    def secret_names(self) -> list[str]:
        """The names of the secrets kept on this device."""
        return sorted(self._store.list_secret_names())

    def _private_key(self, usage: str) -> PkSigning | None:
        secret = self.get_secret(CROSS_SIGNING_SECRET_NAMES[usage])
        if secret is None:
            return None
        try:
            seed = b64decode(secret)
            return self._backend.pk_signing_from_seed(seed)
        except (ValueError, BackendError):
            log.warning("a stored cross-signing key is unusable")
            return None

    def matching_private_key(self, usage: str, own: PublishedIdentity | None) -> PkSigning | None:
        """Our private key for ``usage`` if it belongs to the published (valid) public key."""
        signer = self._private_key(usage)
        if signer is None or not _is_published(signer, usage, own):
            return None
        return signer

    def trust_own_master(self, master: str) -> None:
        record = self._store.get_user_identity(self._user_id) or new_identity_record(self._user_id)
        self._store.save_user_identity(
            {
                **record,
                "verified_master_key": master,
                "pinned_master_key": master,
                "previously_verified": True,
            }
        )
        self._signatures_dirty = True

    def import_private_key(self, usage: str, secret: str) -> bool:
        """Keep a cross-signing private key (base64 seed) if it matches our published key."""
        try:
            seed = b64decode(secret)
            if len(seed) != 32:
                return False
            signer = self._backend.pk_signing_from_seed(seed)
        except (ValueError, BackendError):
            return False
        own = self._cross_signing.published(self._user_id)
        if own is None or not _is_published(signer, usage, own):
            return False
        self.save_secret(CROSS_SIGNING_SECRET_NAMES[usage], b64encode(seed))
        if usage == MASTER:
            # Holding the master key's private half is the strongest trust there is.
            self.trust_own_master(own.master.public_key)
        self._signatures_dirty = True
        return True

    def import_cross_signing_keys(
        self,
        *,
        master: str | None = None,
        self_signing: str | None = None,
        user_signing: str | None = None,
    ) -> CrossSigningStatus:
        """Keep cross-signing private keys (unpadded base64 seeds, as secret storage holds them).

        Each must match our published public key (query our own keys first); nothing
        is kept if one does not (:class:`CrossSigningError`). The master key makes
        this device trust our identity; the self-signing key then signs this device.
        """
        given = {MASTER: master, SELF_SIGNING: self_signing, USER_SIGNING: user_signing}
        own = self._cross_signing.published(self._user_id)
        if own is None:
            raise CrossSigningError("this account has no published cross-signing identity")
        published = {
            MASTER: own.master,
            SELF_SIGNING: own.self_signing,
            USER_SIGNING: own.user_signing,
        }
        for usage, secret in given.items():
            if secret is None:
                continue
            try:
                seed = b64decode(secret)
                public = self._backend.pk_signing_from_seed(seed).public_key
            except (ValueError, BackendError):
                raise CrossSigningError(f"the {usage.replace('_', '-')} key is malformed") from None
            key = published[usage]
            if len(seed) != 32 or key is None or key.public_key != public:
                raise CrossSigningError(
                    f"the {usage.replace('_', '-')} key does not match this account's identity"
                )
        for usage, secret in given.items():
            if secret is not None:
                self.import_private_key(usage, secret)
        return self.cross_signing_status()

    def export_cross_signing_keys(self) -> dict[str, str]:
        """Our cross-signing private keys, by secret name (for secret storage). Secrets!

        Only keys of the published identity (keys of a replaced identity are never
        given out); when the account has no identity yet, the keys of the bootstrap
        under way. Call it after the bootstrap's upload was confirmed.
        """
        own = self._cross_signing.published(self._user_id)
        exported: dict[str, str] = {}
        for usage, name in CROSS_SIGNING_SECRET_NAMES.items():
            if own is not None and self.matching_private_key(usage, own) is None:
                continue
            secret = self.get_secret(name)
            if secret is not None:
                exported[name] = secret
        return exported

    def cross_signing_status(self) -> CrossSigningStatus:
        """Our own cross-signing state on this device (for the UI and the bootstrap decision)."""
        own = self._cross_signing.published(self._user_id)
        held = {
            usage: self.matching_private_key(usage, own) for usage in CROSS_SIGNING_SECRET_NAMES
        }
        device = self._store.get_device(self._user_id, self._device_id)
        signed = bool(
            own is not None
            and own.self_signing is not None
            and device is not None
            and self._cross_signing.signed_by(
                device["keys_json"], None, self._user_id, own.self_signing
            )
        )
        pending = bool(self._device_signing_in_flight) or (
            own is None
            and all(self._private_key(u) is not None for u in CROSS_SIGNING_SECRET_NAMES)
        )
        return CrossSigningStatus(
            published=own is not None,
            master_trusted=self._cross_signing.own_master_trusted(own),
            has_master=held[MASTER] is not None,
            has_self_signing=held[SELF_SIGNING] is not None,
            has_user_signing=held[USER_SIGNING] is not None,
            this_device_signed=signed,
            pending_upload=pending,
        )

    def bootstrap_cross_signing(self, *, reset: bool = False) -> DeviceSigningUploadRequest | None:
        """Create our cross-signing identity: the ``/keys/device_signing/upload`` to send.

        ``None`` when this device already holds the published master key (nothing to
        do). Raises :class:`CrossSigningError` when the account already has another
        identity (verify this device from another session instead) unless ``reset``,
        and :class:`OwnKeysNotQueried` when our own keys are outdated (query them
        first). Keys made by an earlier, unconfirmed bootstrap are reused, so a retry
        sends the same body (which the server accepts without a new authentication).

        The request needs user-interactive authentication when an identity exists:
        ``to_http(auth=...)``. Once the server accepted it, report with
        :meth:`mark_request_as_sent`: this device then trusts the new identity, and
        the signature of this device by the self-signing key appears in
        :meth:`outgoing_requests`.
        """
        tracked = self._store.get_tracked_user(self._user_id)
        if tracked is None or tracked["dirty"]:
            raise OwnKeysNotQueried("our own keys have not been queried yet")
        own = self._cross_signing.published(self._user_id)
        if own is not None and not reset:
            if self.matching_private_key(MASTER, own) is not None:
                return None
            raise CrossSigningError(
                "this account already has a cross-signing identity: verify this session "
                "from another one (or reset the identity)"
            )
        keys = {usage: self._private_key(usage) for usage in CROSS_SIGNING_SECRET_NAMES}
        complete = all(k is not None for k in keys.values())
        held_master = keys[MASTER]
        published_here = (
            own is not None
            and held_master is not None
            and held_master.public_key == own.master.public_key
        )
        if not complete or published_here:
            for usage, name in CROSS_SIGNING_SECRET_NAMES.items():
                seed = secrets.token_bytes(32)
                self.save_secret(name, b64encode(seed))
                keys[usage] = self._backend.pk_signing_from_seed(seed)
        master, self_signing, user_signing = (keys[MASTER], keys[SELF_SIGNING], keys[USER_SIGNING])
        assert master is not None and self_signing is not None and user_signing is not None
        _, account = self._keys.account()
        body = identity_upload_body(
            self._user_id, self._device_id, account.sign, master, self_signing, user_signing
        )
        request = DeviceSigningUploadRequest(request_id=new_id(), body=body)
        self._device_signing_in_flight[request.request_id] = request
        return request

    def _device_signing_done(self, request: DeviceSigningUploadRequest) -> None:
        """The server took our new identity: record it, trust it, sign this device."""
        body = request.body
        record = {
            "user_id": self._user_id,
            "master_key_json": canonical_json(body["master_key"]).decode("utf-8"),
            "self_signing_key_json": canonical_json(body["self_signing_key"]).decode("utf-8"),
            "user_signing_key_json": canonical_json(body["user_signing_key"]).decode("utf-8"),
        }
        previous = self._store.get_cross_signing_keys(self._user_id)
        self._store.save_cross_signing_keys(record)  # type: ignore[arg-type]
        own = self._cross_signing.published(self._user_id)
        if own is None:
            log.error("the identity we uploaded does not parse")
            if previous is not None:
                self._store.save_cross_signing_keys(previous)
            return
        self.trust_own_master(own.master.public_key)
        self._devices.mark_outdated(self._user_id)

    def signature_upload_request(self) -> SignatureUploadRequest | None:
        if self._signature_upload is not None:
            return self._signature_upload
        if not self._signatures_dirty or self._clock() < self._signatures_retry_at:
            return None
        self._signatures_dirty = False
        body = self._owed_signatures()
        if not body:
            return None
        self._signature_upload = SignatureUploadRequest(request_id=new_id(), body=body)
        return self._signature_upload

    def _owed_signatures(self) -> dict[str, dict[str, Any]]:
        """Signatures our keys should have made and the server does not show yet.

        This device's signature on our trusted master key; our self-signing key's on
        this device and on our other devices verified here; our user-signing key's on
        the master keys of users verified here.
        """
        user = self._user_id
        policy = self._cross_signing
        own = policy.published(user)
        if own is None or not policy.own_master_trusted(own):
            return {}
        body: dict[str, dict[str, Any]] = {}

        def owe(target_user: str, key_id: str, signer_key_id: str, obj: dict[str, Any]) -> None:
            if (target_user, key_id, signer_key_id) not in self._signatures_sent:
                body.setdefault(target_user, {})[key_id] = obj

        if not policy.signed_by_device(own.master, user, self._device_id, self._identity.ed25519):
            unsigned = {k: v for k, v in own.master.signed.items() if k != "signatures"}
            owe(
                user,
                own.master.public_key,
                f"ed25519:{self._device_id}",
                self._keys.sign_json(unsigned),
            )
        self_signing = self.matching_private_key(SELF_SIGNING, own)
        if self_signing is not None and own.self_signing is not None:
            key_id = f"ed25519:{self_signing.public_key}"
            for device in self._store.get_user_devices(user):
                if device["deleted"] or device["device_id"] in own.public_keys():
                    continue
                mine = device["device_id"] == self._device_id
                if not mine and device["local_trust"] != LocalTrust.VERIFIED.value:
                    continue
                if mine and (device["curve25519"], device["ed25519"]) != (
                    self._identity.curve25519,
                    self._identity.ed25519,
                ):
                    continue
                if policy.signed_by(device["keys_json"], None, user, own.self_signing):
                    continue
                unsigned = {
                    k: v for k, v in json.loads(device["keys_json"]).items() if k != "signatures"
                }
                owe(
                    user,
                    device["device_id"],
                    key_id,
                    sign_json(unsigned, user, key_id, self_signing.sign),
                )
        user_signing = self.matching_private_key(USER_SIGNING, own)
        if user_signing is not None and own.user_signing is not None:
            key_id = f"ed25519:{user_signing.public_key}"
            for record in self._store.list_user_identities():
                other = record["user_id"]
                if other == user or record["verified_master_key"] is None:
                    continue
                theirs = policy.published(other)
                if theirs is None or theirs.master.public_key != record["verified_master_key"]:
                    continue
                if policy.signed_by(
                    theirs.master.canonical, theirs.master.signed, user, own.user_signing
                ):
                    continue
                unsigned = {k: v for k, v in theirs.master.signed.items() if k != "signatures"}
                owe(
                    other,
                    theirs.master.public_key,
                    key_id,
                    sign_json(unsigned, user, key_id, user_signing.sign),
                )
        return body

    def _signatures_done(
        self, request: SignatureUploadRequest, response: Mapping[str, Any]
    ) -> RequestOutcome:
        failures_by_user = response.get("failures")
        failed: list[tuple[str, str, str]] = []
        if isinstance(failures_by_user, Mapping):
            for user_id, by_key in failures_by_user.items():
                if not isinstance(by_key, Mapping):
                    continue
                for key_id, error in by_key.items():
                    code = error.get("errcode") if isinstance(error, Mapping) else None
                    failed.append((str(user_id), str(key_id), str(code or "M_UNKNOWN")))
        refused = {(u, k) for u, k, _ in failed}
        for user_id, by_key in request.body.items():
            for key_id, obj in by_key.items():
                if (user_id, key_id) in refused:
                    continue
                for signer_key_id in obj.get("signatures", {}).get(self._user_id, {}):
                    self._signatures_sent.add((user_id, key_id, signer_key_id))
            self._devices.mark_outdated(user_id)
        if failed:
            log.warning("the server refused %d cross-signing signature(s)", len(failed))
        return RequestOutcome(signature_failures=tuple(failed))


def _is_published(signer: PkSigning, usage: str, own: PublishedIdentity | None) -> bool:
    """True if ``signer`` is the private half of our published (valid) ``usage`` key."""
    if own is None:
        return False
    published = {
        MASTER: own.master,
        SELF_SIGNING: own.self_signing,
        USER_SIGNING: own.user_signing,
    }[usage]
    return published is not None and hmac.compare_digest(
        signer.public_key.encode(), published.public_key.encode()
    )
