"""Sharing room keys and encrypting/decrypting room events between machines in memory."""

from __future__ import annotations

import pytest

from tui_client.crypto.machine import EncryptionError
from tui_client.crypto.requests import ToDeviceRequest
from tui_client.crypto.types import (
    DecryptionFailure,
    EncryptionSettings,
    FailureReason,
    KeyOrigin,
    LocalTrust,
    MachineConfig,
    SenderTrust,
)

from .conftest import MakePeer
from .harness import FakeClock, FakeHomeserver, Peer

ROOM = "!room:x"
PAIRS = [("olm", "olm"), ("vodozemac", "vodozemac"), ("olm", "vodozemac"), ("vodozemac", "olm")]


@pytest.mark.parametrize(("alice_backend", "bob_backend"), PAIRS)
def test_conversation_both_directions(
    server: FakeHomeserver, clock: FakeClock, alice_backend: str, bob_backend: str
) -> None:
    """Including a python-olm machine and a vodozemac machine talking both ways."""
    alice = Peer(server, "@alice:x", "ALICE", alice_backend, clock)
    bob = Peer(server, "@bob:y", "BOB", bob_backend, clock)
    alice.login()
    bob.login()
    users = ["@alice:x", "@bob:y"]
    for round_no in range(3):
        event = alice.encrypt(ROOM, users, f"alice {round_no}")
        bob.sync()
        decrypted = bob.decrypt(event, ROOM)
        assert decrypted.content == {"msgtype": "m.text", "body": f"alice {round_no}"}
        assert decrypted.sender == "@alice:x" and decrypted.message_index == round_no
        reply = bob.encrypt(ROOM, users, f"bob {round_no}")
        alice.sync()
        assert alice.decrypt(reply, ROOM).content["body"] == f"bob {round_no}"
    # Bob queried Alice's devices when he replied: now her device is known (unverified).
    again = bob.decrypt(event, ROOM)
    assert again.trust is SenderTrust.UNVERIFIED and again.sender_device_id == "ALICE"
    # Our own messages decrypt as ours.
    own = alice.decrypt(event, ROOM)
    assert own.trust is SenderTrust.VERIFIED and own.key_origin is KeyOrigin.OWN


def test_group_sharing_reaches_every_device(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    alice2 = make_peer("@alice:x", "A2")
    bob1 = make_peer("@bob:y", "B1")
    bob2 = make_peer("@bob:y", "B2")
    carol = make_peer("@carol:z", "C1")
    users = ["@alice:x", "@bob:y", "@carol:z"]
    event = alice.encrypt(ROOM, users, "to all")
    for peer in (alice2, bob1, bob2, carol):
        changes = peer.sync()
        assert [k.session_id for k in changes.room_keys] == [event["content"]["session_id"]]
        assert peer.decrypt(event, ROOM).content["body"] == "to all"
    shares = alice.machine.room_key_shares(ROOM)
    assert {(s["user_id"], s["device_id"]) for s in shares} == {
        ("@alice:x", "A2"),
        ("@bob:y", "B1"),
        ("@bob:y", "B2"),
        ("@carol:z", "C1"),
    }
    assert {s["state"] for s in shares} == {"sent"} and {s["message_index"] for s in shares} == {0}


def test_share_is_batched_per_request(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    alice = Peer(server, "@alice:x", "A1", backend_name, clock)
    alice.login()
    peers = [Peer(server, f"@u{i}:y", "D", backend_name, clock) for i in range(12)]
    for peer in peers:
        peer.flush()
    config = MachineConfig(to_device_batch_size=5)
    alice.config = config
    alice.restart()
    users = [p.user_id for p in peers]
    alice.prepare(users)
    requests = alice.machine.share_room_key(ROOM, users)
    assert [r.recipient_count() for r in requests] == [5, 5, 2]


def test_rotation_by_message_count(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    settings = EncryptionSettings(rotation_period_msgs=3)
    events = [alice.encrypt(ROOM, users, str(i), settings=settings) for i in range(4)]
    sessions = [e["content"]["session_id"] for e in events]
    assert sessions[0] == sessions[1] == sessions[2] != sessions[3]
    with pytest.raises(EncryptionError):
        for _ in range(3):
            alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"})
    bob.sync()
    assert [bob.decrypt(e, ROOM).content["body"] for e in events] == ["0", "1", "2", "3"]


def test_rotation_by_time(make_peer: MakePeer, clock: FakeClock) -> None:
    alice = make_peer("@alice:x", "A1")
    make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    settings = EncryptionSettings(rotation_period_ms=60_000)
    first = alice.encrypt(ROOM, users, "a", settings=settings)
    clock.advance(59_999)
    second = alice.encrypt(ROOM, users, "b", settings=settings)
    clock.advance(1)
    with pytest.raises(EncryptionError):
        alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "late"})
    third = alice.encrypt(ROOM, users, "c", settings=settings)
    assert first["content"]["session_id"] == second["content"]["session_id"]
    assert third["content"]["session_id"] != second["content"]["session_id"]


def test_settings_from_state_event() -> None:
    settings = EncryptionSettings.from_state(
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "rotation_period_ms": 3600000,
            "rotation_period_msgs": 0,
        },
        history_visibility="shared",
    )
    assert settings.rotation_period_ms == 3_600_000
    assert settings.rotation_period_msgs == 100
    assert settings.shared_history
    with pytest.raises(EncryptionError):
        from tui_client.crypto.memory_store import MemoryCryptoStore

        Peer(
            FakeHomeserver(), "@a:x", "D", "olm", FakeClock(), store=MemoryCryptoStore()
        ).machine.share_room_key(
            ROOM, ["@a:x"], EncryptionSettings(algorithm="m.olm.v1.curve25519-aes-sha2")
        )


