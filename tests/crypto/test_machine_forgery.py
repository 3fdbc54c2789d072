"""Every forged input is refused: the spec's checks and the 2022 attacks on Matrix clients.

The attacker is a :class:`RawDevice`: a real Olm client built from the bare
primitives, with properly self-signed device keys, that writes whatever payload
it likes (a malicious member, or a server that controls a device).
"""

from __future__ import annotations

from typing import Any

import pytest

from tui_client.crypto import load_backend
from tui_client.crypto.encoding import b64encode
from tui_client.crypto.signing import sign_json
from tui_client.crypto.types import FailureReason, LocalTrust

from .conftest import MakePeer
from .harness import FakeHomeserver, Peer, RawDevice

ROOM = "!room:x"


def _room_key(session: Any, room_id: str = ROOM) -> dict[str, Any]:
    return {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": room_id,
        "session_id": session.session_id,
        "session_key": session.session_key,
    }


def _megolm_event(
    sender: str, session: Any, payload: str, event_id: str = "$forged"
) -> dict[str, Any]:
    return {
        "type": "m.room.encrypted",
        "sender": sender,
        "event_id": event_id,
        "origin_server_ts": 1,
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": session.encrypt(payload),
            "session_id": session.session_id,
            "sender_key": "ignored",
            "device_id": "ignored",
        },
    }


@pytest.fixture
def bob(make_peer: MakePeer) -> Peer:
    return make_peer("@bob:y", "BOB")


@pytest.fixture
def mallory(server: FakeHomeserver, bob: Peer, backend_name: str) -> RawDevice:
    evil = RawDevice(server, "@mallory:z", "EVIL", backend_name)
    bob.prepare(["@mallory:z"])
    return evil


def _reasons(peer: Peer) -> list[str]:
    changes = peer.sync()
    assert changes.room_keys == [] and changes.secrets == []
    return [r.reason for r in changes.rejected]


def test_genuine_room_key_from_the_raw_device_is_accepted(bob: Peer, mallory: RawDevice) -> None:
    """The control: the attacker's tooling produces what the machine accepts."""
    session = load_backend("olm").create_outbound_group_session()
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", _room_key(session)))
    changes = bob.sync()
    assert changes.rejected == [] and len(changes.room_keys) == 1
    decrypted = bob.decrypt(
        _megolm_event(
            "@mallory:z",
            session,
            '{"type":"m.room.message","content":{"body":"x"},"room_id":"!room:x"}',
        ),
        ROOM,
    )
    assert decrypted.sender_device_id == "EVIL"


def test_room_key_in_plaintext_is_refused(bob: Peer, mallory: RawDevice) -> None:
    session = load_backend("olm").create_outbound_group_session()
    for event_type in ("m.room_key", "m.forwarded_room_key", "m.secret.send"):
        mallory.send_plain(bob, event_type, _room_key(session))
    assert all("must arrive Olm-encrypted" in r for r in _reasons(bob))
    event = _megolm_event("@mallory:z", session, "{}")
    assert bob.fail(event, ROOM).reason is FailureReason.MISSING_ROOM_KEY


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"sender": "@alice:x"}, "sender does not match"),
        ({"recipient": "@carol:z"}, "another user"),
        ({"recipient_keys": {"ed25519": b64encode(bytes(32))}}, "another device"),
        ({"recipient_keys": None}, "another device"),
        ({"keys": {"ed25519": b64encode(bytes(32))}}, "does not match the sending device"),
        ({"keys": None}, "no sender Ed25519 key"),
    ],
)
def test_olm_payload_fields_are_checked(
    bob: Peer, mallory: RawDevice, override: dict[str, Any], reason: str
) -> None:
    session = load_backend("olm").create_outbound_group_session()
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", _room_key(session), **override))
    [rejected] = _reasons(bob)
    assert reason in rejected


def test_event_sender_must_match_the_payload(bob: Peer, mallory: RawDevice) -> None:
    session = load_backend("olm").create_outbound_group_session()
    mallory.send_olm(
        bob, mallory.payload(bob, "m.room_key", _room_key(session)), event_sender="@alice:x"
    )
    [rejected] = _reasons(bob)
    assert "sender does not match" in rejected


