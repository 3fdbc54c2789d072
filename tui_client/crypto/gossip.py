"""Key and secret requests (gossip): asking our own other devices for a room key
(``m.room_key_request``) or a secret (``m.secret.request``), accepting their
answers only from verified devices we asked, and answering theirs.

State: secret requests from our own devices held for an answer (one not yet
verified may become so within ``_SECRET_REQUEST_HOLD_MS``), and the key claim that
opens Olm sessions to answer them. Our own requests are in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .cross_signing import (
    CROSS_SIGNING_SECRET_NAMES,
)
from .devices import DeviceTracker
from .machine_core import (
    BACKUP_SECRET,
    SHAREABLE_SECRETS,
    SIGNED_CURVE25519,
    USAGE_BY_SECRET,
    MachineCore,
    MachinePart,
    Rejected,
    new_id,
)
from .olm_sessions import OlmSessions
from .own_identity import OwnIdentity
from .requests import (
    KeysClaimRequest,
    ToDeviceKind,
)
from .store_api import (
    DeviceRecord,
    KeyRequestRecord,
    PendingToDeviceRecord,
)
from .types import (
    MEGOLM_ALGORITHM,
    DeviceTrust,
    ReceivedSecret,
)

__all__ = ["KeyGossip"]

log = logging.getLogger(__name__)

#: How long a secret request from an own device not (yet) verified is kept for an answer.
_SECRET_REQUEST_HOLD_MS = 600_000
_MAX_HELD_SECRET_REQUESTS = 64


class KeyGossip(MachinePart):
    """Room key and secret requests between our own devices."""

    def __init__(
        self, core: MachineCore, devices: DeviceTracker, olm: OlmSessions, own: OwnIdentity
    ) -> None:
        super().__init__(core)
        self._devices = devices
        self._olm = olm
        self._own = own
        self._incoming_secret_requests: dict[tuple[str, str], tuple[str, int]] = {}
        self._secret_claim: KeysClaimRequest | None = None

    def claim_request(self) -> KeysClaimRequest | None:
        """Answer the held secret requests we can; the claim for devices lacking a session."""
        waiting = self.answer_secret_requests() if self._incoming_secret_requests else []
        if waiting or self._secret_claim is not None:
            return self._secret_claim_request(waiting)
        return None

    def own_device_verified(self) -> None:
        """One of our devices was verified here: ask it for what we lack, answer what it asked."""
        self.request_missing_secrets()
        if self._incoming_secret_requests:
            self.answer_secret_requests()

    def request_sent(self, pending: PendingToDeviceRecord) -> None:
        """A request (or its cancellation) reached the server."""
        kind = pending["kind"]
        meta = pending["meta"]
        if kind in (ToDeviceKind.KEY_REQUEST, ToDeviceKind.SECRET_REQUEST):
            request = self._store.get_key_request(meta["request_id"])
            if request is not None and request["state"] == "unsent":
                self._store.save_key_request({**request, "state": "sent"})
        elif kind == ToDeviceKind.KEY_REQUEST_CANCELLATION:
            self._store.delete_key_request(meta["request_id"])

    def request_failed(self, pending: PendingToDeviceRecord) -> None:
        """A request was refused for good: forget it (a later miss asks again)."""
        if (
            pending["kind"] in (ToDeviceKind.KEY_REQUEST, ToDeviceKind.SECRET_REQUEST)
            and "request_id" in pending["meta"]
        ):
            self._store.delete_key_request(pending["meta"]["request_id"])

    def receive_secret(
        self, sender: str, device: DeviceRecord | None, content: Mapping[str, Any]
    ) -> ReceivedSecret | None:
        if sender != self._user_id:
            raise Rejected("secret from another user")
        if (
            device is None
            or device["deleted"]
            or self._devices.trust(device) is not DeviceTrust.VERIFIED
        ):
            raise Rejected("secret from an unknown or unverified device")
        request_id = content.get("request_id")
        secret = content.get("secret")
        if not isinstance(request_id, str) or not isinstance(secret, str):
            raise Rejected("malformed m.secret.send")
        request = self._store.get_key_request(request_id)
        if (
            request is None
            or request["kind"] != "secret"
            or request["secret_name"] is None
            or device["device_id"] not in request["recipients"]
        ):
            raise Rejected("secret we did not ask that device for")
        if request["state"] == "cancelling":
            raise Rejected("secret request already answered")
        name = request["secret_name"]
        usage = USAGE_BY_SECRET.get(name)
        imported = False
        if usage is not None:
            # A cross-signing key must match our published key; a wrong one leaves the
            # request open for another device's answer.
            if not self._own.import_private_key(usage, secret):
                raise Rejected("the secret does not match our published cross-signing key")
            imported = True
        self._finish_key_request(request)
        return ReceivedSecret(
            name=name,
            secret=secret,
            request_id=request_id,
            sender_device_id=device["device_id"],
            imported=imported,
        )

    def receive_key_request(
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
        if self._devices.trust(requester) is not DeviceTrust.VERIFIED:
            log.info("key request from unverified own device %s ignored", requesting)
            return
        record = self._store.get_inbound_group_session(room_id, session_id)
        if record is None or self._olm.preferred_session(requester["curve25519"]) is None:
            return
        # Rare: unpickled here, not through the inbound part's cache.
        session = self._backend.inbound_group_session_from_pickle(
            record["pickle"], self._pickle_key
        )
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
        encrypted = self._olm.encrypt(requester, "m.forwarded_room_key", forwarded)
        if encrypted is not None:
            self._core.queue_to_device(
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
        if action != "request" or not isinstance(name, str) or name not in SHAREABLE_SECRETS:
            return
        if len(self._incoming_secret_requests) >= _MAX_HELD_SECRET_REQUESTS:
            log.info("too many secret requests held: %s from %s ignored", name, requesting)
            return
        self._incoming_secret_requests[(requesting, request_id)] = (name, self._clock())
        self.answer_secret_requests()

    def _shareable_secret(self, name: str) -> str | None:
        usage = USAGE_BY_SECRET.get(name)
        if usage is not None:
            own = self._cross_signing.published(self._user_id)
            signer = self._own.matching_private_key(usage, own)
            return None if signer is None else self._own.get_secret(name)
        if name == BACKUP_SECRET:
            return self._own.get_secret(name)
        return None

    def answer_secret_requests(self) -> list[tuple[str, str]]:
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
            if requester is None or self._devices.trust(requester) is not DeviceTrust.VERIFIED:
                if now - received_ms >= _SECRET_REQUEST_HOLD_MS:
                    log.info("secret request from unverified own device %s dropped", device_id)
                    del self._incoming_secret_requests[key]
                continue
            encrypted = self._olm.encrypt(
                requester, "m.secret.send", {"request_id": request_id, "secret": secret}
            )
            if encrypted is None:
                waiting.append((self._user_id, device_id))
                continue
            del self._incoming_secret_requests[key]
            self._core.queue_to_device(
                "m.room.encrypted",
                {self._user_id: {device_id: encrypted}},
                ToDeviceKind.SECRET_SEND,
                {"request_id": request_id},
            )
        return waiting

    def _secret_claim_request(self, waiting: list[tuple[str, str]]) -> KeysClaimRequest | None:
        current = self._secret_claim
        if current is not None and self._olm.claim_in_flight(current.request_id):
            return current
        wanted: dict[str, dict[str, str]] = {}
        for user_id, device_id in waiting:
            device = self._store.get_device(user_id, device_id)
            if device is not None and self._olm.claimable(device["curve25519"], user_id, device_id):
                wanted.setdefault(user_id, {})[device_id] = SIGNED_CURVE25519
        self._secret_claim = self._olm.claim_request(wanted)
        return self._secret_claim

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
        devices = self._devices.own_other_devices()
        if not devices:
            return False
        request_id = new_id()
        body: dict[str, Any] = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": session_id,
        }
        if sender_key is not None:
            body["sender_key"] = sender_key
        self._ask(
            devices,
            request_id,
            {"action": "request", "body": body},
            room_id=room_id,
            session_id=session_id,
        )
        return True

    def request_secret(self, name: str) -> str | None:
        """Ask our own other devices for a secret (``m.secret.request``); the request ID.

        The answer comes back in ``SyncChanges.secrets``, only from a verified own
        device that was asked. ``None`` if we have no other device.
        """
        devices = self._devices.own_other_devices()
        if not devices:
            return None
        request_id = new_id()
        self._ask(devices, request_id, {"name": name, "action": "request"}, secret_name=name)
        return request_id

    def _ask(
        self,
        devices: list[DeviceRecord],
        request_id: str,
        content: dict[str, Any],
        *,
        room_id: str | None = None,
        session_id: str | None = None,
        secret_name: str | None = None,
    ) -> None:
        """Keep a request for a room key (``room_id``, ``session_id``) or a secret
        (``secret_name``), and queue ``content`` to each of our ``devices`` as its event."""
        kind = "room_key" if secret_name is None else "secret"
        self._store.save_key_request(
            KeyRequestRecord(
                request_id=request_id,
                kind=kind,
                room_id=room_id,
                session_id=session_id,
                secret_name=secret_name,
                recipients=[d["device_id"] for d in devices],
                state="unsent",
                created_ms=self._clock(),
            )
        )
        content = {**content, "request_id": request_id, "requesting_device_id": self._device_id}
        self._core.queue_to_device(
            "m.room_key_request" if kind == "room_key" else "m.secret.request",
            {self._user_id: {d["device_id"]: content for d in devices}},
            ToDeviceKind.KEY_REQUEST if kind == "room_key" else ToDeviceKind.SECRET_REQUEST,
            {"request_id": request_id},
        )

    def key_arrived(self, room_id: str, session_id: str) -> None:
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
        self._core.queue_to_device(
            event_type,
            {self._user_id: {d: content for d in request["recipients"]}},
            ToDeviceKind.KEY_REQUEST_CANCELLATION,
            {"request_id": request["request_id"]},
        )

    def request_missing_secrets(self) -> list[str]:
        """Ask our other devices for the cross-signing keys and the backup key we lack."""
        own = self._cross_signing.published(self._user_id)
        wanted = []
        if own is not None:
            wanted = [
                name
                for usage, name in CROSS_SIGNING_SECRET_NAMES.items()
                if self._own.matching_private_key(usage, own) is None
            ]
        if self._own.get_secret(BACKUP_SECRET) is None:
            wanted.append(BACKUP_SECRET)
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
