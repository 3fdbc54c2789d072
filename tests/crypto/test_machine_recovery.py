"""Recovering from undecryptable messages: wedged Olm sessions, key requests, exports."""

from __future__ import annotations

import pytest

from tui_client.crypto.key_export import KeyExportError
from tui_client.crypto.requests import KeysClaimRequest, ToDeviceRequest
from tui_client.crypto.types import FailureReason, KeyOrigin, LocalTrust, SenderTrust

from .conftest import MakePeer
from .harness import FakeClock, FakeHomeserver, Peer

ROOM = "!room:x"
USERS = ["@alice:x", "@bob:y"]


def _wedge(bob: Peer, alice: Peer) -> None:
    """Bob loses every Olm session with Alice's device (a restored backup, a bug...)."""
    curve = alice.machine.identity_keys.curve25519
    for record in bob.store.get_olm_sessions(curve):
        bob.store.delete_olm_session(curve, record["session_id"])


def _claims(peer: Peer) -> list[KeysClaimRequest]:
    return [r for r in peer.machine.outgoing_requests() if isinstance(r, KeysClaimRequest)]


def test_wedged_session_is_replaced_with_a_dummy_at_most_hourly(
    make_peer: MakePeer, clock: FakeClock
) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    first = alice.encrypt(ROOM, USERS, "first")
    bob.sync()
    reply = bob.encrypt(ROOM, USERS, "ack")  # Alice's next Olm messages are normal (type 1)
    alice.sync()
    alice.decrypt(reply, ROOM)
    _wedge(bob, alice)

    alice.machine.invalidate_group_session(ROOM)
    lost = alice.encrypt(ROOM, USERS, "lost")
    changes = bob.sync()
    assert "wedged" in changes.rejected[0].reason
    assert bob.fail(lost, ROOM).reason is FailureReason.MISSING_ROOM_KEY
    [claim] = _claims(bob)
    assert claim.one_time_keys == {"@alice:x": {"A1": "signed_curve25519"}}
    assert [r.request_id for r in _claims(bob)] == [claim.request_id]  # stable
    outcome = bob.send(claim)
    assert outcome.sessions_created == (("@alice:x", "A1"),)
    dummies = [r for r in bob.machine.outgoing_requests() if isinstance(r, ToDeviceRequest)]
    assert [r.kind.value for r in dummies] == ["dummy"]
    bob.flush()
    assert alice.sync().rejected == []  # the m.dummy set up the new session
    alice.machine.invalidate_group_session(ROOM)
    recovered = alice.encrypt(ROOM, USERS, "recovered")
    bob.sync()
    assert bob.decrypt(recovered, ROOM).content["body"] == "recovered"
    assert bob.decrypt(first, ROOM).content["body"] == "first"

    # Broken again within the hour: no second new session.
    _wedge(bob, alice)
    alice.machine.invalidate_group_session(ROOM)
    alice.encrypt(ROOM, USERS, "lost again")
    assert "wedged" in bob.sync().rejected[0].reason
    assert _claims(bob) == []
    clock.advance(3_600_000)
    alice.machine.invalidate_group_session(ROOM)
    alice.encrypt(ROOM, USERS, "an hour later")
    assert "wedged" in bob.sync().rejected[0].reason
    [claim] = _claims(bob)
    bob.send(claim)
    bob.flush()
    alice.sync()
    alice.machine.invalidate_group_session(ROOM)
    final = alice.encrypt(ROOM, USERS, "recovered again")
    bob.sync()
    assert bob.decrypt(final, ROOM).content["body"] == "recovered again"


def test_rate_limit_applies_per_device(make_peer: MakePeer, clock: FakeClock) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    alice.encrypt(ROOM, USERS, "x")
    bob.sync()
    reply = bob.encrypt(ROOM, USERS, "y")
    alice.sync()
    alice.decrypt(reply, ROOM)
    for round_no in range(2):
        _wedge(bob, alice)
        alice.machine.invalidate_group_session(ROOM)
        alice.encrypt(ROOM, USERS, f"z{round_no}")
        bob.sync()
        claims = _claims(bob)
        if round_no == 0:
            assert len(claims) == 1
            bob.send(claims[0])
            bob.flush()
            alice.sync()
        else:
            assert claims == []
    clock.advance(3_600_001)
    _wedge(bob, alice)
    alice.machine.invalidate_group_session(ROOM)
    alice.encrypt(ROOM, USERS, "later")
    bob.sync()
    assert len(_claims(bob)) == 1