def test_sender_device_keys_are_checked(bob: Peer, mallory: RawDevice) -> None:
    session = load_backend("olm").create_outbound_group_session()
    good = mallory.device_keys
    tampered = {**good, "algorithms": ["m.megolm.v1.aes-sha2"]}
    other_user = {**good, "user_id": "@alice:x"}
    wrong_curve = sign_json(
        {
            **{k: v for k, v in good.items() if k != "signatures"},
            "keys": {**good["keys"], "curve25519:EVIL": bob.machine.identity_keys.curve25519},
        },
        "@mallory:z",
        "ed25519:EVIL",
        mallory.account.sign,
    )
    for keys in (tampered, other_user, wrong_curve):
        mallory.send_olm(
            bob, mallory.payload(bob, "m.room_key", _room_key(session), sender_device_keys=keys)
        )
    assert [r.split(" ")[0] for r in _reasons(bob)] == ["sender_device_keys"] * 3
    mallory.send_olm(
        bob, mallory.payload(bob, "m.room_key", _room_key(session), sender_device_keys=good)
    )
    assert len(bob.sync().room_keys) == 1


def test_unknown_sender_with_valid_sender_device_keys_is_accepted(
    server: FakeHomeserver, bob: Peer
) -> None:
    stranger = RawDevice(server, "@stranger:z", "NEW")
    session = load_backend("olm").create_outbound_group_session()
    stranger.send_olm(
        bob,
        stranger.payload(
            bob, "m.room_key", _room_key(session), sender_device_keys=stranger.device_keys
        ),
    )
    assert len(bob.sync().room_keys) == 1


def test_olm_message_for_another_device_or_algorithm(
    bob: Peer, mallory: RawDevice, server: FakeHomeserver
) -> None:
    session = load_backend("olm").create_outbound_group_session()
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", _room_key(session)))
    [event] = server.inbox[("@bob:y", "BOB")]
    ciphertext = event["content"]["ciphertext"]
    event["content"]["ciphertext"] = {b64encode(bytes(32)): next(iter(ciphertext.values()))}
    server.deliver(
        "@bob:y", "BOB", {**event, "content": {**event["content"], "algorithm": "m.olm.v2"}}
    )
    server.deliver(
        "@bob:y",
        "BOB",
        {
            **event,
            "content": {**event["content"], "sender_key": bob.machine.identity_keys.curve25519},
        },
    )
    reasons = _reasons(bob)
    assert "not encrypted for this device" in reasons[0]
    assert "unsupported" in reasons[1]
    assert "this device" in reasons[2]


def test_room_key_whose_id_does_not_match_its_key(bob: Peer, mallory: RawDevice) -> None:
    one = load_backend("olm").create_outbound_group_session()
    two = load_backend("olm").create_outbound_group_session()
    content = {**_room_key(one), "session_id": two.session_id}
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", content))
    assert "does not match its key" in _reasons(bob)[0]


def test_megolm_payload_for_another_room(bob: Peer, mallory: RawDevice) -> None:
    session = load_backend("olm").create_outbound_group_session()
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", _room_key(session)))
    bob.sync()
    event = _megolm_event(
        "@mallory:z",
        session,
        '{"type":"m.room.message","content":{"body":"moved"},"room_id":"!elsewhere:x"}',
    )
    assert bob.fail(event, ROOM).reason is FailureReason.MISMATCHED_ROOM
    # And the key is bound to the room it was shared for: elsewhere it is simply unknown.
    assert bob.fail(event, "!elsewhere:x").reason is FailureReason.MISSING_ROOM_KEY


def test_impersonation_with_own_session_fails(
    bob: Peer, mallory: RawDevice, make_peer: MakePeer
) -> None:
    """Mallory's session, an event the server attributes to Alice: refused."""
    make_peer("@alice:x", "A1")
    bob.prepare(["@alice:x"])
    session = load_backend("olm").create_outbound_group_session()
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", _room_key(session)))
    bob.sync()
    event = _megolm_event(
        "@alice:x",
        session,
        '{"type":"m.room.message","content":{"body":"I am alice"},"room_id":"!room:x"}',
    )
    assert bob.fail(event, ROOM).reason is FailureReason.MISMATCHED_SENDER


