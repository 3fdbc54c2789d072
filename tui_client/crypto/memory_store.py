"""An in-memory :class:`~tui_client.crypto.store_api.CryptoStore` (tests, benchmarks, bots).

Records are copied in and out, as a database would, so a test catches a machine
that mutates what it was given. :meth:`MemoryCryptoStore.snapshot` and
:meth:`~MemoryCryptoStore.restore` stand in for a transaction's rollback.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from .store_api import (
    AccountRecord,
    CrossSigningKeysRecord,
    DeviceRecord,
    InboundGroupSessionRecord,
    KeyRequestRecord,
    OlmPeerStateRecord,
    OlmSessionRecord,
    OutboundGroupSessionRecord,
    PendingToDeviceRecord,
    RoomKeyShareRecord,
    SecretRecord,
    TrackedUserRecord,
    UserIdentityRecord,
    WithheldRecord,
)

__all__ = ["MemoryCryptoStore"]

R = TypeVar("R", bound=Mapping[str, Any])


def _copy(record: R) -> R:
    out: dict[str, Any] = dict(record)
    for key, value in out.items():
        if isinstance(value, list):
            out[key] = list(value)
        elif isinstance(value, dict):
            # Nested JSON (to-device messages): a JSON round trip copies it, fast.
            out[key] = json.loads(json.dumps(value))
    return out  # type: ignore[return-value]


def _copy_inbound(record: InboundGroupSessionRecord) -> InboundGroupSessionRecord:
    # The hot path (one per decrypted event): only the chain is a container.
    out = record.copy()
    out["forwarding_chain"] = list(record["forwarding_chain"])
    return out


def _copy_device(record: DeviceRecord) -> DeviceRecord:
    out = record.copy()
    out["algorithms"] = list(record["algorithms"])
    return out


class MemoryCryptoStore:
    """Every crypto record in dictionaries; satisfies ``CryptoStore`` structurally."""

    def __init__(self) -> None:
        self._account: AccountRecord | None = None
        self._olm: dict[str, dict[str, OlmSessionRecord]] = {}
        self._inbound: dict[tuple[str, str], InboundGroupSessionRecord] = {}
        self._outbound: dict[str, OutboundGroupSessionRecord] = {}
        self._shares: dict[tuple[str, str], dict[tuple[str, str], RoomKeyShareRecord]] = {}
        self._devices: dict[str, dict[str, DeviceRecord]] = {}
        self._by_curve: dict[str, dict[tuple[str, str], DeviceRecord]] = {}
        self._tracked: dict[str, TrackedUserRecord] = {}
        self._cross_signing: dict[str, CrossSigningKeysRecord] = {}
        self._key_requests: dict[str, KeyRequestRecord] = {}
        self._to_device: dict[str, PendingToDeviceRecord] = {}
        self._replay: dict[tuple[str, int], tuple[str, int]] = {}
        self._withheld: dict[tuple[str, str], WithheldRecord] = {}
        self._peers: dict[str, OlmPeerStateRecord] = {}
        self._identities: dict[str, UserIdentityRecord] = {}
        self._secrets: dict[str, SecretRecord] = {}
        self._pickle_format: str | None = None

    # Transactions, for tests: a snapshot is what a rollback returns to.
    def snapshot(self) -> dict[str, Any]:
        """A deep copy of every record."""
        return copy.deepcopy({k: v for k, v in vars(self).items()})

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Return to a snapshot (as if the transactions since had been rolled back)."""
        for key, value in copy.deepcopy(dict(snapshot)).items():
            setattr(self, key, value)

    # Account
    def load_account(self) -> AccountRecord | None:
        """This device's account record."""
        return None if self._account is None else _copy(self._account)

    def save_account(self, record: AccountRecord) -> None:
        """Upsert the account record."""
        self._account = _copy(record)

    def load_pickle_format(self) -> str | None:
        """The backend the pickles were made by, if recorded."""
        return self._pickle_format

    def save_pickle_format(self, backend: str) -> None:
        """Record the backend the pickles were made by."""
        self._pickle_format = backend

    # Olm sessions
    def list_olm_sessions(self) -> list[OlmSessionRecord]:
        """Every session."""
        return [_copy(r) for sessions in self._olm.values() for r in sessions.values()]

    def get_olm_sessions(self, sender_key: str) -> list[OlmSessionRecord]:
        """Sessions with one device."""
        return [_copy(r) for r in self._olm.get(sender_key, {}).values()]

    def save_olm_session(self, record: OlmSessionRecord) -> None:
        """Upsert by (sender_key, session_id)."""
        self._olm.setdefault(record["sender_key"], {})[record["session_id"]] = _copy(record)

    def delete_olm_session(self, sender_key: str, session_id: str) -> None:
        """Remove one session."""
        self._olm.get(sender_key, {}).pop(session_id, None)

    # Inbound group sessions
    def get_inbound_group_session(
        self, room_id: str, session_id: str
    ) -> InboundGroupSessionRecord | None:
        """One inbound session."""
        record = self._inbound.get((room_id, session_id))
        return None if record is None else _copy_inbound(record)

    def save_inbound_group_session(self, record: InboundGroupSessionRecord) -> None:
        """Upsert by (room_id, session_id)."""
        self._inbound[(record["room_id"], record["session_id"])] = _copy(record)

    def list_inbound_group_sessions(
        self, room_id: str | None = None
    ) -> list[InboundGroupSessionRecord]:
        """Every inbound session (of a room)."""
        return [
            _copy(r) for (room, _), r in self._inbound.items() if room_id is None or room == room_id
        ]

    def inbound_group_sessions_to_back_up(self, limit: int) -> list[InboundGroupSessionRecord]:
        """Sessions not yet backed up."""
        out = [_copy(r) for r in self._inbound.values() if not r["backed_up"]]
        return out[:limit]

    def mark_inbound_group_sessions_backed_up(self, keys: list[tuple[str, str]]) -> None:
        """Flag sessions as backed up."""
        for key in keys:
            record = self._inbound.get(key)
            if record is not None:
                record["backed_up"] = True

    def reset_inbound_group_sessions_backup(self) -> None:
        """Clear every backed-up flag."""
        for record in self._inbound.values():
            record["backed_up"] = False

    def count_inbound_group_sessions(self) -> tuple[int, int]:
        """(total, backed up)."""
        return len(self._inbound), sum(1 for r in self._inbound.values() if r["backed_up"])

    # Outbound group sessions
    def get_outbound_group_session(self, room_id: str) -> OutboundGroupSessionRecord | None:
        """The room's outbound session."""
        record = self._outbound.get(room_id)
        return None if record is None else _copy(record)

    def save_outbound_group_session(self, record: OutboundGroupSessionRecord) -> None:
        """Upsert by room_id."""
        self._outbound[record["room_id"]] = _copy(record)

    def list_outbound_group_sessions(self) -> list[OutboundGroupSessionRecord]:
        """Every room's outbound session."""
        return [_copy(r) for r in self._outbound.values()]

    def delete_outbound_group_session(self, room_id: str) -> None:
        """Forget the room's outbound session."""
        self._outbound.pop(room_id, None)

    def get_room_key_shares(self, room_id: str, session_id: str) -> list[RoomKeyShareRecord]:
        """Share records of one session."""
        return [_copy(r) for r in self._shares.get((room_id, session_id), {}).values()]

    def save_room_key_shares(self, records: list[RoomKeyShareRecord]) -> None:
        """Upsert share records."""
        for record in records:
            by_device = self._shares.setdefault((record["room_id"], record["session_id"]), {})
            by_device[(record["user_id"], record["device_id"])] = _copy(record)

    # Devices
    def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        """One device."""
        record = self._devices.get(user_id, {}).get(device_id)
        return None if record is None else _copy(record)

    def get_user_devices(self, user_id: str) -> list[DeviceRecord]:
        """A user's devices."""
        return [_copy(r) for r in self._devices.get(user_id, {}).values()]

    def get_devices_by_curve_key(self, curve25519: str) -> list[DeviceRecord]:
        """Devices claiming a Curve25519 key."""
        return [_copy_device(r) for r in self._by_curve.get(curve25519, {}).values()]

    def save_device(self, record: DeviceRecord) -> None:
        """Upsert by (user_id, device_id)."""
        key = (record["user_id"], record["device_id"])
        old = self._devices.get(key[0], {}).get(key[1])
        if old is not None:
            self._by_curve.get(old["curve25519"], {}).pop(key, None)
        stored = _copy(record)
        self._devices.setdefault(key[0], {})[key[1]] = stored
        self._by_curve.setdefault(record["curve25519"], {})[key] = stored

    def get_tracked_users(self) -> list[TrackedUserRecord]:
        """Tracked users."""
        return [_copy(r) for r in self._tracked.values()]

    def get_tracked_user(self, user_id: str) -> TrackedUserRecord | None:
        """One tracked user."""
        record = self._tracked.get(user_id)
        return None if record is None else _copy(record)

    def save_tracked_user(self, record: TrackedUserRecord) -> None:
        """Upsert by user_id."""
        self._tracked[record["user_id"]] = _copy(record)

    def delete_tracked_user(self, user_id: str) -> None:
        """Stop tracking."""
        self._tracked.pop(user_id, None)

    def get_cross_signing_keys(self, user_id: str) -> CrossSigningKeysRecord | None:
        """A user's cross-signing keys."""
        record = self._cross_signing.get(user_id)
        return None if record is None else _copy(record)

    def save_cross_signing_keys(self, record: CrossSigningKeysRecord) -> None:
        """Upsert by user_id."""
        self._cross_signing[record["user_id"]] = _copy(record)

    # Identities and secrets
    def get_user_identity(self, user_id: str) -> UserIdentityRecord | None:
        """The local judgement on a user's identity."""
        record = self._identities.get(user_id)
        return None if record is None else _copy(record)

    def save_user_identity(self, record: UserIdentityRecord) -> None:
        """Upsert by user."""
        self._identities[record["user_id"]] = _copy(record)

    def list_user_identities(self) -> list[UserIdentityRecord]:
        """Every identity record."""
        return [_copy(r) for r in self._identities.values()]

    def get_secret(self, name: str) -> SecretRecord | None:
        """One sealed secret."""
        record = self._secrets.get(name)
        return None if record is None else _copy(record)

    def save_secret(self, record: SecretRecord) -> None:
        """Upsert by name."""
        self._secrets[record["name"]] = _copy(record)

    def delete_secret(self, name: str) -> None:
        """Forget a secret."""
        self._secrets.pop(name, None)

    def list_secret_names(self) -> list[str]:
        """Names of the stored secrets."""
        return list(self._secrets)

    # Key requests
    def get_key_request(self, request_id: str) -> KeyRequestRecord | None:
        """One key request."""
        record = self._key_requests.get(request_id)
        return None if record is None else _copy(record)

    def find_room_key_request(self, room_id: str, session_id: str) -> KeyRequestRecord | None:
        """Our request for one room key."""
        for record in self._key_requests.values():
            if (
                record["kind"] == "room_key"
                and record["room_id"] == room_id
                and record["session_id"] == session_id
            ):
                return _copy(record)
        return None

    def list_key_requests(self) -> list[KeyRequestRecord]:
        """Every key request."""
        return [_copy(r) for r in self._key_requests.values()]

    def save_key_request(self, record: KeyRequestRecord) -> None:
        """Upsert by request_id."""
        self._key_requests[record["request_id"]] = _copy(record)

    def delete_key_request(self, request_id: str) -> None:
        """Forget a key request."""
        self._key_requests.pop(request_id, None)

    # Pending to-device
    def list_pending_to_device(self) -> list[PendingToDeviceRecord]:
        """Pending requests in insertion order."""
        return [_copy(r) for r in self._to_device.values()]

    def get_pending_to_device(self, request_id: str) -> PendingToDeviceRecord | None:
        """One pending request."""
        record = self._to_device.get(request_id)
        return None if record is None else _copy(record)

    def save_pending_to_device(self, record: PendingToDeviceRecord) -> None:
        """Insert or replace (keeping its position)."""
        self._to_device[record["request_id"]] = _copy(record)

    def delete_pending_to_device(self, request_id: str) -> None:
        """Remove a pending request."""
        self._to_device.pop(request_id, None)

    # Replay
    def record_megolm_index(
        self, session_id: str, message_index: int, event_id: str, origin_server_ts: int
    ) -> tuple[str, int]:
        """Insert if new; return the first event recorded for the index."""
        return self._replay.setdefault((session_id, message_index), (event_id, origin_server_ts))

    # Withheld
    def get_withheld(self, room_id: str, session_id: str) -> WithheldRecord | None:
        """A withheld notice."""
        record = self._withheld.get((room_id, session_id))
        return None if record is None else _copy(record)

    def save_withheld(self, record: WithheldRecord) -> None:
        """Upsert by (room_id, session_id)."""
        self._withheld[(record["room_id"], record["session_id"])] = _copy(record)

    def delete_withheld(self, room_id: str, session_id: str) -> None:
        """Forget a withheld notice."""
        self._withheld.pop((room_id, session_id), None)

    # Peers
    def get_olm_peer_state(self, curve25519: str) -> OlmPeerStateRecord | None:
        """One device's Olm bookkeeping."""
        record = self._peers.get(curve25519)
        return None if record is None else _copy(record)

    def save_olm_peer_state(self, record: OlmPeerStateRecord) -> None:
        """Upsert by curve25519."""
        self._peers[record["curve25519"]] = _copy(record)

    def list_unwedge_pending(self) -> list[OlmPeerStateRecord]:
        """Peers awaiting a new session."""
        return [_copy(r) for r in self._peers.values() if r["unwedge_pending"]]
