"""What the machine keeps, and the store Protocol it keeps it in.

The machine holds no state of its own beyond caches that are checked against the
store on every use: everything it must remember goes through :class:`CryptoStore`,
synchronously, so the engine can run a machine call inside the same SQLite
transaction as the sync batch that caused it (a crash never loses a room key, and
a rolled-back transaction leaves the machine consistent with what was committed).

Records are ``TypedDict``\\ s: plain dicts of primitive values, structurally typed,
so the SQLite store in ``store/`` declares identical TypedDicts (or returns plain
dicts of the same shape) without importing ``crypto``. A store must return fresh
records (or copies): the machine never mutates a record it was given, and a store
must not keep a reference to a record it was handed either (copy, or serialise).

Secrets at rest: every ``pickle`` field is already encrypted by the backend under
the pickle key, and every ``sealed`` field (:class:`SecretRecord`) by the machine. Nothing else in these records is secret (public keys, IDs,
counters), except that room/session IDs and device lists are metadata a store
should not log.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict

__all__ = [
    "CROSS_SIGNING_FIELDS",
    "AccountRecord",
    "CrossSigningKeysRecord",
    "CryptoStore",
    "DeviceRecord",
    "InboundGroupSessionRecord",
    "KeyRequestRecord",
    "OlmPeerStateRecord",
    "OlmSessionRecord",
    "OutboundGroupSessionRecord",
    "PendingToDeviceRecord",
    "RoomKeyShareRecord",
    "SecretRecord",
    "TrackedUserRecord",
    "UserIdentityRecord",
    "WithheldRecord",
]

CROSS_SIGNING_FIELDS = ("master_key_json", "self_signing_key_json", "user_signing_key_json")


class AccountRecord(TypedDict):
    """This device's Olm account and its key-upload bookkeeping (one row)."""

    user_id: str
    device_id: str
    pickle: str
    #: The device keys were uploaded and the server acknowledged them.
    shared: bool
    #: The server's count of our unclaimed ``signed_curve25519`` one-time keys (-1: unknown).
    uploaded_otk_count: int
    #: A (new) fallback key must be generated and uploaded.
    fallback_key_needed: bool
    #: When (ms) the fallback key before the current one may be forgotten (0: nothing to forget).
    old_fallback_forget_at_ms: int


class OlmSessionRecord(TypedDict):
    """One Olm session, keyed by ``(sender_key, session_id)``."""

    #: The other device's Curve25519 identity key (authenticated by the session itself).
    sender_key: str
    session_id: str
    pickle: str
    created_ms: int
    #: Last successful decryption (creation time until then): the preferred session is the max.
    last_used_ms: int


class InboundGroupSessionRecord(TypedDict):
    """A Megolm session we can decrypt with, keyed by ``(room_id, session_id)``."""

    room_id: str
    session_id: str
    pickle: str
    #: Curve25519 key of the device that created the session: Olm-authenticated when
    #: ``origin`` is ``m.room_key`` or ``own``, only claimed for forwarded/imported keys.
    sender_key: str
    #: The creator's claimed Ed25519 key (checked against the device when known).
    signing_key: str
    #: The user who sent it over Olm (``m.room_key``/``own``); ``None`` for forwarded/imported.
    sender_user_id: str | None
    first_known_index: int
    forwarding_chain: list[str]
    #: A :class:`~tui_client.crypto.types.KeyOrigin` value.
    origin: str
    shared_history: bool
    #: Uploaded to the current server-side key backup.
    backed_up: bool
    received_ms: int


class OutboundGroupSessionRecord(TypedDict):
    """Our current sending Megolm session of a room (at most one per room)."""

    room_id: str
    session_id: str
    pickle: str
    created_ms: int
    #: Messages encrypted with it so far.
    message_count: int
    rotation_period_ms: int
    rotation_period_msgs: int
    #: Fingerprint of the settings it was created under; a change rotates it.
    settings_key: str
    #: Set by ``invalidate_group_session``: the next share rotates it.
    invalidated: bool