def test_member_reforwarding_someone_elses_session_cannot_take_it_over(
    bob: Peer, mallory: RawDevice, make_peer: MakePeer
) -> None:
    alice = make_peer("@alice:x", "A1")
    users = ["@alice:x", "@bob:y"]
    event = alice.encrypt(ROOM, users, "from alice")
    bob.sync()
    assert bob.decrypt(event, ROOM).content["body"] == "from alice"
    # Mallory, a member, got Alice's signed session key and re-shares it as her own.
    record = alice.store.get_outbound_group_session(ROOM)
    assert record is not None
    stolen = alice.machine.backend.outbound_group_session_from_pickle(
        record["pickle"], alice.pickle_key
    )
    mallory.send_olm(bob, mallory.payload(bob, "m.room_key", _room_key(stolen)))
    changes = bob.sync()
    assert changes.room_keys == [] and changes.rejected == []  # ignored: not her session
    bob.prepare(["@alice:x"])
    decrypted = bob.decrypt(event, ROOM)
    assert decrypted.sender_key == alice.machine.identity_keys.curve25519
    assert decrypted.sender_device_id == "A1"


def test_forwarded_keys_need_our_request_our_user_and_a_verified_device(
    server: FakeHomeserver, bob: Peer, mallory: RawDevice, make_peer: MakePeer
) -> None:
    alice = make_peer("@alice:x", "A1")
    event = alice.encrypt(ROOM, ["@alice:x"], "not for bob")
    record = alice.store.get_inbound_group_session(ROOM, event["content"]["session_id"])
    assert record is not None
    session = alice.machine.backend.inbound_group_session_from_pickle(
        record["pickle"], alice.pickle_key
    )
    forwarded: dict[str, Any] = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": ROOM,
        "session_id": session.session_id,
        "session_key": session.export_at(0),
        "sender_key": alice.machine.identity_keys.curve25519,
        "sender_claimed_ed25519_key": alice.machine.identity_keys.ed25519,
        "forwarding_curve25519_key_chain": [],
    }
    # From another user: refused.
    mallory.send_olm(bob, mallory.payload(bob, "m.forwarded_room_key", forwarded))
    assert "another user" in _reasons(bob)[0]
    # From our own device, but we never asked: refused even once verified.
    own = RawDevice(server, "@bob:y", "BOB2")
    bob.prepare(["@bob:y"])
    bob.machine.set_local_trust("@bob:y", "BOB2", LocalTrust.VERIFIED)
    own.send_olm(bob, own.payload(bob, "m.forwarded_room_key", forwarded))
    assert "did not ask" in _reasons(bob)[0]
    # We ask (the event is undecryptable), but the device is unverified: refused.
    bob.machine.set_local_trust("@bob:y", "BOB2", LocalTrust.UNSET)
    assert bob.fail(event, ROOM).reason is FailureReason.MISSING_ROOM_KEY
    bob.flush()
    own.send_olm(bob, own.payload(bob, "m.forwarded_room_key", forwarded))
    assert "unverified" in _reasons(bob)[0]
    # Verified, asked: accepted, marked as forwarded (its sender unauthenticated).
    bob.machine.set_local_trust("@bob:y", "BOB2", LocalTrust.VERIFIED)
    own.send_olm(bob, own.payload(bob, "m.forwarded_room_key", forwarded))
    assert len(bob.sync().room_keys) == 1
    decrypted = bob.decrypt(event, ROOM)
    assert decrypted.trust.value == "unauthenticated"
    assert decrypted.forwarding_chain == (own.keys.curve25519,)


