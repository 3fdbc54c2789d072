"""The machine's public values: settings, results, failures, trust states."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .store_api import DeviceRecord
from .verification import Verification, VerificationConfig

__all__ = [
    "MEGOLM_ALGORITHM",
    "OLM_ALGORITHM",
    "DecryptedEvent",
    "DecryptionFailure",
    "Device",
    "DeviceTrust",
    "DeviceWarning",
    "EncryptionSettings",
    "FailureReason",
    "IdentityChange",
    "ImportResult",
    "KeyOrigin",
    "LocalTrust",
    "MachineConfig",
    "ReceivedSecret",
    "RejectedToDevice",
    "RequestOutcome",
    "RoomKeyInfo",
    "SenderTrust",
    "SyncChanges",
    "ToDeviceEvent",
    "WarningKind",
    "WithheldInfo",
]

OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"


class KeyOrigin(StrEnum):
    """How an inbound group session reached us (decides how far its sender is trusted)."""

    #: Olm-encrypted ``m.room_key`` from the session's creator.
    ROOM_KEY = "m.room_key"
    #: Our own outbound session.
    OWN = "own"
    #: ``m.forwarded_room_key`` from one of our verified devices, in answer to our request.
    FORWARDED = "m.forwarded_room_key"
    #: A key export file.
    IMPORTED = "imported"
    #: Server-side key backup (issue 6).
    BACKUP = "backup"


class LocalTrust(StrEnum):
    """What the user decided about a device on this client."""

    UNSET = "unset"
    VERIFIED = "verified"
    BLOCKED = "blocked"


class DeviceTrust(StrEnum):
    """A device's trust as the :class:`~tui_client.crypto.trust.TrustPolicy` decides it."""

    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    BLOCKED = "blocked"


class SenderTrust(StrEnum):
    """How far a decrypted room event's sender is established."""

    #: The session came from this device over Olm and the device is verified.
    VERIFIED = "verified"
    #: As above, but the device is not verified.
    UNVERIFIED = "unverified"
    #: The sending device is blocked by the user.
    BLOCKED = "blocked"
    #: The session's device is not (yet) in the sender's device list: unknown or deleted.
    UNKNOWN_DEVICE = "unknown_device"
    #: The key was forwarded or imported: who created the session cannot be proven.
    UNAUTHENTICATED = "unauthenticated"


class FailureReason(StrEnum):
    """Why a room event could not be decrypted (machine-readable)."""

    MALFORMED = "malformed"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    #: We do not have the session (yet): the key may still arrive.
    MISSING_ROOM_KEY = "missing_room_key"
    #: We have the session, but only from a later index: sent before we joined (or partly withheld).
    UNKNOWN_MESSAGE_INDEX = "unknown_message_index"
    #: The sender told us it will not send us the key (``withheld_code`` says why).
    WITHHELD = "withheld"
    #: The ciphertext did not decrypt with the session (corrupt or forged).
    DECRYPTION_ERROR = "decryption_error"
    #: The encrypted payload names another room than the one the event arrived in.
    MISMATCHED_ROOM = "mismatched_room"
    #: The session belongs to a device of another user than the event's sender.
    MISMATCHED_SENDER = "mismatched_sender"
    #: This message index was already used by another event of the session.
    REPLAY = "replay"
    #: The session's device is unknown (only with ``MachineConfig.require_known_device``).
    UNKNOWN_DEVICE = "unknown_device"


class WarningKind(StrEnum):
    """Problems with device keys returned by ``/keys/query``."""

    #: A known device ID came back with other keys: rejected, the old keys stay.
    KEYS_CHANGED = "keys_changed"
    #: The device keys' self-signature did not verify: the device is ignored.
    BAD_SIGNATURE = "bad_signature"
    #: The device keys are malformed (missing keys, wrong user or device ID).
    MALFORMED = "malformed"
    #: The server lists this very device with keys that are not ours.
    OWN_DEVICE_MISMATCH = "own_device_mismatch"
    #: A device ID equals one of its user's cross-signing public keys: the device is refused.
    DEVICE_ID_COLLISION = "device_id_collision"


