"""Each part of the crypto machine built alone, on a store in memory, without OlmMachine.

The parts (``crypto/account_keys.py``, ``devices.py``, ``olm_sessions.py``,
``megolm_outbound.py``, ``megolm_inbound.py``, ``gossip.py``, ``own_identity.py``)
take only the parts they use; these tests wire the fewest needed for each concern
and check what each owns. The whole machine's behaviour is covered by the other
tests in this directory.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tui_client.crypto import CryptoBackend
from tui_client.crypto.account_keys import AccountKeys
from tui_client.crypto.cross_signing import OwnKeysNotQueried
from tui_client.crypto.devices import DeviceTracker
from tui_client.crypto.gossip import KeyGossip
from tui_client.crypto.machine_core import (
    CryptoStoreMismatch,
    EncryptionError,
    MachineCore,
    Rejected,
)
from tui_client.crypto.megolm_inbound import InboundGroupSessions
from tui_client.crypto.megolm_outbound import OutboundGroupSessions
from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.olm_sessions import OlmSessions
from tui_client.crypto.own_identity import OwnIdentity
from tui_client.crypto.requests import ToDeviceKind
from tui_client.crypto.signing import verify_signed_json
from tui_client.crypto.types import (
    DecryptedEvent,
    DecryptionFailure,
    DeviceTrust,
    FailureReason,
    LocalTrust,
    SenderTrust,
    SyncChanges,
    WarningKind,
)
from tui_client.crypto.verification_host import MachineVerificationHost

from .harness import FakeClock

KEY = secrets.token_bytes(32)


def _core(
    backend: CryptoBackend, clock: FakeClock, user_id: str, device_id: str, store: Any = None
) -> MachineCore:
    return MachineCore(
        user_id, device_id, store or MemoryCryptoStore(), backend, pickle_key=KEY, clock=clock
    )


class Device:
    """The parts of one device, wired as OlmMachine wires them."""

    def __init__(
        self, backend: CryptoBackend, clock: FakeClock, user_id: str, device_id: str
    ) -> None:
        self.core = _core(backend, clock, user_id, device_id)
        self.keys = AccountKeys(self.core)
        self.devices = DeviceTracker(self.core, self.keys.identity)
        self.olm = OlmSessions(self.core, self.keys, self.devices)
        self.own = OwnIdentity(self.core, self.keys, self.devices)
        self.gossip = KeyGossip(self.core, self.devices, self.olm, self.own)
        self.inbound = InboundGroupSessions(self.core, self.devices, self.olm, self.gossip)
        self.outbound = OutboundGroupSessions(self.core, self.keys.identity, self.devices, self.olm)


def _learn(tracker: DeviceTracker, *others: AccountKeys) -> Any:
    """Answer the tracker's ``/keys/query`` with the device keys of ``others``."""
    request = tracker.query_request()
    assert request is not None
    answer: dict[str, dict[str, Any]] = {}
    for keys in others:
        body = keys.signed_device_keys
        answer.setdefault(body["user_id"], {})[body["device_id"]] = body
    outcome = tracker.mark_sent(request.request_id, {"device_keys": answer})
    assert outcome is not None
    return outcome


def _olm_channel(sender: Device, receiver: Device) -> None:
    """``sender`` learns ``receiver``'s device and claims one of its one-time keys."""
    sender.devices.update_tracked_users([receiver.core.user_id])
    _learn(sender.devices, sender.keys, receiver.keys)
    receiver.devices.update_tracked_users([sender.core.user_id])
    _learn(receiver.devices, receiver.keys, sender.keys)
    upload = receiver.keys.upload_request()
    assert upload is not None
    receiver.keys.mark_sent(upload.request_id, {"one_time_key_counts": {}})
    claim = sender.olm.get_missing_sessions([receiver.core.user_id])
    assert claim is not None
    user, device = receiver.core.user_id, receiver.core.device_id
    key_id, key = next(iter(upload.body["one_time_keys"].items()))
    outcome = sender.olm.mark_sent(
        claim.request_id, {"one_time_keys": {user: {device: {key_id: key}}}}
    )
    assert outcome is not None and outcome.sessions_created == ((user, device),)