def test_one_time_key_with_a_bad_signature_starts_no_session(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    alice = make_peer("@alice:x", "A1")
    make_peer("@bob:y", "B1")
    alice.prepare(["@alice:x"])
    alice.machine.update_tracked_users(["@bob:y"])
    alice.flush()
    for key_id, obj in server.one_time_keys[("@bob:y", "B1")].items():
        server.one_time_keys[("@bob:y", "B1")][key_id] = {**obj, "key": b64encode(bytes(range(32)))}
    del server.fallback_keys[("@bob:y", "B1")]
    claim = alice.machine.get_missing_sessions(["@bob:y"])
    assert claim is not None
    outcome = alice.send(claim)
    assert outcome.sessions_created == () and outcome.claim_failures == (("@bob:y", "B1"),)
    assert alice.machine.get_missing_sessions(["@bob:y"]) is None  # backing off


def test_secrets_only_from_our_verified_devices_answering_our_request(
    server: FakeHomeserver, bob: Peer, mallory: RawDevice
) -> None:
    own = RawDevice(server, "@bob:y", "BOB2")
    bob.prepare(["@bob:y"])
    request_id = bob.machine.request_secret("m.megolm_backup.v1")
    assert request_id is not None
    bob.flush()
    secret = {"request_id": request_id, "secret": "c2VjcmV0"}
    mallory.send_olm(bob, mallory.payload(bob, "m.secret.send", secret))
    assert "another user" in _reasons(bob)[0]
    own.send_olm(bob, own.payload(bob, "m.secret.send", secret))
    assert "unverified" in _reasons(bob)[0]
    bob.machine.set_local_trust("@bob:y", "BOB2", LocalTrust.VERIFIED)
    own.send_olm(bob, own.payload(bob, "m.secret.send", {**secret, "request_id": "not-ours"}))
    assert "did not ask" in _reasons(bob)[0]
    own.send_olm(bob, own.payload(bob, "m.secret.send", secret))
    [received] = bob.sync().secrets
    assert (received.name, received.secret, received.sender_device_id) == (
        "m.megolm_backup.v1",
        "c2VjcmV0",
        "BOB2",
    )
    assert "c2VjcmV0" not in repr(received)
    bob.flush()
    cancels = [d for d in server.deliveries if d.content.get("action") == "request_cancellation"]
    assert [(d.event_type, d.device_id) for d in cancels] == [("m.secret.request", "BOB2")]


def test_withheld_notice_from_someone_else_does_not_explain_alices_event(
    bob: Peer, mallory: RawDevice, make_peer: MakePeer
) -> None:
    alice = make_peer("@alice:x", "A1")
    event = alice.encrypt(ROOM, ["@alice:x"], "not shared with bob")
    mallory.send_plain(
        bob,
        "m.room_key.withheld",
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": ROOM,
            "session_id": event["content"]["session_id"],
            "code": "m.blacklisted",
            "sender_key": "x",
        },
    )
    bob.sync()
    assert bob.fail(event, ROOM).reason is FailureReason.MISSING_ROOM_KEY


def test_malformed_to_device_events_never_raise(bob: Peer, server: FakeHomeserver) -> None:
    for event in (
        {
            "type": "m.room.encrypted",
            "sender": "@x:y",
            "content": {"algorithm": "m.olm.v1.curve25519-aes-sha2"},
        },
        {"type": "m.room.encrypted", "sender": "@x:y", "content": "nope"},
        {"type": "m.room.encrypted", "content": {}},
        {"type": "m.room_key.withheld", "sender": "@x:y", "content": {"code": 5}},
        {"type": 5},
    ):
        server.deliver("@bob:y", "BOB", event)
    assert len(bob.sync().rejected) == 5
    failure = bob.machine.decrypt_room_event(
        {"content": {"algorithm": "m.megolm.v1.aes-sha2"}}, ROOM
    )
    assert failure.reason is FailureReason.MALFORMED  # type: ignore[union-attr]
    failure = bob.machine.decrypt_room_event(
        {"content": {"algorithm": "m.olm.v1.curve25519-aes-sha2"}}, ROOM
    )
    assert failure.reason is FailureReason.UNSUPPORTED_ALGORITHM  # type: ignore[union-attr]


def test_corrupt_ciphertext_is_a_decryption_error(make_peer: MakePeer) -> None:
    alice = make_peer("@alice:x", "A1")
    bob = make_peer("@bob:y", "B1")
    event = alice.encrypt(ROOM, ["@alice:x", "@bob:y"], "x")
    bob.sync()
    ciphertext = event["content"]["ciphertext"]
    broken = {**event, "content": {**event["content"], "ciphertext": ciphertext[:-8] + "AAAAAAAA"}}
    assert bob.fail(broken, ROOM).reason is FailureReason.DECRYPTION_ERROR
