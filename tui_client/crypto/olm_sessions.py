"""Olm sessions: the 1:1 encrypted channels to other devices. Decrypting to-device
messages (with the spec's checks on the payload), encrypting for one device,
claiming one-time keys to create sessions (``/keys/claim``), and recovering wedged
sessions (a new session and an ``m.dummy``, at most once an hour per device).

State: a cache of unpickled sessions (checked against the stored pickle on every
use), the claims in flight and when a device whose claim failed may be tried
again. Sessions and the per-device recovery state are in the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .account_keys import AccountKeys
from .backend import (
    BackendError,
    OlmDecryptionError,
    OlmMessage,
    OlmSession,
    SessionCreationError,
)
from .devices import DeviceTracker
from .encoding import is_curve25519_key, is_ed25519_key
from .machine_core import (
    SIGNED_CURVE25519,
    MachineCore,
    MachinePart,
    Rejected,
    compact,
    new_id,
)
from .requests import (
    KeysClaimRequest,
    ToDeviceKind,
)
from .signing import verify_signed_json
from .store_api import (
    DeviceRecord,
    OlmPeerStateRecord,
    OlmSessionRecord,
)
from .types import (
    OLM_ALGORITHM,
    DeviceTrust,
    RequestOutcome,
)

__all__ = ["OlmPayload", "OlmSessions"]

log = logging.getLogger(__name__)


class OlmPayload(NamedTuple):
    """A decrypted, checked to-device payload and who sent it."""

    type: str
    content: dict[str, Any]
    sender_key: str
    sender_ed25519: str
    #: The sending device, when we know it (its Ed25519 key matched the payload's).
    device: DeviceRecord | None


class OlmSessions(MachinePart):
    """Olm sessions with other devices, and the claims that create them."""

    def __init__(self, core: MachineCore, keys: AccountKeys, devices: DeviceTracker) -> None:
        super().__init__(core)
        self._keys = keys
        self._devices = devices
        self._identity = keys.identity
        self._device_keys = keys.signed_device_keys
        self._olm_cache: dict[tuple[str, str], tuple[str, OlmSession]] = {}
        self._claims_in_flight: dict[str, tuple[KeysClaimRequest, set[tuple[str, str]]]] = {}
        self._unwedge_claim: KeysClaimRequest | None = None
        self._claim_retry_at: dict[str, int] = {}

    def decrypt_event(self, sender: str, content: Mapping[str, Any]) -> OlmPayload:
        """Decrypt an Olm ``m.room.encrypted`` to-device event; raises :class:`Rejected`."""
        if content.get("algorithm") != OLM_ALGORITHM:
            raise Rejected("unsupported to-device encryption algorithm")
        sender_key = content.get("sender_key")
        ciphertext = content.get("ciphertext")
        if not is_curve25519_key(sender_key) or not isinstance(ciphertext, Mapping):
            raise Rejected("malformed Olm event")
        assert isinstance(sender_key, str)
        if sender_key == self._identity.curve25519:
            raise Rejected("Olm message claims to come from this device")
        ours = ciphertext.get(self._identity.curve25519)
        if not isinstance(ours, Mapping):
            raise Rejected("Olm message not encrypted for this device")
        message_type = ours.get("type")
        body = ours.get("body")
        if (
            message_type not in (0, 1)
            or isinstance(message_type, bool)
            or not isinstance(body, str)
        ):
            raise Rejected("malformed Olm ciphertext")
        plaintext = self._decrypt(sender, sender_key, OlmMessage(int(message_type), body))
        payload = json.loads(plaintext)
        if not isinstance(payload, dict):
            raise Rejected("Olm payload is not an object")
        claimed_ed25519, device = self._check_olm_payload(sender, sender_key, payload)
        return OlmPayload(payload["type"], payload["content"], sender_key, claimed_ed25519, device)

    def claim_in_flight(self, request_id: str) -> bool:
        return request_id in self._claims_in_flight

    def mark_sent(self, request_id: str, response: Mapping[str, Any]) -> RequestOutcome | None:
        """Create sessions from a claim's answer; ``None`` if the request is not ours."""
        claim = self._claims_in_flight.pop(request_id, None)
        if claim is None:
            return None
        return self._claim_done(claim[1], response)

    def mark_failed(self, request_id: str, *, permanent: bool = False) -> bool:
        """A claim failed. ``False``: not ours.

        Refused for good (``permanent``): its devices wait ``claim_retry_ms``. Lost on
        the way (the network, a 5xx): they may be claimed again at once. Holding them
        back then would let the room key be shared without them (``m.no_olm``) for
        minutes, and every message meanwhile be unreadable on those devices (issue 19).
        """
        claim = self._claims_in_flight.pop(request_id, None)
        if claim is None:
            return False
        if not permanent:
            return True
        retry_at = self._clock() + self._config.claim_retry_ms
        for user_id, device_id in claim[1]:
            device = self._store.get_device(user_id, device_id)
            if device is not None:
                self._claim_retry_at[device["curve25519"]] = retry_at
        return True

    def _olm_session(self, record: OlmSessionRecord) -> OlmSession:
        key = (record["sender_key"], record["session_id"])
        cached = self._olm_cache.get(key)
        if cached is not None and cached[0] == record["pickle"]:
            return cached[1]
        session = self._backend.session_from_pickle(record["pickle"], self._pickle_key)
        self._core.remember(self._olm_cache, key, (record["pickle"], session))
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
        self._core.remember(self._olm_cache, (sender_key, session.session_id), (pickle, session))
        return record

    @staticmethod
    def _usage_stamp(records: list[OlmSessionRecord], now: int) -> int:
        """``now``, or just after the latest use of a session with the device.

        The preferred session is the most recently used one; a stamp that never
        ties with another session of the device keeps that order exact.
        """
        latest = max((max(r["last_used_ms"], r["created_ms"]) for r in records), default=now - 1)
        return max(now, latest + 1)

    def _decrypt(self, sender: str, sender_key: str, message: OlmMessage) -> str:
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
                        raise Rejected(f"pre-key message did not decrypt: {exc}") from exc
                    self._save_olm_session(
                        session, sender_key, created_ms=record["created_ms"], last_used_ms=now
                    )
                    return plaintext
            account_record, account = self._keys.account()
            try:
                session, plaintext = account.create_inbound_session(sender_key, message.body)
            except SessionCreationError as exc:
                self.mark_wedged(sender, sender_key)
                raise Rejected(f"no session for pre-key message: {exc}") from exc
            self._keys.save_account(account_record, account)
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
        self.mark_wedged(sender, sender_key)
        raise Rejected("Olm message did not decrypt with any session (wedged)")

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
            raise Rejected("Olm payload sender does not match the event sender")
        if payload.get("recipient") != self._user_id:
            raise Rejected("Olm payload is addressed to another user")
        recipient_keys = payload.get("recipient_keys")
        if (
            not isinstance(recipient_keys, Mapping)
            or recipient_keys.get("ed25519") != self._identity.ed25519
        ):
            raise Rejected("Olm payload is addressed to another device")
        keys = payload.get("keys")
        claimed = keys.get("ed25519") if isinstance(keys, Mapping) else None
        if not is_ed25519_key(claimed):
            raise Rejected("Olm payload has no sender Ed25519 key")
        assert isinstance(claimed, str)
        if not isinstance(payload.get("type"), str) or not isinstance(payload.get("content"), dict):
            raise Rejected("Olm payload has no type or content")
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
            raise Rejected("Olm payload Ed25519 key does not match the sending device")
        sender_device_keys = payload.get("sender_device_keys")
        if sender_device_keys is not None:
            self._check_sender_device_keys(sender, sender_key, claimed, sender_device_keys)
        return claimed, device

    def _check_sender_device_keys(
        self, sender: str, sender_key: str, claimed: str, device_keys: object
    ) -> None:
        if not isinstance(device_keys, Mapping) or device_keys.get("user_id") != sender:
            raise Rejected("sender_device_keys belong to another user")
        device_id = device_keys.get("device_id")
        keys = device_keys.get("keys")
        if not isinstance(device_id, str) or not isinstance(keys, Mapping):
            raise Rejected("malformed sender_device_keys")
        if keys.get(f"curve25519:{device_id}") != sender_key:
            raise Rejected("sender_device_keys Curve25519 key does not match the sender key")
        if keys.get(f"ed25519:{device_id}") != claimed:
            raise Rejected("sender_device_keys Ed25519 key does not match the payload keys")
        if not verify_signed_json(
            self._backend, device_keys, sender, f"ed25519:{device_id}", claimed
        ):
            raise Rejected("sender_device_keys signature does not verify")

    def peer_state(self, curve25519: str, user_id: str, device_id: str) -> OlmPeerStateRecord:
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

    def mark_wedged(self, sender: str, sender_key: str) -> None:
        """Plan a new session + ``m.dummy`` to a device we failed to decrypt from (≤ 1/hour)."""
        device = self._devices.device_by_curve_key(sender, sender_key)
        if device is None:
            # A key can only be claimed for a known device: learn the sender's devices;
            # the claim waits until the device shows up (device_id "" until then).
            self._devices.update_tracked_users([sender])
            self._devices.mark_outdated(sender)
        state = self.peer_state(sender_key, sender, "" if device is None else device["device_id"])
        if state["unwedge_pending"]:
            return
        last = state["last_new_session_ms"]
        if last and self._clock() - last < self._config.unwedge_interval_ms:
            log.info("wedged session with a device of %s: recovery rate-limited", sender)
            return
        self._store.save_olm_peer_state({**state, "unwedge_pending": True})

    def _unwedge_targets(self) -> list[DeviceRecord]:
        """Devices awaiting a new session (once their device is known)."""
        targets = []
        for state in self._store.list_unwedge_pending():
            device = self._devices.device_by_curve_key(state["user_id"], state["curve25519"])
            if device is not None and self.claimable(
                device["curve25519"], device["user_id"], device["device_id"]
            ):
                targets.append(device)
        return targets

    def _session_established(self, curve25519: str) -> None:
        state = self._store.get_olm_peer_state(curve25519)
        if state is not None and state["no_olm_sent"]:
            self._store.save_olm_peer_state({**state, "no_olm_sent": False})

    def unwedge_claim_request(self) -> KeysClaimRequest | None:
        current = self._unwedge_claim
        if current is not None and current.request_id in self._claims_in_flight:
            return current
        wanted: dict[str, dict[str, str]] = {}
        for device in self._unwedge_targets():
            wanted.setdefault(device["user_id"], {})[device["device_id"]] = SIGNED_CURVE25519
        self._unwedge_claim = self.claim_request(wanted)
        return self._unwedge_claim

    def claimable(self, curve25519: str, user_id: str, device_id: str) -> bool:
        if self._claim_retry_at.get(curve25519, 0) > self._clock():
            return False
        return not self.claiming(user_id, device_id)

    def claiming(self, user_id: str, device_id: str) -> bool:
        """Whether a ``/keys/claim`` for this device is in flight (its answer may yet
        bring the Olm session)."""
        return any(
            (user_id, device_id) in devices for _, devices in self._claims_in_flight.values()
        )

    def claims_awaited(self, users: Iterable[str]) -> list[str]:
        """The request IDs of the claims in flight for a device of ``users`` (made by
        another caller: a second room encrypting at once, the unwedging or secret claims).

        :meth:`get_missing_sessions` leaves such a device out (it is being claimed); a
        room key shared before the claim's answer would go without it. Wait for these
        to be marked sent or failed first (issue 19).
        """
        wanted = {(d["user_id"], d["device_id"]) for d in self._devices.sendable_devices(users)}
        return [
            request_id
            for request_id, (_, devices) in self._claims_in_flight.items()
            if devices & wanted
        ]

    def claim_request(self, wanted: dict[str, dict[str, str]]) -> KeysClaimRequest | None:
        if not wanted:
            return None
        request = KeysClaimRequest(
            request_id=new_id(),
            one_time_keys=wanted,
            body={"one_time_keys": wanted, "timeout": self._config.federation_timeout_ms},
        )
        devices = {(u, d) for u, ds in wanted.items() for d in ds}
        self._claims_in_flight[request.request_id] = (request, devices)
        return request

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
            state = self.peer_state(device["curve25519"], user_id, device_id)
            if state["unwedge_pending"]:
                encrypted = self.encrypt(device, "m.dummy", {}, using=(new_record, session))
                if encrypted is not None:
                    self._core.queue_to_device(
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
        _, account = self._keys.account()
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

    def preferred_session(self, curve25519: str) -> tuple[OlmSessionRecord, OlmSession] | None:
        records = self._store.get_olm_sessions(curve25519)
        if not records:
            return None
        record = max(records, key=lambda r: (r["last_used_ms"], r["created_ms"]))
        return record, self._olm_session(record)

    def _olm_payload(
        self, device: DeviceRecord, event_type: str, content: Mapping[str, Any]
    ) -> str:
        return compact(
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

    def encrypt(
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
        found = using or self.preferred_session(device["curve25519"])
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
        return self.encrypt(device, event_type, content)

    def get_missing_sessions(self, users: Iterable[str]) -> KeysClaimRequest | None:
        """A ``/keys/claim`` for the devices of ``users`` we have no Olm session with.

        ``None`` if there is nothing to claim (or every such device is already
        being claimed, or was claimed in vain recently). Blocked devices are skipped.
        """
        wanted: dict[str, dict[str, str]] = {}
        for device in self._devices.sendable_devices(users):
            if self._devices.trust(device) is DeviceTrust.BLOCKED:
                continue
            curve = device["curve25519"]
            if not self.claimable(curve, device["user_id"], device["device_id"]):
                continue
            state = self._store.get_olm_peer_state(curve)
            wedged = state is not None and state["unwedge_pending"]
            if not wedged and self._store.get_olm_sessions(curve):
                continue
            wanted.setdefault(device["user_id"], {})[device["device_id"]] = SIGNED_CURVE25519
        for device in self._unwedge_targets():
            wanted.setdefault(device["user_id"], {})[device["device_id"]] = SIGNED_CURVE25519
        return self.claim_request(wanted)