# ---------------------------------------------------------------- account and device keys


def test_account_keys_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    store = MemoryCryptoStore()
    core = _core(backend, clock, "@a:x", "A1", store)
    keys = AccountKeys(core)
    body = keys.signed_device_keys
    assert body["keys"]["ed25519:A1"] == keys.identity.ed25519
    assert verify_signed_json(backend, body, "@a:x", "ed25519:A1", keys.identity.ed25519)

    upload = keys.upload_request()
    assert upload is not None and "device_keys" in upload.body
    _, account = keys.account()
    half = account.max_one_time_keys // 2
    assert len(upload.body["one_time_keys"]) == half  # half the account's capacity
    assert keys.upload_request() is upload  # stable until answered
    assert keys.mark_sent("another", {}) is None
    keys.mark_sent(upload.request_id, {"one_time_key_counts": {"signed_curve25519": half}})
    assert keys.upload_request() is None  # published, and the server holds enough

    # The server used some: the count from sync brings a top-up without device keys.
    keys.receive_key_counts({"signed_curve25519": 10}, ["signed_curve25519"])
    top_up = keys.upload_request()
    assert top_up is not None and "device_keys" not in top_up.body
    assert len(top_up.body["one_time_keys"]) == half - 10
    assert keys.mark_failed(top_up.request_id) and not keys.mark_failed(top_up.request_id)

    # The same store opens again with the same identity; another device's does not.
    assert AccountKeys(_core(backend, clock, "@a:x", "A1", store)).identity == keys.identity
    with pytest.raises(CryptoStoreMismatch):
        AccountKeys(_core(backend, clock, "@a:x", "OTHER", store))


# ---------------------------------------------------------------- identities and device tracking


def test_device_tracker_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    store = MemoryCryptoStore()
    me = AccountKeys(_core(backend, clock, "@a:x", "A1", store))
    bob = AccountKeys(_core(backend, clock, "@b:y", "B1"))
    tracker = DeviceTracker(_core(backend, clock, "@a:x", "A1", store), me.identity)
    assert tracker.tracked_users() == {"@a:x"} == tracker.outdated_users()

    tracker.update_tracked_users(["@b:y"])
    outcome = _learn(tracker, me, bob)
    assert set(outcome.users_updated) == {"@a:x", "@b:y"}
    assert outcome.devices_added == (("@a:x", "A1"), ("@b:y", "B1"))
    assert tracker.outdated_users() == set()
    device = tracker.get_device("@b:y", "B1")
    assert device is not None and tracker.device_trust(device) is DeviceTrust.UNVERIFIED
    assert tracker.set_local_trust("@b:y", "B1", LocalTrust.VERIFIED)
    device = tracker.get_device("@b:y", "B1")
    assert device is not None and tracker.device_trust(device) is DeviceTrust.VERIFIED

    # New keys under a known device ID are refused, and the device keeps its old keys.
    impostor = AccountKeys(_core(backend, clock, "@b:y", "B1"))
    tracker.receive_device_lists(["@b:y"], [])
    assert tracker.outdated_users() == {"@b:y"}
    outcome = _learn(tracker, impostor)
    assert [w.kind for w in outcome.warnings] == [WarningKind.KEYS_CHANGED]
    device = tracker.get_device("@b:y", "B1")
    assert device is not None and device.ed25519 == bob.identity.ed25519

    # A change arriving while the query is in flight keeps the user outdated.
    tracker.receive_device_lists(["@b:y"], [])
    request = tracker.query_request()
    assert request is not None
    tracker.receive_device_lists(["@b:y"], [])
    tracker.mark_sent(request.request_id, {"device_keys": {}})
    assert tracker.outdated_users() == {"@b:y"}

    # Left users are forgotten, ourselves never.
    tracker.receive_device_lists([], ["@b:y", "@a:x"])
    assert tracker.tracked_users() == {"@a:x"}