class RoomKeyShareRecord(TypedDict):
    """Who got (or was refused) which outbound session, keyed by room, session, user, device."""

    room_id: str
    session_id: str
    user_id: str
    device_id: str
    curve25519: str
    #: The ratchet index the device can decrypt from.
    message_index: int
    #: ``pending`` (its to-device request not yet sent), ``sent``, or ``withheld``.
    state: str
    #: The to-device request carrying it while ``pending``.
    request_id: str | None
    withheld_code: str | None


class DeviceRecord(TypedDict):
    """A device of a tracked user, from ``/keys/query``, keyed by ``(user_id, device_id)``.

    Only devices whose self-signature verified are stored, and a device's keys are
    never replaced under the same ID.
    """

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str
    algorithms: list[str]
    #: The signed device-keys object as received (canonical JSON, ``unsigned`` removed).
    keys_json: str
    display_name: str | None
    #: A :class:`~tui_client.crypto.types.LocalTrust` value.
    local_trust: str
    #: No longer listed by the server (kept so old messages still name their device).
    deleted: bool
    first_seen_ms: int


class TrackedUserRecord(TypedDict):
    """A user whose device list we follow; ``dirty`` means it must be queried again."""

    user_id: str
    dirty: bool


class CrossSigningKeysRecord(TypedDict):
    """A user's cross-signing public keys as ``/keys/query`` returned them (canonical JSON)."""

    user_id: str
    master_key_json: str | None
    self_signing_key_json: str | None
    user_signing_key_json: str | None


class UserIdentityRecord(TypedDict):
    """What this device decided about a user's cross-signing identity, keyed by ``user_id``.

    The keys themselves are in :class:`CrossSigningKeysRecord`; this is the local
    judgement on them (public keys only, nothing secret).
    """

    user_id: str
    #: The master key accepted for this user: the first one seen, or the one the user
    #: last acknowledged or verified. A different published key is a change to show.
    pinned_master_key: str | None
    #: The master key verified on this device (SAS), or, for our own user, the master
    #: key this device trusts (it created it, verified it, or holds its private key).
    verified_master_key: str | None
    #: The identity was verified at some point: if it stops being verified (a new master
    #: key), warn until the user acknowledges the change or verifies again.
    previously_verified: bool
    #: The server lists a device of this user whose ID equals one of the user's
    #: cross-signing keys: the user is neither verified nor trusted through cross-signing.
    device_id_collision: bool


class SecretRecord(TypedDict):
    """A secret this device keeps (cross-signing private keys, the backup key), by ``name``.

    ``sealed`` is the secret encrypted under the pickle key (AES-256-GCM bound to
    ``name``, see :mod:`~tui_client.crypto.local_secrets`): never the clear text.
    """

    name: str
    sealed: str


class KeyRequestRecord(TypedDict):
    """One of our outgoing key requests (room key or secret), keyed by ``request_id``."""

    request_id: str
    #: ``room_key`` or ``secret``.
    kind: str
    room_id: str | None
    session_id: str | None
    secret_name: str | None
    #: Device IDs of our own user the request is addressed to.
    recipients: list[str]
    #: ``unsent``, ``sent``, or ``cancelling`` (answered; the cancellation is queued).
    state: str
    created_ms: int


class PendingToDeviceRecord(TypedDict):
    """A ``/sendToDevice`` call the machine produced and the engine has not yet sent."""

    request_id: str
    event_type: str
    #: ``{user_id: {device_id: content}}`` as the endpoint takes it.
    messages: dict[str, dict[str, dict[str, Any]]]
    #: What it carries (:class:`~tui_client.crypto.requests.ToDeviceKind` value).
    kind: str
    #: Kind-specific references (room and session of a key share, key request ID...).
    meta: dict[str, str]
    created_ms: int


class WithheldRecord(TypedDict):
    """An ``m.room_key.withheld`` notice, keyed by ``(room_id, session_id)``."""

    room_id: str
    session_id: str
    sender_user_id: str
    sender_key: str | None
    code: str
    reason: str | None
    received_ms: int


class OlmPeerStateRecord(TypedDict):
    """Per-device Olm bookkeeping, keyed by the device's Curve25519 key."""

    curve25519: str
    user_id: str
    device_id: str
    #: When we last created a session to it (0: never): rate-limits wedge recovery.
    last_new_session_ms: int
    #: A new session + ``m.dummy`` is wanted (the current one is wedged).
    unwedge_pending: bool
    #: An ``m.no_olm`` notice was sent since the last successful session.
    no_olm_sent: bool


