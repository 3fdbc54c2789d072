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
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tui_client.protocol.canonical_json import CanonicalJsonError, canonical_json

from .backend import (
    Account,
    BackendError,
    CryptoBackend,
    IdentityKeys,
    InboundGroupSession,
    MegolmDecryptionError,
    OlmDecryptionError,
    OlmMessage,
    OlmSession,
    OutboundGroupSession,
    PickleError,
    PkSigning,
    Sas,
    SessionCreationError,
    UnknownMessageIndexError,
    check_pickle_key,
)
from .cross_signing import (
    CROSS_SIGNING_SECRET_NAMES,
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    CrossSigningError,
    CrossSigningStatus,
    CrossSigningTrustPolicy,
    OwnKeysNotQueried,
    PublishedIdentity,
    UserIdentity,
    identity_upload_body,
    new_identity_record,
    parse_cross_signing_key,
    published_public_keys,
)
from .encoding import b64decode, b64encode, is_curve25519_key, is_ed25519_key
from .key_export import KeyExportError, decrypt_key_export, encrypt_key_export
from .local_secrets import SecretSealError, open_secret, seal_secret
from .requests import (
    DeviceSigningUploadRequest,
    KeysClaimRequest,
    KeysQueryRequest,
    KeysUploadRequest,
    OutgoingRequest,
    RoomMessageRequest,
    SignatureUploadRequest,
    ToDeviceKind,
    ToDeviceRequest,
)
from .signing import sign_json, verify_signed_json
from .store_api import (
    AccountRecord,
    CryptoStore,
    DeviceRecord,
    InboundGroupSessionRecord,
    KeyRequestRecord,
    OlmPeerStateRecord,
    OlmSessionRecord,
    OutboundGroupSessionRecord,
    PendingToDeviceRecord,
    RoomKeyShareRecord,
    UserIdentityRecord,
)
from .trust import LocalTrustPolicy, TrustPolicy
from .types import (
    MEGOLM_ALGORITHM,
    OLM_ALGORITHM,
    DecryptedEvent,
    DecryptionFailure,
    Device,
    DeviceTrust,
    DeviceWarning,
    EncryptionSettings,
    FailureReason,
    IdentityChange,
    ImportResult,
    KeyOrigin,
    LocalTrust,
    MachineConfig,
    ReceivedSecret,
    RejectedToDevice,
    RequestOutcome,
    RoomKeyInfo,
    SenderTrust,
    SyncChanges,
    ToDeviceEvent,
    WarningKind,
    WithheldInfo,
)
from .verification import (
    VERIFICATION_EVENT_TYPES,
    CancelCode,
    Verification,
    VerificationMachine,
    VerificationResult,
)

__all__ = ["CryptoStoreMismatch", "EncryptionError", "OlmMachine"]

log = logging.getLogger(__name__)

SIGNED_CURVE25519 = "signed_curve25519"
_UNAUTHENTICATED_ORIGINS = frozenset({KeyOrigin.FORWARDED, KeyOrigin.IMPORTED, KeyOrigin.BACKUP})
_KEY_REQUEST_TYPES = ("m.room_key_request", "m.secret.request")
_ORIGINS = {origin.value: origin for origin in KeyOrigin}
# Enum members are looked up once here: on Python 3.11 each ``Enum.MEMBER`` access costs
# more than the rest of a dictionary lookup, and the decrypt path makes many.
_OWN = KeyOrigin.OWN.value
_ROOM_KEY = KeyOrigin.ROOM_KEY.value
_SENDER_VERIFIED = SenderTrust.VERIFIED
_SENDER_UNAUTHENTICATED = SenderTrust.UNAUTHENTICATED
_SENDER_UNKNOWN_DEVICE = SenderTrust.UNKNOWN_DEVICE
_SENDER_TRUST = {
    DeviceTrust.VERIFIED: SenderTrust.VERIFIED,
    DeviceTrust.UNVERIFIED: SenderTrust.UNVERIFIED,
    DeviceTrust.BLOCKED: SenderTrust.BLOCKED,
}
_DEVICE_VERIFIED = DeviceTrust.VERIFIED
_DEVICE_UNVERIFIED = DeviceTrust.UNVERIFIED
_LOCAL_TRUST = {
    LocalTrust.VERIFIED.value: DeviceTrust.VERIFIED,
    LocalTrust.BLOCKED.value: DeviceTrust.BLOCKED,
}
_BACKUP_SECRET = "m.megolm_backup.v1"
#: Secrets we give to our own verified devices that ask (``m.secret.request``).
_SHAREABLE_SECRETS = frozenset({*CROSS_SIGNING_SECRET_NAMES.values(), _BACKUP_SECRET})
_USAGE_BY_SECRET = {name: usage for usage, name in CROSS_SIGNING_SECRET_NAMES.items()}
#: How long a secret request from an own device not (yet) verified is kept for an answer.
_SECRET_REQUEST_HOLD_MS = 600_000
_MAX_HELD_SECRET_REQUESTS = 64


class EncryptionError(RuntimeError):
    """A room event cannot be encrypted yet (no shared, unexpired room key): share first."""


class CryptoStoreMismatch(RuntimeError):
    """The store holds the account of another user or device than the machine was built for."""