# ---------------------------------------------------------------- Olm sessions


def test_olm_sessions_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    alice, bob = Device(backend, clock, "@a:x", "A1"), Device(backend, clock, "@b:y", "B1")
    _olm_channel(alice, bob)
    content = alice.olm.encrypt_to_device("@b:y", "B1", "m.test", {"n": 1})
    assert content is not None
    payload = bob.olm.decrypt_event("@a:x", content)
    assert (payload.type, payload.content) == ("m.test", {"n": 1})
    assert payload.sender_ed25519 == alice.keys.identity.ed25519
    assert payload.device is not None and payload.device["device_id"] == "A1"
    # A copy of the same pre-key message is a replay, not a new session.
    with pytest.raises(Rejected, match="did not decrypt"):
        bob.olm.decrypt_event("@a:x", content)
    # The message names another sender than the payload: refused.
    fresh = alice.olm.encrypt_to_device("@b:y", "B1", "m.test", {"n": 2})
    assert fresh is not None
    with pytest.raises(Rejected, match="sender does not match"):
        bob.olm.decrypt_event("@mallory:z", fresh)


def test_wedged_olm_session_is_renewed_once(backend: CryptoBackend, clock: FakeClock) -> None:
    alice, bob = Device(backend, clock, "@a:x", "A1"), Device(backend, clock, "@b:y", "B1")
    _olm_channel(alice, bob)
    content = alice.olm.encrypt_to_device("@b:y", "B1", "m.test", {})
    assert content is not None
    bob.olm.decrypt_event("@a:x", content)
    broken = alice.olm.encrypt_to_device("@b:y", "B1", "m.test", {})
    assert broken is not None
    body = broken["ciphertext"][bob.keys.identity.curve25519]
    body["type"] = 1
    body["body"] = body["body"][:-8] + "AAAAAAAA"
    with pytest.raises(Rejected, match="wedged"):
        bob.olm.decrypt_event("@a:x", broken)
    claim = bob.olm.unwedge_claim_request()
    assert claim is not None and claim.one_time_keys == {"@a:x": {"A1": "signed_curve25519"}}
    assert bob.olm.claim_in_flight(claim.request_id)
    assert bob.olm.mark_failed(claim.request_id, permanent=True)
    assert bob.olm.unwedge_claim_request() is None  # that device waits claim_retry_ms


def test_a_claim_lost_on_the_way_is_made_again_at_once(
    backend: CryptoBackend, clock: FakeClock
) -> None:
    """Issue 19: a ``/keys/claim`` whose answer the network lost held the device back for
    ``claim_retry_ms`` (5 minutes), so the room key went out without it (``m.no_olm``) and
    the messages meanwhile could never be read there. Only a refusal waits."""
    alice, bob = Device(backend, clock, "@a:x", "A1"), Device(backend, clock, "@b:y", "B1")
    alice.devices.update_tracked_users(["@b:y"])
    _learn(alice.devices, alice.keys, bob.keys)
    wanted = {"@b:y": {"B1": "signed_curve25519"}}
    claim = alice.olm.get_missing_sessions(["@b:y"])
    assert claim is not None and claim.one_time_keys == wanted
    assert alice.olm.mark_failed(claim.request_id)  # a reset, a timeout, a 502
    again = alice.olm.get_missing_sessions(["@b:y"])
    assert again is not None and again.one_time_keys == wanted
    assert alice.olm.mark_failed(again.request_id, permanent=True)  # a 4xx
    assert alice.olm.get_missing_sessions(["@b:y"]) is None
    clock.advance(alice.core.config.claim_retry_ms)
    assert alice.olm.get_missing_sessions(["@b:y"]) is not None