def test_member_who_left_gets_no_new_key(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    carol = make_peer("@carol:z", "C1")
    before = alice.encrypt(ROOM, ["@alice:x", "@bob:y", "@carol:z"], "everyone")
    carol.sync()
    assert carol.decrypt(before, ROOM).content["body"] == "everyone"
    # Carol leaves: the caller's member list no longer has her, so the session rotates.
    after = alice.encrypt(ROOM, ["@alice:x", "@bob:y"], "without carol")
    assert after["content"]["session_id"] != before["content"]["session_id"]
    assert carol.sync().room_keys == []
    failure = carol.fail(after, ROOM)
    assert failure.reason is FailureReason.MISSING_ROOM_KEY
    bob.sync()
    assert bob.decrypt(after, ROOM).content["body"] == "without carol"


def test_invalidate_group_session_rotates(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    first = alice.encrypt(ROOM, users, "1")
    assert alice.machine.invalidate_group_session(ROOM)
    with pytest.raises(EncryptionError):
        alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"})
    second = alice.encrypt(ROOM, users, "2")
    assert first["content"]["session_id"] != second["content"]["session_id"]
    assert not alice.machine.invalidate_group_session("!unknown:x")


def test_removed_device_triggers_rotation(make_peer: MakePeer, server: FakeHomeserver) -> None:
    alice = make_peer("@alice:x", "A1")
    bob1 = make_peer("@bob:y", "B1")
    bob2 = make_peer("@bob:y", "B2")
    users = ["@alice:x", "@bob:y"]
    first = alice.encrypt(ROOM, users, "both devices")
    server.delete_device("@bob:y", "B2")
    second = alice.encrypt(ROOM, users, "one device")
    assert second["content"]["session_id"] != first["content"]["session_id"]
    bob1.sync()
    bob2.sync()
    assert bob1.decrypt(second, ROOM).content["body"] == "one device"
    assert bob2.fail(second, ROOM).reason is FailureReason.MISSING_ROOM_KEY


def test_late_joiner_reads_new_messages_but_not_old_ones(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    make_peer("@bob:y", "B1")
    old = [alice.encrypt(ROOM, ["@alice:x", "@bob:y"], f"old {i}") for i in range(2)]
    dave = make_peer("@dave:w", "D1")
    new = alice.encrypt(ROOM, ["@alice:x", "@bob:y", "@dave:w"], "new")
    assert new["content"]["session_id"] == old[0]["content"]["session_id"]  # no one left
    dave.sync()
    assert dave.decrypt(new, ROOM).content["body"] == "new"
    failure = dave.fail(old[0], ROOM)
    assert failure.reason is FailureReason.UNKNOWN_MESSAGE_INDEX
    assert (failure.first_known_index, failure.message_index) == (2, 0)
    shares = {s["user_id"]: s["message_index"] for s in alice.machine.room_key_shares(ROOM)}
    assert shares == {"@bob:y": 0, "@dave:w": 2}


def test_replayed_index_under_another_event_id_is_rejected(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    event = alice.encrypt(ROOM, ["@alice:x", "@bob:y"], "once")
    bob.sync()
    assert bob.decrypt(event, ROOM).content["body"] == "once"
    assert bob.decrypt(event, ROOM).content["body"] == "once"  # the same event again is fine
    replay = {**event, "event_id": "$replayed", "origin_server_ts": event["origin_server_ts"] + 5}
    failure = bob.fail(replay, ROOM)
    assert failure.reason is FailureReason.REPLAY and failure.message_index == 0


def test_relations_travel_in_the_clear(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    relation = {"rel_type": "m.thread", "event_id": "$root"}
    event = alice.encrypt(
        ROOM,
        ["@alice:x", "@bob:y"],
        "",
        content={"msgtype": "m.text", "body": "in thread", "m.relates_to": relation},
    )
    assert event["content"]["m.relates_to"] == relation
    bob.sync()
    assert bob.decrypt(event, ROOM).content["m.relates_to"] == relation
    # A relation only inside the ciphertext is ignored, as the spec requires.
    hidden = alice.encrypt(
        ROOM,
        ["@alice:x", "@bob:y"],
        "",
        content={"msgtype": "m.text", "body": "x", "m.relates_to": relation},
    )
    del hidden["content"]["m.relates_to"]
    assert "m.relates_to" not in bob.decrypt(hidden, ROOM).content


def test_encrypt_waits_for_the_key_to_be_delivered(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    alice.prepare(users)
    requests = alice.machine.share_room_key(ROOM, users)
    assert len(requests) == 1
    with pytest.raises(EncryptionError, match="delivered"):
        alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "x"})
    # Until it is sent, the share is returned again and stays in outgoing_requests.
    assert [r.request_id for r in alice.machine.share_room_key(ROOM, users)] == [
        requests[0].request_id
    ]
    pending = [r for r in alice.machine.outgoing_requests() if isinstance(r, ToDeviceRequest)]
    assert [r.request_id for r in pending] == [requests[0].request_id]
    alice.send(pending[0])
    content = alice.machine.encrypt_room_event(ROOM, "m.room.message", {"body": "now"})
    bob.sync()
    assert bob.decrypt({"sender": "@alice:x", "event_id": "$e", "content": content}, ROOM)


def test_failed_share_is_retried_on_the_next_share(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    alice.prepare(users)
    [request] = alice.machine.share_room_key(ROOM, users)
    alice.machine.mark_request_as_failed(request.request_id, permanent=True)
    [retry] = alice.machine.share_room_key(ROOM, users)
    assert retry.request_id != request.request_id
    alice.send(retry)
    event = alice.encrypt(ROOM, users, "after retry")
    bob.sync()
    assert bob.decrypt(event, ROOM).content["body"] == "after retry"


def test_rollback_leaves_the_machine_consistent(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    """A sync batch's transaction rolled back: the same to-device events apply again."""
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    event = alice.encrypt(ROOM, ["@alice:x", "@bob:y"], "keep me")
    batch = server.sync("@bob:y", "B1")
    snapshot = bob.store.snapshot()
    changes = bob.machine.receive_sync_changes(batch["to_device"])
    assert len(changes.room_keys) == 1
    bob.store.restore(snapshot)  # the crash/rollback: the one-time key is unused again
    assert isinstance(bob.machine.decrypt_room_event(event, ROOM), DecryptionFailure)
    changes = bob.machine.receive_sync_changes(batch["to_device"])  # the batch is fetched again
    assert len(changes.room_keys) == 1 and changes.rejected == []
    bob.restart()
    assert bob.decrypt(event, ROOM).content["body"] == "keep me"


def test_unknown_device_is_marked_then_resolved(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    event = alice.encrypt(ROOM, ["@alice:x", "@bob:y"], "hi")
    bob.sync()
    first = bob.decrypt(event, ROOM)
    assert first.trust is SenderTrust.UNKNOWN_DEVICE and first.sender_device_id is None
    bob.prepare(["@alice:x"])
    assert bob.decrypt(event, ROOM).trust is SenderTrust.UNVERIFIED
    assert bob.machine.set_local_trust("@alice:x", "A1", LocalTrust.VERIFIED)
    assert bob.decrypt(event, ROOM).trust is SenderTrust.VERIFIED
    bob.machine.set_local_trust("@alice:x", "A1", LocalTrust.BLOCKED)
    assert bob.decrypt(event, ROOM).trust is SenderTrust.BLOCKED


def test_require_known_device_fails_instead(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1", config=MachineConfig(require_known_device=True))
    event = alice.encrypt(ROOM, ["@alice:x", "@bob:y"], "hi")
    bob.sync()
    assert bob.fail(event, ROOM).reason is FailureReason.UNKNOWN_DEVICE
    bob.prepare(["@alice:x"])
    assert bob.decrypt(event, ROOM).trust is SenderTrust.UNVERIFIED


def test_only_verified_withholds_from_unverified_devices(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    settings = EncryptionSettings(only_verified=True)
    event = alice.encrypt(ROOM, users, "secret", settings=settings)
    changes = bob.sync()
    assert changes.room_keys == []
    assert [(w.code, w.session_id) for w in changes.withheld] == [
        ("m.unverified", event["content"]["session_id"])
    ]
    failure = bob.fail(event, ROOM)
    assert failure.reason is FailureReason.WITHHELD and failure.withheld_code == "m.unverified"
    again = alice.encrypt(ROOM, users, "still secret", settings=settings)
    assert bob.sync().withheld == []  # notified once per session
    alice.machine.set_local_trust("@bob:y", "B1", LocalTrust.VERIFIED)
    later = alice.encrypt(ROOM, users, "for verified bob", settings=settings)
    assert later["content"]["session_id"] == again["content"]["session_id"]
    bob.sync()
    assert bob.decrypt(later, ROOM).content["body"] == "for verified bob"
    assert bob.fail(again, ROOM).reason is FailureReason.UNKNOWN_MESSAGE_INDEX


def test_blocked_device_is_told_it_is_blacklisted(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    first = alice.encrypt(ROOM, users, "before")
    alice.machine.set_local_trust("@bob:y", "B1", LocalTrust.BLOCKED)
    second = alice.encrypt(ROOM, users, "after")
    assert second["content"]["session_id"] != first["content"]["session_id"]  # rotated
    changes = bob.sync()
    assert [w.code for w in changes.withheld] == ["m.blacklisted"]
    assert bob.fail(second, ROOM).withheld_code == "m.blacklisted"
    assert alice.machine.get_missing_sessions(users) is None


def test_device_without_keys_gets_no_olm_once(make_peer: MakePeer, server: FakeHomeserver) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    server.one_time_keys[("@bob:y", "B1")].clear()
    del server.fallback_keys[("@bob:y", "B1")]
    users = ["@alice:x", "@bob:y"]
    alice.prepare(users)
    requests = alice.machine.share_room_key(ROOM, users)
    [withheld] = [r for r in requests if r.event_type == "m.room_key.withheld"]
    assert withheld.messages["@bob:y"]["B1"]["code"] == "m.no_olm"
    for request in requests:
        alice.send(request)
    alice.machine.invalidate_group_session(ROOM)
    assert alice.machine.share_room_key(ROOM, users) == []  # not repeated for the next session
    changes = bob.sync()
    assert [w.code for w in changes.withheld] == ["m.no_olm"]
    # Bob answers the m.no_olm by starting a session himself (and sends m.dummy).
    bob.prepare(["@alice:x"])
    alice.sync()
    event = alice.encrypt(ROOM, users, "now it works")
    bob.sync()
    assert bob.decrypt(event, ROOM).content["body"] == "now it works"


def test_restart_keeps_everything(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    users = ["@alice:x", "@bob:y"]
    first = alice.encrypt(ROOM, users, "1")
    bob.sync()
    alice.restart()
    bob.restart()
    second = alice.encrypt(ROOM, users, "2")
    assert second["content"]["session_id"] == first["content"]["session_id"]
    bob.sync()
    assert bob.decrypt(second, ROOM).message_index == 1
    assert bob.decrypt(first, ROOM).content["body"] == "1"
