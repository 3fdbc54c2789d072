"""Machines talking through a homeserver in memory: no network, no mocks of the machine.

:class:`FakeHomeserver` implements just enough of ``/keys/upload``, ``/keys/query``,
``/keys/claim``, ``/sendToDevice`` and the E2EE parts of ``/sync`` for the
machine's requests, with the semantics the spec gives them (one-time keys handed
out once, fallback keys reused and flagged used, to-device inboxes per device,
``device_lists.changed`` for everyone who shares a room with... everyone).
:class:`Peer` is one device: a machine on a :class:`MemoryCryptoStore`, with the
request loop an engine would run.
"""

from __future__ import annotations

import itertools
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tui_client.crypto import load_backend
from tui_client.crypto.machine import OlmMachine
from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.requests import (
    KeysClaimRequest,
    KeysQueryRequest,
    KeysUploadRequest,
    OutgoingRequest,
    ToDeviceRequest,
)
from tui_client.crypto.trust import TrustPolicy
from tui_client.crypto.types import (
    DecryptedEvent,
    DecryptionFailure,
    EncryptionSettings,
    MachineConfig,
    RequestOutcome,
    SyncChanges,
)

__all__ = ["FakeClock", "FakeHomeserver", "Peer", "RawDevice", "ServerError"]

_event_ids = itertools.count(1)


class ServerError(RuntimeError):
    """What the fake server answers with an error status."""


