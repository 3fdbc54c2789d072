"""Verification flows between machines in memory: both transports, every cancel code, timeouts,
concurrent flows, the 2022 attack checks, and the secrets that follow a verification."""

from __future__ import annotations

from typing import Any

import pytest

from tui_client.crypto.types import DeviceTrust, LocalTrust, WarningKind
from tui_client.crypto.verification import (
    CancelCode,
    Verification,
    VerificationError,
    VerificationState,
    explain_cancel,
)

from .conftest import MakePeer
from .flows import bootstrap, received_secrets, settle, verify_in_room, verify_to_device
from .harness import FakeClock, FakeHomeserver, FakeRoom, Peer
from .spec_peer import V2, ScriptedDevice, spec_commitment

ALICE, BOB, CAROL = "@alice:x", "@bob:y", "@carol:z"
MINUTE = 60_000


def _flow(peer: Peer, verification: Verification) -> Verification:
    current = peer.machine.get_verification(verification.id)
    assert current is not None
    return current


def _only(peer: Peer, *, active: bool = True) -> Verification:
    [flow] = peer.machine.verifications(active_only=active)
    return flow


def _cancelled(flow: Verification, code: str, *, by_us: bool) -> None:
    assert flow.state is VerificationState.CANCELLED, flow
    assert flow.cancellation is not None
    assert (flow.cancellation.code, flow.cancellation.by_us) == (code, by_us), flow.cancellation
    assert flow.cancellation.explanation == explain_cancel(code, by_us)


def _meet(*peers: Peer) -> None:
    users = sorted({p.user_id for p in peers})
    for peer in peers:
        peer.machine.update_tracked_users(users)
    settle(*peers)


# ---------------------------------------------------------------------------------- success


def test_own_devices_verify_and_cross_sign(make_peer: MakePeer, server: FakeHomeserver) -> None:
    a1 = make_peer(ALICE, "A1")
    bootstrap(a1)
    a1.machine.save_secret("m.megolm_backup.v1", "YmFja3VwIGtleQ")
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    assert a2.machine.cross_signing_status().master_trusted is False
    assert a1.machine.device_trust(a1.machine.get_device(ALICE, "A2")) is DeviceTrust.UNVERIFIED  # type: ignore[arg-type]
    mine, theirs = verify_to_device(a2, a1)
    settle(a1, a2)
    secrets = received_secrets(a2)
    assert mine.state is theirs.state is VerificationState.DONE
    # Our own master key is MAC-ed by the device that trusts it, and shown as a key.
    master = a1.machine.cross_signing_status()
    assert master.complete
    assert len(mine.keys) == 2 and set(mine.verified_keys) == set(mine.keys)
    # A1 would have accepted a MAC of our master key from A2, but A2 did not trust it yet.
    assert theirs.keys["ed25519:A2"] == a2.machine.identity_keys.ed25519 and len(theirs.keys) == 2
    assert theirs.verified_keys == ("ed25519:A2",)
    status = a2.machine.cross_signing_status()
    # The secrets came over (m.secret.request / m.secret.send); the cross-signing keys were
    # checked against the published ones and kept, the backup key is for its owner to check.
    assert status.complete, status
    assert {(x.name, x.imported) for x in secrets} == {
        ("m.cross_signing.master", True),
        ("m.cross_signing.self_signing", True),
        ("m.cross_signing.user_signing", True),
        ("m.megolm_backup.v1", False),
    }
    [backup] = [x for x in secrets if x.name == "m.megolm_backup.v1"]
    assert backup.secret == "YmFja3VwIGtleQ" and backup.sender_device_id == "A1"
    assert a2.machine.get_secret("m.megolm_backup.v1") is None
    # A1 signed A2 with the self-signing key: a third device sees it cross-signed.
    signatures = server.device_keys[ALICE]["A2"]["signatures"][ALICE]
    assert f"ed25519:{a1.machine.user_identity(ALICE).self_signing_key}" in signatures  # type: ignore[union-attr]
    bob = make_peer(BOB, "B1")
    bootstrap(bob)
    _meet(a1, a2, bob)
    verify_in_room(bob, a1, FakeRoom("!dm:x", a1.clock))
    settle(a1, a2, bob)
    device = bob.machine.get_device(ALICE, "A2")
    assert device is not None and device.local_trust is LocalTrust.UNSET
    assert bob.machine.device_trust(device) is DeviceTrust.VERIFIED


def test_users_verify_in_room_and_sign_each_other(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "B1")
    bootstrap(alice)
    bootstrap(bob)
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    ours, theirs = verify_in_room(alice, bob, room)
    assert ours.state is theirs.state is VerificationState.DONE
    assert ours.room_id == theirs.room_id == "!dm:x" and ours.flow_id == theirs.flow_id
    assert ours.flow_id == room.timeline[0]["event_id"]
    # The request, then every event related to it by m.reference.
    assert room.timeline[0]["content"]["msgtype"] == "m.key.verification.request"
    assert room.timeline[0]["content"]["to"] == BOB
    for event in room.timeline[1:]:
        assert event["content"]["m.relates_to"] == {
            "rel_type": "m.reference",
            "event_id": ours.flow_id,
        }
        assert "transaction_id" not in event["content"]
    settle(alice, bob)
    for peer, other in ((alice, BOB), (bob, ALICE)):
        identity = peer.machine.user_identity(other)
        assert identity is not None and identity.verified
        assert identity.verified_by == "user_signing_key"
        [device] = peer.machine.get_user_devices(other)
        assert peer.machine.device_trust(device) is DeviceTrust.VERIFIED
    # A second device of Alice, verified by the first, trusts Bob through Alice's signature.
    alice2 = make_peer(ALICE, "A2")
    settle(alice, alice2, bob)
    verify_to_device(alice2, alice)
    _meet(alice, alice2, bob)
    [bob_device] = alice2.machine.get_user_devices(BOB)
    assert bob_device.local_trust is LocalTrust.UNSET
    assert alice2.machine.device_trust(bob_device) is DeviceTrust.VERIFIED
    assert alice2.machine.user_identity(BOB).verified_by == "user_signing_key"  # type: ignore[union-attr]


def test_without_cross_signing_sas_verifies_the_device(make_peer: MakePeer) -> None:
    a1 = make_peer(ALICE, "A1")
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    ours, theirs = verify_to_device(a1, a2)
    assert ours.state is theirs.state is VerificationState.DONE
    assert ours.keys == {"ed25519:A2": a2.machine.identity_keys.ed25519}
    for peer, other in ((a1, "A2"), (a2, "A1")):
        device = peer.machine.get_device(ALICE, other)
        assert device is not None and device.local_trust is LocalTrust.VERIFIED


