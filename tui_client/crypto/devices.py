"""Identities and device tracking: whose devices we follow, the ``/keys/query`` that
fetches them, the checks on what it returns, cross-signing identities (pinned,
verified, changed) and the trust verdict on each device.

State: the query in flight, the dirty generation of each tracked user (a change
that arrives while a query is in flight keeps the user outdated), and when each
failing server may be asked again. The tracked users and devices are in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from tui_client.protocol.canonical_json import CanonicalJsonError, canonical_json

from .backend import (
    IdentityKeys,
)
from .cross_signing import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    PublishedIdentity,
    UserIdentity,
    new_identity_record,
    parse_cross_signing_key,
    published_public_keys,
)
from .encoding import is_curve25519_key, is_ed25519_key
from .machine_core import (
    MachineCore,
    MachinePart,
    new_id,
    server_name,
)
from .requests import (
    KeysQueryRequest,
)
from .signing import verify_signed_json
from .store_api import (
    DeviceRecord,
    UserIdentityRecord,
)
from .trust import LocalTrustPolicy, TrustPolicy
from .types import (
    OLM_ALGORITHM,
    Device,
    DeviceTrust,
    DeviceWarning,
    IdentityChange,
    LocalTrust,
    RequestOutcome,
    WarningKind,
)

__all__ = ["DeviceTracker"]

log = logging.getLogger(__name__)

_DEVICE_VERIFIED = DeviceTrust.VERIFIED
_DEVICE_UNVERIFIED = DeviceTrust.UNVERIFIED
_LOCAL_TRUST = {
    LocalTrust.VERIFIED.value: DeviceTrust.VERIFIED,
    LocalTrust.BLOCKED.value: DeviceTrust.BLOCKED,
}


class DeviceTracker(MachinePart):
    """The devices and identities of tracked users, and the trust we give them."""

    def __init__(
        self, core: MachineCore, identity: IdentityKeys, trust_policy: TrustPolicy | None = None
    ) -> None:
        super().__init__(core)
        self._identity = identity
        self._trust_policy: TrustPolicy = trust_policy or self._cross_signing
        self._local_trust_only = type(self._trust_policy) is LocalTrustPolicy
        self._cross_signing_trust = self._trust_policy is self._cross_signing
        self._query_in_flight: tuple[KeysQueryRequest, dict[str, int]] | None = None
        self._dirty_generation: dict[str, int] = {}
        self._query_retry_at: dict[str, int] = {}
        if self._store.get_tracked_user(self._user_id) is None:
            self.update_tracked_users([self._user_id])

    def receive_device_lists(self, changed: Iterable[str], left: Iterable[str]) -> None:
        """Sync's ``device_lists``: changed users are queried again, users we no longer
        share a room with are forgotten (never ourselves)."""
        for user_id in changed:
            if isinstance(user_id, str):
                self.mark_outdated(user_id)
        for user_id in left:
            if isinstance(user_id, str) and user_id != self._user_id:
                self._store.delete_tracked_user(user_id)
                self._dirty_generation.pop(user_id, None)

    def mark_sent(self, request_id: str, response: Mapping[str, Any]) -> RequestOutcome | None:
        """Apply the answer to our query; ``None`` if the request is not ours."""
        query = self._query_in_flight
        if query is None or query[0].request_id != request_id:
            return None
        self._query_in_flight = None
        return self._query_done(query[0], query[1], response)

    def mark_failed(self, request_id: str) -> bool:
        """The query failed: the users stay outdated and are queried again. ``False``: not ours."""
        if self._query_in_flight is None or self._query_in_flight[0].request_id != request_id:
            return False
        self._query_in_flight = None
        return True

    def trust(self, record: DeviceRecord) -> DeviceTrust:
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
        if self._core.is_own_device(device.user_id, device.device_id):
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
        return True

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
            self.mark_outdated(user_id)

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

    def mark_outdated(self, user_id: str) -> None:
        tracked = self._store.get_tracked_user(user_id)
        if tracked is None:
            return
        if not tracked["dirty"]:
            self._store.save_tracked_user({"user_id": user_id, "dirty": True})
        self._bump(user_id)

    def query_request(self) -> KeysQueryRequest | None:
        if self._query_in_flight is not None:
            return self._query_in_flight[0]
        now = self._clock()
        users = sorted(
            r["user_id"]
            for r in self._store.get_tracked_users()
            if r["dirty"] and self._query_retry_at.get(server_name(r["user_id"]), 0) <= now
        )
        if not users:
            return None
        request = KeysQueryRequest(
            request_id=new_id(),
            users=tuple(users),
            body={
                "device_keys": {u: [] for u in users},
                "timeout": self._config.federation_timeout_ms,
            },
        )
        self._query_in_flight = (request, {u: self._dirty_generation.get(u, 0) for u in users})
        return request

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
            if server_name(user_id) in failed_servers:
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
            if self._core.is_own_device(user_id, device_id) and (
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

    def device_by_curve_key(self, user_id: str, curve25519: str) -> DeviceRecord | None:
        for device in self._store.get_devices_by_curve_key(curve25519):
            if device["user_id"] == user_id and not device["deleted"]:
                return device
        return None

    def sendable_devices(self, users: Iterable[str]) -> list[DeviceRecord]:
        devices: list[DeviceRecord] = []
        for user_id in dict.fromkeys(users):
            for device in self._store.get_user_devices(user_id):
                if device["deleted"] or self._core.is_own_device(user_id, device["device_id"]):
                    continue
                if OLM_ALGORITHM not in device["algorithms"]:
                    continue
                devices.append(device)
        return devices

    def own_other_devices(self) -> list[DeviceRecord]:
        return [
            d
            for d in self._store.get_user_devices(self._user_id)
            if not d["deleted"] and d["device_id"] != self._device_id
        ]