class _Rejected(Exception):
    """An incoming to-device event fails a check; the message says which."""


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _new_id() -> str:
    return secrets.token_urlsafe(18)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads`` without its Python-level wrapping for compact JSON (every payload).

    Anything the fast scan does not consume exactly (whitespace around, trailing
    data, an error) goes through ``json.loads``, which decides.
    """
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _server_name(user_id: str) -> str:
    return user_id.partition(":")[2]


class _VerificationHost:
    """What the verification machine reads from the crypto machine (see ``VerificationHost``)."""

    def __init__(self, machine: OlmMachine) -> None:
        self._machine = machine

    @property
    def user_id(self) -> str:
        return self._machine.user_id

    @property
    def device_id(self) -> str:
        return self._machine.device_id

    @property
    def ed25519(self) -> str:
        return self._machine.identity_keys.ed25519

    def now_ms(self) -> int:
        return self._machine._clock()

    def create_sas(self) -> Sas:
        return self._machine.backend.create_sas()

    def device_key(self, user_id: str, device_id: str) -> str | None:
        record = self._machine._store.get_device(user_id, device_id)
        if record is None or record["deleted"]:
            return None
        return record["ed25519"]

    def device_ids(self, user_id: str) -> list[str]:
        return [
            d["device_id"]
            for d in self._machine._store.get_user_devices(user_id)
            if not d["deleted"]
        ]

    def cross_signing_keys(self, user_id: str) -> tuple[str | None, frozenset[str]]:
        machine = self._machine
        identity = machine._cross_signing.published(user_id)
        record = machine._store.get_cross_signing_keys(user_id)
        return (
            None if identity is None else identity.master.public_key,
            published_public_keys(record, user_id),
        )

    def device_id_collision(self, user_id: str) -> bool:
        record = self._machine._store.get_user_identity(user_id)
        return record is not None and record["device_id_collision"]

    def own_trusted_master_key(self) -> str | None:
        policy = self._machine._cross_signing
        own = policy.published(self._machine.user_id)
        if own is None or not policy.own_master_trusted(own):
            return None
        return own.master.public_key

    def refresh_user(self, user_id: str) -> None:
        self._machine.mark_users_outdated([user_id])


class OlmMachine:
    """End-to-end encryption for one device of one user.

    ``pickle_key`` (32 random bytes, kept outside the database, e.g. in the
    keyring) encrypts every pickle the machine stores. ``clock`` returns
    milliseconds; tests inject one. ``trust_policy`` decides device trust
    (default: the user's local verify/block decisions). Constructing a machine
    creates the account on first use and starts tracking our own user: commit
    afterwards.

    Trust: by default a :class:`~tui_client.crypto.cross_signing.CrossSigningTrustPolicy`
    (the user's local decisions, then cross-signing signatures, all checked).
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
        check_pickle_key(pickle_key)
        self._user_id = user_id
        self._device_id = device_id
        self._store = store
        self._backend = backend
        self._pickle_key = pickle_key
        self._clock = clock or _wall_clock_ms
        self._cross_signing = CrossSigningTrustPolicy(store, backend, user_id)
        self._trust_policy: TrustPolicy = trust_policy or self._cross_signing
        self._local_trust_only = type(self._trust_policy) is LocalTrustPolicy
        self._cross_signing_trust = self._trust_policy is self._cross_signing
        self._config = config or MachineConfig()

        self._account_cache: tuple[str, Account] | None = None
        self._olm_cache: dict[tuple[str, str], tuple[str, OlmSession]] = {}
        self._inbound_cache: dict[tuple[str, str], tuple[str, InboundGroupSession]] = {}
        self._outbound_cache: dict[str, tuple[str, OutboundGroupSession]] = {}

        self._upload_in_flight: KeysUploadRequest | None = None
        self._query_in_flight: tuple[KeysQueryRequest, dict[str, int]] | None = None
        self._claims_in_flight: dict[str, tuple[KeysClaimRequest, set[tuple[str, str]]]] = {}
        self._unwedge_claim: KeysClaimRequest | None = None
        self._dirty_generation: dict[str, int] = {}
        self._claim_retry_at: dict[str, int] = {}
        self._query_retry_at: dict[str, int] = {}

        self._verifications = VerificationMachine(
            _VerificationHost(self), self._config.verification
        )
        self._verification_requests: dict[str, ToDeviceRequest] = {}
        self._room_messages: dict[str, RoomMessageRequest] = {}
        self._device_signing_in_flight: dict[str, DeviceSigningUploadRequest] = {}
        self._signature_upload: SignatureUploadRequest | None = None
        self._signatures_dirty = True
        self._signatures_retry_at = 0
        self._signatures_sent: set[tuple[str, str, str]] = set()
        self._incoming_secret_requests: dict[tuple[str, str], tuple[str, int]] = {}
        self._secret_claim: KeysClaimRequest | None = None

        record = store.load_account()
        if record is None:
            account = backend.create_account()
            record = AccountRecord(
                user_id=user_id,
                device_id=device_id,
                pickle="",
                shared=False,
                uploaded_otk_count=0,
                fallback_key_needed=True,
                old_fallback_forget_at_ms=0,
            )
            self._save_account(record, account)
        elif record["user_id"] != user_id or record["device_id"] != device_id:
            raise CryptoStoreMismatch(
                f"the crypto store belongs to {record['user_id']} / {record['device_id']}"
            )
        _, account = self._account()
        self._identity = account.identity_keys
        self._device_keys = self._build_device_keys(account)
        if store.get_tracked_user(user_id) is None:
            self.update_tracked_users([user_id])

    def __repr__(self) -> str:
        return f"OlmMachine({self._user_id!r}, {self._device_id!r}, backend={self._backend.name})"

    # ------------------------------------------------------------------ identity

    @property
    def user_id(self) -> str:
        """Our user ID."""
        return self._user_id

    @property
    def device_id(self) -> str:
        """Our device ID."""
        return self._device_id

    @property
    def backend(self) -> CryptoBackend:
        """The primitives in use."""
        return self._backend

    @property
    def identity_keys(self) -> IdentityKeys:
        """This device's Curve25519 and Ed25519 keys."""
        return self._identity

    def device_keys(self) -> dict[str, Any]:
        """Our signed device-keys object (as uploaded)."""
        return json.loads(_compact(self._device_keys))  # type: ignore[no-any-return]

    def sign(self, message: bytes) -> str:
        """Sign bytes with this device's Ed25519 key."""
        _, account = self._account()
        return account.sign(message)

    def sign_json(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` signed by this device (``ed25519:<device_id>``)."""
        _, account = self._account()
        return sign_json(obj, self._user_id, f"ed25519:{self._device_id}", account.sign)

    # ------------------------------------------------------------------ caches

    def _account(self) -> tuple[AccountRecord, Account]:
        record = self._store.load_account()
        if record is None:
            raise CryptoStoreMismatch("the account vanished from the crypto store")
        cached = self._account_cache
        if cached is not None and cached[0] == record["pickle"]:
            return record, cached[1]
        account = self._backend.account_from_pickle(record["pickle"], self._pickle_key)
        self._account_cache = (record["pickle"], account)
        return record, account

    def _save_account(
        self, record: AccountRecord, account: Account, **changes: Any
    ) -> AccountRecord:
        pickle = account.pickle(self._pickle_key)
        updated: AccountRecord = {**record, **changes, "pickle": pickle}  # type: ignore[typeddict-item]
        self._store.save_account(updated)
        self._account_cache = (pickle, account)
        return updated

    def _olm_session(self, record: OlmSessionRecord) -> OlmSession:
        key = (record["sender_key"], record["session_id"])
        cached = self._olm_cache.get(key)
        if cached is not None and cached[0] == record["pickle"]:
            return cached[1]
        session = self._backend.session_from_pickle(record["pickle"], self._pickle_key)
        self._remember(self._olm_cache, key, (record["pickle"], session))
        return session

    def _save_olm_session(
        self, session: OlmSession, sender_key: str, *, created_ms: int, last_used_ms: int
    ) -> OlmSessionRecord:
        pickle = session.pickle(self._pickle_key)
        record = OlmSessionRecord(
            sender_key=sender_key,
            session_id=session.session_id,
            pickle=pickle,
            created_ms=created_ms,
            last_used_ms=last_used_ms,
        )
        self._store.save_olm_session(record)
        self._remember(self._olm_cache, (sender_key, session.session_id), (pickle, session))
        return record

    def _inbound_session(self, record: InboundGroupSessionRecord) -> InboundGroupSession:
        key = (record["room_id"], record["session_id"])
        cached = self._inbound_cache.get(key)
        if cached is not None and cached[0] == record["pickle"]:
            return cached[1]
        session = self._backend.inbound_group_session_from_pickle(
            record["pickle"], self._pickle_key
        )
        self._remember(self._inbound_cache, key, (record["pickle"], session))
        return session

    def _outbound_session(self, record: OutboundGroupSessionRecord) -> OutboundGroupSession:
        cached = self._outbound_cache.get(record["room_id"])
        if cached is not None and cached[0] == record["pickle"]:
            return cached[1]
        session = self._backend.outbound_group_session_from_pickle(
            record["pickle"], self._pickle_key
        )
        self._outbound_cache[record["room_id"]] = (record["pickle"], session)
        return session

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        if len(cache) > self._config.session_cache_size:
            del cache[next(iter(cache))]

    # ------------------------------------------------------------------ device keys

    def _build_device_keys(self, account: Account) -> dict[str, Any]:
        keys = {
            "user_id": self._user_id,
            "device_id": self._device_id,
            "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
            "keys": {
                f"curve25519:{self._device_id}": self._identity.curve25519,
                f"ed25519:{self._device_id}": self._identity.ed25519,
            },
        }
        return sign_json(keys, self._user_id, f"ed25519:{self._device_id}", account.sign)

    def _is_own_device(self, user_id: str, device_id: str) -> bool:
        return user_id == self._user_id and device_id == self._device_id

    def _trust(self, record: DeviceRecord) -> DeviceTrust:
        if record["device_id"] == self._device_id and record["user_id"] == self._user_id:
            return _DEVICE_VERIFIED
        if self._local_trust_only:
            # The local-only policy, without building a Device per decrypted event.
            return _LOCAL_TRUST.get(record["local_trust"], _DEVICE_UNVERIFIED)
        if self._cross_signing_trust:
            return self._cross_signing.record_trust(record)
        return self._trust_policy.device_trust(Device.from_record(record))

    def device_trust(self, device: Device) -> DeviceTrust:
        """The trust policy's verdict on ``device`` (our own device is always verified)."""
        if self._is_own_device(device.user_id, device.device_id):
            return DeviceTrust.VERIFIED
        return self._trust_policy.device_trust(device)

    def get_device(self, user_id: str, device_id: str) -> Device | None:
        """A device we know (deleted ones included, flagged)."""
        record = self._store.get_device(user_id, device_id)
        return None if record is None else Device.from_record(record)

    def get_user_devices(self, user_id: str, *, include_deleted: bool = False) -> list[Device]:
        """The devices of ``user_id`` from the last ``/keys/query``."""
        return [
            Device.from_record(r)
            for r in self._store.get_user_devices(user_id)
            if include_deleted or not r["deleted"]
        ]

    def set_local_trust(self, user_id: str, device_id: str, trust: LocalTrust) -> bool:
        """Record the user's verify/block decision for a device; ``False`` if unknown."""
        record = self._store.get_device(user_id, device_id)
        if record is None:
            return False
        self._store.save_device({**record, "local_trust": LocalTrust(trust).value})
        if user_id == self._user_id:
            self._signatures_dirty = True
        return True

    # ------------------------------------------------------------------ tracking

    def update_tracked_users(self, users: Iterable[str]) -> None:
        """Start tracking these users' devices (members of encrypted rooms); new ones are queried."""
        for user_id in users:
            if not isinstance(user_id, str) or self._store.get_tracked_user(user_id) is not None:
                continue
            self._store.save_tracked_user({"user_id": user_id, "dirty": True})
            self._bump(user_id)

    def mark_users_outdated(self, users: Iterable[str]) -> None:
        """Fetch these users' device lists again (tracking them if need be), e.g. when the
        server lists a device of theirs whose keys we do not hold."""
        wanted = [u for u in users if isinstance(u, str)]
        self.update_tracked_users(wanted)
        for user_id in wanted:
            self._mark_outdated(user_id)

    def tracked_users(self) -> set[str]:
        """Every tracked user."""
        return {r["user_id"] for r in self._store.get_tracked_users()}

    def outdated_users(self, users: Iterable[str] | None = None) -> set[str]:
        """Tracked users (of ``users`` if given) whose device list awaits a ``/keys/query``."""
        wanted = None if users is None else set(users)
        return {
            r["user_id"]
            for r in self._store.get_tracked_users()
            if r["dirty"] and (wanted is None or r["user_id"] in wanted)
        }

    def _bump(self, user_id: str) -> None:
        self._dirty_generation[user_id] = self._dirty_generation.get(user_id, 0) + 1

    def _mark_outdated(self, user_id: str) -> None:
        tracked = self._store.get_tracked_user(user_id)
        if tracked is None:
            return
        if not tracked["dirty"]:
            self._store.save_tracked_user({"user_id": user_id, "dirty": True})
        self._bump(user_id)

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
        for user_id in changed_users:
            if isinstance(user_id, str):
                self._mark_outdated(user_id)
        for user_id in left_users:
            if isinstance(user_id, str) and user_id != self._user_id:
                self._store.delete_tracked_user(user_id)
                self._dirty_generation.pop(user_id, None)
        self._receive_key_counts(one_time_key_counts, unused_fallback_key_types)

        result = SyncChanges()
        for event in to_device_events:
            try:
                self._receive_to_device(event, result)
            except (_Rejected, BackendError, ValueError, TypeError, KeyError) as exc:
                event_type = event.get("type") if isinstance(event, Mapping) else None
                sender = event.get("sender") if isinstance(event, Mapping) else None
                reason = str(exc) if isinstance(exc, _Rejected | BackendError) else repr(exc)
                log.info("to-device %s from %s rejected: %s", event_type, sender, reason)
                result.rejected.append(RejectedToDevice(str(event_type), str(sender), reason))
        self._verifications.expire()
        result.verifications.extend(self._drain_verifications())
        return result

    def _receive_key_counts(
        self, counts: Mapping[str, int] | None, unused_fallback: Iterable[str] | None
    ) -> None:
        record, account = self._account()
        changes: dict[str, Any] = {}
        count = (counts or {}).get(SIGNED_CURVE25519, 0)
        if isinstance(count, int) and count != record["uploaded_otk_count"] and record["shared"]:
            changes["uploaded_otk_count"] = count
        if (
            unused_fallback is not None
            and record["shared"]
            and not record["fallback_key_needed"]
            and SIGNED_CURVE25519 not in set(unused_fallback)
        ):
            changes["fallback_key_needed"] = True
        forget_at = record["old_fallback_forget_at_ms"]
        if forget_at and self._clock() >= forget_at:
            account.forget_old_fallback_key()
            changes["old_fallback_forget_at_ms"] = 0
            self._save_account(record, account, **changes)
        elif changes:
            self._store.save_account({**record, **changes})  # type: ignore[typeddict-item]

    def _receive_to_device(self, event: Mapping[str, Any], result: SyncChanges) -> None:
        if not isinstance(event, Mapping):
            raise _Rejected("not an object")
        event_type = event.get("type")
        sender = event.get("sender")
        content = event.get("content")
        if not isinstance(event_type, str) or not isinstance(sender, str):
            raise _Rejected("missing type or sender")
        if not isinstance(content, Mapping):
            raise _Rejected("missing content")
        if event_type == "m.room.encrypted":
            self._receive_olm(sender, content, result)
            return
        if event_type in ("m.room_key", "m.forwarded_room_key", "m.secret.send"):
            raise _Rejected(f"{event_type} must arrive Olm-encrypted")
        if event_type == "m.room_key.withheld":
            self._receive_withheld(sender, content, result)
            return
        if event_type in _KEY_REQUEST_TYPES:
            self._receive_key_request(sender, event_type, content, None)
            return
        if event_type == "m.dummy":
            return
        if event_type in VERIFICATION_EVENT_TYPES:
            self._verifications.receive_to_device(sender, event_type, content)
            return
        result.to_device_events.append(
            ToDeviceEvent(type=event_type, sender=sender, content=dict(content), encrypted=False)
        )

    # ------------------------------------------------------------------ Olm in

    def _receive_olm(self, sender: str, content: Mapping[str, Any], result: SyncChanges) -> None:
        if content.get("algorithm") != OLM_ALGORITHM:
            raise _Rejected("unsupported to-device encryption algorithm")
        sender_key = content.get("sender_key")
        ciphertext = content.get("ciphertext")
        if not is_curve25519_key(sender_key) or not isinstance(ciphertext, Mapping):
            raise _Rejected("malformed Olm event")
        assert isinstance(sender_key, str)
        if sender_key == self._identity.curve25519:
            raise _Rejected("Olm message claims to come from this device")
        ours = ciphertext.get(self._identity.curve25519)
        if not isinstance(ours, Mapping):
            raise _Rejected("Olm message not encrypted for this device")
        message_type = ours.get("type")
        body = ours.get("body")
        if (
            message_type not in (0, 1)
            or isinstance(message_type, bool)
            or not isinstance(body, str)
        ):
            raise _Rejected("malformed Olm ciphertext")
        plaintext = self._olm_decrypt(sender, sender_key, OlmMessage(int(message_type), body))
        payload = json.loads(plaintext)
        if not isinstance(payload, dict):
            raise _Rejected("Olm payload is not an object")
        claimed_ed25519, device = self._check_olm_payload(sender, sender_key, payload)
        inner_type = payload["type"]
        inner = payload["content"]
        if inner_type == "m.room_key":
            info = self._receive_room_key(sender, sender_key, claimed_ed25519, inner)
            if info is not None:
                result.room_keys.append(info)
        elif inner_type == "m.forwarded_room_key":
            info = self._receive_forwarded_room_key(sender, sender_key, device, inner)
            if info is not None:
                result.room_keys.append(info)
        elif inner_type == "m.secret.send":
            secret = self._receive_secret(sender, device, inner)
            if secret is not None:
                result.secrets.append(secret)
        elif inner_type == "m.room_key.withheld":
            self._receive_withheld(sender, inner, result)
        elif inner_type in _KEY_REQUEST_TYPES:
            self._receive_key_request(sender, inner_type, inner, device)
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
                    sender_key=sender_key,
                    sender_ed25519=claimed_ed25519,
                    sender_device_id=None if device is None else device["device_id"],
                    sender_trust=None if device is None else self._trust(device),
                )
            )

    @staticmethod
    def _usage_stamp(records: list[OlmSessionRecord], now: int) -> int:
        """``now``, or just after the latest use of a session with the device.

        The preferred session is the most recently used one; a stamp that never
        ties with another session of the device keeps that order exact.
        """
        latest = max((max(r["last_used_ms"], r["created_ms"]) for r in records), default=now - 1)
        return max(now, latest + 1)

    def _olm_decrypt(self, sender: str, sender_key: str, message: OlmMessage) -> str:
        records = sorted(
            self._store.get_olm_sessions(sender_key),
            key=lambda r: (r["last_used_ms"], r["created_ms"]),
            reverse=True,
        )
        now = self._usage_stamp(records, self._clock())
        if message.message_type == 0:
            for record in records:
                session = self._olm_session(record)
                if session.matches_prekey(message.body):
                    try:
                        plaintext = session.decrypt(message)
                    except OlmDecryptionError as exc:
                        # The message belongs to a session we have: a replay or a corrupt copy,
                        # not a broken session.
                        raise _Rejected(f"pre-key message did not decrypt: {exc}") from exc
                    self._save_olm_session(
                        session, sender_key, created_ms=record["created_ms"], last_used_ms=now
                    )
                    return plaintext
            account_record, account = self._account()
            try:
                session, plaintext = account.create_inbound_session(sender_key, message.body)
            except SessionCreationError as exc:
                self._mark_wedged(sender, sender_key)
                raise _Rejected(f"no session for pre-key message: {exc}") from exc
            self._save_account(account_record, account)
            self._save_olm_session(session, sender_key, created_ms=now, last_used_ms=now)
            self._prune_olm_sessions(sender_key)
            self._session_established(sender_key)
            return plaintext
        for record in records:
            session = self._olm_session(record)
            try:
                plaintext = session.decrypt(message)
            except OlmDecryptionError:
                continue
            self._save_olm_session(
                session, sender_key, created_ms=record["created_ms"], last_used_ms=now
            )
            return plaintext
        self._mark_wedged(sender, sender_key)
        raise _Rejected("Olm message did not decrypt with any session (wedged)")

    def _prune_olm_sessions(self, sender_key: str, known: int = -1) -> None:
        if 0 <= known <= self._config.max_olm_sessions_per_device:
            return
        records = self._store.get_olm_sessions(sender_key)
        excess = len(records) - self._config.max_olm_sessions_per_device
        if excess <= 0:
            return
        records.sort(key=lambda r: (r["last_used_ms"], r["created_ms"]))
        for record in records[:excess]:
            self._store.delete_olm_session(sender_key, record["session_id"])
            self._olm_cache.pop((sender_key, record["session_id"]), None)

    def _check_olm_payload(
        self, sender: str, sender_key: str, payload: Mapping[str, Any]
    ) -> tuple[str, DeviceRecord | None]:
        """The spec's "Validation of incoming decrypted events"; returns (Ed25519, device)."""
        if payload.get("sender") != sender:
            raise _Rejected("Olm payload sender does not match the event sender")
        if payload.get("recipient") != self._user_id:
            raise _Rejected("Olm payload is addressed to another user")
        recipient_keys = payload.get("recipient_keys")
        if (
            not isinstance(recipient_keys, Mapping)
            or recipient_keys.get("ed25519") != self._identity.ed25519
        ):
            raise _Rejected("Olm payload is addressed to another device")
        keys = payload.get("keys")
        claimed = keys.get("ed25519") if isinstance(keys, Mapping) else None
        if not is_ed25519_key(claimed):
            raise _Rejected("Olm payload has no sender Ed25519 key")
        assert isinstance(claimed, str)
        if not isinstance(payload.get("type"), str) or not isinstance(payload.get("content"), dict):
            raise _Rejected("Olm payload has no type or content")
        device: DeviceRecord | None = None
        mismatched = False
        for candidate in self._store.get_devices_by_curve_key(sender_key):
            if candidate["user_id"] != sender:
                continue
            if candidate["ed25519"] == claimed:
                device = candidate
            else:
                mismatched = True
        if device is None and mismatched:
            raise _Rejected("Olm payload Ed25519 key does not match the sending device")
        sender_device_keys = payload.get("sender_device_keys")
        if sender_device_keys is not None:
            self._check_sender_device_keys(sender, sender_key, claimed, sender_device_keys)
        return claimed, device

    def _check_sender_device_keys(
        self, sender: str, sender_key: str, claimed: str, device_keys: object
    ) -> None:
        if not isinstance(device_keys, Mapping) or device_keys.get("user_id") != sender:
            raise _Rejected("sender_device_keys belong to another user")
        device_id = device_keys.get("device_id")
        keys = device_keys.get("keys")
        if not isinstance(device_id, str) or not isinstance(keys, Mapping):
            raise _Rejected("malformed sender_device_keys")
        if keys.get(f"curve25519:{device_id}") != sender_key:
            raise _Rejected("sender_device_keys Curve25519 key does not match the sender key")
        if keys.get(f"ed25519:{device_id}") != claimed:
            raise _Rejected("sender_device_keys Ed25519 key does not match the payload keys")
        if not verify_signed_json(
            self._backend, device_keys, sender, f"ed25519:{device_id}", claimed
        ):
            raise _Rejected("sender_device_keys signature does not verify")

    # ------------------------------------------------------------------ room keys in

    def _receive_room_key(
        self, sender: str, sender_key: str, claimed_ed25519: str, content: Mapping[str, Any]
    ) -> RoomKeyInfo | None:
        if content.get("algorithm") != MEGOLM_ALGORITHM:
            raise _Rejected("m.room_key for an unsupported algorithm")
        room_id = content.get("room_id")
        session_id = content.get("session_id")
        session_key = content.get("session_key")
        if not (
            isinstance(room_id, str)
            and room_id.startswith("!")
            and isinstance(session_id, str)
            and isinstance(session_key, str)
        ):
            raise _Rejected("malformed m.room_key")
        session = self._backend.inbound_group_session(session_key)
        if session.session_id != session_id:
            raise _Rejected("m.room_key session_id does not match its key")
        candidate = InboundGroupSessionRecord(
            room_id=room_id,
            session_id=session_id,
            pickle=session.pickle(self._pickle_key),
            sender_key=sender_key,
            signing_key=claimed_ed25519,
            sender_user_id=sender,
            first_known_index=session.first_known_index,
            forwarding_chain=[],
            origin=KeyOrigin.ROOM_KEY.value,
            shared_history=content.get("shared_history") is True,
            backed_up=False,
            received_ms=self._clock(),
        )
        return self._store_inbound(candidate, session)

    def _receive_forwarded_room_key(
        self,
        sender: str,
        forwarder_key: str,
        device: DeviceRecord | None,
        content: Mapping[str, Any],
    ) -> RoomKeyInfo | None:
        if sender != self._user_id:
            raise _Rejected("forwarded room key from another user")
        if device is None or device["deleted"]:
            raise _Rejected("forwarded room key from an unknown device")
        if self._trust(device) is not DeviceTrust.VERIFIED:
            raise _Rejected("forwarded room key from an unverified device")
        room_id = content.get("room_id")
        session_id = content.get("session_id")
        session_key = content.get("session_key")
        original_sender_key = content.get("sender_key")
        claimed = content.get("sender_claimed_ed25519_key")
        chain = content.get("forwarding_curve25519_key_chain", [])
        if content.get("algorithm") != MEGOLM_ALGORITHM or not (
            isinstance(room_id, str)
            and isinstance(session_id, str)
            and isinstance(session_key, str)
            and isinstance(original_sender_key, str)
            and isinstance(claimed, str)
            and isinstance(chain, list)
            and all(isinstance(k, str) for k in chain)
        ):
            raise _Rejected("malformed m.forwarded_room_key")
        request = self._store.find_room_key_request(room_id, session_id)
        if request is None or device["device_id"] not in request["recipients"]:
            raise _Rejected("forwarded room key we did not ask that device for")
        session = self._backend.import_inbound_group_session(session_key)
        if session.session_id != session_id:
            raise _Rejected("forwarded session_id does not match its key")
        candidate = InboundGroupSessionRecord(
            room_id=room_id,
            session_id=session_id,
            pickle=session.pickle(self._pickle_key),
            sender_key=original_sender_key,
            signing_key=claimed,
            sender_user_id=None,
            first_known_index=session.first_known_index,
            forwarding_chain=[*chain, forwarder_key],
            origin=KeyOrigin.FORWARDED.value,
            shared_history=content.get("shared_history") is True,
            backed_up=False,
            received_ms=self._clock(),
        )
        info = self._store_inbound(candidate, session)
        self._key_arrived(room_id, session_id)
        return info

    def _store_inbound(
        self, candidate: InboundGroupSessionRecord, session: InboundGroupSession
    ) -> RoomKeyInfo | None:
        """Save ``candidate`` if it adds something; merge with what we have."""
        room_id, session_id = candidate["room_id"], candidate["session_id"]
        existing = self._store.get_inbound_group_session(room_id, session_id)
        record: InboundGroupSessionRecord | None
        if existing is None:
            record = candidate
        else:
            record = self._merge_inbound(existing, candidate, session)
        if record is None:
            return None
        self._store.save_inbound_group_session(record)
        pickle = record["pickle"]
        if pickle == candidate["pickle"]:
            self._remember(self._inbound_cache, (room_id, session_id), (pickle, session))
        self._store.delete_withheld(room_id, session_id)
        self._key_arrived(room_id, session_id)
        return RoomKeyInfo(
            room_id=room_id,
            session_id=session_id,
            sender_key=record["sender_key"],
            first_known_index=record["first_known_index"],
            origin=_ORIGINS[record["origin"]],
        )

    def _merge_inbound(
        self,
        existing: InboundGroupSessionRecord,
        candidate: InboundGroupSessionRecord,
        session: InboundGroupSession,
    ) -> InboundGroupSessionRecord | None:
        old_origin = _ORIGINS[existing["origin"]]
        new_origin = _ORIGINS[candidate["origin"]]
        if old_origin is KeyOrigin.OWN:
            return None
        connected = self._ratchets_connected(existing, session)
        if new_origin is KeyOrigin.ROOM_KEY:
            if old_origin in _UNAUTHENTICATED_ORIGINS:
                # The authenticated copy wins; keep the lower index if it is the same ratchet.
                if connected and existing["first_known_index"] < candidate["first_known_index"]:
                    return {
                        **candidate,
                        "pickle": existing["pickle"],
                        "first_known_index": existing["first_known_index"],
                    }
                return candidate
            if existing["sender_key"] != candidate["sender_key"]:
                log.warning("room key for a known session from another device ignored")
                return None
        if candidate["first_known_index"] >= existing["first_known_index"] or not connected:
            return None
        return {
            **existing,
            "pickle": candidate["pickle"],
            "first_known_index": candidate["first_known_index"],
            "backed_up": False,
        }

    def _ratchets_connected(
        self, existing: InboundGroupSessionRecord, session: InboundGroupSession
    ) -> bool:
        """True if both copies are the same Megolm ratchet (compared at the later first index)."""
        try:
            old = self._inbound_session(existing)
        except PickleError:
            return False
        index = max(old.first_known_index, session.first_known_index)
        mine, theirs = old.export_at(index), session.export_at(index)
        if mine is None or theirs is None:
            return False
        return hmac.compare_digest(mine.encode(), theirs.encode())

    def _receive_withheld(
        self, sender: str, content: Mapping[str, Any], result: SyncChanges
    ) -> None:
        code = content.get("code")
        if not isinstance(code, str):
            raise _Rejected("malformed m.room_key.withheld")
        reason = content.get("reason") if isinstance(content.get("reason"), str) else None
        sender_key = (
            content.get("sender_key") if isinstance(content.get("sender_key"), str) else None
        )
        room_id = content.get("room_id")
        session_id = content.get("session_id")
        if code == "m.no_olm":
            # The sender could not reach us over Olm: offer a fresh session (rate-limited).
            if sender_key is not None:
                self._mark_wedged(sender, sender_key)
            result.withheld.append(WithheldInfo(sender, code, reason, None, None))
            return
        if not isinstance(room_id, str) or not isinstance(session_id, str):
            raise _Rejected("m.room_key.withheld without room or session")
        if self._store.get_inbound_group_session(room_id, session_id) is not None:
            return
        self._store.save_withheld(
            {
                "room_id": room_id,
                "session_id": session_id,
                "sender_user_id": sender,
                "sender_key": sender_key,
                "code": code,
                "reason": reason,
                "received_ms": self._clock(),
            }
        )
        result.withheld.append(WithheldInfo(sender, code, reason, room_id, session_id))

    # ------------------------------------------------------------------ secrets and key requests in

    def _receive_secret(
        self, sender: str, device: DeviceRecord | None, content: Mapping[str, Any]
    ) -> ReceivedSecret | None:
        if sender != self._user_id:
            raise _Rejected("secret from another user")
        if device is None or device["deleted"] or self._trust(device) is not DeviceTrust.VERIFIED:
            raise _Rejected("secret from an unknown or unverified device")
        request_id = content.get("request_id")
        secret = content.get("secret")
        if not isinstance(request_id, str) or not isinstance(secret, str):
            raise _Rejected("malformed m.secret.send")
        request = self._store.get_key_request(request_id)
        if (
            request is None
            or request["kind"] != "secret"
            or request["secret_name"] is None
            or device["device_id"] not in request["recipients"]
        ):
            raise _Rejected("secret we did not ask that device for")
        if request["state"] == "cancelling":
            raise _Rejected("secret request already answered")
        name = request["secret_name"]
        usage = _USAGE_BY_SECRET.get(name)
        imported = False
        if usage is not None:
            # A cross-signing key must match our published key; a wrong one leaves the
            # request open for another device's answer.
            if not self._import_private_key(usage, secret):
                raise _Rejected("the secret does not match our published cross-signing key")
            imported = True
        self._finish_key_request(request)
        return ReceivedSecret(
            name=name,
            secret=secret,
            request_id=request_id,
            sender_device_id=device["device_id"],
            imported=imported,
        )

    def _receive_key_request(
        self,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        device: DeviceRecord | None,
    ) -> None:
        """Answer room key and secret requests from our own verified devices."""
        if sender != self._user_id:
            return
        if event_type == "m.secret.request":
            self._receive_secret_request(content)
            return
        requesting = content.get("requesting_device_id")
        if content.get("action") != "request" or requesting == self._device_id:
            return
        body = content.get("body")
        if not isinstance(requesting, str) or not isinstance(body, Mapping):
            return
        room_id, session_id = body.get("room_id"), body.get("session_id")
        if not isinstance(room_id, str) or not isinstance(session_id, str):
            return
        requester = self._store.get_device(self._user_id, requesting)
        if requester is None or requester["deleted"]:
            return
        if self._trust(requester) is not DeviceTrust.VERIFIED:
            log.info("key request from unverified own device %s ignored", requesting)
            return
        record = self._store.get_inbound_group_session(room_id, session_id)
        if record is None or self._preferred_olm_session(requester["curve25519"]) is None:
            return
        session = self._inbound_session(record)
        exported = session.export_at(session.first_known_index)
        if exported is None:
            return
        forwarded = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": session_id,
            "session_key": exported,
            "sender_key": record["sender_key"],
            "sender_claimed_ed25519_key": record["signing_key"],
            "forwarding_curve25519_key_chain": list(record["forwarding_chain"]),
            "shared_history": record["shared_history"],
        }
        encrypted = self._olm_encrypt(requester, "m.forwarded_room_key", forwarded)
        if encrypted is not None:
            self._queue_to_device(
                "m.room.encrypted",
                {self._user_id: {requesting: encrypted}},
                ToDeviceKind.FORWARDED_ROOM_KEY,
                {"room_id": room_id, "session_id": session_id},
            )

    def _receive_secret_request(self, content: Mapping[str, Any]) -> None:
        """An ``m.secret.request`` from our own user: queue an answer if we may give it.

        Only to a known, current, verified own device, and only secrets we hold (a
        cross-signing key only if it matches our published one). The answer goes
        Olm-encrypted to the device's identity key, so only that device reads it.
        A request from a device not verified (or not known) yet is held for a while:
        a device that just finished verifying with us may ask before we processed
        its ``done``.
        """
        requesting = content.get("requesting_device_id")
        request_id = content.get("request_id")
        action = content.get("action")
        if not isinstance(requesting, str) or not isinstance(request_id, str):
            return
        if requesting == self._device_id:
            return
        if action == "request_cancellation":
            self._incoming_secret_requests.pop((requesting, request_id), None)
            return
        name = content.get("name")
        if action != "request" or not isinstance(name, str) or name not in _SHAREABLE_SECRETS:
            return
        if len(self._incoming_secret_requests) >= _MAX_HELD_SECRET_REQUESTS:
            log.info("too many secret requests held: %s from %s ignored", name, requesting)
            return
        self._incoming_secret_requests[(requesting, request_id)] = (name, self._clock())
        self._answer_secret_requests()

    def _shareable_secret(self, name: str) -> str | None:
        usage = _USAGE_BY_SECRET.get(name)
        if usage is not None:
            own = self._cross_signing.published(self._user_id)
            signer = self._matching_private_key(usage, own)
            return None if signer is None else self.get_secret(name)
        if name == _BACKUP_SECRET:
            return self.get_secret(name)
        return None

    def _answer_secret_requests(self) -> list[tuple[str, str]]:
        """Answer the secret requests we can; the devices still needing an Olm session."""
        waiting: list[tuple[str, str]] = []
        now = self._clock()
        for key, (name, received_ms) in list(self._incoming_secret_requests.items()):
            device_id, request_id = key
            requester = self._store.get_device(self._user_id, device_id)
            secret = self._shareable_secret(name)
            if secret is None or (requester is not None and requester["deleted"]):
                del self._incoming_secret_requests[key]
                continue
            if requester is None or self._trust(requester) is not DeviceTrust.VERIFIED:
                if now - received_ms >= _SECRET_REQUEST_HOLD_MS:
                    log.info("secret request from unverified own device %s dropped", device_id)
                    del self._incoming_secret_requests[key]
                continue
            encrypted = self._olm_encrypt(
                requester, "m.secret.send", {"request_id": request_id, "secret": secret}
            )
            if encrypted is None:
                waiting.append((self._user_id, device_id))
                continue
            del self._incoming_secret_requests[key]
            self._queue_to_device(
                "m.room.encrypted",
                {self._user_id: {device_id: encrypted}},
                ToDeviceKind.SECRET_SEND,
                {"request_id": request_id},
            )
        return waiting

    def _secret_claim_request(self, waiting: list[tuple[str, str]]) -> KeysClaimRequest | None:
        current = self._secret_claim
        if current is not None and current.request_id in self._claims_in_flight:
            return current
        wanted: dict[str, dict[str, str]] = {}
        for user_id, device_id in waiting:
            device = self._store.get_device(user_id, device_id)
            if device is not None and self._claimable(device["curve25519"], user_id, device_id):
                wanted.setdefault(user_id, {})[device_id] = SIGNED_CURVE25519
        self._secret_claim = self._claim_request(wanted)
        return self._secret_claim

    # ------------------------------------------------------------------ wedged sessions

    def _peer_state(self, curve25519: str, user_id: str, device_id: str) -> OlmPeerStateRecord:
        state = self._store.get_olm_peer_state(curve25519)
        if state is None:
            state = OlmPeerStateRecord(
                curve25519=curve25519,
                user_id=user_id,
                device_id=device_id,
                last_new_session_ms=0,
                unwedge_pending=False,
                no_olm_sent=False,
            )
        return state

    def _mark_wedged(self, sender: str, sender_key: str) -> None:
        """Plan a new session + ``m.dummy`` to a device we failed to decrypt from (≤ 1/hour)."""
        device = self._device_by_curve_key(sender, sender_key)
        if device is None:
            # A key can only be claimed for a known device: learn the sender's devices;
            # the claim waits until the device shows up (device_id "" until then).
            self.update_tracked_users([sender])
            self._mark_outdated(sender)
        state = self._peer_state(sender_key, sender, "" if device is None else device["device_id"])
        if state["unwedge_pending"]:
            return
        last = state["last_new_session_ms"]
        if last and self._clock() - last < self._config.unwedge_interval_ms:
            log.info("wedged session with a device of %s: recovery rate-limited", sender)
            return
        self._store.save_olm_peer_state({**state, "unwedge_pending": True})

    def _device_by_curve_key(self, user_id: str, curve25519: str) -> DeviceRecord | None:
        for device in self._store.get_devices_by_curve_key(curve25519):
            if device["user_id"] == user_id and not device["deleted"]:
                return device
        return None

    def _unwedge_targets(self) -> list[DeviceRecord]:
        """Devices awaiting a new session (once their device is known)."""
        targets = []
        for state in self._store.list_unwedge_pending():
            device = self._device_by_curve_key(state["user_id"], state["curve25519"])
            if device is not None and self._claimable(
                device["curve25519"], device["user_id"], device["device_id"]
            ):
                targets.append(device)
        return targets

    def _session_established(self, curve25519: str) -> None:
        state = self._store.get_olm_peer_state(curve25519)
        if state is not None and state["no_olm_sent"]:
            self._store.save_olm_peer_state({**state, "no_olm_sent": False})

    # ------------------------------------------------------------------ outgoing requests

    def outgoing_requests(self) -> list[OutgoingRequest]:
        """Every request the machine wants sent now (stable IDs until marked sent or failed).

        Key uploads, device-list queries, key claims for wedged sessions and for
        answering secret requests, cross-signing signature uploads, the verification
        messages (plain to-device events), then every pending to-device request (room
        key shares included) in the order made: send them in this order. In-room
        verification events are not here: see :meth:`outgoing_room_messages`.
        """
        requests: list[OutgoingRequest] = []
        upload = self._keys_upload_request()
        if upload is not None:
            requests.append(upload)
        query = self._keys_query_request()
        if query is not None:
            requests.append(query)
        unwedge = self._unwedge_claim_request()
        if unwedge is not None:
            requests.append(unwedge)
        waiting = self._answer_secret_requests() if self._incoming_secret_requests else []
        if waiting or self._secret_claim is not None:
            claim = self._secret_claim_request(waiting)
            if claim is not None:
                requests.append(claim)
        signatures = self._signature_upload_request()
        if signatures is not None:
            requests.append(signatures)
        # Verification messages first: a ``done`` must reach the other device before the
        # secret requests that follow it.
        requests.extend(self._verification_requests.values())
        requests.extend(self._to_device_request(r) for r in self._store.list_pending_to_device())
        return requests

    def _keys_upload_request(self) -> KeysUploadRequest | None:
        if self._upload_in_flight is not None:
            return self._upload_in_flight
        record, account = self._account()
        changed = False
        target = int(account.max_one_time_keys * self._config.one_time_key_fraction)
        if not account.one_time_keys():
            known = record["uploaded_otk_count"] if record["shared"] else 0
            if known >= 0 and known < target:
                account.generate_one_time_keys(target - known)
                changed = True
        if record["fallback_key_needed"] and not account.fallback_key():
            if record["shared"]:
                record = {
                    **record,
                    "old_fallback_forget_at_ms": self._clock()
                    + self._config.old_fallback_key_lifetime_ms,
                }
            account.generate_fallback_key()
            changed = True
        if changed:
            record = self._save_account(record, account)
        body: dict[str, Any] = {}
        if not record["shared"]:
            body["device_keys"] = self._device_keys
        one_time = self._signed_keys(account, account.one_time_keys(), fallback=False)
        if one_time:
            body["one_time_keys"] = one_time
        fallback = self._signed_keys(account, account.fallback_key(), fallback=True)
        if fallback:
            body["fallback_keys"] = fallback
        if not body:
            return None
        self._upload_in_flight = KeysUploadRequest(request_id=_new_id(), body=body)
        return self._upload_in_flight

    def _signed_keys(
        self, account: Account, keys: Mapping[str, str], *, fallback: bool
    ) -> dict[str, Any]:
        signed: dict[str, Any] = {}
        for key_id, key in keys.items():
            obj: dict[str, Any] = {"key": key}
            if fallback:
                obj["fallback"] = True
            signed[f"{SIGNED_CURVE25519}:{key_id}"] = sign_json(
                obj, self._user_id, f"ed25519:{self._device_id}", account.sign
            )
        return signed

    def _keys_query_request(self) -> KeysQueryRequest | None:
        if self._query_in_flight is not None:
            return self._query_in_flight[0]
        now = self._clock()
        users = sorted(
            r["user_id"]
            for r in self._store.get_tracked_users()
            if r["dirty"] and self._query_retry_at.get(_server_name(r["user_id"]), 0) <= now
        )
        if not users:
            return None
        request = KeysQueryRequest(
            request_id=_new_id(),
            users=tuple(users),
            body={
                "device_keys": {u: [] for u in users},
                "timeout": self._config.federation_timeout_ms,
            },
        )
        self._query_in_flight = (request, {u: self._dirty_generation.get(u, 0) for u in users})
        return request

    def _unwedge_claim_request(self) -> KeysClaimRequest | None:
        current = self._unwedge_claim
        if current is not None and current.request_id in self._claims_in_flight:
            return current
        wanted: dict[str, dict[str, str]] = {}
        for device in self._unwedge_targets():
            wanted.setdefault(device["user_id"], {})[device["device_id"]] = SIGNED_CURVE25519
        self._unwedge_claim = self._claim_request(wanted)
        return self._unwedge_claim

    def _claimable(self, curve25519: str, user_id: str, device_id: str) -> bool:
        if self._claim_retry_at.get(curve25519, 0) > self._clock():
            return False
        return not any(
            (user_id, device_id) in devices for _, devices in self._claims_in_flight.values()
        )

    def _claim_request(self, wanted: dict[str, dict[str, str]]) -> KeysClaimRequest | None:
        if not wanted:
            return None
        request = KeysClaimRequest(
            request_id=_new_id(),
            one_time_keys=wanted,
            body={"one_time_keys": wanted, "timeout": self._config.federation_timeout_ms},
        )
        devices = {(u, d) for u, ds in wanted.items() for d in ds}
        self._claims_in_flight[request.request_id] = (request, devices)
        return request

    def _to_device_request(self, record: PendingToDeviceRecord) -> ToDeviceRequest:
        try:
            kind = ToDeviceKind(record["kind"])
        except ValueError:
            kind = ToDeviceKind.OTHER
        return ToDeviceRequest(
            request_id=record["request_id"],
            event_type=record["event_type"],
            kind=kind,
            messages=record["messages"],
        )

    def _queue_to_device(
        self,
        event_type: str,
        messages: dict[str, dict[str, dict[str, Any]]],
        kind: ToDeviceKind,
        meta: dict[str, str],
    ) -> ToDeviceRequest:
        record = PendingToDeviceRecord(
            request_id=_new_id(),
            event_type=event_type,
            messages=messages,
            kind=kind.value,
            meta=meta,
            created_ms=self._clock(),
        )
        self._store.save_pending_to_device(record)
        return self._to_device_request(record)

    # ------------------------------------------------------------------ responses

    def mark_request_as_sent(self, request_id: str, response: Mapping[str, Any]) -> RequestOutcome:
        """Apply the server's JSON answer to a request the machine produced.

        Unknown IDs (already marked, or from before a restart) are ignored.
        """
        if not isinstance(response, Mapping):
            response = {}
        upload = self._upload_in_flight
        if upload is not None and upload.request_id == request_id:
            self._upload_in_flight = None
            self._upload_done(upload, response)
            return RequestOutcome()
        query = self._query_in_flight
        if query is not None and query[0].request_id == request_id:
            self._query_in_flight = None
            return self._query_done(query[0], query[1], response)
        claim = self._claims_in_flight.pop(request_id, None)
        if claim is not None:
            return self._claim_done(claim[1], response)
        if self._verification_requests.pop(request_id, None) is not None:
            return RequestOutcome()
        room_message = self._room_messages.pop(request_id, None)
        if room_message is not None:
            return self._room_message_sent(room_message, response)
        signatures = self._signature_upload
        if signatures is not None and signatures.request_id == request_id:
            self._signature_upload = None
            return self._signatures_done(signatures, response)
        device_signing = self._device_signing_in_flight.pop(request_id, None)
        if device_signing is not None:
            self._device_signing_done(device_signing)
            return RequestOutcome()
        pending = self._store.get_pending_to_device(request_id)
        if pending is not None:
            self._store.delete_pending_to_device(request_id)
            self._to_device_sent(pending)
        return RequestOutcome()

    def mark_request_as_failed(self, request_id: str, *, permanent: bool = False) -> None:
        """A request failed. Transient: it stays outgoing and will be retried.

        ``permanent`` (the server refused it for good): keys requests are rebuilt
        from state later; a to-device request is dropped, and the room key shares
        it carried are forgotten so the next ``share_room_key`` retries them.
        """
        if self._upload_in_flight is not None and self._upload_in_flight.request_id == request_id:
            self._upload_in_flight = None
            return
        if self._query_in_flight is not None and self._query_in_flight[0].request_id == request_id:
            self._query_in_flight = None
            return
        claim = self._claims_in_flight.pop(request_id, None)
        if claim is not None:
            retry_at = self._clock() + self._config.claim_retry_ms
            for user_id, device_id in claim[1]:
                device = self._store.get_device(user_id, device_id)
                if device is not None:
                    self._claim_retry_at[device["curve25519"]] = retry_at
            return
        if self._signature_upload is not None and self._signature_upload.request_id == request_id:
            # Recomputed from the stored state after a pause (not retried in a tight loop).
            self._signature_upload = None
            self._signatures_dirty = True
            self._signatures_retry_at = self._clock() + self._config.query_retry_ms
            return
        if request_id in self._device_signing_in_flight:
            # The caller gave up (UIA cancelled, refused): the keys stay for a later bootstrap.
            del self._device_signing_in_flight[request_id]
            return
        if not permanent:
            return
        if self._verification_requests.pop(request_id, None) is not None:
            return
        room_message = self._room_messages.pop(request_id, None)
        if room_message is not None:
            self._verifications.room_request_failed(request_id)
            self._drain_verifications()
            return
        pending = self._store.get_pending_to_device(request_id)
        if pending is None:
            return
        self._store.delete_pending_to_device(request_id)
        kind = pending["kind"]
        meta = pending["meta"]
        if kind == ToDeviceKind.ROOM_KEY_SHARE and "room_id" in meta and "session_id" in meta:
            shares = self._store.get_room_key_shares(meta["room_id"], meta["session_id"])
            self._store.save_room_key_shares(
                [
                    {**s, "state": "failed", "request_id": None}
                    for s in shares
                    if s["request_id"] == request_id
                ]
            )
        elif (
            kind in (ToDeviceKind.KEY_REQUEST, ToDeviceKind.SECRET_REQUEST) and "request_id" in meta
        ):
            self._store.delete_key_request(meta["request_id"])

    def _upload_done(self, request: KeysUploadRequest, response: Mapping[str, Any]) -> None:
        record, account = self._account()
        account.mark_keys_as_published()
        counts = response.get("one_time_key_counts")
        count = counts.get(SIGNED_CURVE25519, 0) if isinstance(counts, Mapping) else -1
        changes: dict[str, Any] = {
            "shared": record["shared"] or "device_keys" in request.body,
            "uploaded_otk_count": count if isinstance(count, int) else -1,
        }
        if "fallback_keys" in request.body:
            changes["fallback_key_needed"] = False
        self._save_account(record, account, **changes)

    def _query_done(
        self, request: KeysQueryRequest, generations: dict[str, int], response: Mapping[str, Any]
    ) -> RequestOutcome:
        device_keys = response.get("device_keys")
        if not isinstance(device_keys, Mapping):
            device_keys = {}
        failures = response.get("failures")
        failed_servers = set(failures) if isinstance(failures, Mapping) else set()
        now = self._clock()
        for server in failed_servers:
            self._query_retry_at[server] = now + self._config.query_retry_ms
        updated: list[str] = []
        added: list[tuple[str, str]] = []
        removed: list[tuple[str, str]] = []
        warnings: list[DeviceWarning] = []
        identity_changes: list[IdentityChange] = []
        for user_id in request.users:
            if _server_name(user_id) in failed_servers:
                continue
            devices = device_keys.get(user_id, {})
            if not isinstance(devices, Mapping):
                devices = {}
            forbidden = self._cross_signing_ids_in(user_id, response)
            self._update_user_devices(user_id, devices, added, removed, warnings, forbidden)
            self._note_collision(user_id, any(d in forbidden for d in devices))
            change = self._update_cross_signing(user_id, response)
            if change is not None:
                identity_changes.append(change)
            self._signatures_sent = {s for s in self._signatures_sent if s[0] != user_id}
            self._signatures_dirty = True
            updated.append(user_id)
            tracked = self._store.get_tracked_user(user_id)
            if tracked is not None and self._dirty_generation.get(user_id, 0) == generations.get(
                user_id, 0
            ):
                self._store.save_tracked_user({"user_id": user_id, "dirty": False})
        return RequestOutcome(
            users_updated=tuple(updated),
            devices_added=tuple(added),
            devices_removed=tuple(removed),
            warnings=tuple(warnings),
            identity_changes=tuple(identity_changes),
        )

    def _note_collision(self, user_id: str, collision: bool) -> None:
        record = self._store.get_user_identity(user_id)
        if record is None and not collision:
            return
        record = record or new_identity_record(user_id)
        if record["device_id_collision"] != collision:
            self._store.save_user_identity({**record, "device_id_collision": collision})

    def _cross_signing_ids_in(self, user_id: str, response: Mapping[str, Any]) -> frozenset[str]:
        """The cross-signing public keys of ``user_id`` in a query answer (else as stored)."""
        found: set[str] = set()
        for usage, section in (
            (MASTER, "master_keys"),
            (SELF_SIGNING, "self_signing_keys"),
            (USER_SIGNING, "user_signing_keys"),
        ):
            by_user = response.get(section)
            obj = by_user.get(user_id) if isinstance(by_user, Mapping) else None
            key = parse_cross_signing_key(obj, user_id, usage)
            if key is not None:
                found.add(key.public_key)
        return frozenset(found) | published_public_keys(
            self._store.get_cross_signing_keys(user_id), user_id
        )

    def _validate_device_keys(
        self, user_id: str, device_id: str, keys: object
    ) -> tuple[DeviceRecord | None, DeviceWarning | None]:
        def warn(kind: WarningKind, message: str) -> tuple[None, DeviceWarning]:
            return None, DeviceWarning(user_id, device_id, kind, message)

        if not isinstance(keys, Mapping):
            return warn(WarningKind.MALFORMED, "device keys are not an object")
        if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
            return warn(WarningKind.MALFORMED, "device keys name another user or device")
        key_map = keys.get("keys")
        algorithms = keys.get("algorithms")
        if not isinstance(key_map, Mapping) or not isinstance(algorithms, list):
            return warn(WarningKind.MALFORMED, "device keys lack keys or algorithms")
        curve = key_map.get(f"curve25519:{device_id}")
        ed = key_map.get(f"ed25519:{device_id}")
        if not is_curve25519_key(curve) or not is_ed25519_key(ed):
            return warn(WarningKind.MALFORMED, "device keys lack a Curve25519 or Ed25519 key")
        assert isinstance(curve, str) and isinstance(ed, str)
        if not verify_signed_json(self._backend, keys, user_id, f"ed25519:{device_id}", ed):
            return warn(WarningKind.BAD_SIGNATURE, "device keys are not signed by the device")
        signed = {k: v for k, v in keys.items() if k != "unsigned"}
        try:
            keys_json = canonical_json(signed).decode("utf-8")
        except CanonicalJsonError:
            return warn(WarningKind.MALFORMED, "device keys are not canonical JSON")
        unsigned = keys.get("unsigned")
        name = unsigned.get("device_display_name") if isinstance(unsigned, Mapping) else None
        return (
            DeviceRecord(
                user_id=user_id,
                device_id=device_id,
                curve25519=curve,
                ed25519=ed,
                algorithms=[a for a in algorithms if isinstance(a, str)],
                keys_json=keys_json,
                display_name=name if isinstance(name, str) else None,
                local_trust=LocalTrust.UNSET.value,
                deleted=False,
                first_seen_ms=self._clock(),
            ),
            None,
        )

    def _update_user_devices(
        self,
        user_id: str,
        devices: Mapping[str, Any],
        added: list[tuple[str, str]],
        removed: list[tuple[str, str]],
        warnings: list[DeviceWarning],
        forbidden: frozenset[str] = frozenset(),
    ) -> None:
        existing = {d["device_id"]: d for d in self._store.get_user_devices(user_id)}
        seen: set[str] = set()
        for device_id, keys in devices.items():
            if not isinstance(device_id, str):
                continue
            if device_id in forbidden:
                # Device and cross-signing key IDs share a namespace: a device named like a
                # cross-signing key could pass for it (the spec's "Key and signature security").
                warnings.append(
                    DeviceWarning(
                        user_id,
                        device_id,
                        WarningKind.DEVICE_ID_COLLISION,
                        "a device ID equals one of the user's cross-signing keys: refused",
                    )
                )
                continue
            seen.add(device_id)
            new, warning = self._validate_device_keys(user_id, device_id, keys)
            if new is None:
                if warning is not None:
                    warnings.append(warning)
                continue
            if self._is_own_device(user_id, device_id) and (
                new["curve25519"],
                new["ed25519"],
            ) != (self._identity.curve25519, self._identity.ed25519):
                warnings.append(
                    DeviceWarning(
                        user_id,
                        device_id,
                        WarningKind.OWN_DEVICE_MISMATCH,
                        "the server lists this device with keys that are not ours",
                    )
                )
                continue
            old = existing.get(device_id)
            if old is not None and (old["curve25519"], old["ed25519"]) != (
                new["curve25519"],
                new["ed25519"],
            ):
                warnings.append(
                    DeviceWarning(
                        user_id,
                        device_id,
                        WarningKind.KEYS_CHANGED,
                        "this device's keys changed: the new keys are rejected",
                    )
                )
                continue
            if old is None:
                added.append((user_id, device_id))
                self._store.save_device(new)
            else:
                self._store.save_device(
                    {
                        **new,
                        "local_trust": old["local_trust"],
                        "first_seen_ms": old["first_seen_ms"],
                    }
                )
        for device_id, old in existing.items():
            if device_id not in seen and not old["deleted"]:
                removed.append((user_id, device_id))
                self._store.save_device({**old, "deleted": True})

    def _update_cross_signing(
        self, user_id: str, response: Mapping[str, Any]
    ) -> IdentityChange | None:
        values: dict[str, str | None] = {}
        found = False
        for field, section in (
            ("master_key_json", "master_keys"),
            ("self_signing_key_json", "self_signing_keys"),
            ("user_signing_key_json", "user_signing_keys"),
        ):
            by_user = response.get(section)
            key = by_user.get(user_id) if isinstance(by_user, Mapping) else None
            value: str | None = None
            if isinstance(key, Mapping) and key.get("user_id") == user_id:
                try:
                    value = canonical_json(key).decode("utf-8")
                except CanonicalJsonError:
                    value = None
            found = found or value is not None
            values[field] = value
        if not found:
            return None
        previous = self._store.get_cross_signing_keys(user_id)
        if previous is not None and values["user_signing_key_json"] is None:
            # Only our own query returns our user-signing key; keep it across others.
            values["user_signing_key_json"] = previous["user_signing_key_json"]
        old = None if previous is None else self._cross_signing.parse_record(previous)
        old_trusted = old is not None and self._cross_signing.master_trust(user_id, old) is not None
        self._store.save_cross_signing_keys(
            {
                "user_id": user_id,
                "master_key_json": values["master_key_json"],
                "self_signing_key_json": values["self_signing_key_json"],
                "user_signing_key_json": values["user_signing_key_json"],
            }
        )
        return self._judge_identity(user_id, old, old_trusted)

    def _judge_identity(
        self, user_id: str, old: PublishedIdentity | None, old_trusted: bool
    ) -> IdentityChange | None:
        """Pin a first-seen master key, remember verified ones, report a changed one."""
        new = self._cross_signing.published(user_id)
        if new is None:
            return None
        master = new.master.public_key
        record = self._store.get_user_identity(user_id) or new_identity_record(user_id)
        updated: UserIdentityRecord = {**record}
        change: IdentityChange | None = None
        if old_trusted:
            updated["previously_verified"] = True
        pinned = updated["pinned_master_key"]
        if pinned is None:
            updated["pinned_master_key"] = master
        elif pinned != master and (old is None or old.master.public_key != master):
            change = IdentityChange(
                user_id=user_id,
                old_master_key=pinned,
                new_master_key=master,
                was_verified=updated["previously_verified"],
            )
            log.warning("the master key of %s changed", user_id)
        if self._cross_signing.master_trust(user_id, new) is not None:
            updated["previously_verified"] = True
            updated["pinned_master_key"] = master
        if updated != record or self._store.get_user_identity(user_id) is None:
            self._store.save_user_identity(updated)
        return change

    def _claim_done(
        self, devices: set[tuple[str, str]], response: Mapping[str, Any]
    ) -> RequestOutcome:
        keys_by_user = response.get("one_time_keys")
        if not isinstance(keys_by_user, Mapping):
            keys_by_user = {}
        created: list[tuple[str, str]] = []
        failed: list[tuple[str, str]] = []
        for user_id, device_id in sorted(devices):
            device = self._store.get_device(user_id, device_id)
            if device is None or device["deleted"]:
                continue
            claimed = keys_by_user.get(user_id, {})
            claimed = claimed.get(device_id) if isinstance(claimed, Mapping) else None
            session = self._session_from_claim(device, claimed)
            if session is None:
                failed.append((user_id, device_id))
                retry_at = self._clock() + self._config.claim_retry_ms
                self._claim_retry_at[device["curve25519"]] = retry_at
                continue
            existing = self._store.get_olm_sessions(device["curve25519"])
            now = self._usage_stamp(existing, self._clock())
            new_record = self._save_olm_session(
                session, device["curve25519"], created_ms=now, last_used_ms=now
            )
            self._prune_olm_sessions(device["curve25519"], len(existing) + 1)
            created.append((user_id, device_id))
            state = self._peer_state(device["curve25519"], user_id, device_id)
            if state["unwedge_pending"]:
                encrypted = self._olm_encrypt(device, "m.dummy", {}, using=(new_record, session))
                if encrypted is not None:
                    self._queue_to_device(
                        "m.room.encrypted",
                        {user_id: {device_id: encrypted}},
                        ToDeviceKind.DUMMY,
                        {},
                    )
            self._store.save_olm_peer_state(
                {
                    **state,
                    "device_id": device_id,
                    "unwedge_pending": False,
                    "no_olm_sent": False,
                    "last_new_session_ms": self._clock(),
                }
            )
        return RequestOutcome(sessions_created=tuple(created), claim_failures=tuple(failed))

    def _session_from_claim(self, device: DeviceRecord, claimed: object) -> OlmSession | None:
        if not isinstance(claimed, Mapping):
            return None
        _, account = self._account()
        for key_id, key_object in claimed.items():
            if not isinstance(key_id, str) or not key_id.startswith(f"{SIGNED_CURVE25519}:"):
                continue
            if not isinstance(key_object, Mapping) or not is_curve25519_key(key_object.get("key")):
                continue
            if not verify_signed_json(
                self._backend,
                key_object,
                device["user_id"],
                f"ed25519:{device['device_id']}",
                device["ed25519"],
            ):
                log.warning(
                    "one-time key of %s/%s has a bad signature",
                    device["user_id"],
                    device["device_id"],
                )
                continue
            try:
                return account.create_outbound_session(device["curve25519"], key_object["key"])
            except BackendError as exc:
                log.warning("could not start an Olm session: %s", exc)
        return None

    def _to_device_sent(self, pending: PendingToDeviceRecord) -> None:
        kind = pending["kind"]
        meta = pending["meta"]
        if kind == ToDeviceKind.ROOM_KEY_SHARE:
            shares = self._store.get_room_key_shares(meta["room_id"], meta["session_id"])
            self._store.save_room_key_shares(
                [
                    {**s, "state": "sent", "request_id": None}
                    for s in shares
                    if s["state"] == "pending" and s["request_id"] == pending["request_id"]
                ]
            )
        elif kind in (ToDeviceKind.KEY_REQUEST, ToDeviceKind.SECRET_REQUEST):
            request = self._store.get_key_request(meta["request_id"])
            if request is not None and request["state"] == "unsent":
                self._store.save_key_request({**request, "state": "sent"})
        elif kind == ToDeviceKind.KEY_REQUEST_CANCELLATION:
            self._store.delete_key_request(meta["request_id"])

    # ------------------------------------------------------------------ Olm out

    def _preferred_olm_session(self, curve25519: str) -> tuple[OlmSessionRecord, OlmSession] | None:
        records = self._store.get_olm_sessions(curve25519)
        if not records:
            return None
        record = max(records, key=lambda r: (r["last_used_ms"], r["created_ms"]))
        return record, self._olm_session(record)

    def _olm_payload(
        self, device: DeviceRecord, event_type: str, content: Mapping[str, Any]
    ) -> str:
        return _compact(
            {
                "type": event_type,
                "content": content,
                "sender": self._user_id,
                "recipient": device["user_id"],
                "recipient_keys": {"ed25519": device["ed25519"]},
                "keys": {"ed25519": self._identity.ed25519},
                "sender_device_keys": self._device_keys,
            }
        )

    def _olm_encrypt(
        self,
        device: DeviceRecord,
        event_type: str,
        content: Mapping[str, Any],
        *,
        using: tuple[OlmSessionRecord, OlmSession] | None = None,
    ) -> dict[str, Any] | None:
        """``m.room.encrypted`` content for one device, or ``None`` without a session.

        ``using`` is the session to encrypt with (default: the device's preferred one).
        """
        found = using or self._preferred_olm_session(device["curve25519"])
        if found is None:
            return None
        record, session = found
        message = session.encrypt(self._olm_payload(device, event_type, content))
        self._save_olm_session(
            session,
            device["curve25519"],
            created_ms=record["created_ms"],
            last_used_ms=record["last_used_ms"],
        )
        return {
            "algorithm": OLM_ALGORITHM,
            "sender_key": self._identity.curve25519,
            "ciphertext": {
                device["curve25519"]: {"type": message.message_type, "body": message.body}
            },
        }

    def encrypt_to_device(
        self, user_id: str, device_id: str, event_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """``m.room.encrypted`` content carrying ``event_type``/``content`` to one device.

        For other consumers (verification, secrets): ``None`` if the device is
        unknown or we have no Olm session with it (claim one with
        :meth:`get_missing_sessions`). The Olm ratchet advances and is stored:
        commit before sending the result with ``PUT /sendToDevice/m.room.encrypted``.
        """
        device = self._store.get_device(user_id, device_id)
        if device is None or device["deleted"]:
            return None
        return self._olm_encrypt(device, event_type, content)

    def _sendable_devices(self, users: Iterable[str]) -> list[DeviceRecord]:
        devices: list[DeviceRecord] = []
        for user_id in dict.fromkeys(users):
            for device in self._store.get_user_devices(user_id):
                if device["deleted"] or self._is_own_device(user_id, device["device_id"]):
                    continue
                if OLM_ALGORITHM not in device["algorithms"]:
                    continue
                devices.append(device)
        return devices

    def get_missing_sessions(self, users: Iterable[str]) -> KeysClaimRequest | None:
        """A ``/keys/claim`` for the devices of ``users`` we have no Olm session with.

        ``None`` if there is nothing to claim (or every such device is already
        being claimed, or was claimed in vain recently). Blocked devices are skipped.
        """
        wanted: dict[str, dict[str, str]] = {}
        for device in self._sendable_devices(users):
            if self._trust(device) is DeviceTrust.BLOCKED:
                continue
            curve = device["curve25519"]
            if not self._claimable(curve, device["user_id"], device["device_id"]):
                continue
            state = self._store.get_olm_peer_state(curve)
            wedged = state is not None and state["unwedge_pending"]
            if not wedged and self._store.get_olm_sessions(curve):
                continue
            wanted.setdefault(device["user_id"], {})[device["device_id"]] = SIGNED_CURVE25519
        for device in self._unwedge_targets():
            wanted.setdefault(device["user_id"], {})[device["device_id"]] = SIGNED_CURVE25519
        return self._claim_request(wanted)

    # ------------------------------------------------------------------ room keys out

    def share_room_key(
        self,
        room_id: str,
        users: Iterable[str],
        settings: EncryptionSettings | None = None,
    ) -> list[ToDeviceRequest]:
        """Make sure every device of ``users`` has the room's current outbound session.

        ``users`` are the members who may read the next message (the caller derives
        them from membership and history visibility); our own other devices are
        included when our user is. Rotates the session first when it is due (age,
        message count, settings), invalidated, or when a device that received it is
        no longer among the recipients (a member left, a device was deleted or
        blocked). Devices without an Olm session get an ``m.no_olm`` notice (once);
        with ``only_verified``, unverified devices get ``m.unverified`` and blocked
        ones ``m.blacklisted``.

        Returns every to-device request still needed for this session, including
        ones returned before but not yet marked sent. Send them all and mark them
        sent before :meth:`encrypt_room_event`. Call :meth:`get_missing_sessions`
        (and send its claim) first, and make sure :meth:`outdated_users` is empty
        for ``users``, or new devices are missed.
        """
        settings = settings or EncryptionSettings()
        if settings.algorithm != MEGOLM_ALGORITHM:
            raise EncryptionError(f"unsupported room encryption algorithm {settings.algorithm!r}")
        users = list(dict.fromkeys(users))
        self.update_tracked_users(users)
        now = self._clock()
        recipients: dict[tuple[str, str], DeviceRecord] = {}
        refused: dict[tuple[str, str], tuple[DeviceRecord, str]] = {}
        for device in self._sendable_devices(users):
            key = (device["user_id"], device["device_id"])
            trust = self._trust(device)
            if trust is DeviceTrust.BLOCKED:
                refused[key] = (device, "m.blacklisted")
            elif settings.only_verified and trust is not DeviceTrust.VERIFIED:
                refused[key] = (device, "m.unverified")
            else:
                recipients[key] = device

        record = self._store.get_outbound_group_session(room_id)
        session: OutboundGroupSession | None = None
        shares: dict[tuple[str, str], RoomKeyShareRecord] = {}
        if record is not None:
            shares = {
                (s["user_id"], s["device_id"]): s
                for s in self._store.get_room_key_shares(room_id, record["session_id"])
            }
            if self._needs_rotation(record, settings, shares, recipients, now):
                self._drop_pending_shares(record["session_id"])
                record = None
            else:
                try:
                    session = self._outbound_session(record)
                except PickleError:
                    record = None
        if record is None or session is None:
            record, session = self._new_outbound_session(room_id, settings, now)
            shares = {}

        session_id = record["session_id"]
        pending_ids: dict[str, None] = {}
        to_share: list[tuple[DeviceRecord, tuple[OlmSessionRecord, OlmSession]]] = []
        no_olm: list[DeviceRecord] = []
        for key, device in recipients.items():
            share = shares.get(key)
            if share is not None and share["state"] == "sent":
                continue
            if (
                share is not None
                and share["state"] == "pending"
                and share["request_id"]
                and self._store.get_pending_to_device(share["request_id"]) is not None
            ):
                pending_ids[share["request_id"]] = None
                continue
            found = self._preferred_olm_session(device["curve25519"])
            if found is not None:
                to_share.append((device, found))
            else:
                no_olm.append(device)

        requests = [
            self._to_device_request(r)
            for r in (self._store.get_pending_to_device(i) for i in pending_ids)
            if r is not None
        ]
        requests.extend(self._send_room_key(room_id, record, session, to_share, settings))
        withheld_request = self._send_withheld(room_id, session_id, shares, refused, no_olm)
        if withheld_request is not None:
            requests.append(withheld_request)
        return requests

    def _drop_pending_shares(self, session_id: str) -> None:
        """A rotated session's undelivered key shares are not worth sending."""
        for pending in self._store.list_pending_to_device():
            if (
                pending["kind"] == ToDeviceKind.ROOM_KEY_SHARE
                and pending["meta"].get("session_id") == session_id
            ):
                self._store.delete_pending_to_device(pending["request_id"])

    def _needs_rotation(
        self,
        record: OutboundGroupSessionRecord,
        settings: EncryptionSettings,
        shares: Mapping[tuple[str, str], RoomKeyShareRecord],
        recipients: Mapping[tuple[str, str], DeviceRecord],
        now: int,
    ) -> bool:
        if record["invalidated"] or self._expired(record, now):
            return True
        if record["settings_key"] != settings.key():
            return True
        return any(
            s["state"] in ("sent", "pending") and key not in recipients for key, s in shares.items()
        )

    @staticmethod
    def _expired(record: OutboundGroupSessionRecord, now: int) -> bool:
        return (
            now - record["created_ms"] >= record["rotation_period_ms"]
            or record["message_count"] >= record["rotation_period_msgs"]
        )

    def _new_outbound_session(
        self, room_id: str, settings: EncryptionSettings, now: int
    ) -> tuple[OutboundGroupSessionRecord, OutboundGroupSession]:
        session = self._backend.create_outbound_group_session()
        inbound = self._backend.inbound_group_session(session.session_key)
        self._store.save_inbound_group_session(
            InboundGroupSessionRecord(
                room_id=room_id,
                session_id=session.session_id,
                pickle=inbound.pickle(self._pickle_key),
                sender_key=self._identity.curve25519,
                signing_key=self._identity.ed25519,
                sender_user_id=self._user_id,
                first_known_index=inbound.first_known_index,
                forwarding_chain=[],
                origin=KeyOrigin.OWN.value,
                shared_history=settings.shared_history,
                backed_up=False,
                received_ms=now,
            )
        )
        pickle = session.pickle(self._pickle_key)
        record = OutboundGroupSessionRecord(
            room_id=room_id,
            session_id=session.session_id,
            pickle=pickle,
            created_ms=now,
            message_count=0,
            rotation_period_ms=max(1, settings.rotation_period_ms),
            rotation_period_msgs=max(1, settings.rotation_period_msgs),
            settings_key=settings.key(),
            invalidated=False,
        )
        self._store.save_outbound_group_session(record)
        self._outbound_cache[room_id] = (pickle, session)
        log.debug("new outbound session for %s", room_id)
        return record, session

    def _send_room_key(
        self,
        room_id: str,
        record: OutboundGroupSessionRecord,
        session: OutboundGroupSession,
        devices: list[tuple[DeviceRecord, tuple[OlmSessionRecord, OlmSession]]],
        settings: EncryptionSettings,
    ) -> list[ToDeviceRequest]:
        if not devices:
            return []
        room_key = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": record["session_id"],
            "session_key": session.session_key,
            "shared_history": settings.shared_history,
        }
        index = session.message_index
        requests: list[ToDeviceRequest] = []
        size = max(1, self._config.to_device_batch_size)
        for start in range(0, len(devices), size):
            batch = devices[start : start + size]
            messages: dict[str, dict[str, dict[str, Any]]] = {}
            sent_to: list[DeviceRecord] = []
            for device, olm_session in batch:
                encrypted = self._olm_encrypt(device, "m.room_key", room_key, using=olm_session)
                if encrypted is None:
                    continue
                messages.setdefault(device["user_id"], {})[device["device_id"]] = encrypted
                sent_to.append(device)
            if not messages:
                continue
            request = self._queue_to_device(
                "m.room.encrypted",
                messages,
                ToDeviceKind.ROOM_KEY_SHARE,
                {"room_id": room_id, "session_id": record["session_id"]},
            )
            self._store.save_room_key_shares(
                [
                    RoomKeyShareRecord(
                        room_id=room_id,
                        session_id=record["session_id"],
                        user_id=d["user_id"],
                        device_id=d["device_id"],
                        curve25519=d["curve25519"],
                        message_index=index,
                        state="pending",
                        request_id=request.request_id,
                        withheld_code=None,
                    )
                    for d in sent_to
                ]
            )
            requests.append(request)
        return requests

    def _send_withheld(
        self,
        room_id: str,
        session_id: str,
        shares: Mapping[tuple[str, str], RoomKeyShareRecord],
        refused: Mapping[tuple[str, str], tuple[DeviceRecord, str]],
        no_olm: list[DeviceRecord],
    ) -> ToDeviceRequest | None:
        messages: dict[str, dict[str, dict[str, Any]]] = {}
        records: list[RoomKeyShareRecord] = []
        for key, (device, code) in refused.items():
            share = shares.get(key)
            if (
                share is not None
                and share["state"] == "withheld"
                and share["withheld_code"] == code
            ):
                continue
            reason = (
                "You have been blocked by the sender"
                if code == "m.blacklisted"
                else "The sender only shares keys with verified devices"
            )
            messages.setdefault(device["user_id"], {})[device["device_id"]] = {
                "algorithm": MEGOLM_ALGORITHM,
                "room_id": room_id,
                "session_id": session_id,
                "sender_key": self._identity.curve25519,
                "code": code,
                "reason": reason,
            }
            records.append(
                RoomKeyShareRecord(
                    room_id=room_id,
                    session_id=session_id,
                    user_id=device["user_id"],
                    device_id=device["device_id"],
                    curve25519=device["curve25519"],
                    message_index=0,
                    state="withheld",
                    request_id=None,
                    withheld_code=code,
                )
            )
        for device in no_olm:
            state = self._peer_state(device["curve25519"], device["user_id"], device["device_id"])
            if state["no_olm_sent"]:
                continue
            messages.setdefault(device["user_id"], {})[device["device_id"]] = {
                "algorithm": MEGOLM_ALGORITHM,
                "sender_key": self._identity.curve25519,
                "code": "m.no_olm",
                "reason": "Unable to establish a secure channel",
            }
            self._store.save_olm_peer_state({**state, "no_olm_sent": True})
        if records:
            self._store.save_room_key_shares(records)
        if not messages:
            return None
        return self._queue_to_device(
            "m.room_key.withheld",
            messages,
            ToDeviceKind.WITHHELD,
            {"room_id": room_id, "session_id": session_id},
        )

    def invalidate_group_session(self, room_id: str) -> bool:
        """Rotate the room's outbound session at the next share (a member left, a device went).

        Returns ``False`` if the room had no outbound session.
        """
        record = self._store.get_outbound_group_session(room_id)
        if record is None:
            return False
        if not record["invalidated"]:
            self._store.save_outbound_group_session({**record, "invalidated": True})
        return True

    def room_key_shares(self, room_id: str) -> list[RoomKeyShareRecord]:
        """Who got the room's current outbound session (and at which index), or was refused it."""
        record = self._store.get_outbound_group_session(room_id)
        if record is None:
            return []
        return self._store.get_room_key_shares(room_id, record["session_id"])

    def encrypt_room_event(
        self, room_id: str, event_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content for a room event.

        Raises :class:`EncryptionError` unless the room has an outbound session that
        is neither due for rotation nor invalidated and whose shares were all sent:
        call :meth:`share_room_key` (and send its requests) right before. The
        ``m.relates_to`` of ``content`` travels in the clear, as the spec requires.
        """
        record = self._store.get_outbound_group_session(room_id)
        if record is None or record["invalidated"] or self._expired(record, self._clock()):
            raise EncryptionError("no usable room key: call share_room_key first")
        shares = self._store.get_room_key_shares(room_id, record["session_id"])
        if any(s["state"] == "pending" for s in shares):
            raise EncryptionError(
                "the room key has not been delivered yet: send and mark share_room_key's requests"
            )
        session = self._outbound_session(record)
        inner = dict(content)
        relates_to = inner.pop("m.relates_to", None)
        ciphertext = session.encrypt(
            _compact({"type": event_type, "content": inner, "room_id": room_id})
        )
        pickle = session.pickle(self._pickle_key)
        self._store.save_outbound_group_session(
            {**record, "pickle": pickle, "message_count": record["message_count"] + 1}
        )
        self._outbound_cache[room_id] = (pickle, session)
        encrypted: dict[str, Any] = {
            "algorithm": MEGOLM_ALGORITHM,
            "sender_key": self._identity.curve25519,
            "ciphertext": ciphertext,
            "session_id": record["session_id"],
            "device_id": self._device_id,
        }
        if relates_to is not None:
            encrypted["m.relates_to"] = relates_to
        return encrypted

    # ------------------------------------------------------------------ Megolm in

    def decrypt_room_event(
        self,
        event: Mapping[str, Any],
        room_id: str,
        *,
        request_key_if_missing: bool | None = None,
    ) -> DecryptedEvent | DecryptionFailure:
        """Decrypt an ``m.room.encrypted`` room event received in ``room_id``.

        Never raises for bad input. The session is found by ``(room_id,
        session_id)`` only (never by the deprecated ``sender_key``/``device_id``).
        A message index is accepted once per event ID (decrypting the same event
        again is fine; another event reusing the index is a replay). When the key
        is missing and ``request_key_if_missing`` (default: the config's
        ``request_missing_keys``), a key request to our own devices is queued.
        """
        content = event.get("content")
        if type(content) is not dict and not isinstance(content, Mapping):
            return DecryptionFailure(FailureReason.MALFORMED, detail="no content")
        if content.get("algorithm") != MEGOLM_ALGORITHM:
            return DecryptionFailure(FailureReason.UNSUPPORTED_ALGORITHM)
        session_id = content.get("session_id")
        ciphertext = content.get("ciphertext")
        sender = event.get("sender")
        if type(session_id) is not str or type(ciphertext) is not str:
            return DecryptionFailure(FailureReason.MALFORMED, detail="no session_id or ciphertext")
        if type(sender) is not str:
            return DecryptionFailure(FailureReason.MALFORMED, session_id, "no sender")
        record = self._store.get_inbound_group_session(room_id, session_id)
        if record is None:
            return self._missing_key(room_id, session_id, sender, content, request_key_if_missing)
        try:
            session = self._inbound_session(record)
            plaintext, index = session.decrypt(ciphertext)
        except UnknownMessageIndexError as exc:
            self._maybe_request_key(room_id, session_id, content, request_key_if_missing)
            withheld = self._store.get_withheld(room_id, session_id)
            return DecryptionFailure(
                FailureReason.UNKNOWN_MESSAGE_INDEX,
                session_id,
                "sent before this device received the key",
                withheld_code=None if withheld is None else withheld["code"],
                withheld_reason=None if withheld is None else withheld["reason"],
                first_known_index=exc.first_known_index,
                message_index=exc.message_index,
            )
        except (MegolmDecryptionError, PickleError) as exc:
            return DecryptionFailure(FailureReason.DECRYPTION_ERROR, session_id, str(exc))
        try:
            payload = _loads(plaintext)
        except ValueError:
            return DecryptionFailure(FailureReason.MALFORMED, session_id, "payload is not JSON")
        if type(payload) is not dict:
            return DecryptionFailure(
                FailureReason.MALFORMED, session_id, "payload is not an object"
            )
        inner_type = payload.get("type")
        inner = payload.get("content")
        if type(inner_type) is not str or type(inner) is not dict:
            return DecryptionFailure(
                FailureReason.MALFORMED, session_id, "payload lacks type/content"
            )
        if payload.get("room_id") != room_id:
            return DecryptionFailure(
                FailureReason.MISMATCHED_ROOM, session_id, "encrypted for another room"
            )
        verdict = self._megolm_sender(record, sender)
        if isinstance(verdict, DecryptionFailure):
            return verdict
        trust, device_id = verdict
        event_id = event.get("event_id")
        if type(event_id) is str:
            ts = event.get("origin_server_ts")
            first_event, _ = self._store.record_megolm_index(
                session_id, index, event_id, ts if type(ts) is int else 0
            )
            if first_event != event_id:
                return DecryptionFailure(
                    FailureReason.REPLAY,
                    session_id,
                    f"message index {index} was already used by another event",
                    message_index=index,
                )
        if "m.relates_to" in inner:
            del inner["m.relates_to"]
        relates_to = content.get("m.relates_to")
        if relates_to is not None and isinstance(relates_to, Mapping):
            inner["m.relates_to"] = dict(relates_to)
        return DecryptedEvent(
            inner_type,
            inner,
            room_id,
            sender,
            session_id,
            index,
            record["sender_key"],
            record["signing_key"],
            device_id,
            trust,
            _ORIGINS[record["origin"]],
            tuple(record["forwarding_chain"]),
        )

    def _megolm_sender(
        self, record: InboundGroupSessionRecord, sender: str
    ) -> tuple[SenderTrust, str | None] | DecryptionFailure:
        """Who created the session, checked against the event's sender (hot path: no enums looked up)."""
        origin = record["origin"]
        if origin == _OWN:
            if sender != self._user_id:
                return DecryptionFailure(
                    FailureReason.MISMATCHED_SENDER,
                    record["session_id"],
                    "our session, their event",
                )
            return _SENDER_VERIFIED, self._device_id
        signing_key = record["signing_key"]
        device: DeviceRecord | None = None
        for candidate in self._store.get_devices_by_curve_key(record["sender_key"]):
            if candidate["ed25519"] == signing_key:
                device = candidate
                break
        authenticated = origin == _ROOM_KEY
        if device is not None:
            if device["user_id"] != sender:
                return DecryptionFailure(
                    FailureReason.MISMATCHED_SENDER,
                    record["session_id"],
                    "the session belongs to a device of another user",
                )
            if not authenticated:
                return _SENDER_UNAUTHENTICATED, device["device_id"]
            return _SENDER_TRUST[self._trust(device)], device["device_id"]
        owner = record["sender_user_id"]
        if owner is not None and owner != sender:
            return DecryptionFailure(
                FailureReason.MISMATCHED_SENDER,
                record["session_id"],
                "the room key came from another user",
            )
        if not authenticated:
            return _SENDER_UNAUTHENTICATED, None
        if self._config.require_known_device:
            return DecryptionFailure(
                FailureReason.UNKNOWN_DEVICE, record["session_id"], "the sending device is unknown"
            )
        return _SENDER_UNKNOWN_DEVICE, None

    def _missing_key(
        self,
        room_id: str,
        session_id: str,
        sender: str,
        content: Mapping[str, Any],
        request: bool | None,
    ) -> DecryptionFailure:
        withheld = self._store.get_withheld(room_id, session_id)
        if withheld is not None and withheld["sender_user_id"] == sender:
            return DecryptionFailure(
                FailureReason.WITHHELD,
                session_id,
                "the sender withheld the key",
                withheld_code=withheld["code"],
                withheld_reason=withheld["reason"],
            )
        self._maybe_request_key(room_id, session_id, content, request)
        return DecryptionFailure(FailureReason.MISSING_ROOM_KEY, session_id, "key not received")

    def _maybe_request_key(
        self, room_id: str, session_id: str, content: Mapping[str, Any], request: bool | None
    ) -> None:
        if request is None:
            request = self._config.request_missing_keys
        if request:
            sender_key = content.get("sender_key")
            self.request_room_key(
                room_id, session_id, sender_key if isinstance(sender_key, str) else None
            )

    # ------------------------------------------------------------------ key requests out

    def _own_other_devices(self) -> list[DeviceRecord]:
        return [
            d
            for d in self._store.get_user_devices(self._user_id)
            if not d["deleted"] and d["device_id"] != self._device_id
        ]

    def request_room_key(
        self, room_id: str, session_id: str, sender_key: str | None = None
    ) -> bool:
        """Ask our own other devices for a room key (``m.room_key_request``), once.

        Returns ``False`` if a request is already outstanding or we have no other
        device. Only our own devices are asked, and only their answers (when they
        are verified) are accepted.
        """
        if self._store.find_room_key_request(room_id, session_id) is not None:
            return False
        devices = self._own_other_devices()
        if not devices:
            return False
        request_id = _new_id()
        body: dict[str, Any] = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": session_id,
        }
        if sender_key is not None:
            body["sender_key"] = sender_key
        content = {
            "action": "request",
            "body": body,
            "request_id": request_id,
            "requesting_device_id": self._device_id,
        }
        self._store.save_key_request(
            KeyRequestRecord(
                request_id=request_id,
                kind="room_key",
                room_id=room_id,
                session_id=session_id,
                secret_name=None,
                recipients=[d["device_id"] for d in devices],
                state="unsent",
                created_ms=self._clock(),
            )
        )
        self._queue_to_device(
            "m.room_key_request",
            {self._user_id: {d["device_id"]: content for d in devices}},
            ToDeviceKind.KEY_REQUEST,
            {"request_id": request_id},
        )
        return True

    def request_secret(self, name: str) -> str | None:
        """Ask our own other devices for a secret (``m.secret.request``); the request ID.

        The answer comes back in ``SyncChanges.secrets``, only from a verified own
        device that was asked. ``None`` if we have no other device.
        """
        devices = self._own_other_devices()
        if not devices:
            return None
        request_id = _new_id()
        content = {
            "name": name,
            "action": "request",
            "requesting_device_id": self._device_id,
            "request_id": request_id,
        }
        self._store.save_key_request(
            KeyRequestRecord(
                request_id=request_id,
                kind="secret",
                room_id=None,
                session_id=None,
                secret_name=name,
                recipients=[d["device_id"] for d in devices],
                state="unsent",
                created_ms=self._clock(),
            )
        )
        self._queue_to_device(
            "m.secret.request",
            {self._user_id: {d["device_id"]: content for d in devices}},
            ToDeviceKind.SECRET_REQUEST,
            {"request_id": request_id},
        )
        return request_id

    def _key_arrived(self, room_id: str, session_id: str) -> None:
        request = self._store.find_room_key_request(room_id, session_id)
        if request is not None:
            self._finish_key_request(request)

    def _finish_key_request(self, request: KeyRequestRecord) -> None:
        """Cancel a fulfilled request: drop it if unsent, else tell the other devices."""
        if request["state"] == "cancelling":
            return
        if request["state"] == "unsent":
            for pending in self._store.list_pending_to_device():
                if pending["meta"].get("request_id") == request["request_id"] and pending[
                    "kind"
                ] in (ToDeviceKind.KEY_REQUEST, ToDeviceKind.SECRET_REQUEST):
                    self._store.delete_pending_to_device(pending["request_id"])
            self._store.delete_key_request(request["request_id"])
            return
        event_type = "m.secret.request" if request["kind"] == "secret" else "m.room_key_request"
        content = {
            "action": "request_cancellation",
            "request_id": request["request_id"],
            "requesting_device_id": self._device_id,
        }
        self._store.save_key_request({**request, "state": "cancelling"})
        self._queue_to_device(
            event_type,
            {self._user_id: {d: content for d in request["recipients"]}},
            ToDeviceKind.KEY_REQUEST_CANCELLATION,
            {"request_id": request["request_id"]},
        )

    # ------------------------------------------------------------------ export / import

    def export_sessions(self, room_id: str | None = None) -> list[dict[str, Any]]:
        """Every inbound session (of ``room_id``) in the spec's ``ExportedSessionData`` form."""
        exported: list[dict[str, Any]] = []
        for record in self._store.list_inbound_group_sessions(room_id):
            try:
                session = self._inbound_session(record)
            except PickleError:
                log.warning("an inbound session could not be unpickled; not exported")
                continue
            key = session.export_at(session.first_known_index)
            if key is None:
                continue
            exported.append(
                {
                    "algorithm": MEGOLM_ALGORITHM,
                    "room_id": record["room_id"],
                    "session_id": record["session_id"],
                    "session_key": key,
                    "sender_key": record["sender_key"],
                    "sender_claimed_keys": {"ed25519": record["signing_key"]},
                    "forwarding_curve25519_key_chain": list(record["forwarding_chain"]),
                    "shared_history": record["shared_history"],
                }
            )
        return exported

    def export_room_keys(
        self, passphrase: str, *, room_id: str | None = None, rounds: int | None = None
    ) -> str:
        """The encrypted key export file's text (``-----BEGIN MEGOLM SESSION DATA-----``...)."""
        data = _compact(self.export_sessions(room_id))
        return encrypt_key_export(data, passphrase, rounds or self._config.export_rounds)

    def import_sessions(
        self, sessions: Iterable[object], *, origin: KeyOrigin = KeyOrigin.IMPORTED
    ) -> ImportResult:
        """Import ``ExportedSessionData`` objects; invalid ones are skipped.

        Imported keys are marked with ``origin`` (their sender is not authenticated)
        and only replace what we have if they reach further back on the same ratchet.
        """
        total = 0
        imported: list[RoomKeyInfo] = []
        for item in sessions:
            total += 1
            try:
                info = self._import_one(item, origin)
            except (BackendError, _Rejected, ValueError, TypeError) as exc:
                log.info("skipped an imported session: %s", exc)
                continue
            if info is not None:
                imported.append(info)
        return ImportResult(total=total, imported=len(imported), room_keys=imported)

    def _import_one(self, item: object, origin: KeyOrigin) -> RoomKeyInfo | None:
        if not isinstance(item, Mapping) or item.get("algorithm") != MEGOLM_ALGORITHM:
            raise _Rejected("not a Megolm session")
        room_id = item.get("room_id")
        session_id = item.get("session_id")
        session_key = item.get("session_key")
        sender_key = item.get("sender_key")
        claimed = item.get("sender_claimed_keys")
        claimed_ed = claimed.get("ed25519") if isinstance(claimed, Mapping) else None
        chain = item.get("forwarding_curve25519_key_chain", [])
        if not (
            isinstance(room_id, str)
            and isinstance(session_id, str)
            and isinstance(session_key, str)
            and isinstance(sender_key, str)
            and isinstance(claimed_ed, str)
            and isinstance(chain, list)
        ):
            raise _Rejected("incomplete session")
        session = self._backend.import_inbound_group_session(session_key)
        if session.session_id != session_id:
            raise _Rejected("session_id does not match its key")
        candidate = InboundGroupSessionRecord(
            room_id=room_id,
            session_id=session_id,
            pickle=session.pickle(self._pickle_key),
            sender_key=sender_key,
            signing_key=claimed_ed,
            sender_user_id=None,
            first_known_index=session.first_known_index,
            forwarding_chain=[k for k in chain if isinstance(k, str)],
            origin=origin.value,
            shared_history=item.get("shared_history") is True,
            backed_up=origin is KeyOrigin.BACKUP,
            received_ms=self._clock(),
        )
        return self._store_inbound(candidate, session)

    def import_room_keys(self, text: str, passphrase: str) -> ImportResult:
        """Decrypt and import a key export file; raises ``KeyExportError`` (bad file or passphrase)."""
        data = decrypt_key_export(text, passphrase)
        try:
            sessions = json.loads(data)
        except ValueError as exc:
            raise KeyExportError("the decrypted export is not JSON") from exc
        if not isinstance(sessions, list):
            raise KeyExportError("the decrypted export is not a list of sessions")
        return self.import_sessions(sessions)

    # ------------------------------------------------------------------ local secrets

    def save_secret(self, name: str, secret: str) -> None:
        """Keep a secret on this device, sealed under the pickle key (e.g. ``m.megolm_backup.v1``).

        Cross-signing private keys go through :meth:`import_cross_signing_keys`,
        which checks them against our published keys.
        """
        self._store.save_secret(
            {"name": name, "sealed": seal_secret(self._pickle_key, name, secret)}
        )
        if name in _SHAREABLE_SECRETS:
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

    # ------------------------------------------------------------------ cross-signing

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

    def _matching_private_key(self, usage: str, own: PublishedIdentity | None) -> PkSigning | None:
        """Our private key for ``usage`` if it belongs to the published (valid) public key."""
        if own is None:
            return None
        published = {
            MASTER: own.master,
            SELF_SIGNING: own.self_signing,
            USER_SIGNING: own.user_signing,
        }[usage]
        if published is None:
            return None
        signer = self._private_key(usage)
        if signer is None or not hmac.compare_digest(
            signer.public_key.encode(), published.public_key.encode()
        ):
            return None
        return signer

    def _trust_own_master(self, master: str) -> None:
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

    def _import_private_key(self, usage: str, secret: str) -> bool:
        """Keep a cross-signing private key (base64 seed) if it matches our published key."""
        try:
            seed = b64decode(secret)
            if len(seed) != 32:
                return False
            signer = self._backend.pk_signing_from_seed(seed)
        except (ValueError, BackendError):
            return False
        own = self._cross_signing.published(self._user_id)
        if own is None:
            return False
        published = {
            MASTER: own.master,
            SELF_SIGNING: own.self_signing,
            USER_SIGNING: own.user_signing,
        }[usage]
        if published is None or not hmac.compare_digest(
            signer.public_key.encode(), published.public_key.encode()
        ):
            return False
        self.save_secret(CROSS_SIGNING_SECRET_NAMES[usage], b64encode(seed))
        if usage == MASTER:
            # Holding the master key's private half is the strongest trust there is.
            self._trust_own_master(own.master.public_key)
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
                self._import_private_key(usage, secret)
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
            if own is not None and self._matching_private_key(usage, own) is None:
                continue
            secret = self.get_secret(name)
            if secret is not None:
                exported[name] = secret
        return exported

    def cross_signing_status(self) -> CrossSigningStatus:
        """Our own cross-signing state on this device (for the UI and the bootstrap decision)."""
        own = self._cross_signing.published(self._user_id)
        held = {
            usage: self._matching_private_key(usage, own) for usage in CROSS_SIGNING_SECRET_NAMES
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
            if self._matching_private_key(MASTER, own) is not None:
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
        _, account = self._account()
        body = identity_upload_body(
            self._user_id, self._device_id, account.sign, master, self_signing, user_signing
        )
        request = DeviceSigningUploadRequest(request_id=_new_id(), body=body)
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
        self._trust_own_master(own.master.public_key)
        self._mark_outdated(self._user_id)

    def user_identity(self, user_id: str) -> UserIdentity | None:
        """``user_id``'s cross-signing identity as this device judges it (``None``: none known)."""
        return self._cross_signing.user_identity(user_id)

    def identities_needing_attention(self) -> list[UserIdentity]:
        """Users whose identity changed (verified ones first): warn until acknowledged or re-verified."""
        found = []
        for record in self._store.list_user_identities():
            identity = self._cross_signing.user_identity(record["user_id"])
            if identity is not None and identity.needs_attention:
                found.append(identity)
        found.sort(key=lambda i: (not i.verification_violation, i.user_id))
        return found

    def acknowledge_identity_change(self, user_id: str) -> bool:
        """The user saw the change of ``user_id``'s master key: accept it, drop the warning.

        The new key is not verified by this (verify again for that); a verification
        of the old identity no longer counts. ``False`` if nothing is known of the user.
        """
        identity = self._cross_signing.published(user_id)
        record = self._store.get_user_identity(user_id)
        if identity is None and record is None:
            return False
        updated = record or new_identity_record(user_id)
        if identity is not None:
            updated = {**updated, "pinned_master_key": identity.master.public_key}
        if self._cross_signing.master_trust(user_id, identity) is None:
            updated = {**updated, "previously_verified": False}
        self._store.save_user_identity(updated)
        return True

    # ------------------------------------------------------------------ signature uploads

    def _signature_upload_request(self) -> SignatureUploadRequest | None:
        if self._signature_upload is not None:
            return self._signature_upload
        if not self._signatures_dirty or self._clock() < self._signatures_retry_at:
            return None
        self._signatures_dirty = False
        body = self._owed_signatures()
        if not body:
            return None
        self._signature_upload = SignatureUploadRequest(request_id=_new_id(), body=body)
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
                self.sign_json(unsigned),
            )
        self_signing = self._matching_private_key(SELF_SIGNING, own)
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
        user_signing = self._matching_private_key(USER_SIGNING, own)
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
            self._mark_outdated(user_id)
        if failed:
            log.warning("the server refused %d cross-signing signature(s)", len(failed))
        return RequestOutcome(signature_failures=tuple(failed))

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
            identity = self._cross_signing.published(user_id)
            if identity is not None and identity.master.public_key == result.master_key:
                if user_id == self._user_id:
                    self._trust_own_master(result.master_key)
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
        self._signatures_dirty = True
        if user_id == self._user_id and device_verified:
            self._request_missing_secrets()
            if self._incoming_secret_requests:
                self._answer_secret_requests()

    def _request_missing_secrets(self) -> list[str]:
        """Ask our other devices for the cross-signing keys and the backup key we lack."""
        own = self._cross_signing.published(self._user_id)
        wanted = []
        if own is not None:
            wanted = [
                name
                for usage, name in CROSS_SIGNING_SECRET_NAMES.items()
                if self._matching_private_key(usage, own) is None
            ]
        if self.get_secret(_BACKUP_SECRET) is None:
            wanted.append(_BACKUP_SECRET)
        outstanding = {
            r["secret_name"]
            for r in self._store.list_key_requests()
            if r["kind"] == "secret" and r["state"] != "cancelling"
        }
        asked = []
        for name in wanted:
            if name not in outstanding and self.request_secret(name) is not None:
                asked.append(name)
        return asked

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
                if not d["deleted"] and not self._is_own_device(user_id, d["device_id"])
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