class FakeClock:
    """Milliseconds that only move when a test says so."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        """Move time forward."""
        self.now += ms


@dataclass
class Delivery:
    """One to-device message the server accepted."""

    sender: str
    sender_device: str
    event_type: str
    user_id: str
    device_id: str
    content: dict[str, Any]


@dataclass
class FakeHomeserver:
    """The E2EE endpoints of a homeserver, in memory."""

    device_keys: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    one_time_keys: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    fallback_keys: dict[tuple[str, str], tuple[str, dict[str, Any], bool]] = field(
        default_factory=dict
    )
    inbox: dict[tuple[str, str], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    changed: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    devices: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    deliveries: list[Delivery] = field(default_factory=list)
    seen_txns: set[tuple[str, str, str]] = field(default_factory=set)
    cross_signing: dict[str, dict[str, Any]] = field(default_factory=dict)

    def register(self, user_id: str, device_id: str) -> None:
        """A login: the device exists (without keys until it uploads them)."""
        if device_id not in self.devices[user_id]:
            self.devices[user_id].append(device_id)

    def all_devices(self) -> list[tuple[str, str]]:
        """Every registered device."""
        return [(u, d) for u, ds in self.devices.items() for d in ds]

    def notify_changed(self, user_id: str) -> None:
        """Put ``user_id`` in everyone's ``device_lists.changed``."""
        for key in self.all_devices():
            self.changed[key].add(user_id)

    def delete_device(self, user_id: str, device_id: str) -> None:
        """A logout: the device and its keys vanish."""
        self.devices[user_id].remove(device_id)
        self.device_keys[user_id].pop(device_id, None)
        self.one_time_keys.pop((user_id, device_id), None)
        self.fallback_keys.pop((user_id, device_id), None)
        self.notify_changed(user_id)

    def deliver(self, user_id: str, device_id: str, event: dict[str, Any]) -> None:
        """Put a raw event in a device's to-device inbox (forgeries)."""
        self.inbox[(user_id, device_id)].append(event)

    def handle(self, user_id: str, device_id: str, request: OutgoingRequest) -> dict[str, Any]:
        """Answer a request made by ``user_id``/``device_id``."""
        if isinstance(request, KeysUploadRequest):
            return self._upload(user_id, device_id, request.body)
        if isinstance(request, KeysQueryRequest):
            return self._query(request.body)
        if isinstance(request, KeysClaimRequest):
            return self._claim(request.body)
        assert isinstance(request, ToDeviceRequest)
        return self._send_to_device(user_id, device_id, request)

    def _upload(self, user_id: str, device_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (user_id, device_id)
        if "device_keys" in body:
            keys = body["device_keys"]
            if keys["user_id"] != user_id or keys["device_id"] != device_id:
                raise ServerError("device keys for another device")
            self.device_keys[user_id][device_id] = dict(keys)
            self.notify_changed(user_id)
        for key_id, obj in body.get("one_time_keys", {}).items():
            existing = self.one_time_keys[key].get(key_id)
            if existing is not None and existing != obj:
                raise ServerError(f"one-time key {key_id} already exists")
            self.one_time_keys[key][key_id] = obj
        for key_id, obj in body.get("fallback_keys", {}).items():
            self.fallback_keys[key] = (key_id, obj, False)
        return {"one_time_key_counts": self.counts(user_id, device_id)}

    def counts(self, user_id: str, device_id: str) -> dict[str, int]:
        """``device_one_time_keys_count``."""
        return {"signed_curve25519": len(self.one_time_keys[(user_id, device_id)])}

    def unused_fallback(self, user_id: str, device_id: str) -> list[str]:
        """``device_unused_fallback_key_types``."""
        entry = self.fallback_keys.get((user_id, device_id))
        return ["signed_curve25519"] if entry is not None and not entry[2] else []

    def _query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        master: dict[str, Any] = {}
        for user_id in body["device_keys"]:
            result[user_id] = {
                d: {**keys, "unsigned": {"device_display_name": f"{d} name"}}
                for d, keys in self.device_keys.get(user_id, {}).items()
            }
            if user_id in self.cross_signing:
                master[user_id] = self.cross_signing[user_id]
        answer: dict[str, Any] = {"device_keys": result, "failures": {}}
        if master:
            answer["master_keys"] = master
        return answer

    def _claim(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, dict[str, Any]] = {}
        for user_id, devices in body["one_time_keys"].items():
            for device_id, algorithm in devices.items():
                assert algorithm == "signed_curve25519"
                key = (user_id, device_id)
                pool = self.one_time_keys.get(key)
                if pool:
                    key_id = next(iter(pool))
                    result.setdefault(user_id, {})[device_id] = {key_id: pool.pop(key_id)}
                elif key in self.fallback_keys:
                    key_id, obj, _ = self.fallback_keys[key]
                    self.fallback_keys[key] = (key_id, obj, True)
                    result.setdefault(user_id, {})[device_id] = {key_id: obj}
        return {"one_time_keys": result, "failures": {}}

    def _send_to_device(
        self, user_id: str, device_id: str, request: ToDeviceRequest
    ) -> dict[str, Any]:
        txn = (user_id, device_id, request.request_id)
        if txn in self.seen_txns:
            return {}
        self.seen_txns.add(txn)
        for target_user, by_device in request.messages.items():
            for target_device, content in by_device.items():
                targets = self.devices[target_user] if target_device == "*" else [target_device]
                for target in targets:
                    if target not in self.devices[target_user]:
                        continue
                    self.deliveries.append(
                        Delivery(
                            user_id, device_id, request.event_type, target_user, target, content
                        )
                    )
                    self.inbox[(target_user, target)].append(
                        {"type": request.event_type, "sender": user_id, "content": content}
                    )
        return {}

    def sync(self, user_id: str, device_id: str) -> dict[str, Any]:
        """The E2EE parts of a ``/sync`` response (and drain the inbox)."""
        key = (user_id, device_id)
        events = self.inbox.pop(key, [])
        changed = sorted(self.changed.pop(key, set()))
        return {
            "to_device": events,
            "changed": changed,
            "left": [],
            "counts": self.counts(user_id, device_id),
            "unused_fallback": self.unused_fallback(user_id, device_id),
        }


class Peer:
    """One device: a machine plus the request loop an engine runs."""

    def __init__(
        self,
        server: FakeHomeserver,
        user_id: str,
        device_id: str,
        backend: str,
        clock: FakeClock,
        *,
        store: MemoryCryptoStore | None = None,
        pickle_key: bytes | None = None,
        trust_policy: TrustPolicy | None = None,
        config: MachineConfig | None = None,
    ) -> None:
        self.server = server
        self.user_id = user_id
        self.device_id = device_id
        self.backend_name = backend
        self.clock = clock
        self.store = store or MemoryCryptoStore()
        self.pickle_key = pickle_key or secrets.token_bytes(32)
        self.trust_policy = trust_policy
        self.config = config
        server.register(user_id, device_id)
        self.machine = self._new_machine()

    def _new_machine(self) -> OlmMachine:
        return OlmMachine(
            self.user_id,
            self.device_id,
            self.store,
            load_backend(self.backend_name),
            pickle_key=self.pickle_key,
            clock=self.clock,
            trust_policy=self.trust_policy,
            config=self.config,
        )

    def restart(self) -> None:
        """A new machine on the same store (the process restarted)."""
        self.machine = self._new_machine()

    def send(self, request: OutgoingRequest) -> RequestOutcome:
        """Send one request and report the answer."""
        response = self.server.handle(self.user_id, self.device_id, request)
        return self.machine.mark_request_as_sent(request.request_id, response)

    def flush(self, rounds: int = 6) -> list[RequestOutcome]:
        """Send every outgoing request until none is left."""
        outcomes = []
        for _ in range(rounds):
            requests = self.machine.outgoing_requests()
            if not requests:
                break
            for request in requests:
                outcomes.append(self.send(request))
        return outcomes

    def sync(self) -> SyncChanges:
        """Receive what the server has for us, then send what that caused."""
        data = self.server.sync(self.user_id, self.device_id)
        changes = self.machine.receive_sync_changes(
            data["to_device"],
            data["changed"],
            data["left"],
            data["counts"],
            data["unused_fallback"],
        )
        return changes

    def login(self) -> None:
        """Upload keys and learn our own devices."""
        self.flush()
        self.sync()
        self.flush()

    def prepare(self, users: Iterable[str]) -> None:
        """Track ``users``, query their devices, and claim the Olm sessions missing."""
        users = list(users)
        self.machine.update_tracked_users(users)
        self.sync()
        self.flush()
        claim = self.machine.get_missing_sessions(users)
        if claim is not None:
            self.send(claim)
        self.flush()

    def share(
        self, room_id: str, users: Iterable[str], settings: EncryptionSettings | None = None
    ) -> list[ToDeviceRequest]:
        """Prepare and share the room key; returns the to-device requests it sent."""
        users = list(users)
        self.prepare(users)
        requests = self.machine.share_room_key(room_id, users, settings)
        for request in requests:
            self.send(request)
        return requests

    def encrypt(
        self,
        room_id: str,
        users: Iterable[str],
        body: str,
        *,
        settings: EncryptionSettings | None = None,
        event_type: str = "m.room.message",
        content: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Share as needed and encrypt a message: the event as the server would serve it."""
        self.share(room_id, users, settings)
        payload = content if content is not None else {"msgtype": "m.text", "body": body}
        encrypted = self.machine.encrypt_room_event(room_id, event_type, payload)
        return {
            "type": "m.room.encrypted",
            "sender": self.user_id,
            "event_id": f"$event{next(_event_ids)}",
            "origin_server_ts": self.clock(),
            "content": encrypted,
        }

    def decrypt(self, event: Mapping[str, Any], room_id: str) -> DecryptedEvent:
        """Decrypt and insist it worked."""
        result = self.machine.decrypt_room_event(event, room_id)
        assert isinstance(result, DecryptedEvent), result
        return result

    def fail(self, event: Mapping[str, Any], room_id: str) -> DecryptionFailure:
        """Decrypt and insist it failed."""
        result = self.machine.decrypt_room_event(event, room_id)
        assert isinstance(result, DecryptionFailure), result
        return result


class RawDevice:
    """A client built from the bare primitives: it can say anything (for forgery tests).

    It uploads properly self-signed device keys, so machines that query its user
    know it, then encrypts whatever payload a test writes.
    """

    def __init__(self, server: FakeHomeserver, user_id: str, device_id: str, backend: str = "olm"):
        from tui_client.crypto.signing import sign_json

        self.server = server
        self.user_id = user_id
        self.device_id = device_id
        self.backend = load_backend(backend)
        self.account = self.backend.create_account()
        self.keys = self.account.identity_keys
        server.register(user_id, device_id)
        device_keys = sign_json(
            {
                "user_id": user_id,
                "device_id": device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {
                    f"curve25519:{device_id}": self.keys.curve25519,
                    f"ed25519:{device_id}": self.keys.ed25519,
                },
            },
            user_id,
            f"ed25519:{device_id}",
            self.account.sign,
        )
        self.device_keys = device_keys
        server.handle(user_id, device_id, KeysUploadRequest("upload", {"device_keys": device_keys}))
        self.sessions: dict[str, Any] = {}

    def session_to(self, peer: Peer) -> Any:
        """An outbound Olm session to a peer, from a one-time key claimed on the server."""
        curve = peer.machine.identity_keys.curve25519
        if curve not in self.sessions:
            answer = self.server.handle(
                self.user_id,
                self.device_id,
                KeysClaimRequest(
                    "claim",
                    {peer.user_id: {peer.device_id: "signed_curve25519"}},
                    {"one_time_keys": {peer.user_id: {peer.device_id: "signed_curve25519"}}},
                ),
            )
            key_object = next(iter(answer["one_time_keys"][peer.user_id][peer.device_id].values()))
            self.sessions[curve] = self.account.create_outbound_session(curve, key_object["key"])
        return self.sessions[curve]

    def payload(
        self, peer: Peer, event_type: str, content: dict[str, Any], **overrides: Any
    ) -> dict[str, Any]:
        """A well-formed Olm payload for ``peer``; ``overrides`` replace (or with None, drop) fields."""
        payload: dict[str, Any] = {
            "type": event_type,
            "content": content,
            "sender": self.user_id,
            "recipient": peer.user_id,
            "recipient_keys": {"ed25519": peer.machine.identity_keys.ed25519},
            "keys": {"ed25519": self.keys.ed25519},
        }
        for key, value in overrides.items():
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        return payload

    def send_olm(
        self, peer: Peer, payload: dict[str, Any], *, event_sender: str | None = None
    ) -> None:
        """Olm-encrypt ``payload`` to ``peer`` and drop it in its inbox."""
        import json

        message = self.session_to(peer).encrypt(json.dumps(payload))
        self.server.deliver(
            peer.user_id,
            peer.device_id,
            {
                "type": "m.room.encrypted",
                "sender": event_sender or self.user_id,
                "content": {
                    "algorithm": "m.olm.v1.curve25519-aes-sha2",
                    "sender_key": self.keys.curve25519,
                    "ciphertext": {
                        peer.machine.identity_keys.curve25519: {
                            "type": message.message_type,
                            "body": message.body,
                        }
                    },
                },
            },
        )

    def send_plain(self, peer: Peer, event_type: str, content: dict[str, Any]) -> None:
        """An unencrypted to-device event."""
        self.server.deliver(
            peer.user_id,
            peer.device_id,
            {"type": event_type, "sender": self.user_id, "content": content},
        )