class CryptoStore(Protocol):
    """Everything the machine persists. Synchronous; called on the engine's database thread.

    The machine never commits: the caller wraps machine calls in its transaction.
    Upserts replace the whole record under its key. Lists return every match (no
    order promised unless stated).
    """

    # Account
    def load_account(self) -> AccountRecord | None:
        """This device's account record, if one was saved."""
        ...

    def save_account(self, record: AccountRecord) -> None:
        """Upsert the account record."""
        ...

    def load_pickle_format(self) -> str | None:
        """The backend whose pickle format the stored pickles are in (``None``: not recorded)."""
        ...

    def save_pickle_format(self, backend: str) -> None:
        """Record the backend whose pickle format the stored pickles are in."""
        ...

    # Olm sessions
    def get_olm_sessions(self, sender_key: str) -> list[OlmSessionRecord]:
        """Every Olm session with the device whose Curve25519 key is ``sender_key``."""
        ...

    def list_olm_sessions(self) -> list[OlmSessionRecord]:
        """Every Olm session (to migrate pickles)."""
        ...

    def save_olm_session(self, record: OlmSessionRecord) -> None:
        """Upsert by ``(sender_key, session_id)``."""
        ...

    def delete_olm_session(self, sender_key: str, session_id: str) -> None:
        """Remove one Olm session (no error if absent)."""
        ...

    # Inbound group sessions
    def get_inbound_group_session(
        self, room_id: str, session_id: str
    ) -> InboundGroupSessionRecord | None:
        """The session ``session_id`` of ``room_id`` (never looked up by sender key)."""
        ...

    def save_inbound_group_session(self, record: InboundGroupSessionRecord) -> None:
        """Upsert by ``(room_id, session_id)``."""
        ...

    def list_inbound_group_sessions(
        self, room_id: str | None = None
    ) -> list[InboundGroupSessionRecord]:
        """Every inbound session (of ``room_id`` if given): for exports."""
        ...

    def inbound_group_sessions_to_back_up(self, limit: int) -> list[InboundGroupSessionRecord]:
        """Up to ``limit`` sessions with ``backed_up`` false."""
        ...

    def mark_inbound_group_sessions_backed_up(self, keys: list[tuple[str, str]]) -> None:
        """Set ``backed_up`` on the ``(room_id, session_id)`` sessions listed."""
        ...

    def reset_inbound_group_sessions_backup(self) -> None:
        """Clear ``backed_up`` everywhere (a new backup version)."""
        ...

    def count_inbound_group_sessions(self) -> tuple[int, int]:
        """``(total, backed_up)`` counts."""
        ...

    # Outbound group sessions and who got them
    def get_outbound_group_session(self, room_id: str) -> OutboundGroupSessionRecord | None:
        """The room's current outbound session."""
        ...

    def save_outbound_group_session(self, record: OutboundGroupSessionRecord) -> None:
        """Upsert by ``room_id`` (replacing the previous session of the room)."""
        ...

    def list_outbound_group_sessions(self) -> list[OutboundGroupSessionRecord]:
        """Every room's outbound session (to migrate pickles)."""
        ...

    def delete_outbound_group_session(self, room_id: str) -> None:
        """Forget the room's outbound session (no error if absent)."""
        ...

    def get_room_key_shares(self, room_id: str, session_id: str) -> list[RoomKeyShareRecord]:
        """Every share record of one outbound session."""
        ...

    def save_room_key_shares(self, records: list[RoomKeyShareRecord]) -> None:
        """Upsert each by ``(room_id, session_id, user_id, device_id)``."""
        ...

    # Devices and tracking
    def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        """One device (deleted ones included)."""
        ...

    def get_user_devices(self, user_id: str) -> list[DeviceRecord]:
        """Every stored device of ``user_id``, deleted ones included."""
        ...

    def get_devices_by_curve_key(self, curve25519: str) -> list[DeviceRecord]:
        """Every stored device (any user) claiming this Curve25519 key. Hot path: index it."""
        ...

    def save_device(self, record: DeviceRecord) -> None:
        """Upsert by ``(user_id, device_id)``."""
        ...

    def get_tracked_users(self) -> list[TrackedUserRecord]:
        """Every tracked user."""
        ...

    def get_tracked_user(self, user_id: str) -> TrackedUserRecord | None:
        """One tracked user."""
        ...

    def save_tracked_user(self, record: TrackedUserRecord) -> None:
        """Upsert by ``user_id``."""
        ...

    def delete_tracked_user(self, user_id: str) -> None:
        """Stop tracking (devices stay stored)."""
        ...

    def get_cross_signing_keys(self, user_id: str) -> CrossSigningKeysRecord | None:
        """A user's cross-signing keys as last queried."""
        ...

    def save_cross_signing_keys(self, record: CrossSigningKeysRecord) -> None:
        """Upsert by ``user_id``."""
        ...

    # Cross-signing identities as judged here, and local secrets
    def get_user_identity(self, user_id: str) -> UserIdentityRecord | None:
        """The local judgement on a user's cross-signing identity."""
        ...

    def save_user_identity(self, record: UserIdentityRecord) -> None:
        """Upsert by ``user_id``."""
        ...

    def list_user_identities(self) -> list[UserIdentityRecord]:
        """Every identity record."""
        ...

    def get_secret(self, name: str) -> SecretRecord | None:
        """One sealed secret."""
        ...

    def save_secret(self, record: SecretRecord) -> None:
        """Upsert by ``name``."""
        ...

    def delete_secret(self, name: str) -> None:
        """Forget a secret (no error if absent)."""
        ...

    def list_secret_names(self) -> list[str]:
        """The names of every stored secret."""
        ...

    # Outgoing key requests
    def get_key_request(self, request_id: str) -> KeyRequestRecord | None:
        """One of our key requests."""
        ...

    def find_room_key_request(self, room_id: str, session_id: str) -> KeyRequestRecord | None:
        """Our request for one room key, if any."""
        ...

    def list_key_requests(self) -> list[KeyRequestRecord]:
        """Every outstanding key request."""
        ...

    def save_key_request(self, record: KeyRequestRecord) -> None:
        """Upsert by ``request_id``."""
        ...

    def delete_key_request(self, request_id: str) -> None:
        """Forget a key request (no error if absent)."""
        ...

    # To-device requests waiting to be sent
    def list_pending_to_device(self) -> list[PendingToDeviceRecord]:
        """Every pending to-device request, in the order they were first saved."""
        ...

    def get_pending_to_device(self, request_id: str) -> PendingToDeviceRecord | None:
        """One pending to-device request."""
        ...

    def save_pending_to_device(self, record: PendingToDeviceRecord) -> None:
        """Insert (or replace, keeping its position) by ``request_id``."""
        ...

    def delete_pending_to_device(self, request_id: str) -> None:
        """Remove a sent request (no error if absent)."""
        ...

    # Replay protection
    def record_megolm_index(
        self, session_id: str, message_index: int, event_id: str, origin_server_ts: int
    ) -> tuple[str, int]:
        """Remember which event used ``(session_id, message_index)``; return the first one.

        Insert ``(event_id, origin_server_ts)`` if the pair is new, and return what is
        stored for the pair afterwards (so an existing entry wins).
        """
        ...

    # Withheld notices
    def get_withheld(self, room_id: str, session_id: str) -> WithheldRecord | None:
        """The withheld notice for a session, if one arrived."""
        ...

    def save_withheld(self, record: WithheldRecord) -> None:
        """Upsert by ``(room_id, session_id)``."""
        ...

    def delete_withheld(self, room_id: str, session_id: str) -> None:
        """Forget a withheld notice (the key arrived after all)."""
        ...

    # Per-device Olm bookkeeping
    def get_olm_peer_state(self, curve25519: str) -> OlmPeerStateRecord | None:
        """Wedge/no-olm bookkeeping of one device."""
        ...

    def save_olm_peer_state(self, record: OlmPeerStateRecord) -> None:
        """Upsert by ``curve25519``."""
        ...

    def list_unwedge_pending(self) -> list[OlmPeerStateRecord]:
        """Every peer with ``unwedge_pending`` set."""
        ...
