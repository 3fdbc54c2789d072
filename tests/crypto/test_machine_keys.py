"""Key upload, one-time and fallback keys, and device tracking through ``/keys/query``."""

from __future__ import annotations

from tui_client.crypto import load_backend
from tui_client.crypto.requests import KeysQueryRequest, KeysUploadRequest, ToDeviceRequest
from tui_client.crypto.signing import sign_json, verify_signed_json
from tui_client.crypto.types import WarningKind

from .conftest import MakePeer
from .harness import FakeClock, FakeHomeserver, Peer, RawDevice


def _uploads(peer: Peer) -> list[KeysUploadRequest]:
    return [r for r in peer.machine.outgoing_requests() if isinstance(r, KeysUploadRequest)]


def test_first_upload_signs_everything(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    peer = Peer(server, "@a:x", "DEV", backend_name, clock)
    backend = load_backend(backend_name)
    [upload] = _uploads(peer)
    assert [r.request_id for r in _uploads(peer)] == [upload.request_id]
    body = upload.body
    ed = peer.machine.identity_keys.ed25519
    device_keys = body["device_keys"]
    assert device_keys["keys"] == {
        "curve25519:DEV": peer.machine.identity_keys.curve25519,
        "ed25519:DEV": ed,
    }
    assert verify_signed_json(backend, device_keys, "@a:x", "ed25519:DEV", ed)
    target = backend.create_account().max_one_time_keys // 2
    assert len(body["one_time_keys"]) == target
    for key_id, obj in body["one_time_keys"].items():
        assert key_id.startswith("signed_curve25519:")
        assert verify_signed_json(backend, obj, "@a:x", "ed25519:DEV", ed)
    [(key_id, fallback)] = body["fallback_keys"].items()
    assert fallback["fallback"] is True
    assert verify_signed_json(backend, fallback, "@a:x", "ed25519:DEV", ed)
    assert upload.to_http().path == "/_matrix/client/v3/keys/upload"
    peer.send(upload)
    assert _uploads(peer) == []
    assert server.counts("@a:x", "DEV") == {"signed_curve25519": target}
    queries = [r for r in peer.machine.outgoing_requests() if isinstance(r, KeysQueryRequest)]
    assert [q.users for q in queries] == [("@a:x",)]


def test_upload_survives_a_crash_before_it_was_marked(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    peer = Peer(server, "@a:x", "DEV", backend_name, clock)
    [upload] = _uploads(peer)
    server.handle("@a:x", "DEV", upload)  # reached the server, the answer was lost
    peer.restart()
    [again] = _uploads(peer)
    assert again.request_id != upload.request_id
    assert again.body["one_time_keys"] == upload.body["one_time_keys"]
    peer.send(again)  # the same keys again: the server accepts it
    assert _uploads(peer) == []


def test_one_time_keys_topped_up_from_sync_counts(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    peer = make_peer("@a:x", "DEV")
    target = server.counts("@a:x", "DEV")["signed_curve25519"]
    pool = server.one_time_keys[("@a:x", "DEV")]
    for key_id in list(pool)[:7]:
        del pool[key_id]
    assert _uploads(peer) == []
    peer.sync()
    [upload] = _uploads(peer)
    assert len(upload.body["one_time_keys"]) == 7
    assert "device_keys" not in upload.body and "fallback_keys" not in upload.body
    peer.send(upload)
    assert server.counts("@a:x", "DEV")["signed_curve25519"] == target
    peer.sync()
    assert _uploads(peer) == []


def test_fallback_key_rotated_when_used_and_old_one_forgotten_later(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    bob = make_peer("@bob:y", "BOB")
    mallory = RawDevice(server, "@mallory:z", "EVIL", backend_name)
    bob.prepare(["@mallory:z"])
    server.one_time_keys[("@bob:y", "BOB")].clear()
    old_fallback = server.fallback_keys[("@bob:y", "BOB")][1]["key"]
    session = mallory.session_to(bob)  # claims the fallback key: it is now "used"
    assert server.unused_fallback("@bob:y", "BOB") == []
    bob.sync()
    [upload] = _uploads(bob)
    [new_fallback] = upload.body["fallback_keys"].values()
    assert new_fallback["key"] != old_fallback
    bob.send(upload)
    assert server.unused_fallback("@bob:y", "BOB") == ["signed_curve25519"]

    # Messages started on the old fallback key still arrive within the hour.
    mallory.send_olm(bob, mallory.payload(bob, "m.dummy", {}))
    assert bob.sync().rejected == []
    clock.advance(3_600_001)
    bob.sync()
    late = RawDevice(server, "@mallory:z", "EVIL2", backend_name)
    late.sessions[bob.machine.identity_keys.curve25519] = late.account.create_outbound_session(
        bob.machine.identity_keys.curve25519, old_fallback
    )
    bob.prepare(["@mallory:z"])
    late.send_olm(bob, late.payload(bob, "m.dummy", {}))
    rejected = bob.sync().rejected
    if backend_name == "olm":
        # libolm forgot the previous fallback key an hour after the rotation.
        assert rejected[0].reason.startswith("no session for pre-key message")
    else:
        # vodozemac keeps the previous fallback key until the next rotation (at most two).
        assert rejected == []
    assert session is not None


def test_device_tracking_follows_changes(make_peer: MakePeer, server: FakeHomeserver) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "BOB")
    bob.machine.update_tracked_users(["@alice:x"])
    assert bob.machine.outdated_users() == {"@alice:x"}
    outcomes = bob.flush()
    assert ("@alice:x", "A1") in [d for o in outcomes for d in o.devices_added]
    assert bob.machine.outdated_users() == set()
    [device] = bob.machine.get_user_devices("@alice:x")
    assert device.ed25519 == alice.machine.identity_keys.ed25519
    assert device.display_name == "A1 name"

    make_peer("@alice:x", "A2")
    bob.sync()
    assert bob.machine.outdated_users() == {"@alice:x"}
    outcomes = bob.flush()
    assert [d for o in outcomes for d in o.devices_added] == [("@alice:x", "A2")]

    server.delete_device("@alice:x", "A2")
    bob.sync()
    outcomes = bob.flush()
    assert [d for o in outcomes for d in o.devices_removed] == [("@alice:x", "A2")]
    assert [d.device_id for d in bob.machine.get_user_devices("@alice:x")] == ["A1"]
    removed = bob.machine.get_device("@alice:x", "A2")
    assert removed is not None and removed.deleted


def test_change_during_an_inflight_query_keeps_the_user_outdated(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "BOB")
    bob.machine.update_tracked_users(["@alice:x"])
    [query] = [r for r in bob.machine.outgoing_requests() if isinstance(r, KeysQueryRequest)]
    assert [r.request_id for r in bob.machine.outgoing_requests()] == [query.request_id]
    answer = server.handle("@bob:y", "BOB", query)
    make_peer("@alice:x", "A2")  # Alice adds a device while the query is in flight
    bob.sync()
    bob.machine.mark_request_as_sent(query.request_id, answer)
    assert bob.machine.outdated_users() == {"@alice:x"}  # the stale answer does not clear it
    bob.flush()
    assert bob.machine.outdated_users() == set()
    assert {d.device_id for d in bob.machine.get_user_devices("@alice:x")} == {"A1", "A2"}


def test_failed_query_is_retried(make_peer: MakePeer) -> None:
    make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "BOB")
    bob.machine.update_tracked_users(["@alice:x"])
    [query] = bob.machine.outgoing_requests()
    bob.machine.mark_request_as_failed(query.request_id)
    [again] = bob.machine.outgoing_requests()
    assert isinstance(again, KeysQueryRequest) and again.request_id != query.request_id
    assert again.users == ("@alice:x",)


def test_device_with_bad_signature_is_ignored(make_peer: MakePeer, server: FakeHomeserver) -> None:
    bob = make_peer("@bob:y", "BOB")
    forged = RawDevice(server, "@alice:x", "FORGED")
    keys = dict(server.device_keys["@alice:x"]["FORGED"])
    keys["keys"] = {**keys["keys"], "curve25519:FORGED": bob.machine.identity_keys.curve25519}
    server.device_keys["@alice:x"]["FORGED"] = keys  # signature no longer covers the keys
    bob.machine.update_tracked_users(["@alice:x"])
    warnings = [w for o in bob.flush() for w in o.warnings]
    assert [(w.device_id, w.kind) for w in warnings] == [("FORGED", WarningKind.BAD_SIGNATURE)]
    assert bob.machine.get_device("@alice:x", "FORGED") is None
    assert forged.device_id == "FORGED"


def test_device_keys_that_change_under_the_same_id_are_rejected(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "BOB")
    bob.prepare(["@alice:x"])
    impostor = load_backend("olm").create_account()
    keys = sign_json(
        {
            "user_id": "@alice:x",
            "device_id": "A1",
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                "curve25519:A1": impostor.identity_keys.curve25519,
                "ed25519:A1": impostor.identity_keys.ed25519,
            },
        },
        "@alice:x",
        "ed25519:A1",
        impostor.sign,
    )
    server.device_keys["@alice:x"]["A1"] = keys
    server.notify_changed("@alice:x")
    bob.sync()
    warnings = [w for o in bob.flush() for w in o.warnings]
    assert [(w.user_id, w.device_id, w.kind) for w in warnings] == [
        ("@alice:x", "A1", WarningKind.KEYS_CHANGED)
    ]
    device = bob.machine.get_device("@alice:x", "A1")
    assert device is not None and device.ed25519 == alice.machine.identity_keys.ed25519
    # Room keys still go to the real device's keys.
    event = bob.encrypt("!r:x", ["@alice:x", "@bob:y"], "still you?")
    alice.sync()
    assert alice.decrypt(event, "!r:x").content["body"] == "still you?"


def test_server_listing_our_device_with_other_keys_is_a_warning(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    peer = make_peer("@a:x", "DEV")
    other = load_backend("olm").create_account()
    keys = dict(server.device_keys["@a:x"]["DEV"])
    keys = sign_json(
        {
            **{k: v for k, v in keys.items() if k != "signatures"},
            "keys": {
                "curve25519:DEV": other.identity_keys.curve25519,
                "ed25519:DEV": other.identity_keys.ed25519,
            },
        },
        "@a:x",
        "ed25519:DEV",
        other.sign,
    )
    server.device_keys["@a:x"]["DEV"] = keys
    server.notify_changed("@a:x")
    peer.sync()
    warnings = [w for o in peer.flush() for w in o.warnings]
    assert [w.kind for w in warnings] == [WarningKind.OWN_DEVICE_MISMATCH]


def test_left_users_are_untracked_but_never_ourselves(make_peer: MakePeer) -> None:
    make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "BOB")
    bob.prepare(["@alice:x"])
    assert bob.machine.tracked_users() == {"@alice:x", "@bob:y"}
    bob.machine.receive_sync_changes(left_users=["@alice:x", "@bob:y"])
    assert bob.machine.tracked_users() == {"@bob:y"}
    assert bob.machine.get_device("@alice:x", "A1") is not None


def test_to_device_requests_have_the_txn_id_in_the_path(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    make_peer("@bob:y", "BOB")
    alice.prepare(["@bob:y"])
    [request] = alice.machine.share_room_key("!r:x", ["@bob:y"])
    assert isinstance(request, ToDeviceRequest)
    http = request.to_http()
    assert http.method == "PUT"
    assert http.path.endswith(f"/sendToDevice/m.room.encrypted/{request.request_id}")
    assert request.recipient_count() == 1
    assert "ciphertext" not in repr(request)


def test_a_store_of_another_device_is_refused(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    import pytest

    from tui_client.crypto.machine import CryptoStoreMismatch, OlmMachine

    peer = Peer(server, "@a:x", "DEV", backend_name, clock)
    backend = load_backend(backend_name)
    with pytest.raises(CryptoStoreMismatch):
        OlmMachine("@a:x", "OTHER", peer.store, backend, pickle_key=peer.pickle_key)
    with pytest.raises(ValueError):
        OlmMachine("@a:x", "DEV", peer.store, backend, pickle_key=b"short")


def test_a_trust_policy_replaces_local_trust(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    """The hook cross-signing plugs into: here, every device of @bob is trusted."""
    from tui_client.crypto.types import Device, DeviceTrust, EncryptionSettings, SenderTrust

    class TrustBob:
        def device_trust(self, device: Device) -> DeviceTrust:
            return DeviceTrust.VERIFIED if device.user_id == "@bob:y" else DeviceTrust.UNVERIFIED

    alice = Peer(server, "@alice:x", "A1", backend_name, clock, trust_policy=TrustBob())
    bob = Peer(server, "@bob:y", "B1", backend_name, clock, trust_policy=TrustBob())
    carol = Peer(server, "@carol:z", "C1", backend_name, clock)
    for peer in (alice, bob, carol):
        peer.login()
    users = ["@alice:x", "@bob:y", "@carol:z"]
    event = alice.encrypt(
        "!r:x", users, "verified only", settings=EncryptionSettings(only_verified=True)
    )
    bob.sync()
    assert bob.decrypt(event, "!r:x").content["body"] == "verified only"
    assert [w.code for w in carol.sync().withheld] == ["m.unverified"]
    reply = bob.encrypt("!r:x", users, "hi")
    alice.sync()
    assert alice.decrypt(reply, "!r:x").trust is SenderTrust.VERIFIED


def test_sync_changes_with_nothing_in_them(make_peer: MakePeer) -> None:
    peer = make_peer("@a:x", "DEV")
    changes = peer.machine.receive_sync_changes()
    assert changes.to_device_events == [] and changes.room_keys == []
    plain = {"type": "org.example.custom", "sender": "@b:y", "content": {"x": 1}}
    [event] = peer.machine.receive_sync_changes([plain]).to_device_events
    assert (event.type, event.encrypted, event.content) == ("org.example.custom", False, {"x": 1})
    # Verification events are the machine's own (a malformed request is dropped quietly).
    verification = {"type": "m.key.verification.request", "sender": "@b:y", "content": {"x": 1}}
    changes = peer.machine.receive_sync_changes([verification])
    assert changes.to_device_events == [] and changes.verifications == []


def test_encrypted_custom_to_device_events_reach_other_consumers(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    alice.prepare(["@bob:y"])
    bob.prepare(["@alice:x"])
    assert alice.machine.encrypt_to_device("@bob:y", "NOPE", "m.x", {}) is None
    content = alice.machine.encrypt_to_device("@bob:y", "B1", "org.example.start", {"t": "t"})
    assert content is not None
    alice.server.deliver(
        "@bob:y", "B1", {"type": "m.room.encrypted", "sender": "@alice:x", "content": content}
    )
    [event] = bob.sync().to_device_events
    assert event.type == "org.example.start" and event.encrypted
    assert (event.sender_device_id, event.sender_ed25519) == (
        "A1",
        alice.machine.identity_keys.ed25519,
    )
    assert event.sender_trust is not None and event.sender_trust.value == "unverified"