@dataclass(frozen=True, slots=True)
class Device:
    """A device as the machine knows it (from a verified ``/keys/query`` answer)."""

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str
    algorithms: tuple[str, ...]
    display_name: str | None
    local_trust: LocalTrust
    deleted: bool
    #: The signed device-keys object (canonical JSON), for cross-signing checks.
    keys_json: str = field(repr=False)

    @classmethod
    def from_record(cls, record: DeviceRecord) -> Device:
        """Build from a store record."""
        try:
            trust = LocalTrust(record["local_trust"])
        except ValueError:
            trust = LocalTrust.UNSET
        return cls(
            user_id=record["user_id"],
            device_id=record["device_id"],
            curve25519=record["curve25519"],
            ed25519=record["ed25519"],
            algorithms=tuple(record["algorithms"]),
            display_name=record["display_name"],
            local_trust=trust,
            deleted=record["deleted"],
            keys_json=record["keys_json"],
        )

    def signed_keys(self) -> dict[str, Any]:
        """The device-keys object with its signatures."""
        value = json.loads(self.keys_json)
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class EncryptionSettings:
    """How a room's outbound session is made and rotated (from ``m.room.encryption``)."""

    algorithm: str = MEGOLM_ALGORITHM
    rotation_period_ms: int = 604_800_000
    rotation_period_msgs: int = 100
    #: Share keys only with verified devices (others get ``m.room_key.withheld`` ``m.unverified``).
    only_verified: bool = False
    #: The room's history visibility is ``shared``/``world_readable`` (the key's ``shared_history``).
    shared_history: bool = False

    @classmethod
    def from_state(
        cls,
        content: Mapping[str, Any],
        *,
        history_visibility: str | None = None,
        only_verified: bool = False,
    ) -> EncryptionSettings:
        """From an ``m.room.encryption`` content; absurd or missing periods fall back to defaults."""
        defaults = cls()
        period_ms = content.get("rotation_period_ms")
        period_msgs = content.get("rotation_period_msgs")
        algorithm = content.get("algorithm")
        return cls(
            algorithm=algorithm if isinstance(algorithm, str) else defaults.algorithm,
            rotation_period_ms=(
                period_ms
                if isinstance(period_ms, int) and not isinstance(period_ms, bool) and period_ms > 0
                else defaults.rotation_period_ms
            ),
            rotation_period_msgs=(
                period_msgs
                if isinstance(period_msgs, int)
                and not isinstance(period_msgs, bool)
                and period_msgs > 0
                else defaults.rotation_period_msgs
            ),
            only_verified=only_verified,
            shared_history=history_visibility in ("shared", "world_readable"),
        )

    def key(self) -> str:
        """A fingerprint: a session made under other settings is rotated."""
        return (
            f"{self.algorithm}|{self.rotation_period_ms}|{self.rotation_period_msgs}|"
            f"{int(self.only_verified)}|{int(self.shared_history)}"
        )


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """Tunables of the machine (the defaults follow the spec's recommendations)."""

    #: Keep this fraction of the account's one-time key capacity on the server.
    one_time_key_fraction: float = 0.5
    #: At most one new Olm session per device in this interval when recovering a wedged one.
    unwedge_interval_ms: int = 3_600_000
    #: Forget the previous fallback key this long after rotating it.
    old_fallback_key_lifetime_ms: int = 3_600_000
    #: Devices per ``/sendToDevice`` request when sharing room keys.
    to_device_batch_size: int = 250
    #: ``timeout`` sent with ``/keys/query`` and ``/keys/claim`` (the spec's recommended 10 s).
    federation_timeout_ms: int = 10_000
    #: After a failed claim (no key, server unreachable), retry that device only after this.
    claim_retry_ms: int = 300_000
    #: After ``/keys/query`` failures for a server, retry its users only after this.
    query_retry_ms: int = 60_000
    #: Olm sessions kept per device (least recently used dropped; the spec says at least 4).
    max_olm_sessions_per_device: int = 8
    #: Ask our other devices for room keys we are missing.
    request_missing_keys: bool = True
    #: Fail decryption (``UNKNOWN_DEVICE``) instead of marking it when the device is unknown.
    require_known_device: bool = False
    #: Inbound group sessions kept unpickled in memory.
    session_cache_size: int = 2048
    #: PBKDF2 rounds of key exports (Element uses 500,000; the spec asks at least 100,000).
    export_rounds: int = 500_000
    #: Verification timeouts.
    verification: VerificationConfig = field(default_factory=VerificationConfig)


@dataclass(frozen=True, slots=True)
class RoomKeyInfo:
    """A room key that arrived (or improved): retry the events waiting for it."""

    room_id: str
    session_id: str
    sender_key: str
    first_known_index: int
    origin: KeyOrigin


@dataclass(frozen=True, slots=True)
class WithheldInfo:
    """An ``m.room_key.withheld`` notice (``room_id``/``session_id`` absent for ``m.no_olm``)."""

    sender: str
    code: str
    reason: str | None
    room_id: str | None
    session_id: str | None


