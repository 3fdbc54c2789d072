"""Machines talking through a homeserver in memory: no network, no mocks of the machine.

:class:`FakeHomeserver` implements just enough of ``/keys/upload``, ``/keys/query``,
``/keys/claim``, ``/sendToDevice`` and the E2EE parts of ``/sync`` for the
machine's requests, with the semantics the spec gives them (one-time keys handed
out once, fallback keys reused and flagged used, to-device inboxes per device,
``device_lists.changed`` for everyone who shares a room with... everyone), plus
``/keys/device_signing/upload`` and ``/keys/signatures/upload`` with Synapse's
checks and the spec's visibility rules for signatures in ``/keys/query``.
:class:`FakeRoom` is a room timeline every device reads (echoes included) for
in-room verification. :class:`Peer` is one device: a machine on a
:class:`MemoryCryptoStore`, with the request loop an engine would run.
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
    DeviceSigningUploadRequest,
    KeysClaimRequest,
    KeysQueryRequest,
    KeysUploadRequest,
    OutgoingRequest,
    RoomMessageRequest,
    SignatureUploadRequest,
    ToDeviceRequest,
)
from tui_client.crypto.signing import verify_signed_json
from tui_client.crypto.trust import TrustPolicy
from tui_client.crypto.types import (
    DecryptedEvent,
    DecryptionFailure,
    EncryptionSettings,
    MachineConfig,
    RequestOutcome,
    SyncChanges,
)

__all__ = ["FakeClock", "FakeHomeserver", "FakeRoom", "Peer", "RawDevice", "ServerError"]

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
    #: ``{user_id: {"master" | "self_signing" | "user_signing": key object}}``.
    cross_signing: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    signature_uploads: list[dict[str, Any]] = field(default_factory=list)

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

    def handle(
        self,
        user_id: str,
        device_id: str,
        request: OutgoingRequest | DeviceSigningUploadRequest,
    ) -> dict[str, Any]:
        """Answer a request made by ``user_id``/``device_id``."""
        if isinstance(request, KeysUploadRequest):
            return self._upload(user_id, device_id, request.body)
        if isinstance(request, KeysQueryRequest):
            return self._query(request.body, user_id)
        if isinstance(request, KeysClaimRequest):
            return self._claim(request.body)
        if isinstance(request, DeviceSigningUploadRequest):
            return self.device_signing_upload(user_id, request.body)
        if isinstance(request, SignatureUploadRequest):
            return self.signatures_upload(user_id, request.body)
        assert isinstance(request, ToDeviceRequest)
        return self._send_to_device(user_id, device_id, request)

    # -- cross-signing, with Synapse's checks and the spec's visibility rules ----------

    @staticmethod
    def _public(obj: Mapping[str, Any]) -> str:
        [key] = obj["keys"].values()
        return str(key)

    def device_signing_upload(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``/keys/device_signing/upload`` (authentication is not modelled)."""
        backend = load_backend("olm")
        keys = dict(self.cross_signing.get(user_id, {}))
        if "master_key" in body:
            keys["master"] = json_copy(body["master_key"])
        master = keys.get("master")
        if master is None:
            raise ServerError("M_MISSING_PARAM: no master key")
        master_public = self._public(master)
        for field_name, usage in (
            ("self_signing_key", "self_signing"),
            ("user_signing_key", "user_signing"),
        ):
            if field_name not in body:
                continue
            key = json_copy(body[field_name])
            if not verify_signed_json(
                backend, key, user_id, f"ed25519:{master_public}", master_public
            ):
                raise ServerError("M_INVALID_SIGNATURE")
            keys[usage] = key
        for key in keys.values():
            if self._public(key) in self.devices[user_id]:
                raise ServerError("M_FORBIDDEN: key ID in use")
        self.cross_signing[user_id] = keys
        self.notify_changed(user_id)
        return {}

    def signatures_upload(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``/keys/signatures/upload``: each signature checked, as Synapse does.

        A user may sign their own devices with their self-signing key, their own master
        key with one of their devices, and other users' master keys with their
        user-signing key; anything else, or a bad signature, is a failure.
        """
        backend = load_backend("olm")
        self.signature_uploads.append(json_copy(dict(body)))
        failures: dict[str, dict[str, Any]] = {}
        own = self.cross_signing.get(user_id, {})
        own_devices = self.device_keys.get(user_id, {})
        for target, by_key in body.items():
            for key_id, signed in by_key.items():
                stored = self.device_keys.get(target, {}).get(key_id)
                is_master = False
                if stored is None:
                    master = self.cross_signing.get(target, {}).get("master")
                    if master is not None and self._public(master) == key_id:
                        stored, is_master = master, True
                if stored is None:
                    failures.setdefault(target, {})[key_id] = {"errcode": "M_NOT_FOUND"}
                    continue
                strip = ("signatures", "unsigned")
                if {k: v for k, v in signed.items() if k not in strip} != {
                    k: v for k, v in stored.items() if k not in strip
                }:
                    failures.setdefault(target, {})[key_id] = {"errcode": "M_INVALID_SIGNATURE"}
                    continue
                for signer_key_id, signature in (
                    signed.get("signatures", {}).get(user_id, {}).items()
                ):
                    name = signer_key_id.partition(":")[2]
                    public: str | None = None
                    if name in own_devices and target == user_id and is_master:
                        public = own_devices[name]["keys"][f"ed25519:{name}"]
                    elif (
                        "self_signing" in own
                        and name == self._public(own["self_signing"])
                        and target == user_id
                        and not is_master
                    ) or (
                        "user_signing" in own
                        and name == self._public(own["user_signing"])
                        and target != user_id
                        and is_master
                    ):
                        public = name
                    if public is None or not verify_signed_json(
                        backend, signed, user_id, signer_key_id, public
                    ):
                        failures.setdefault(target, {})[key_id] = {"errcode": "M_INVALID_SIGNATURE"}
                        continue
                    stored.setdefault("signatures", {}).setdefault(user_id, {})[signer_key_id] = (
                        signature
                    )
                self.notify_changed(target)
        return {"failures": failures} if failures else {}

    def _upload(self, user_id: str, device_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (user_id, device_id)
        if "device_keys" in body:
            keys = body["device_keys"]
            if keys["user_id"] != user_id or keys["device_id"] != device_id:
                raise ServerError("device keys for another device")
            self.device_keys[user_id][device_id] = json_copy(keys)
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

    def _query(self, body: Mapping[str, Any], requester: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        sections: dict[str, dict[str, Any]] = {
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }
        for user_id in body["device_keys"]:
            result[user_id] = {
                d: {**json_copy(keys), "unsigned": {"device_display_name": f"{d} name"}}
                for d, keys in self.device_keys.get(user_id, {}).items()
            }
            keys = self.cross_signing.get(user_id, {})
            if "master" in keys:
                master = json_copy(keys["master"])
                # Signatures by other users (their user-signing keys) only show to them.
                master["signatures"] = {
                    signer: sigs
                    for signer, sigs in master.get("signatures", {}).items()
                    if signer in (user_id, requester)
                }
                sections["master_keys"][user_id] = master
            if "self_signing" in keys:
                sections["self_signing_keys"][user_id] = json_copy(keys["self_signing"])
            if "user_signing" in keys and user_id == requester:
                sections["user_signing_keys"][user_id] = json_copy(keys["user_signing"])
        answer: dict[str, Any] = {"device_keys": result, "failures": {}}
        answer.update({name: value for name, value in sections.items() if value})
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


def json_copy(value: Any) -> Any:
    """A deep copy through JSON (what a server stores is never the client's object)."""
    import json

    return json.loads(json.dumps(value))


class FakeRoom:
    """A room's timeline in memory: every member device sees every event, echoes included."""

    def __init__(self, room_id: str, clock: FakeClock) -> None:
        self.room_id = room_id
        self.clock = clock
        self.timeline: list[dict[str, Any]] = []
        self._read: dict[tuple[str, str], int] = {}

    def send(self, sender: str, request: RoomMessageRequest) -> dict[str, Any]:
        """``PUT /rooms/{room}/send/...``: store the event, return its ID (idempotent per txn)."""
        for event in self.timeline:
            if event["sender"] == sender and event["unsigned"].get("transaction_id") == (
                request.request_id
            ):
                return {"event_id": event["event_id"]}
        event = {
            "type": request.event_type,
            "sender": sender,
            "event_id": f"$room{next(_event_ids)}",
            "origin_server_ts": self.clock(),
            "room_id": self.room_id,
            "content": json_copy(request.content),
            "unsigned": {"transaction_id": request.request_id},
        }
        self.timeline.append(event)
        return {"event_id": event["event_id"]}

    def inject(self, event: dict[str, Any]) -> None:
        """Put a raw event in the timeline (forgeries, other clients)."""
        event.setdefault("event_id", f"$room{next(_event_ids)}")
        event.setdefault("origin_server_ts", self.clock())
        event.setdefault("unsigned", {})
        self.timeline.append(event)

    def new_events(self, user_id: str, device_id: str) -> list[dict[str, Any]]:
        """What a device has not seen yet (the transaction ID only on the sender's echo)."""
        start = self._read.get((user_id, device_id), 0)
        self._read[(user_id, device_id)] = len(self.timeline)
        events = []
        for event in self.timeline[start:]:
            copy = json_copy(event)
            if copy["sender"] != user_id:
                copy["unsigned"].pop("transaction_id", None)
            events.append(copy)
        return events


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
        #: Every ``SyncChanges`` this device got.
        self.history: list[SyncChanges] = []

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

    def send_room_messages(self, room: FakeRoom) -> list[RequestOutcome]:
        """Send the machine's room messages for ``room`` (the engine would encrypt them)."""
        outcomes = []
        for request in self.machine.outgoing_room_messages():
            if request.room_id != room.room_id:
                continue
            answer = room.send(self.user_id, request)
            outcomes.append(self.machine.mark_request_as_sent(request.request_id, answer))
        return outcomes

    def read_room(self, room: FakeRoom) -> list[Any]:
        """Feed the room's new events to the machine; the verification flows they changed."""
        changed = []
        for event in room.new_events(self.user_id, self.device_id):
            changed.extend(self.machine.receive_room_verification_event(room.room_id, event))
        return changed

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
        self.history.append(changes)
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