def test_a_room_key_waits_for_the_claim_in_flight(backend: CryptoBackend, clock: FakeClock) -> None:
    """Issue 19: while one room's ``/keys/claim`` for a device is in flight, a second room
    (encrypting at once) gets no claim for it, and its room key went out without it with an
    ``m.no_olm`` notice: those messages could never be read there. The machine names the
    claim to wait for and sends no notice meanwhile; the key follows the claim's answer.
    Only a device that truly has no one-time key gets ``m.no_olm``."""
    alice, bob = Device(backend, clock, "@a:x", "A1"), Device(backend, clock, "@b:y", "B1")
    carol = Device(backend, clock, "@c:z", "C1")  # never uploaded a one-time key
    alice.devices.update_tracked_users(["@b:y", "@c:z"])
    _learn(alice.devices, alice.keys, bob.keys, carol.keys)
    upload = bob.keys.upload_request()
    assert upload is not None
    bob.keys.mark_sent(upload.request_id, {"one_time_key_counts": {}})
    users = ["@a:x", "@b:y", "@c:z"]

    first = alice.olm.get_missing_sessions(users)  # room A's claim; its answer is held
    assert first is not None
    assert alice.olm.get_missing_sessions(users) is None  # room B: being claimed already
    early = alice.outbound.share_room_key("!b:x", users)
    assert [r.kind for r in early] == [], "a notice while the claim may yet bring a session"
    assert alice.olm.claims_awaited(users) == [first.request_id]
    assert alice.olm.claims_awaited(["@a:x"]) == []

    key_id, key = next(iter(upload.body["one_time_keys"].items()))
    outcome = alice.olm.mark_sent(
        first.request_id, {"one_time_keys": {"@b:y": {"B1": {key_id: key}}}}
    )
    assert outcome is not None and outcome.sessions_created == (("@b:y", "B1"),)
    assert outcome.claim_failures == (("@c:z", "C1"),)
    assert alice.olm.claims_awaited(users) == []
    shares = alice.outbound.share_room_key("!b:x", users)
    assert sorted(r.kind for r in shares) == [ToDeviceKind.ROOM_KEY_SHARE, ToDeviceKind.WITHHELD]
    (withheld,) = [r for r in shares if r.kind is ToDeviceKind.WITHHELD]
    assert withheld.messages == {"@c:z": {"C1": withheld.messages["@c:z"]["C1"]}}
    assert withheld.messages["@c:z"]["C1"]["code"] == "m.no_olm"
    (share,) = [r for r in shares if r.kind is ToDeviceKind.ROOM_KEY_SHARE]
    pending = alice.core.store.get_pending_to_device(share.request_id)
    assert pending is not None
    alice.outbound.share_sent(pending)

    payload = bob.olm.decrypt_event("@a:x", share.messages["@b:y"]["B1"])
    bob.inbound.receive_room_key(
        "@a:x", payload.sender_key, payload.sender_ed25519, payload.content
    )
    content = alice.outbound.encrypt_room_event("!b:x", "m.room.message", {"body": "room B"})
    event = {"type": "m.room.encrypted", "sender": "@a:x", "event_id": "$b", "content": content}
    decrypted = bob.inbound.decrypt_room_event(event, "!b:x")
    assert isinstance(decrypted, DecryptedEvent) and decrypted.content == {"body": "room B"}


# ---------------------------------------------------------------- Megolm out and in