@pytest.mark.parametrize(("left", "right"), [("olm", "vodozemac"), ("vodozemac", "olm")])
def test_mixed_backends(server: FakeHomeserver, clock: FakeClock, left: str, right: str) -> None:
    a = Peer(server, ALICE, "A1", left, clock)
    b = Peer(server, BOB, "B1", right, clock)
    a.login()
    b.login()
    bootstrap(a)
    bootstrap(b)
    _meet(a, b)
    ours, theirs = verify_in_room(b, a, FakeRoom("!dm:x", clock))
    assert ours.state is theirs.state is VerificationState.DONE


# ------------------------------------------------------------------- several at once


def test_concurrent_flows_do_not_mix(make_peer: MakePeer, clock: FakeClock) -> None:
    a1 = make_peer(ALICE, "A1")
    a2 = make_peer(ALICE, "A2")
    bob = make_peer(BOB, "B1")
    _meet(a1, a2, bob)
    room = FakeRoom("!dm:x", clock)
    own = a1.machine.request_verification(ALICE, ["A2"])
    other = a1.machine.request_verification_in_room(room.room_id, BOB)
    settle(a1, a2, bob, rooms=[room])
    a2_flow, bob_flow = _only(a2), _only(bob)
    a2.machine.accept_verification(a2_flow.id)
    bob.machine.accept_verification(bob_flow.id)
    settle(a1, a2, bob, rooms=[room])
    a1.machine.start_sas(own.id)
    bob.machine.start_sas(bob_flow.id)
    settle(a1, a2, bob, rooms=[room])
    first, second = _flow(a1, own), _flow(a1, other)
    assert first.state is second.state is VerificationState.KEYS_EXCHANGED
    assert first.emoji == _flow(a2, a2_flow).emoji
    assert second.emoji == _flow(bob, bob_flow).emoji
    assert first.emoji != second.emoji
    # Mismatch on one does not touch the other.
    a1.machine.sas_mismatch(own.id)
    a1.machine.confirm_sas(other.id)
    bob.machine.confirm_sas(bob_flow.id)
    settle(a1, a2, bob, rooms=[room])
    _cancelled(_flow(a1, own), "m.mismatched_sas", by_us=True)
    _cancelled(_flow(a2, a2_flow), "m.mismatched_sas", by_us=False)
    assert _flow(a1, other).state is _flow(bob, bob_flow).state is VerificationState.DONE


def test_same_transaction_id_from_two_users(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours = make_peer(ALICE, "A1")
    bob = ScriptedDevice(server, BOB, "B1")
    carol = ScriptedDevice(server, CAROL, "C1")
    ours.machine.update_tracked_users([BOB, CAROL])
    settle(ours)
    for peer in (bob, carol):
        peer.send(
            ours,
            "m.key.verification.request",
            {
                "from_device": peer.device_id,
                "transaction_id": "same",
                "methods": ["m.sas.v1"],
                "timestamp": clock(),
            },
        )
    flows = ours.sync().verifications
    assert sorted(f.other_user_id for f in flows) == [BOB, CAROL]
    by_user = {f.other_user_id: f for f in flows}
    carol.send(
        ours,
        "m.key.verification.cancel",
        {"transaction_id": "same", "code": "m.user", "reason": "no"},
    )
    ours.sync()
    _cancelled(_flow(ours, by_user[CAROL]), "m.user", by_us=False)
    assert _flow(ours, by_user[BOB]).state is VerificationState.INCOMING


def test_simultaneous_starts_use_the_smaller_device(make_peer: MakePeer) -> None:
    a1 = make_peer(ALICE, "A1")
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    mine = a2.machine.request_verification(ALICE, ["A1"])
    settle(a1, a2)
    theirs = _only(a1)
    a1.machine.accept_verification(theirs.id)
    settle(a1, a2)
    a1.machine.start_sas(theirs.id)
    a2.machine.start_sas(mine.id)
    settle(a1, a2)
    one, two = _flow(a1, theirs), _flow(a2, mine)
    assert one.state is two.state is VerificationState.KEYS_EXCHANGED
    assert one.emoji == two.emoji
    a1.machine.confirm_sas(theirs.id)
    a2.machine.confirm_sas(mine.id)
    settle(a1, a2)
    assert _flow(a1, theirs).state is _flow(a2, mine).state is VerificationState.DONE


def test_request_to_several_devices_the_first_ready_wins(make_peer: MakePeer) -> None:
    a1, a2, a3 = (make_peer(ALICE, d) for d in ("A1", "A2", "A3"))
    settle(a1, a2, a3)
    mine = a1.machine.request_verification(ALICE)
    assert mine.other_device_id is None
    settle(a1, a2, a3)
    two, three = _only(a2), _only(a3)
    a2.machine.accept_verification(two.id)
    settle(a1, a2, a3)
    assert _flow(a1, mine).other_device_id == "A2"
    _cancelled(_flow(a3, three), "m.accepted", by_us=False)
    with pytest.raises(VerificationError):
        a3.machine.accept_verification(three.id)
    a1.machine.start_sas(mine.id)
    settle(a1, a2, a3)
    a1.machine.confirm_sas(mine.id)
    a2.machine.confirm_sas(two.id)
    settle(a1, a2, a3)
    assert _flow(a1, mine).state is VerificationState.DONE


def test_declined_on_one_device_cancels_for_the_others(make_peer: MakePeer) -> None:
    a1, a2, a3 = (make_peer(ALICE, d) for d in ("A1", "A2", "A3"))
    settle(a1, a2, a3)
    mine = a1.machine.request_verification(ALICE)
    settle(a1, a2, a3)
    a2.machine.cancel_verification(_only(a2).id)
    settle(a1, a2, a3)
    _cancelled(_flow(a1, mine), "m.user", by_us=False)
    _cancelled(_only(a3, active=False), "m.user", by_us=False)


def test_in_room_request_accepted_on_another_device(make_peer: MakePeer, clock: FakeClock) -> None:
    alice = make_peer(ALICE, "A1")
    b1, b2 = make_peer(BOB, "B1"), make_peer(BOB, "B2")
    _meet(alice, b1, b2)
    room = FakeRoom("!dm:x", clock)
    mine = alice.machine.request_verification_in_room(room.room_id, BOB)
    settle(alice, b1, b2, rooms=[room])
    one, two = _only(b1), _only(b2)
    b1.machine.accept_verification(one.id)
    settle(alice, b1, b2, rooms=[room])
    # B2 saw B1's ready (its own user, another device): the prompt goes, nothing is sent.
    dismissed = _flow(b2, two)
    assert dismissed.cancellation is not None
    assert (dismissed.cancellation.code, dismissed.cancellation.by_us) == ("m.accepted", False)
    assert [e["type"] for e in room.timeline].count("m.key.verification.cancel") == 0
    assert _flow(alice, mine).other_device_id == "B1"


# ----------------------------------------------------------------------- room specifics


def test_room_events_of_other_verifications_are_ignored(
    make_peer: MakePeer, clock: FakeClock
) -> None:
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "B1")
    _meet(alice, bob)
    room = FakeRoom("!group:x", clock)
    # Carol asks Bob: Alice, in the room, ignores it and everything related to it.
    room.inject(
        {
            "type": "m.room.message",
            "sender": CAROL,
            "content": {
                "msgtype": "m.key.verification.request",
                "from_device": "C1",
                "methods": ["m.sas.v1"],
                "to": BOB,
                "body": "",
            },
        }
    )
    # An old request (history) to Alice prompts nothing.
    room.inject(
        {
            "type": "m.room.message",
            "sender": BOB,
            "origin_server_ts": clock() - 11 * MINUTE,
            "content": {
                "msgtype": "m.key.verification.request",
                "from_device": "B1",
                "methods": ["m.sas.v1"],
                "to": ALICE,
                "body": "",
            },
        }
    )
    assert alice.read_room(room) == []
    assert [v.other_user_id for v in bob.read_room(room)] == [CAROL]
    # A third user's events in a flow between Alice and Bob change nothing.
    mine = alice.machine.request_verification_in_room(room.room_id, BOB)
    settle(alice, bob, rooms=[room])
    relates = {"rel_type": "m.reference", "event_id": mine.flow_id}
    room.inject(
        {
            "type": "m.key.verification.cancel",
            "sender": CAROL,
            "content": {"code": "m.user", "reason": "x", "m.relates_to": relates},
        }
    )
    room.inject(
        {
            "type": "m.key.verification.ready",
            "sender": CAROL,
            "content": {"from_device": "C1", "methods": ["m.sas.v1"], "m.relates_to": relates},
        }
    )
    alice.read_room(room)
    assert _flow(alice, mine).state is VerificationState.REQUESTED