def test_key_requests_go_to_our_own_devices_only(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    make_peer("@carol:z", "C1")
    event = bob.encrypt(ROOM, ["@alice:x", "@bob:y", "@carol:z"], "before the new device")
    alice.sync()
    alice2 = make_peer("@alice:x", "A2")  # logs in later: never got the key
    alice2.prepare(["@alice:x"])
    alice.prepare(["@alice:x"])
    alice.machine.set_local_trust("@alice:x", "A2", LocalTrust.VERIFIED)
    alice2.machine.set_local_trust("@alice:x", "A1", LocalTrust.VERIFIED)

    assert alice2.fail(event, ROOM).reason is FailureReason.MISSING_ROOM_KEY
    assert alice2.fail(event, ROOM).reason is FailureReason.MISSING_ROOM_KEY  # asked once
    server.deliveries.clear()
    alice2.flush()
    requests = [d for d in server.deliveries if d.event_type == "m.room_key_request"]
    assert [(d.user_id, d.device_id) for d in requests] == [("@alice:x", "A1")]
    assert requests[0].content["body"]["session_id"] == event["content"]["session_id"]

    # A1 answers (the requester is verified and there is an Olm session).
    alice2.machine.get_missing_sessions(["@alice:x"])
    claim = alice.machine.get_missing_sessions(["@alice:x"])
    if claim is not None:
        alice.send(claim)
    alice.sync()
    alice.flush()
    changes = alice2.sync()
    assert [(k.session_id, k.origin) for k in changes.room_keys] == [
        (event["content"]["session_id"], KeyOrigin.FORWARDED)
    ]
    decrypted = alice2.decrypt(event, ROOM)
    assert decrypted.content["body"] == "before the new device"
    assert decrypted.trust is SenderTrust.UNAUTHENTICATED
    server.deliveries.clear()
    alice2.flush()
    cancellations = [d for d in server.deliveries if d.event_type == "m.room_key_request"]
    assert [(d.device_id, d.content["action"]) for d in cancellations] == [
        ("A1", "request_cancellation")
    ]
    assert alice2.store.list_key_requests() == []


def test_unverified_own_device_gets_no_answer(make_peer: MakePeer, server: FakeHomeserver) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    event = bob.encrypt(ROOM, USERS, "x")
    alice.sync()
    alice2 = make_peer("@alice:x", "A2")
    alice2.prepare(["@alice:x"])
    alice.prepare(["@alice:x"])
    alice2.fail(event, ROOM)
    alice2.flush()
    alice.sync()
    server.deliveries.clear()
    alice.flush()
    assert [d for d in server.deliveries if d.event_type == "m.room.encrypted"] == []


def test_no_other_device_means_no_request(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    assert not alice.machine.request_room_key(ROOM, "session")
    assert alice.machine.request_secret("m.cross_signing.master") is None


@pytest.mark.parametrize(
    ("exporter", "importer"),
    [("olm", "vodozemac"), ("vodozemac", "olm"), ("olm", "olm"), ("vodozemac", "vodozemac")],
)
def test_export_import_round_trip_across_backends(
    server: FakeHomeserver, clock: FakeClock, exporter: str, importer: str
) -> None:
    alice = Peer(server, "@alice:x", "A1", exporter, clock)
    bob = Peer(server, "@bob:y", "B1", exporter, clock)
    alice.login()
    bob.login()
    events = [alice.encrypt(ROOM, USERS, f"m{i}") for i in range(3)]
    alice.machine.invalidate_group_session(ROOM)
    events.append(alice.encrypt(ROOM, USERS, "second session"))
    bob.sync()
    text = bob.machine.export_room_keys("correct horse", rounds=1000)
    assert text.startswith("-----BEGIN MEGOLM SESSION DATA-----\n")
    fresh = Peer(server, "@bob:y", "B2", importer, clock)
    fresh.login()
    with pytest.raises(KeyExportError):
        fresh.machine.import_room_keys(text, "wrong horse")
    result = fresh.machine.import_room_keys(text, "correct horse")
    assert (result.total, result.imported, result.skipped) == (2, 2, 0)
    assert {k.origin for k in result.room_keys} == {KeyOrigin.IMPORTED}
    for i, event in enumerate(events):
        decrypted = fresh.decrypt(event, ROOM)
        assert decrypted.content["body"] == (f"m{i}" if i < 3 else "second session")
        assert decrypted.trust is SenderTrust.UNAUTHENTICATED
    again = fresh.machine.import_room_keys(text, "correct horse")
    assert again.imported == 0 and again.skipped == 2
    only_room = bob.machine.export_sessions("!other:x")
    assert only_room == []


def test_import_never_downgrades_and_reaches_back_only_on_the_same_ratchet(
    make_peer: MakePeer,
) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    early = alice.encrypt(ROOM, ["@alice:x"], "before bob")
    late = alice.encrypt(ROOM, USERS, "with bob")
    bob.sync()
    assert bob.fail(early, ROOM).reason is FailureReason.UNKNOWN_MESSAGE_INDEX
    [exported] = alice.machine.export_sessions(ROOM)
    result = bob.machine.import_sessions([exported])
    assert result.imported == 1
    decrypted = bob.decrypt(early, ROOM)
    assert decrypted.content["body"] == "before bob"
    # Same ratchet: the authenticated origin of Bob's m.room_key copy is kept.
    assert decrypted.key_origin is KeyOrigin.ROOM_KEY
    assert bob.decrypt(late, ROOM).key_origin is KeyOrigin.ROOM_KEY
    # A forged export claiming the session ID with another ratchet is refused.
    other = alice.machine.backend.create_outbound_group_session()
    other_export = alice.machine.backend.inbound_group_session(other.session_key).export_at(0)
    assert other_export is not None
    from tui_client.crypto.encoding import b64decode, b64encode

    raw = bytearray(b64decode(other_export))
    raw[-32:] = b64decode(exported["session_id"])
    forged = {**exported, "session_key": b64encode(bytes(raw))}
    assert bob.machine.import_sessions([forged, {"nonsense": True}, "x"]).imported == 0