def test_megolm_outbound_and_inbound_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    alice, bob = Device(backend, clock, "@a:x", "A1"), Device(backend, clock, "@b:y", "B1")
    _olm_channel(alice, bob)
    with pytest.raises(EncryptionError):
        alice.outbound.encrypt_room_event("!r:x", "m.room.message", {"body": "hi"})
    shares = alice.outbound.share_room_key("!r:x", ["@a:x", "@b:y"])
    assert [r.kind for r in shares] == [ToDeviceKind.ROOM_KEY_SHARE]
    with pytest.raises(EncryptionError, match="not been delivered"):
        alice.outbound.encrypt_room_event("!r:x", "m.room.message", {"body": "hi"})
    store = alice.core.store
    pending = store.get_pending_to_device(shares[0].request_id)
    assert pending is not None
    alice.outbound.share_sent(pending)
    assert [s["state"] for s in alice.outbound.room_key_shares("!r:x")] == ["sent"]

    payload = bob.olm.decrypt_event("@a:x", shares[0].messages["@b:y"]["B1"])
    assert payload.type == "m.room_key"
    info = bob.inbound.receive_room_key(
        "@a:x", payload.sender_key, payload.sender_ed25519, payload.content
    )
    assert info is not None and info.room_id == "!r:x"

    content = alice.outbound.encrypt_room_event("!r:x", "m.room.message", {"body": "hi"})
    event = {"type": "m.room.encrypted", "sender": "@a:x", "event_id": "$1", "content": content}
    decrypted = bob.inbound.decrypt_room_event(event, "!r:x")
    assert isinstance(decrypted, DecryptedEvent)
    assert decrypted.content == {"body": "hi"} and decrypted.trust is SenderTrust.UNVERIFIED
    # Our own copy of the key decrypts our own event, as verified.
    mine = alice.inbound.decrypt_room_event(event, "!r:x")
    assert isinstance(mine, DecryptedEvent) and mine.trust is SenderTrust.VERIFIED
    # The same index under another event ID is a replay.
    replay = bob.inbound.decrypt_room_event({**event, "event_id": "$2"}, "!r:x")
    assert isinstance(replay, DecryptionFailure) and replay.reason is FailureReason.REPLAY

    # Bob leaves: the next share rotates.
    old = content["session_id"]
    alice.outbound.invalidate_group_session("!r:x")
    alice.outbound.share_room_key("!r:x", ["@a:x"])
    fresh = alice.outbound.encrypt_room_event("!r:x", "m.room.message", {"body": "after"})
    assert fresh["session_id"] != old


def test_megolm_inbound_export_import_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    alice, bob = Device(backend, clock, "@a:x", "A1"), Device(backend, clock, "@b:y", "B1")
    alice.outbound.share_room_key("!r:x", ["@a:x"])
    content = alice.outbound.encrypt_room_event("!r:x", "m.room.message", {"body": "kept"})
    event = {"type": "m.room.encrypted", "sender": "@a:x", "event_id": "$1", "content": content}
    missing = bob.inbound.decrypt_room_event(event, "!r:x", request_key_if_missing=False)
    assert isinstance(missing, DecryptionFailure)
    assert missing.reason is FailureReason.MISSING_ROOM_KEY

    exported = alice.inbound.export_sessions("!r:x")
    result = bob.inbound.import_sessions([*exported, {"algorithm": "nonsense"}])
    assert (result.total, result.imported) == (2, 1)
    decrypted = bob.inbound.decrypt_room_event(event, "!r:x")
    assert isinstance(decrypted, DecryptedEvent)
    assert decrypted.trust is SenderTrust.UNAUTHENTICATED  # imported: not proven by Olm
    # Importing the same again adds nothing.
    assert bob.inbound.import_sessions(exported).imported == 0


def test_withheld_notice_explains_a_missing_key(backend: CryptoBackend, clock: FakeClock) -> None:
    bob = Device(backend, clock, "@b:y", "B1")
    changes = SyncChanges()
    bob.inbound.receive_withheld(
        "@a:x",
        {"code": "m.unverified", "room_id": "!r:x", "session_id": "S", "reason": "verify"},
        changes,
    )
    assert [w.code for w in changes.withheld] == ["m.unverified"]
    event = {
        "sender": "@a:x",
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "S", "ciphertext": "x"},
    }
    failure = bob.inbound.decrypt_room_event(event, "!r:x")
    assert isinstance(failure, DecryptionFailure) and failure.reason is FailureReason.WITHHELD


# ---------------------------------------------------------------- key and secret requests


