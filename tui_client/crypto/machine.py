"""The Olm/Megolm state machine: sans-I/O, in the push/pull shape of matrix-sdk-crypto.

Push what sync brings in (:meth:`OlmMachine.receive_sync_changes`), pull the
requests the machine wants sent (:meth:`~OlmMachine.outgoing_requests`, plus the
return values of :meth:`~OlmMachine.get_missing_sessions` and
:meth:`~OlmMachine.share_room_key`), and report each answer with
:meth:`~OlmMachine.mark_request_as_sent`. The machine never touches the network
or the disk: all its state goes through the :class:`CryptoStore`, synchronously,
so each call can run inside the caller's database transaction.

Contract with the caller (the engine):

- Every public method may write to the store. Run it inside a transaction and
  commit before sending any request it returned: a request must never reach the
  server while the state that produced it (an advanced Olm ratchet, a published
  one-time key, a pending share) could still be rolled back.
- If a transaction is rolled back, nothing needs resetting: the machine's caches
  are checked against the stored pickles on every use.
- Requests are stable: ``outgoing_requests()`` returns the same request IDs until
  each is marked sent or failed, so it can be called on every sync iteration;
  do not start a second copy of a request ID already in flight.

Beyond Olm and Megolm: cross-signing (:meth:`OlmMachine.bootstrap_cross_signing`,
:meth:`~OlmMachine.cross_signing_status`, :meth:`~OlmMachine.user_identity`; trust
by :class:`~tui_client.crypto.cross_signing.CrossSigningTrustPolicy`), interactive
verification (:meth:`~OlmMachine.request_verification`,
:meth:`~OlmMachine.request_verification_in_room`, :meth:`~OlmMachine.accept_verification`,
:meth:`~OlmMachine.start_sas`, :meth:`~OlmMachine.confirm_sas`; to-device events are
handled by :meth:`~OlmMachine.receive_sync_changes`, room events are fed with
:meth:`~OlmMachine.receive_room_verification_event`; room events to send come from
:meth:`~OlmMachine.outgoing_room_messages`), and secrets kept on this device, sealed
under the pickle key (:meth:`~OlmMachine.save_secret`), given to and taken from our
own verified devices (``m.secret.request`` / ``m.secret.send``).

The machine is built from parts, each owning its state and tested on its own:
:class:`~.account_keys.AccountKeys` (the account, device keys, key uploads),
:class:`~.devices.DeviceTracker` (tracked users, ``/keys/query``, identities, trust),
:class:`~.olm_sessions.OlmSessions` (Olm sessions, claims, unwedging),
:class:`~.megolm_outbound.OutboundGroupSessions` (share, rotate, withhold),
:class:`~.megolm_inbound.InboundGroupSessions` (decrypt, import/export, forwarded keys),
:class:`~.gossip.KeyGossip` (key and secret requests) and
:class:`~.own_identity.OwnIdentity` (cross-signing keys held here, signatures, secrets).
This class wires them, dispatches to-device events to them, gathers their outgoing
requests and routes each answer back to the part that made the request.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .account_keys import AccountKeys
from .backend import BackendError, CryptoBackend, IdentityKeys
from .cross_signing import (
    CrossSigningStatus,
    UserIdentity,
    new_identity_record,
)
from .devices import DeviceTracker
from .gossip import KeyGossip
from .machine_core import (
    KEY_REQUEST_TYPES,
    CryptoStoreMismatch,
    EncryptionError,
    MachineCore,
    Rejected,
)
from .megolm_inbound import InboundGroupSessions
from .megolm_outbound import OutboundGroupSessions
from .olm_sessions import OlmSessions
from .own_identity import OwnIdentity
from .requests import (
    DeviceSigningUploadRequest,
    KeysClaimRequest,
    OutgoingRequest,
    RoomMessageRequest,
    ToDeviceKind,
    ToDeviceRequest,
)
from .store_api import CryptoStore, RoomKeyShareRecord
from .trust import TrustPolicy
from .types import (
    DecryptedEvent,
    DecryptionFailure,
    Device,
    DeviceTrust,
    EncryptionSettings,
    ImportResult,
    KeyOrigin,
    LocalTrust,
    MachineConfig,
    RejectedToDevice,
    RequestOutcome,
    SyncChanges,
    ToDeviceEvent,
)
from .verification import (
    VERIFICATION_EVENT_TYPES,
    CancelCode,
    Verification,
    VerificationMachine,
    VerificationResult,
)
from .verification_host import MachineVerificationHost

__all__ = ["CryptoStoreMismatch", "EncryptionError", "OlmMachine"]

log = logging.getLogger(__name__)


class OlmMachine:
    """End-to-end encryption for one device of one user.

    ``pickle_key`` (32 random bytes, kept outside the database, e.g. in the
    keyring) encrypts every pickle the machine stores. ``clock`` returns
    milliseconds; tests inject one. ``trust_policy`` decides device trust
    (default: the user's local decisions, then cross-signing signatures, all
    checked: :class:`~tui_client.crypto.cross_signing.CrossSigningTrustPolicy`).
    Constructing a machine creates the account on first use and starts tracking
    our own user: commit afterwards.

    Verification flows (:mod:`.verification`) live in memory: they do not survive a
    restart, and they are not rolled back with a transaction (their outgoing
    messages are plain to-device or room events, kept in memory until marked sent).
    """

    def __init__(
        self,
        user_id: str,
        device_id: str,
        store: CryptoStore,
        backend: CryptoBackend,
        *,
        pickle_key: bytes,
        clock: Callable[[], int] | None = None,
        trust_policy: TrustPolicy | None = None,
        config: MachineConfig | None = None,
    ) -> None:
        core = MachineCore(
            user_id, device_id, store, backend, pickle_key=pickle_key, clock=clock, config=config
        )
        self._core = core
        self._user_id = user_id
        self._store = store
        self._keys = AccountKeys(core)
        self._devices = DeviceTracker(core, self._keys.identity, trust_policy)
        self._olm = OlmSessions(core, self._keys, self._devices)
        self._own = OwnIdentity(core, self._keys, self._devices)
        self._gossip = KeyGossip(core, self._devices, self._olm, self._own)
        self._inbound = InboundGroupSessions(core, self._devices, self._olm, self._gossip)
        self._outbound = OutboundGroupSessions(core, self._keys.identity, self._devices, self._olm)
        host = MachineVerificationHost(core, self._keys.identity, self._devices)
        self._verifications = VerificationMachine(host, core.config.verification)
        self._verification_requests: dict[str, ToDeviceRequest] = {}
        self._room_messages: dict[str, RoomMessageRequest] = {}

    def __repr__(self) -> str:
        return f"OlmMachine({self._user_id!r}, {self.device_id!r}, backend={self.backend.name})"

    # ------------------------------------------------------------------ identity

    @property
    def user_id(self) -> str:
        """Our user ID."""
        return self._user_id

    @property
    def device_id(self) -> str:
        """Our device ID."""
        return self._core.device_id

    @property
    def backend(self) -> CryptoBackend:
        """The primitives in use."""
        return self._core.backend

    @property
    def identity_keys(self) -> IdentityKeys:
        """This device's Curve25519 and Ed25519 keys."""
        return self._keys.identity

    def device_keys(self) -> dict[str, Any]:
        """Our signed device-keys object (as uploaded)."""
        return self._keys.device_keys()

    def sign(self, message: bytes) -> str:
        """Sign bytes with this device's Ed25519 key."""
        return self._keys.sign(message)

    def sign_json(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` signed by this device (``ed25519:<device_id>``)."""
        return self._keys.sign_json(obj)

    # ------------------------------------------------------------------ sync in

    def receive_sync_changes(
        self,
        to_device_events: Iterable[Mapping[str, Any]] = (),
        changed_users: Iterable[str] = (),
        left_users: Iterable[str] = (),
        one_time_key_counts: Mapping[str, int] | None = None,
        unused_fallback_key_types: Iterable[str] | None = None,
    ) -> SyncChanges:
        """Take in one sync response's E2EE parts; never raises for bad input.

        ``to_device_events`` is ``to_device.events``; ``changed_users`` and
        ``left_users`` are ``device_lists.changed`` / ``.left``;
        ``one_time_key_counts`` is ``device_one_time_keys_count`` (``None`` when
        absent, which the spec says means zero); ``unused_fallback_key_types`` is
        ``device_unused_fallback_key_types`` (``None`` when absent: the server does
        not support fallback keys). Returns the decrypted and plaintext to-device
        events for other consumers, the room keys received (retry the events
        waiting for them), withheld notices and secrets.
        """
        self._devices.receive_device_lists(changed_users, left_users)
        self._keys.receive_key_counts(one_time_key_counts, unused_fallback_key_types)
        result = SyncChanges()
        for event in to_device_events:
            try:
                self._receive_to_device(event, result)
            except (Rejected, BackendError, ValueError, TypeError, KeyError) as exc:
                event_type = event.get("type") if isinstance(event, Mapping) else None
                sender = event.get("sender") if isinstance(event, Mapping) else None
                reason = str(exc) if isinstance(exc, Rejected | BackendError) else repr(exc)
                log.info("to-device %s from %s rejected: %s", event_type, sender, reason)
                result.rejected.append(RejectedToDevice(str(event_type), str(sender), reason))
        self._verifications.expire()
        result.verifications.extend(self._drain_verifications())
        return result

    def _receive_to_device(self, event: Mapping[str, Any], result: SyncChanges) -> None:
        if not isinstance(event, Mapping):
            raise Rejected("not an object")
        event_type = event.get("type")
        sender = event.get("sender")
        content = event.get("content")
        if not isinstance(event_type, str) or not isinstance(sender, str):
            raise Rejected("missing type or sender")
        if not isinstance(content, Mapping):
            raise Rejected("missing content")
        if event_type == "m.room.encrypted":
            self._receive_olm(sender, content, result)
            return
        if event_type in ("m.room_key", "m.forwarded_room_key", "m.secret.send"):
            raise Rejected(f"{event_type} must arrive Olm-encrypted")
        if event_type == "m.room_key.withheld":
            self._inbound.receive_withheld(sender, content, result)
            return
        if event_type in KEY_REQUEST_TYPES:
            self._gossip.receive_key_request(sender, event_type, content, None)
            return
        if event_type == "m.dummy":
            return
        if event_type in VERIFICATION_EVENT_TYPES:
            self._verifications.receive_to_device(sender, event_type, content)
            return
        result.to_device_events.append(
            ToDeviceEvent(type=event_type, sender=sender, content=dict(content), encrypted=False)
        )

    def _receive_olm(self, sender: str, content: Mapping[str, Any], result: SyncChanges) -> None:
        payload = self._olm.decrypt_event(sender, content)
        inner_type, inner, device = payload.type, payload.content, payload.device
        if inner_type == "m.room_key":
            info = self._inbound.receive_room_key(
                sender, payload.sender_key, payload.sender_ed25519, inner
            )
            if info is not None:
                result.room_keys.append(info)
        elif inner_type == "m.forwarded_room_key":
            info = self._inbound.receive_forwarded_room_key(
                sender, payload.sender_key, device, inner
            )
            if info is not None:
                result.room_keys.append(info)
        elif inner_type == "m.secret.send":
            secret = self._gossip.receive_secret(sender, device, inner)
            if secret is not None:
                result.secrets.append(secret)
        elif inner_type == "m.room_key.withheld":
            self._inbound.receive_withheld(sender, inner, result)
        elif inner_type in KEY_REQUEST_TYPES:
            self._gossip.receive_key_request(sender, inner_type, inner, device)
        elif inner_type == "m.dummy":
            pass
        elif inner_type in VERIFICATION_EVENT_TYPES:
            self._verifications.receive_to_device(
                sender, inner_type, inner, None if device is None else device["device_id"]
            )
        else:
            result.to_device_events.append(
                ToDeviceEvent(
                    type=inner_type,
                    sender=sender,
                    content=inner,
                    encrypted=True,
                    sender_key=payload.sender_key,
                    sender_ed25519=payload.sender_ed25519,
                    sender_device_id=None if device is None else device["device_id"],
                    sender_trust=None if device is None else self._devices.trust(device),
                )
            )

    # ------------------------------------------------------------------ requests out

    def outgoing_requests(self) -> list[OutgoingRequest]:
        """Every request the machine wants sent now (stable IDs until marked sent or failed).

        Key uploads, device-list queries, key claims for wedged sessions and for
        answering secret requests, cross-signing signature uploads, the verification
        messages (plain to-device events), then every pending to-device request (room
        key shares included) in the order made: send them in this order. In-room
        verification events are not here: see :meth:`outgoing_room_messages`.
        """
        wanted = (
            self._keys.upload_request(),
            self._devices.query_request(),
            self._olm.unwedge_claim_request(),
            self._gossip.claim_request(),
            self._own.signature_upload_request(),
        )
        requests: list[OutgoingRequest] = [r for r in wanted if r is not None]
        # Verification messages first: a ``done`` must reach the other device before the
        # secret requests that follow it.
        requests.extend(self._verification_requests.values())
        requests.extend(self._core.pending_to_device())
        return requests

    def mark_request_as_sent(self, request_id: str, response: Mapping[str, Any]) -> RequestOutcome:
        """Apply the server's JSON answer to a request the machine produced.

        Unknown IDs (already marked, or from before a restart) are ignored.
        """
        if not isinstance(response, Mapping):
            response = {}
        outcome = self._keys.mark_sent(request_id, response)
        if outcome is not None:
            return outcome
        outcome = self._devices.mark_sent(request_id, response)
        if outcome is not None:
            self._own.users_queried(outcome.users_updated)
            return outcome
        outcome = self._olm.mark_sent(request_id, response)
        if outcome is not None:
            return outcome
        if self._verification_requests.pop(request_id, None) is not None:
            return RequestOutcome()
        room_message = self._room_messages.pop(request_id, None)
        if room_message is not None:
            return self._room_message_sent(room_message, response)
        outcome = self._own.mark_sent(request_id, response)
        if outcome is not None:
            return outcome
        pending = self._store.get_pending_to_device(request_id)
        if pending is not None:
            self._store.delete_pending_to_device(request_id)
            self._outbound.share_sent(pending)
            self._gossip.request_sent(pending)
        return RequestOutcome()

    def mark_request_as_failed(self, request_id: str, *, permanent: bool = False) -> None:
        """A request failed. Transient: it stays outgoing and will be retried.

        ``permanent`` (the server refused it for good): keys requests are rebuilt
        from state later; a key claim's devices wait ``claim_retry_ms`` before being
        claimed again (a claim that is not permanent lets them be claimed at once); a
        to-device request is dropped, and the room key shares it carried are forgotten
        so the next ``share_room_key`` retries them.
        """
        if (
            self._keys.mark_failed(request_id)
            or self._devices.mark_failed(request_id)
            or self._olm.mark_failed(request_id, permanent=permanent)
            or self._own.mark_failed(request_id)
            or not permanent
        ):
            return
        if self._verification_requests.pop(request_id, None) is not None:
            return
        if self._room_messages.pop(request_id, None) is not None:
            self._verifications.room_request_failed(request_id)
            self._drain_verifications()
            return
        pending = self._store.get_pending_to_device(request_id)
        if pending is None:
            return
        self._store.delete_pending_to_device(request_id)
        self._outbound.share_failed(pending)
        self._gossip.request_failed(pending)

    # ------------------------------------------------------------------ devices and identities

    def device_trust(self, device: Device) -> DeviceTrust:
        """The trust policy's verdict on ``device`` (our own device is always verified)."""
        return self._devices.device_trust(device)

    def get_device(self, user_id: str, device_id: str) -> Device | None:
        """A device we know (deleted ones included, flagged)."""
        return self._devices.get_device(user_id, device_id)

    def get_user_devices(self, user_id: str, *, include_deleted: bool = False) -> list[Device]:
        """The devices of ``user_id`` from the last ``/keys/query``."""
        return self._devices.get_user_devices(user_id, include_deleted=include_deleted)

    def set_local_trust(self, user_id: str, device_id: str, trust: LocalTrust) -> bool:
        """Record the user's verify/block decision for a device; ``False`` if unknown."""
        changed = self._devices.set_local_trust(user_id, device_id, trust)
        if changed and user_id == self._user_id:
            self._own.signatures_changed()
        return changed

    def update_tracked_users(self, users: Iterable[str]) -> None:
        """Start tracking these users' devices (members of encrypted rooms); new ones are queried."""
        self._devices.update_tracked_users(users)

    def mark_users_outdated(self, users: Iterable[str]) -> None:
        """Fetch these users' device lists again (tracking them if need be)."""
        self._devices.mark_users_outdated(users)

    def tracked_users(self) -> set[str]:
        """Every tracked user."""
        return self._devices.tracked_users()

    def outdated_users(self, users: Iterable[str] | None = None) -> set[str]:
        """Tracked users (of ``users`` if given) whose device list awaits a ``/keys/query``."""
        return self._devices.outdated_users(users)

    def user_identity(self, user_id: str) -> UserIdentity | None:
        """``user_id``'s cross-signing identity as this device judges it (``None``: none known)."""
        return self._devices.user_identity(user_id)

    def identities_needing_attention(self) -> list[UserIdentity]:
        """Users whose identity changed (verified ones first): warn until acknowledged or re-verified."""
        return self._devices.identities_needing_attention()

    def acknowledge_identity_change(self, user_id: str) -> bool:
        """The user saw the change of ``user_id``'s master key: accept it, drop the warning."""
        return self._devices.acknowledge_identity_change(user_id)

    # ------------------------------------------------------------------ Olm

    def encrypt_to_device(
        self, user_id: str, device_id: str, event_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """``m.room.encrypted`` content carrying ``event_type``/``content`` to one device
        (``None``: device unknown or no Olm session; see :meth:`get_missing_sessions`)."""
        return self._olm.encrypt_to_device(user_id, device_id, event_type, content)

    def get_missing_sessions(self, users: Iterable[str]) -> KeysClaimRequest | None:
        """A ``/keys/claim`` for the devices of ``users`` we have no Olm session with."""
        return self._olm.get_missing_sessions(users)

    def claims_awaited(self, users: Iterable[str]) -> list[str]:
        """The ``/keys/claim`` requests in flight for devices of ``users`` that
        :meth:`get_missing_sessions` therefore left out: mark them sent or failed before
        :meth:`share_room_key`, or the key goes without those devices."""
        return self._olm.claims_awaited(users)

    # ------------------------------------------------------------------ Megolm

    def share_room_key(
        self,
        room_id: str,
        users: Iterable[str],
        settings: EncryptionSettings | None = None,
    ) -> list[ToDeviceRequest]:
        """Make sure every device of ``users`` has the room's current outbound session
        (see :meth:`.OutboundGroupSessions.share_room_key`)."""
        return self._outbound.share_room_key(room_id, users, settings)

    def invalidate_group_session(self, room_id: str) -> bool:
        """Rotate the room's outbound session at the next share (``False``: it had none)."""
        return self._outbound.invalidate_group_session(room_id)

    def room_key_shares(self, room_id: str) -> list[RoomKeyShareRecord]:
        """Who got the room's current outbound session (and at which index), or was refused it."""
        return self._outbound.room_key_shares(room_id)

    def encrypt_room_event(
        self, room_id: str, event_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content for a room event (share first)."""
        return self._outbound.encrypt_room_event(room_id, event_type, content)

    def decrypt_room_event(
        self,
        event: Mapping[str, Any],
        room_id: str,
        *,
        request_key_if_missing: bool | None = None,
    ) -> DecryptedEvent | DecryptionFailure:
        """Decrypt an ``m.room.encrypted`` room event received in ``room_id``; never raises."""
        return self._inbound.decrypt_room_event(
            event, room_id, request_key_if_missing=request_key_if_missing
        )

    def export_sessions(self, room_id: str | None = None) -> list[dict[str, Any]]:
        """Every inbound session (of ``room_id``) in the spec's ``ExportedSessionData`` form."""
        return self._inbound.export_sessions(room_id)

    def export_room_keys(
        self, passphrase: str, *, room_id: str | None = None, rounds: int | None = None
    ) -> str:
        """The encrypted key export file's text (``-----BEGIN MEGOLM SESSION DATA-----``...)."""
        return self._inbound.export_room_keys(passphrase, room_id=room_id, rounds=rounds)

    def import_sessions(
        self, sessions: Iterable[object], *, origin: KeyOrigin = KeyOrigin.IMPORTED
    ) -> ImportResult:
        """Import ``ExportedSessionData`` objects; invalid ones are skipped."""
        return self._inbound.import_sessions(sessions, origin=origin)

    def import_room_keys(self, text: str, passphrase: str) -> ImportResult:
        """Decrypt and import a key export file; raises ``KeyExportError``."""
        return self._inbound.import_room_keys(text, passphrase)

    # ------------------------------------------------------------------ key and secret requests

    def request_room_key(
        self, room_id: str, session_id: str, sender_key: str | None = None
    ) -> bool:
        """Ask our own other devices for a room key, once (``False``: already asked, or alone)."""
        return self._gossip.request_room_key(room_id, session_id, sender_key)

    def request_secret(self, name: str) -> str | None:
        """Ask our own other devices for a secret; the request ID (``None``: no other device)."""
        return self._gossip.request_secret(name)

    # ------------------------------------------------------------------ own identity, secrets

    def save_secret(self, name: str, secret: str) -> None:
        """Keep a secret on this device, sealed under the pickle key."""
        self._own.save_secret(name, secret)

    def get_secret(self, name: str) -> str | None:
        """A secret kept on this device (``None`` if absent or unreadable with our pickle key)."""
        return self._own.get_secret(name)

    def delete_secret(self, name: str) -> None:
        """Forget a secret kept on this device."""
        self._own.delete_secret(name)

    def secret_names(self) -> list[str]:
        """The names of the secrets kept on this device."""
        return self._own.secret_names()

    def import_cross_signing_keys(
        self,
        *,
        master: str | None = None,
        self_signing: str | None = None,
        user_signing: str | None = None,
    ) -> CrossSigningStatus:
        """Keep cross-signing private keys that match our published identity."""
        return self._own.import_cross_signing_keys(
            master=master, self_signing=self_signing, user_signing=user_signing
        )

    def export_cross_signing_keys(self) -> dict[str, str]:
        """Our cross-signing private keys, by secret name (for secret storage). Secrets!"""
        return self._own.export_cross_signing_keys()

    def cross_signing_status(self) -> CrossSigningStatus:
        """Our own cross-signing state on this device (for the UI and the bootstrap decision)."""
        return self._own.cross_signing_status()

    def bootstrap_cross_signing(self, *, reset: bool = False) -> DeviceSigningUploadRequest | None:
        """Create our cross-signing identity: the ``/keys/device_signing/upload`` to send
        (see :meth:`.OwnIdentity.bootstrap_cross_signing`)."""
        return self._own.bootstrap_cross_signing(reset=reset)

    # ------------------------------------------------------------------ verification

    def _drain_verifications(self) -> list[Verification]:
        """Turn the verification machine's output into requests, apply results; changed flows."""
        for message in self._verifications.take_messages():
            if message.room_id is not None:
                self._room_messages[message.txn_id] = RoomMessageRequest(
                    request_id=message.txn_id,
                    room_id=message.room_id,
                    event_type=message.event_type,
                    content=message.content,
                )
            elif message.user_id is not None:
                self._verification_requests[message.txn_id] = ToDeviceRequest(
                    request_id=message.txn_id,
                    event_type=message.event_type,
                    kind=ToDeviceKind.VERIFICATION,
                    messages={
                        message.user_id: {d: dict(message.content) for d in message.device_ids}
                    },
                )
        for result in self._verifications.take_results():
            self._verification_done(result)
        return self._verifications.take_changed()

    def _verification_done(self, result: VerificationResult) -> None:
        """A flow ended verified: trust what its MACs proved, sign it, ask for our secrets."""
        user_id, device_id = result.other_user_id, result.other_device_id
        device_verified = False
        own_master_trusted = False
        if result.device_key is not None:
            record = self._store.get_device(user_id, device_id)
            if (
                record is not None
                and not record["deleted"]
                and hmac.compare_digest(record["ed25519"].encode(), result.device_key.encode())
            ):
                if record["local_trust"] != LocalTrust.BLOCKED.value:
                    self._store.save_device({**record, "local_trust": LocalTrust.VERIFIED.value})
                device_verified = True
        if result.master_key is not None:
            identity = self._core.cross_signing.published(user_id)
            if identity is not None and identity.master.public_key == result.master_key:
                if user_id == self._user_id:
                    self._own.trust_own_master(result.master_key)
                    own_master_trusted = True
                else:
                    record_identity = self._store.get_user_identity(user_id) or new_identity_record(
                        user_id
                    )
                    self._store.save_user_identity(
                        {
                            **record_identity,
                            "verified_master_key": result.master_key,
                            "pinned_master_key": result.master_key,
                            "previously_verified": True,
                        }
                    )
        self._own.signatures_changed()
        if user_id == self._user_id and (device_verified or own_master_trusted):
            # (A QR code shown by a session that did not trust the master key proves only
            # the master key: our other sessions, cross-signed, can then send the secrets.)
            self._gossip.own_device_verified()

    def _room_message_sent(
        self, request: RoomMessageRequest, response: Mapping[str, Any]
    ) -> RequestOutcome:
        event_id = response.get("event_id")
        if request.event_type == "m.room.message" and isinstance(event_id, str):
            bound = self._verifications.bind_room_request(request.request_id, event_id)
            changed = self._drain_verifications()
            if bound is not None:
                return RequestOutcome(verifications=tuple(changed) or (bound,))
        return RequestOutcome()

    def _verification_call(self, action: Callable[[], Verification]) -> Verification:
        try:
            return action()
        finally:
            self._drain_verifications()

    def request_verification(
        self, user_id: str, device_ids: Sequence[str] | None = None
    ) -> Verification:
        """Ask devices of ``user_id`` to verify over to-device messages.

        For our own devices (this device asks the others, or one of them); for other
        users prefer :meth:`request_verification_in_room`. ``device_ids`` defaults to
        every known device of the user. Send :meth:`outgoing_requests` afterwards.
        Raises :class:`~tui_client.crypto.verification.VerificationError`.
        """
        if device_ids is None:
            device_ids = [
                d["device_id"]
                for d in self._store.get_user_devices(user_id)
                if not d["deleted"] and not self._core.is_own_device(user_id, d["device_id"])
            ]
        targets = list(device_ids)
        return self._verification_call(lambda: self._verifications.request(user_id, targets))

    def request_verification_in_room(self, room_id: str, user_id: str) -> Verification:
        """Ask ``user_id`` to verify in ``room_id`` (their DM with us).

        The request is a room message in :meth:`outgoing_room_messages`; the flow gets
        its ID when that is marked sent with the server's ``event_id``.
        """
        return self._verification_call(
            lambda: self._verifications.request_in_room(room_id, user_id)
        )

    def accept_verification(self, verification_id: str) -> Verification:
        """Accept an incoming request (``ready``)."""
        return self._verification_call(lambda: self._verifications.accept(verification_id))

    def start_sas(self, verification_id: str) -> Verification:
        """Start SAS (emoji / decimal) on a ready flow."""
        return self._verification_call(lambda: self._verifications.start_sas(verification_id))

    def confirm_sas(self, verification_id: str) -> Verification:
        """The user confirmed that the emoji / numbers match."""
        return self._verification_call(lambda: self._verifications.confirm_sas(verification_id))

    def sas_mismatch(self, verification_id: str) -> Verification:
        """The user said the emoji / numbers do not match (cancels with ``m.mismatched_sas``)."""
        return self._verification_call(lambda: self._verifications.sas_mismatch(verification_id))

    def confirm_qr_scanned(self, verification_id: str) -> Verification:
        """The user says the other device confirmed scanning our QR code: trust, send ``done``."""
        return self._verification_call(
            lambda: self._verifications.confirm_qr_scanned(verification_id)
        )

    def qr_not_scanned(self, verification_id: str) -> Verification:
        """The user says the other device did not confirm the scan: cancel, trust nothing."""
        return self._verification_call(lambda: self._verifications.qr_not_scanned(verification_id))

    def scan_qr_code(self, verification_id: str, data: bytes) -> Verification:
        """We read the other device's QR code (``data``): check its keys and reciprocate."""
        return self._verification_call(lambda: self._verifications.scan_qr(verification_id, data))

    def cancel_verification(
        self, verification_id: str, code: CancelCode | str = CancelCode.USER
    ) -> Verification:
        """Cancel or decline a flow (``m.user`` by default)."""
        return self._verification_call(lambda: self._verifications.cancel(verification_id, code))

    def get_verification(self, verification_id: str) -> Verification | None:
        """One flow's current snapshot."""
        return self._verifications.get(verification_id)

    def verifications(self, *, active_only: bool = True) -> list[Verification]:
        """Every flow (unfinished ones by default), oldest first."""
        return self._verifications.list(active_only=active_only)

    def receive_room_verification_event(
        self, room_id: str, event: Mapping[str, Any]
    ) -> list[Verification]:
        """Feed a room event that may belong to an in-room verification; the flows it changed.

        Pass every ``m.room.message`` with ``msgtype: m.key.verification.request`` and
        every ``m.key.verification.*`` event of joined rooms' timelines, decrypted if
        they were encrypted (``DecryptedEvent.as_event``), our own echoes included.
        Events of other users' verifications are ignored.
        """
        try:
            self._verifications.receive_room_event(room_id, event)
        except (ValueError, TypeError, KeyError, BackendError) as exc:
            log.info("room verification event rejected: %r", exc)
        return self._drain_verifications()

    def expire_verifications(self) -> list[Verification]:
        """Time out flows by the clock (call every few seconds while any is active)."""
        self._verifications.expire()
        return self._drain_verifications()

    def outgoing_room_messages(self) -> list[RoomMessageRequest]:
        """Room events the verification flows want sent (stable IDs until marked sent/failed).

        Encrypt them if the room is encrypted, send, and report the answer with
        :meth:`mark_request_as_sent` (``{"event_id": ...}``).
        """
        return list(self._room_messages.values())