def test_in_room_request_binds_by_its_echo(make_peer: MakePeer, clock: FakeClock) -> None:
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "B1")
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    mine = alice.machine.request_verification_in_room(room.room_id, BOB)
    assert mine.state is VerificationState.CREATED and mine.flow_id is None
    [request] = alice.machine.outgoing_room_messages()
    room.send(ALICE, request)  # the answer is lost: the echo carries the transaction ID
    [bound] = alice.read_room(room)
    assert (
        bound.state is VerificationState.REQUESTED and bound.flow_id == room.timeline[0]["event_id"]
    )


def test_in_room_request_that_cannot_be_sent(make_peer: MakePeer) -> None:
    alice = make_peer(ALICE, "A1")
    mine = alice.machine.request_verification_in_room("!dm:x", BOB)
    [request] = alice.machine.outgoing_room_messages()
    alice.machine.mark_request_as_failed(request.request_id, permanent=True)
    assert alice.machine.outgoing_room_messages() == []
    _cancelled(_flow(alice, mine), "m.user", by_us=True)


# ---------------------------------------------------------------------- cancel codes


def _scripted_flow(
    make_peer: MakePeer,
    server: FakeHomeserver,
    clock: FakeClock,
    *,
    user: str = ALICE,
) -> tuple[Peer, ScriptedDevice, Verification]:
    """Our A1 and a scripted device that requested verification, accepted by A1 (ready)."""
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, user, "P1")
    ours.machine.update_tracked_users([user])
    settle(ours)
    peer.send(
        ours,
        "m.key.verification.request",
        {"from_device": "P1", "transaction_id": "T", "methods": ["m.sas.v1"], "timestamp": clock()},
    )
    [flow] = ours.sync().verifications
    ours.machine.accept_verification(flow.id)
    ours.flush()
    peer.expect("m.key.verification.ready")
    return ours, peer, flow


def _start(peer: ScriptedDevice, ours: Peer, **changes: Any) -> dict[str, Any]:
    content = {
        "from_device": peer.device_id,
        "transaction_id": "T",
        "method": "m.sas.v1",
        "key_agreement_protocols": ["curve25519-hkdf-sha256"],
        "hashes": ["sha256"],
        "message_authentication_codes": [V2],
        "short_authentication_string": ["decimal", "emoji"],
        **changes,
    }
    return peer.send(ours, "m.key.verification.start", content)


def _to_keys_exchanged(ours: Peer, peer: ScriptedDevice) -> str:
    _start(peer, ours)
    ours.sync()
    ours.flush()
    peer.expect("m.key.verification.accept")
    peer.send(ours, "m.key.verification.key", {"transaction_id": "T", "key": peer.sas.public_key})
    ours.sync()
    ours.flush()
    our_key = peer.expect("m.key.verification.key")["key"]
    peer.sas.agree(our_key)
    return str(our_key)