@dataclass(frozen=True, slots=True)
class ToDeviceEvent:
    """A to-device event for another consumer (verification, custom types).

    For Olm-encrypted events the sender has passed every check of the spec's
    "Validation of incoming decrypted events"; ``sender_device_id`` is set when the
    sending device is in our device list (then ``sender_trust`` is its trust).
    """

    type: str
    sender: str
    content: dict[str, Any]
    encrypted: bool
    sender_key: str | None = None
    sender_ed25519: str | None = None
    sender_device_id: str | None = None
    sender_trust: DeviceTrust | None = None


@dataclass(frozen=True, slots=True)
class RejectedToDevice:
    """A to-device event the machine refused, and why (for logs and diagnostics)."""

    type: str
    sender: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReceivedSecret:
    """A secret (``m.secret.send``) answering our own request, from our own verified device.

    Cross-signing private keys are checked against our published public keys and
    kept by the machine (``imported``); others (the backup key) are the caller's to
    check and keep (``OlmMachine.save_secret``).
    """

    name: str
    secret: str = field(repr=False)
    request_id: str
    sender_device_id: str
    imported: bool = False


@dataclass(frozen=True, slots=True)
class SyncChanges:
    """What ``receive_sync_changes`` did."""

    to_device_events: list[ToDeviceEvent] = field(default_factory=list)
    room_keys: list[RoomKeyInfo] = field(default_factory=list)
    withheld: list[WithheldInfo] = field(default_factory=list)
    secrets: list[ReceivedSecret] = field(default_factory=list)
    rejected: list[RejectedToDevice] = field(default_factory=list)
    #: Verification flows this batch changed (to-device ``m.key.verification.*``, timeouts).
    verifications: list[Verification] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeviceWarning:
    """A problem with a device's keys seen in ``/keys/query`` (show it to the user)."""

    user_id: str
    device_id: str
    kind: WarningKind
    message: str


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A user's published master key is not the one we had accepted (``/keys/query``)."""

    user_id: str
    old_master_key: str | None
    new_master_key: str
    #: The old identity was verified: show a warning until acknowledged or re-verified.
    was_verified: bool


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What marking a request as sent changed."""

    #: Users whose device list was refreshed (``/keys/query``).
    users_updated: tuple[str, ...] = ()
    #: ``(user_id, device_id)`` of devices seen for the first time.
    devices_added: tuple[tuple[str, str], ...] = ()
    #: ``(user_id, device_id)`` of devices the server no longer lists.
    devices_removed: tuple[tuple[str, str], ...] = ()
    warnings: tuple[DeviceWarning, ...] = ()
    #: ``(user_id, device_id)`` of devices we now have a new Olm session with (``/keys/claim``).
    sessions_created: tuple[tuple[str, str], ...] = ()
    #: ``(user_id, device_id)`` of claimed devices that returned no usable key.
    claim_failures: tuple[tuple[str, str], ...] = ()
    #: Master keys that changed (``/keys/query``).
    identity_changes: tuple[IdentityChange, ...] = ()
    #: ``(user_id, key_id, errcode)`` of signatures the server refused (``/keys/signatures/upload``).
    signature_failures: tuple[tuple[str, str, str], ...] = ()
    #: Verification flows the answer changed (an in-room request got its event ID).
    verifications: tuple[Verification, ...] = ()


@dataclass(slots=True)
class DecryptedEvent:
    """A decrypted room event and what is known about who sent it (treat as read-only).

    Not frozen only because a frozen dataclass costs a few microseconds more to
    build, on the path every encrypted event takes.
    """

    event_type: str
    content: dict[str, Any]
    room_id: str
    sender: str
    session_id: str
    message_index: int
    #: Curve25519 key of the device that created the Megolm session.
    sender_key: str
    #: Its claimed Ed25519 key.
    sender_ed25519: str
    #: The sending device, when it is in our device list.
    sender_device_id: str | None
    trust: SenderTrust
    key_origin: KeyOrigin
    forwarding_chain: tuple[str, ...] = ()

    def as_event(self, encrypted_event: Mapping[str, Any]) -> dict[str, Any]:
        """The original event with the decrypted ``type`` and ``content`` in place."""
        event = dict(encrypted_event)
        event["type"] = self.event_type
        event["content"] = self.content
        return event


@dataclass(frozen=True, slots=True)
class DecryptionFailure:
    """Why a room event stays encrypted ("unable to decrypt"), with what is known."""

    reason: FailureReason
    session_id: str | None = None
    detail: str = ""
    withheld_code: str | None = None
    withheld_reason: str | None = None
    first_known_index: int | None = None
    message_index: int | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What ``import_room_keys`` did."""

    total: int
    imported: int
    room_keys: list[RoomKeyInfo] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Sessions not imported (invalid, or not better than what we had)."""
        return self.total - self.imported