def test_gossip_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    laptop = Device(backend, clock, "@a:x", "LAPTOP")
    assert not laptop.gossip.request_room_key("!r:x", "S")  # no other device to ask
    phone = AccountKeys(_core(backend, clock, "@a:x", "PHONE"))
    _learn(laptop.devices, laptop.keys, phone)
    assert laptop.gossip.request_room_key("!r:x", "S")
    assert not laptop.gossip.request_room_key("!r:x", "S")  # once
    [request] = laptop.core.pending_to_device()
    assert request.kind is ToDeviceKind.KEY_REQUEST
    assert request.messages["@a:x"]["PHONE"]["body"]["session_id"] == "S"
    store = laptop.core.store
    pending = store.get_pending_to_device(request.request_id)
    assert pending is not None
    laptop.gossip.request_sent(pending)
    [record] = store.list_key_requests()
    assert record["state"] == "sent"
    # The key arrived another way: the phone is told to stop looking.
    laptop.gossip.key_arrived("!r:x", "S")
    kinds = [r.kind for r in laptop.core.pending_to_device()]
    assert ToDeviceKind.KEY_REQUEST_CANCELLATION in kinds

    # A secret from a device we never asked is refused.
    device = store.get_device("@a:x", "PHONE")
    assert device is not None
    laptop.devices.set_local_trust("@a:x", "PHONE", LocalTrust.VERIFIED)
    device = store.get_device("@a:x", "PHONE")
    with pytest.raises(Rejected, match="did not ask"):
        laptop.gossip.receive_secret("@a:x", device, {"request_id": "nope", "secret": "s"})


# ---------------------------------------------------------------- own identity and secrets


def test_own_identity_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    core = _core(backend, clock, "@a:x", "A1")
    keys = AccountKeys(core)
    devices = DeviceTracker(core, keys.identity)
    own = OwnIdentity(core, keys, devices)
    own.save_secret("m.megolm_backup.v1", "c2VjcmV0")
    assert own.get_secret("m.megolm_backup.v1") == "c2VjcmV0"
    record = core.store.get_secret("m.megolm_backup.v1")
    assert record is not None and "c2VjcmV0" not in json.dumps(record)  # sealed at rest
    with pytest.raises(OwnKeysNotQueried):
        own.bootstrap_cross_signing()
    _learn(devices, keys)
    request = own.bootstrap_cross_signing()
    assert request is not None
    assert not own.cross_signing_status().published
    assert own.cross_signing_status().pending_upload
    assert own.mark_sent(request.request_id, {}) is not None
    status = own.cross_signing_status()
    assert status.published and status.master_trusted and status.has_self_signing
    # This device's signatures are now owed: one upload, stable until answered.
    upload = own.signature_upload_request()
    assert upload is not None and "@a:x" in upload.body
    assert own.signature_upload_request() is upload
    assert own.mark_failed(upload.request_id)
    assert own.signature_upload_request() is None  # retried after a pause, not at once
    assert not own.mark_failed(upload.request_id)


# ---------------------------------------------------------------- what verification reads


def test_verification_host_alone(backend: CryptoBackend, clock: FakeClock) -> None:
    alice, bob = (
        Device(backend, clock, "@a:x", "A1"),
        AccountKeys(_core(backend, clock, "@b:y", "B1")),
    )
    alice.devices.update_tracked_users(["@b:y"])
    _learn(alice.devices, alice.keys, bob)
    host = MachineVerificationHost(alice.core, alice.keys.identity, alice.devices)
    assert (host.user_id, host.device_id, host.ed25519) == (
        "@a:x",
        "A1",
        alice.keys.identity.ed25519,
    )
    assert host.now_ms() == clock()
    assert host.device_key("@b:y", "B1") == bob.identity.ed25519
    assert host.device_key("@b:y", "NOPE") is None and host.device_ids("@b:y") == ["B1"]
    assert host.cross_signing_keys("@b:y") == (None, frozenset())
    assert not host.device_id_collision("@b:y") and host.own_trusted_master_key() is None
    host.refresh_user("@b:y")
    assert alice.devices.outdated_users() == {"@b:y"}