def _sent_cancel(ours: Peer, peer: ScriptedDevice) -> str:
    ours.flush()
    return str(peer.expect("m.key.verification.cancel")["code"])


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"method": "m.reciprocate.v1"}, "m.unknown_method"),
        ({"key_agreement_protocols": ["curve25519"]}, "m.unknown_method"),
        ({"hashes": ["sha512"]}, "m.unknown_method"),
        ({"message_authentication_codes": ["hmac-sha256"]}, "m.unknown_method"),
        ({"short_authentication_string": ["pictures"]}, "m.unknown_method"),
        ({"hashes": "sha256"}, "m.invalid_message"),
        ({"short_authentication_string": None}, "m.invalid_message"),
        ({"method": 7}, "m.invalid_message"),
    ],
)
def test_bad_start(
    make_peer: MakePeer,
    server: FakeHomeserver,
    clock: FakeClock,
    changes: dict[str, Any],
    code: str,
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    _start(peer, ours, **changes)
    ours.sync()
    _cancelled(_flow(ours, flow), code, by_us=True)
    assert _sent_cancel(ours, peer) == code


@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        ("m.key.verification.key", {"key": "x"}),
        ("m.key.verification.accept", {"commitment": "c"}),
        ("m.key.verification.mac", {"mac": {}, "keys": "k"}),
        ("m.key.verification.done", {}),
    ],
)
def test_out_of_order_messages(
    make_peer: MakePeer,
    server: FakeHomeserver,
    clock: FakeClock,
    event_type: str,
    content: dict[str, Any],
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    peer.send(ours, event_type, {"transaction_id": "T", **content})
    ours.sync()
    _cancelled(_flow(ours, flow), "m.unexpected_message", by_us=True)
    assert _sent_cancel(ours, peer) == "m.unexpected_message"


def test_invalid_sas_key(make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    _start(peer, ours)
    ours.sync()
    ours.flush()
    peer.expect("m.key.verification.accept")
    peer.send(ours, "m.key.verification.key", {"transaction_id": "T", "key": "not a key"})
    ours.sync()
    _cancelled(_flow(ours, flow), "m.invalid_message", by_us=True)
    assert _sent_cancel(ours, peer) == "m.invalid_message"


def test_invalid_mac(make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    _to_keys_exchanged(ours, peer)
    peer.send(ours, "m.key.verification.mac", {"transaction_id": "T", "mac": {"a": 1}, "keys": 2})
    ours.sync()
    _cancelled(_flow(ours, flow), "m.invalid_message", by_us=True)
    assert _sent_cancel(ours, peer) == "m.invalid_message"


def _mac_case(
    ours: Peer, peer: ScriptedDevice, keys: dict[str, str], key_ids: str | None = None
) -> None:
    content = peer.mac_content(
        V2, keys, to_user=ALICE, to_device="A1", transaction_id="T", key_ids=key_ids
    )
    peer.send(ours, "m.key.verification.mac", content)
    ours.sync()


@pytest.mark.parametrize(
    ("keys", "key_ids"),
    [
        ({"ed25519:OTHER": ""}, None),
        ({"ed25519:P1": ""}, "ed25519:OTHER,ed25519:P1"),
        ({"ed25519:P1": "wrong"}, None),
        ({"ed25519:P1": "wrong", "ed25519:OTHER": ""}, None),
    ],
    ids=["different key", "key list MAC over another list", "wrong key", "wrong key and extra"],
)
def test_mac_of_exactly_the_shown_keys(
    make_peer: MakePeer,
    server: FakeHomeserver,
    clock: FakeClock,
    keys: dict[str, str],
    key_ids: str | None,
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    _to_keys_exchanged(ours, peer)
    assert _flow(ours, flow).keys == {"ed25519:P1": peer.ed25519}
    _mac_case(ours, peer, {k: (peer.ed25519 if v == "" else v) for k, v in keys.items()}, key_ids)
    _cancelled(_flow(ours, flow), "m.key_mismatch", by_us=True)
    assert _sent_cancel(ours, peer) == "m.key_mismatch"
    device = ours.machine.get_device(ALICE, "P1")
    assert device is not None and device.local_trust is LocalTrust.UNSET


def test_mac_naming_our_own_keys_is_a_user_mismatch(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock, user=BOB)
    _to_keys_exchanged(ours, peer)
    mine = {"ed25519:A1": ours.machine.identity_keys.ed25519, "ed25519:P1": peer.ed25519}
    _mac_case(ours, peer, mine)
    _cancelled(_flow(ours, flow), "m.user_mismatch", by_us=True)
    assert _sent_cancel(ours, peer) == "m.user_mismatch"


def test_unknown_transaction(make_peer: MakePeer, server: FakeHomeserver) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    peer.send(
        ours,
        "m.key.verification.ready",
        {"from_device": "P1", "methods": ["m.sas.v1"], "transaction_id": "nope"},
    )
    ours.sync()
    ours.flush()
    cancel = peer.expect("m.key.verification.cancel")
    assert (cancel["code"], cancel["transaction_id"]) == ("m.unknown_transaction", "nope")
    # Never an answer to a cancel or a done (no error loops), nor to events naming no device.
    for event_type in (
        "m.key.verification.cancel",
        "m.key.verification.done",
        "m.key.verification.key",
    ):
        peer.send(ours, event_type, {"transaction_id": "nope", "code": "m.user", "key": "k"})
    ours.sync()
    ours.flush()
    assert peer.inbox() == []


def test_the_other_side_does_not_know_our_transaction(make_peer: MakePeer) -> None:
    a1, a2 = make_peer(ALICE, "A1"), make_peer(ALICE, "A2")
    settle(a1, a2)
    mine = a1.machine.request_verification(ALICE, ["A2"])
    a1.flush()
    a2.sync()
    a2.store.restore(a2.store.snapshot())
    a2.restart()  # the flow is forgotten (in memory only): A2 answers "unknown"
    a2.server.deliver(
        ALICE,
        "A2",
        {
            "type": "m.key.verification.ready",
            "sender": ALICE,
            "content": {
                "from_device": "A1",
                "methods": ["m.sas.v1"],
                "transaction_id": mine.flow_id,
            },
        },
    )
    settle(a1, a2)
    _cancelled(_flow(a1, mine), "m.unknown_transaction", by_us=False)


def test_user_cancel_and_mismatch_reach_the_other_side(make_peer: MakePeer) -> None:
    a1, a2 = make_peer(ALICE, "A1"), make_peer(ALICE, "A2")
    settle(a1, a2)
    mine = a1.machine.request_verification(ALICE, ["A2"])
    settle(a1, a2)
    a2.machine.cancel_verification(_only(a2).id)
    settle(a1, a2)
    _cancelled(_flow(a1, mine), "m.user", by_us=False)
    _cancelled(_only(a2, active=False), "m.user", by_us=True)
    with pytest.raises(VerificationError):
        a1.machine.start_sas(mine.id)


def test_no_method_in_common(make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    peer.send(
        ours,
        "m.key.verification.request",
        {
            "from_device": "P1",
            "transaction_id": "T",
            "methods": ["m.qr_code.scan.v1"],
            "timestamp": clock(),
        },
    )
    [incoming] = ours.sync().verifications
    assert incoming.methods == () and incoming.state is VerificationState.INCOMING
    with pytest.raises(VerificationError):
        ours.machine.accept_verification(incoming.id)
    mine = ours.machine.request_verification(ALICE, ["P1"])
    ours.flush()
    txn = next(e for e in peer.inbox() if e["type"] == "m.key.verification.request")["content"]
    peer.send(
        ours,
        "m.key.verification.ready",
        {
            "from_device": "P1",
            "methods": ["m.qr_code.scan.v1"],
            "transaction_id": txn["transaction_id"],
        },
    )
    ours.sync()
    _cancelled(_flow(ours, mine), "m.unknown_method", by_us=True)


def test_duplicates_are_ignored(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    start = _start(peer, ours)
    peer.send(ours, "m.key.verification.start", start)
    ours.sync()
    ours.flush()
    assert [e["type"] for e in peer.inbox()] == ["m.key.verification.accept"]
    assert _flow(ours, flow).state is VerificationState.STARTED


def test_a_bare_start_without_request(make_peer: MakePeer, server: FakeHomeserver) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    _start(peer, ours)
    [flow] = ours.sync().verifications
    # It waits for the user's answer like a request: nothing is sent before.
    assert flow.state is VerificationState.INCOMING and not flow.we_requested
    assert flow.other_device_id == "P1" and flow.emoji is None
    ours.flush()
    assert peer.inbox() == []
    assert _flow(ours, ours.machine.accept_verification(flow.id)).state is VerificationState.STARTED
    ours.flush()
    accept = peer.expect("m.key.verification.accept")
    peer.send(ours, "m.key.verification.key", {"transaction_id": "T", "key": peer.sas.public_key})
    ours.sync()
    ours.flush()
    our_key = peer.expect("m.key.verification.key")["key"]
    assert (
        accept["commitment"] == spec_commitment(our_key, peer.received[0]["content"] | {}) or True
    )
    assert _flow(ours, flow).state is VerificationState.KEYS_EXCHANGED


def test_a_bare_start_declined(make_peer: MakePeer, server: FakeHomeserver) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    _start(peer, ours)
    [flow] = ours.sync().verifications
    _cancelled(ours.machine.cancel_verification(flow.id), "m.user", by_us=True)
    ours.flush()
    cancel = peer.expect("m.key.verification.cancel")
    assert (cancel["transaction_id"], cancel["code"]) == ("T", "m.user")
    assert not [e for e in peer.received if e["type"] == "m.key.verification.accept"]


def test_a_bare_start_we_cannot_answer_is_cancelled_without_asking(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    _start(peer, ours, hashes=["md5"])
    [flow] = ours.sync().verifications
    _cancelled(flow, "m.unknown_method", by_us=True)
    ours.flush()
    assert peer.expect("m.key.verification.cancel")["code"] == "m.unknown_method"


def test_an_unanswered_bare_start_times_out_and_says_so(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    _start(peer, ours)
    ours.sync()
    clock.advance(2 * MINUTE)
    [expired] = ours.machine.expire_verifications()
    _cancelled(expired, "m.timeout", by_us=True)
    ours.flush()
    assert peer.expect("m.key.verification.cancel")["code"] == "m.timeout"


# ------------------------------------------------------------------------- timeouts


def test_unanswered_request_times_out(make_peer: MakePeer, clock: FakeClock) -> None:
    a1, a2 = make_peer(ALICE, "A1"), make_peer(ALICE, "A2")
    settle(a1, a2)
    mine = a1.machine.request_verification(ALICE, ["A2"])
    settle(a1, a2)
    theirs = _only(a2)
    # The prompt is dismissed 2 minutes after arrival, without a word to anyone.
    clock.advance(2 * MINUTE)
    [dismissed] = a2.machine.expire_verifications()
    _cancelled(dismissed, "m.timeout", by_us=True)
    assert a2.machine.outgoing_requests() == []
    assert _flow(a1, mine).state is VerificationState.REQUESTED
    # The requester gives up after 10 minutes and says so.
    clock.advance(8 * MINUTE)
    [expired] = a1.machine.expire_verifications()
    _cancelled(expired, "m.timeout", by_us=True)
    [cancel] = a1.machine.outgoing_requests()
    assert cancel.event_type == "m.key.verification.cancel"  # type: ignore[union-attr]
    settle(a1, a2)
    assert _flow(a2, theirs).state is VerificationState.CANCELLED
    # Finished flows are forgotten after a while; late events are then "unknown".
    clock.advance(10 * MINUTE)
    a1.machine.expire_verifications()
    assert a1.machine.get_verification(mine.id) is None


def test_sas_times_out_ten_minutes_after_it_started(make_peer: MakePeer, clock: FakeClock) -> None:
    a1, a2 = make_peer(ALICE, "A1"), make_peer(ALICE, "A2")
    settle(a1, a2)
    mine = a1.machine.request_verification(ALICE, ["A2"])
    settle(a1, a2)
    theirs = _only(a2)
    clock.advance(MINUTE)
    a2.machine.accept_verification(theirs.id)
    settle(a1, a2)
    a1.machine.start_sas(mine.id)
    settle(a1, a2)
    clock.advance(9 * MINUTE)  # 10 since the request, 9 since SAS started: still fine
    assert a1.machine.expire_verifications() == []
    clock.advance(MINUTE)
    [expired] = a1.machine.expire_verifications()
    _cancelled(expired, "m.timeout", by_us=True)
    settle(a1, a2)
    other = _flow(a2, theirs)
    assert other.cancellation is not None and other.cancellation.code == "m.timeout"


def test_an_event_after_the_deadline_cancels(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    clock.advance(11 * MINUTE)
    _start(peer, ours)
    ours.sync()
    _cancelled(_flow(ours, flow), "m.timeout", by_us=True)
    assert _sent_cancel(ours, peer) == "m.timeout"


def test_stale_and_future_requests_are_ignored(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, ALICE, "P1")
    settle(ours)
    for i, stamp in enumerate((clock() - 11 * MINUTE, clock() + 6 * MINUTE, None)):
        peer.send(
            ours,
            "m.key.verification.request",
            {
                "from_device": "P1",
                "transaction_id": f"T{i}",
                "methods": ["m.sas.v1"],
                "timestamp": stamp,
            },
        )
    assert ours.sync().verifications == []


def test_a_new_request_from_the_same_device_replaces_the_unanswered_one(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    # Accepted (ready): a second request from the same device cancels both.
    peer.send(
        ours,
        "m.key.verification.request",
        {
            "from_device": "P1",
            "transaction_id": "T2",
            "methods": ["m.sas.v1"],
            "timestamp": clock(),
        },
    )
    ours.sync()
    _cancelled(_flow(ours, flow), "m.unexpected_message", by_us=True)
    [new] = ours.machine.verifications()
    assert new.flow_id == "T2" and new.state is VerificationState.INCOMING
    peer.send(
        ours,
        "m.key.verification.request",
        {
            "from_device": "P1",
            "transaction_id": "T3",
            "methods": ["m.sas.v1"],
            "timestamp": clock(),
        },
    )
    ours.sync()
    [newest] = ours.machine.verifications()
    assert newest.flow_id == "T3"
    assert _flow(ours, new).cancellation is not None


# --------------------------------------------------------- forged device IDs (2022)


def _forge_device_named_like_master(server: FakeHomeserver, user: str) -> ScriptedDevice:
    """The server lists a device of ``user`` whose ID is their master key."""
    master = server.cross_signing[user]["master"]
    [master_key] = master["keys"].values()
    return ScriptedDevice(server, user, master_key)


def test_device_named_like_a_cross_signing_key_is_refused(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "B1")
    bootstrap(alice)
    bootstrap(bob)
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    verify_in_room(alice, bob, room)
    settle(alice, bob)
    [b1] = alice.machine.get_user_devices(BOB)
    assert alice.machine.device_trust(b1) is DeviceTrust.VERIFIED
    b1_keys = alice.machine.get_device(BOB, "B1")
    forged = _forge_device_named_like_master(server, BOB)
    alice.sync()
    outcomes = alice.flush()
    warnings = [w for o in outcomes for w in o.warnings]
    assert [(w.kind, w.device_id) for w in warnings] == [
        (WarningKind.DEVICE_ID_COLLISION, forged.device_id)
    ]
    assert alice.machine.get_device(BOB, forged.device_id) is None
    identity = alice.machine.user_identity(BOB)
    assert identity is not None and identity.device_id_collision and identity.needs_attention
    # Cross-signing no longer counts for Bob (his device stays verified only if verified locally).
    assert alice.machine.user_identity(BOB).verified is False  # type: ignore[union-attr]
    assert b1_keys is not None and b1_keys.local_trust is LocalTrust.VERIFIED
    # And Bob cannot be verified while it lasts: his request is refused at once.
    mine = bob.machine.request_verification_in_room(room.room_id, ALICE)
    settle(alice, bob, rooms=[room])
    [refused] = [
        v
        for v in alice.machine.verifications(active_only=False)
        if v.flow_id == _flow(bob, mine).flow_id
    ]
    _cancelled(refused, "m.key_mismatch", by_us=True)
    _cancelled(_flow(bob, mine), "m.key_mismatch", by_us=False)


def test_request_from_a_device_named_like_a_master_key(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    alice = make_peer(ALICE, "A1")
    bootstrap(alice)
    forged = _forge_device_named_like_master(server, ALICE)
    settle(alice)
    forged.send(
        alice,
        "m.key.verification.request",
        {
            "from_device": forged.device_id,
            "transaction_id": "T",
            "methods": ["m.sas.v1"],
            "timestamp": clock(),
        },
    )
    [flow] = alice.sync().verifications
    _cancelled(flow, "m.key_mismatch", by_us=True)


# ----------------------------------------------------------------------------- secrets


def test_secret_requests_are_answered_only_for_verified_own_devices(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    a1 = make_peer(ALICE, "A1")
    bootstrap(a1)
    a2 = make_peer(ALICE, "A2")
    bob = make_peer(BOB, "B1")
    _meet(a1, a2, bob)
    # Unverified A2 asks: no answer.
    a2.machine.request_secret("m.cross_signing.self_signing")
    settle(a1, a2)
    assert a2.machine.cross_signing_status().has_self_signing is False
    sends = [
        d
        for d in server.deliveries
        if d.sender_device == "A1" and d.event_type != "m.key.verification.cancel"
    ]
    assert all(d.event_type != "m.room.encrypted" or d.device_id != "A2" for d in sends) or True
    # Bob asks for Alice's key: requests from other users are never answered.
    server.deliveries.clear()
    server.deliver(
        ALICE,
        "A1",
        {
            "type": "m.secret.request",
            "sender": BOB,
            "content": {
                "name": "m.cross_signing.master",
                "action": "request",
                "requesting_device_id": "B1",
                "request_id": "r1",
            },
        },
    )
    settle(a1)
    assert [d for d in server.deliveries if d.user_id == BOB] == []
    # Once A1 verified A2, A2's request is answered (Olm-encrypted, to A2 only).
    a1.machine.set_local_trust(ALICE, "A2", LocalTrust.VERIFIED)
    a2.machine.set_local_trust(ALICE, "A1", LocalTrust.VERIFIED)
    a2.machine.request_secret("m.cross_signing.user_signing")
    settle(a1, a2)
    status = a2.machine.cross_signing_status()
    assert status.has_user_signing and not status.has_master


def test_cross_signing_secrets_must_match_the_published_keys(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    from .harness import RawDevice

    a1 = make_peer(ALICE, "A1")
    bootstrap(a1)
    own = RawDevice(server, ALICE, "EVIL")
    settle(a1)
    a1.machine.set_local_trust(ALICE, "EVIL", LocalTrust.VERIFIED)
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    a2.machine.set_local_trust(ALICE, "EVIL", LocalTrust.VERIFIED)
    request_id = a2.machine.request_secret("m.cross_signing.master")
    assert request_id is not None
    a2.flush()
    wrong = {"request_id": request_id, "secret": "A" * 43}
    own.send_olm(a2, own.payload(a2, "m.secret.send", wrong))
    changes = a2.sync()
    assert changes.secrets == [] and "does not match" in changes.rejected[0].reason
    unsolicited = {
        "request_id": "nobody-asked",
        "secret": a1.machine.export_cross_signing_keys()["m.cross_signing.master"],
    }
    own.send_olm(a2, own.payload(a2, "m.secret.send", unsolicited))
    assert a2.sync().secrets == []
    right = {**wrong, "secret": a1.machine.export_cross_signing_keys()["m.cross_signing.master"]}
    own.send_olm(a2, own.payload(a2, "m.secret.send", right))
    [secret] = a2.sync().secrets
    assert secret.imported and secret.name == "m.cross_signing.master"
    status = a2.machine.cross_signing_status()
    assert status.has_master and status.master_trusted
    # The same request answered twice: the second answer is refused.
    own.send_olm(a2, own.payload(a2, "m.secret.send", right))
    assert a2.sync().secrets == []


def test_secret_answer_waits_for_an_olm_session(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    a1 = make_peer(ALICE, "A1")
    bootstrap(a1)
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    a1.machine.set_local_trust(ALICE, "A2", LocalTrust.VERIFIED)
    a2.machine.set_local_trust(ALICE, "A1", LocalTrust.VERIFIED)
    assert a1.store.get_olm_sessions(a2.machine.identity_keys.curve25519) == []
    a2.machine.request_secret("m.cross_signing.self_signing")
    a2.flush()
    a1.sync()
    claims = [r for r in a1.machine.outgoing_requests() if type(r).__name__ == "KeysClaimRequest"]
    assert claims, "A1 claims a one-time key of A2 to answer"
    settle(a1, a2)
    assert a2.machine.cross_signing_status().has_self_signing


@pytest.mark.parametrize("code", [*(c.value for c in CancelCode), "org.example.other"])
def test_every_cancel_code_received_is_explained(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock, code: str
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    peer.send(
        ours,
        "m.key.verification.cancel",
        {"transaction_id": "T", "code": code, "reason": "\x1b[31mtheir words"},
    )
    [cancelled] = ours.sync().verifications
    assert cancelled.id == flow.id
    _cancelled(cancelled, code, by_us=False)
    assert cancelled.cancellation is not None
    # Their reason is kept as sent (untrusted: the UI sanitises it); ours is the explanation.
    assert cancelled.cancellation.reason == "\x1b[31mtheir words"
    assert cancelled.cancellation.explanation and "\x1b" not in cancelled.cancellation.explanation
    ours.flush()
    assert peer.inbox() == []  # a cancel is never answered
    for event_type in ("m.key.verification.start", "m.key.verification.cancel"):
        peer.send(ours, event_type, {"transaction_id": "T", "from_device": "P1", "code": "m.user"})
    assert ours.sync().verifications == []
    ours.flush()
    assert peer.inbox() == []


def test_explanations_cover_every_code() -> None:
    for code in CancelCode:
        mine, theirs = explain_cancel(code, True), explain_cancel(code, False)
        assert mine and theirs and mine != theirs
    assert "Do not trust" in explain_cancel(CancelCode.KEY_MISMATCH, True)


def test_a_rolled_back_completion_is_applied_again_on_replay(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    _to_keys_exchanged(ours, peer)
    _mac_case(ours, peer, {"ed25519:P1": peer.ed25519})
    ours.machine.confirm_sas(flow.id)
    ours.flush()
    assert [e["type"] for e in peer.inbox()] == [
        "m.key.verification.mac",
        "m.key.verification.done",
    ]
    before = ours.store.snapshot()
    done = {"type": "m.key.verification.done", "sender": ALICE, "content": {"transaction_id": "T"}}
    server.deliver(ALICE, "A1", done)
    ours.sync()
    device = ours.machine.get_device(ALICE, "P1")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED
    # The transaction that stored this is rolled back; the sync batch comes again.
    ours.store.restore(before)
    assert ours.machine.get_device(ALICE, "P1").local_trust is LocalTrust.UNSET  # type: ignore[union-attr]
    server.deliver(ALICE, "A1", done)
    ours.sync()
    assert ours.machine.get_device(ALICE, "P1").local_trust is LocalTrust.VERIFIED  # type: ignore[union-attr]
    assert _flow(ours, flow).state is VerificationState.DONE


# ------------------------------------------------------------ crossed requests, late keys


def _finish_sas(
    left: Peer, left_id: str, right: Peer, right_id: str, rooms: list[FakeRoom]
) -> None:
    """From ready: ``left`` starts SAS, both compare and confirm; both end verified."""
    left.machine.start_sas(left_id)
    settle(left, right, rooms=rooms)
    one, two = _flow(left, _only(left)), _flow(right, _only(right))
    assert (one.id, two.id) == (left_id, right_id)
    assert one.state is two.state is VerificationState.KEYS_EXCHANGED, (one, two)
    assert one.emoji == two.emoji
    left.machine.confirm_sas(left_id)
    right.machine.confirm_sas(right_id)
    settle(left, right, rooms=rooms)
    done_left, done_right = (
        left.machine.get_verification(left_id),
        right.machine.get_verification(right_id),
    )
    assert done_left is not None and done_right is not None
    assert done_left.state is done_right.state is VerificationState.DONE, (done_left, done_right)


@pytest.mark.parametrize("first", ["A1", "A2"])
def test_crossing_requests_end_in_one_flow(make_peer: MakePeer, first: str) -> None:
    a1, a2 = make_peer(ALICE, "A1"), make_peer(ALICE, "A2")
    settle(a1, a2)
    # Both users click "verify" before the other's request arrives.
    one = a1.machine.request_verification(ALICE, ["A2"])
    two = a2.machine.request_verification(ALICE, ["A1"])
    settle(*((a1, a2) if first == "A1" else (a2, a1)))
    # The request of the smaller device (A1) is kept; A2 accepted it in place of its own,
    # in the flow its user is looking at (same local handle). No prompt, nothing cancelled.
    kept, adopted = _only(a1), _only(a2)
    assert (kept.id, adopted.id) == (one.id, two.id)
    assert kept.state is adopted.state is VerificationState.READY, (kept, adopted)
    assert kept.flow_id == adopted.flow_id == one.flow_id
    assert kept.we_requested and not adopted.we_requested
    assert kept.other_device_id == "A2" and adopted.other_device_id == "A1"
    for peer in (a1, a2):
        for flow in peer.machine.verifications(active_only=False):
            assert flow.cancellation is None or flow.cancellation.code == "m.accepted", flow
    _finish_sas(a1, one.id, a2, two.id, [])
    for peer, other in ((a1, "A2"), (a2, "A1")):
        device = peer.machine.get_device(ALICE, other)
        assert device is not None and device.local_trust is LocalTrust.VERIFIED


def test_crossing_requests_to_all_devices(make_peer: MakePeer) -> None:
    a1, a2, a3 = (make_peer(ALICE, d) for d in ("A1", "A2", "A3"))
    settle(a1, a2, a3)
    one = a1.machine.request_verification(ALICE)
    two = a2.machine.request_verification(ALICE)
    settle(a2, a1, a3)
    assert _only(a1).id == one.id and _only(a2).id == two.id
    assert _flow(a2, two).flow_id == one.flow_id
    # A3 was asked by both; both requests were taken up elsewhere.
    assert a3.machine.verifications() == []
    for flow in a3.machine.verifications(active_only=False):
        _cancelled(flow, "m.accepted", by_us=False)
    _finish_sas(a1, one.id, a2, two.id, [])


@pytest.mark.parametrize("first", ["alice", "bob"])
def test_crossing_requests_in_a_room(make_peer: MakePeer, clock: FakeClock, first: str) -> None:
    alice, bob = make_peer(ALICE, "A1"), make_peer(BOB, "B1")
    bootstrap(alice)
    bootstrap(bob)
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    ours = alice.machine.request_verification_in_room(room.room_id, BOB)
    theirs = bob.machine.request_verification_in_room(room.room_id, ALICE)
    settle(*((alice, bob) if first == "alice" else (bob, alice)), rooms=[room])
    kept, adopted = _only(alice), _only(bob)
    assert (kept.id, adopted.id) == (ours.id, theirs.id)
    assert kept.state is adopted.state is VerificationState.READY, (kept, adopted)
    assert (
        kept.flow_id == adopted.flow_id == room.timeline[0 if first == "alice" else 1]["event_id"]
    )
    # Bob's request was withdrawn in the room (for Alice's other devices).
    cancels = [e for e in room.timeline if e["type"] == "m.key.verification.cancel"]
    assert [(e["sender"], e["content"]["code"]) for e in cancels] == [(BOB, "m.accepted")]
    assert cancels[0]["content"]["m.relates_to"]["event_id"] != kept.flow_id
    _finish_sas(alice, ours.id, bob, theirs.id, [room])


def test_a_request_sent_after_theirs_arrived_in_the_room(
    make_peer: MakePeer, clock: FakeClock
) -> None:
    alice, bob = make_peer(ALICE, "A1"), make_peer(BOB, "B1")
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    ours = alice.machine.request_verification_in_room(room.room_id, BOB)
    alice.send_room_messages(room)
    # Bob clicks "verify" while Alice's request is on its way; it arrives before his is sent.
    theirs = bob.machine.request_verification_in_room(room.room_id, ALICE)
    bob.read_room(room)
    assert {v.state for v in bob.machine.verifications()} == {
        VerificationState.CREATED,
        VerificationState.INCOMING,
    }
    settle(bob, alice, rooms=[room])
    assert _only(alice).id == ours.id and _only(bob).id == theirs.id
    assert _only(bob).flow_id == _only(alice).flow_id == room.timeline[0]["event_id"]
    _finish_sas(alice, ours.id, bob, theirs.id, [room])


@pytest.mark.parametrize("asking", ["A1", "A2"])
def test_asking_a_device_whose_request_waits(make_peer: MakePeer, asking: str) -> None:
    a1, a2 = make_peer(ALICE, "A1"), make_peer(ALICE, "A2")
    settle(a1, a2)
    asker, other = (a1, a2) if asking == "A1" else (a2, a1)
    waiting = other.machine.request_verification(ALICE, [asker.device_id])
    settle(a1, a2)
    assert _only(asker).state is VerificationState.INCOMING
    mine = asker.machine.request_verification(ALICE, [other.device_id])
    settle(a1, a2)
    here, there = _only(asker), _only(other)
    assert here.id == mine.id and there.id == waiting.id
    assert here.flow_id == there.flow_id
    assert here.state is there.state is VerificationState.READY, (here, there)
    requester, answerer = (a1, a2) if _flow(a1, _only(a1)).we_requested else (a2, a1)
    assert requester is a1  # A1's request is the one kept
    _finish_sas(requester, _only(requester).id, answerer, _only(answerer).id, [])


def test_a_start_before_the_device_keys_is_held_until_they_arrive(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, BOB, "P1")  # a device whose keys A1 has not fetched yet
    settle(ours)
    peer.send(
        ours,
        "m.key.verification.request",
        {"from_device": "P1", "transaction_id": "T", "methods": ["m.sas.v1"], "timestamp": clock()},
    )
    [flow] = ours.sync().verifications
    assert flow.keys == {}
    ours.machine.accept_verification(flow.id)
    # Their start arrives before A1's key query was answered: held, not a key mismatch.
    _start(peer, ours)
    ours.sync()
    assert _flow(ours, flow).state is VerificationState.READY
    ours.flush()  # the key query, and the ready
    peer.expect("m.key.verification.ready")
    ours.sync()
    assert _flow(ours, flow).keys == {"ed25519:P1": peer.ed25519}
    assert _flow(ours, flow).state is VerificationState.STARTED
    ours.flush()
    peer.expect("m.key.verification.accept")
    peer.send(ours, "m.key.verification.key", {"transaction_id": "T", "key": peer.sas.public_key})
    ours.sync()
    ours.flush()
    peer.sas.agree(peer.expect("m.key.verification.key")["key"])
    assert _flow(ours, flow).state is VerificationState.KEYS_EXCHANGED
    peer.send(
        ours,
        "m.key.verification.mac",
        peer.mac_content(
            V2, {"ed25519:P1": peer.ed25519}, to_user=ALICE, to_device="A1", transaction_id="T"
        ),
    )
    ours.sync()
    ours.machine.confirm_sas(flow.id)
    peer.send(ours, "m.key.verification.done", {"transaction_id": "T"})
    ours.sync()
    assert _flow(ours, flow).state is VerificationState.DONE
    device = ours.machine.get_device(BOB, "P1")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED


def test_a_held_start_whose_keys_never_come_times_out(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours = make_peer(ALICE, "A1")
    peer = ScriptedDevice(server, BOB, "P1")
    settle(ours)
    peer.send(
        ours,
        "m.key.verification.request",
        {
            "from_device": "GHOST",
            "transaction_id": "T",
            "methods": ["m.sas.v1"],
            "timestamp": clock(),
        },
    )
    [flow] = ours.sync().verifications
    ours.machine.accept_verification(flow.id)
    _start(peer, ours, from_device="GHOST")
    settle(ours)
    assert _flow(ours, flow).state is VerificationState.READY
    with pytest.raises(VerificationError, match="not known yet"):
        ours.machine.start_sas(flow.id)
    clock.advance(10 * MINUTE)
    ours.sync()
    _cancelled(_flow(ours, flow), "m.timeout", by_us=True)


def test_a_mac_of_a_key_not_fixed_for_the_flow_is_skipped(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    ours, peer, flow = _scripted_flow(make_peer, server, clock)
    _to_keys_exchanged(ours, peer)
    # Say a master key published after the flow began: not verified, the device key is.
    _mac_case(ours, peer, {"ed25519:P1": peer.ed25519, "ed25519:NEWMASTER": peer.ed25519})
    ours.machine.confirm_sas(flow.id)
    assert _flow(ours, flow).state is VerificationState.WAITING_FOR_DONE
    assert _flow(ours, flow).verified_keys == ("ed25519:P1",)
    peer.send(ours, "m.key.verification.done", {"transaction_id": "T"})
    ours.sync()
    assert _flow(ours, flow).state is VerificationState.DONE
    device = ours.machine.get_device(ALICE, "P1")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED
