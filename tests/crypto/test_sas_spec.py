"""SAS against the spec's rules: a peer written from the spec text talks to our machine.

Every expected value (the commitment, the HKDF ``info`` strings, the emoji and the
decimals, the MACs of both methods) is computed in the test from the spec's
description (``spec_peer``), never with the code under test; each test runs with
both of our backends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from tui_client.crypto.sas import EMOJI, commitment, decimals_from_bytes, emoji_from_bytes
from tui_client.crypto.types import LocalTrust
from tui_client.crypto.verification import Verification, VerificationState

from .conftest import MakePeer
from .harness import FakeClock, FakeHomeserver, Peer
from .spec_peer import (
    OLD,
    SPEC_EMOJI,
    V2,
    LibolmSas,
    PeerSas,
    ScriptedDevice,
    SpecSas,
    spec_canonical,
    spec_commitment,
    spec_decimals,
    spec_emoji_numbers,
    spec_mac_info,
    spec_sas_info,
)

TXN = "S0meUniqueAndOpaqueString"
ME = "@alice:x"

# (MAC method the peer offers, its SAS primitive): v2 written from the spec; the
# deprecated method as libolm (its reference) computes it.
PEER_SAS: dict[str, tuple[str, Callable[[], PeerSas]]] = {
    "v2-spec": (V2, SpecSas),
    "v2-libolm": (V2, LibolmSas),
    "old-libolm": (OLD, LibolmSas),
}


def test_emoji_table_is_the_spec_table() -> None:
    assert [(e.number, e.name) for e in EMOJI] == sorted(SPEC_EMOJI.items())
    assert len({e.symbol for e in EMOJI}) == 64
    assert (EMOJI[21].symbol, EMOJI[36].symbol, EMOJI[63].symbol) == ("☁️", "👍", "📌")


@pytest.mark.parametrize("seed", range(40))
def test_emoji_and_decimal_derivation(seed: int) -> None:
    data = hashlib.sha256(bytes([seed])).digest()[:6]
    assert [e.number for e in emoji_from_bytes(data)] == spec_emoji_numbers(data)
    assert decimals_from_bytes(data[:5]) == spec_decimals(data[:5])
    assert all(1000 <= n <= 9191 for n in decimals_from_bytes(data[:5]))


def test_edge_bytes() -> None:
    assert [e.number for e in emoji_from_bytes(b"\xff" * 6)] == [63] * 7
    assert decimals_from_bytes(b"\xff" * 5) == (9191, 9191, 9191)
    assert decimals_from_bytes(b"\x00" * 5) == (1000, 1000, 1000)


def test_commitment_of_the_spec_example() -> None:
    start = {
        "from_device": "BobDevice1",
        "transaction_id": TXN,
        "method": "m.sas.v1",
        "key_agreement_protocols": ["curve25519"],
        "hashes": ["sha256"],
        "message_authentication_codes": [V2, OLD],
        "short_authentication_string": ["decimal", "emoji"],
    }
    key = "fQpGIW1Snz+pwLZu6sTy2aHy/DYWWTspTJRPyNp0PKk"
    assert commitment(key, start) == spec_commitment(key, start)
    assert "=" not in commitment(key, start) and len(commitment(key, start)) == 43


def _known(ours: Peer, peer: ScriptedDevice) -> None:
    """``ours`` learns the scripted device (it uploaded its keys)."""
    ours.sync()
    ours.flush()
    assert ours.machine.get_device(peer.user_id, peer.device_id) is not None


def _their_flow(ours: Peer) -> Verification:
    [flow] = ours.machine.verifications()
    return flow


@pytest.mark.parametrize("peer_sas", sorted(PEER_SAS))
def test_they_request_and_start_we_accept(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock, peer_sas: str
) -> None:
    method, make_sas = PEER_SAS[peer_sas]
    ours = make_peer(ME, "A1")
    peer = ScriptedDevice(server, ME, "A2", make_sas())
    _known(ours, peer)
    peer.send(
        ours,
        "m.key.verification.request",
        {
            "from_device": "A2",
            "transaction_id": TXN,
            "methods": ["m.sas.v1", "m.qr_code.show.v1", "m.reciprocate.v1"],
            "timestamp": clock(),
        },
    )
    [incoming] = ours.sync().verifications
    assert incoming.state is VerificationState.INCOMING and incoming.methods == ("m.sas.v1",)
    assert (incoming.flow_id, incoming.other_device_id) == (TXN, "A2")
    ours.machine.accept_verification(incoming.id)
    ours.flush()
    assert peer.expect("m.key.verification.ready") == {
        "from_device": "A1",
        "methods": ["m.sas.v1"],
        "transaction_id": TXN,
    }
    start = peer.send(
        ours,
        "m.key.verification.start",
        {
            "from_device": "A2",
            "transaction_id": TXN,
            "method": "m.sas.v1",
            "key_agreement_protocols": ["curve25519-hkdf-sha256", "curve25519"],
            "hashes": ["sha256"],
            "message_authentication_codes": [method],
            "short_authentication_string": ["decimal", "emoji"],
        },
    )
    ours.sync()
    ours.flush()
    accept = peer.expect("m.key.verification.accept")
    assert accept["key_agreement_protocol"] == "curve25519-hkdf-sha256"
    assert (accept["hash"], accept["message_authentication_code"]) == ("sha256", method)
    assert sorted(accept["short_authentication_string"]) == ["decimal", "emoji"]
    assert accept["method"] == "m.sas.v1" and accept["transaction_id"] == TXN
    peer.send(ours, "m.key.verification.key", {"transaction_id": TXN, "key": peer.sas.public_key})
    ours.sync()
    ours.flush()
    our_key = peer.expect("m.key.verification.key")["key"]
    # The commitment: unpadded base64 SHA-256 of our key and the start's canonical JSON.
    assert accept["commitment"] == spec_commitment(our_key, start)
    peer.sas.agree(our_key)
    data = peer.sas.hkdf(spec_sas_info(ME, "A2", peer.sas.public_key, ME, "A1", our_key, TXN), 6)
    shown = _their_flow(ours)
    assert shown.state is VerificationState.KEYS_EXCHANGED
    assert shown.emoji is not None and shown.decimals is not None
    assert [e.number for e in shown.emoji] == spec_emoji_numbers(data)
    assert [e.name for e in shown.emoji] == [SPEC_EMOJI[n] for n in spec_emoji_numbers(data)]
    assert shown.decimals == spec_decimals(data[:5])
    # The keys shown are exactly the keys the MAC must cover: the device, by public key.
    assert shown.keys == {"ed25519:A2": peer.ed25519}
    ours.machine.confirm_sas(incoming.id)
    ours.flush()
    mac = peer.expect("m.key.verification.mac")
    info = spec_mac_info(ME, "A1", ME, "A2", TXN)
    our_ed25519 = ours.machine.identity_keys.ed25519
    assert mac["mac"] == {"ed25519:A1": peer.sas.mac(method, our_ed25519, info + "ed25519:A1")}
    assert mac["keys"] == peer.sas.mac(method, "ed25519:A1", info + "KEY_IDS")
    peer.send(
        ours,
        "m.key.verification.mac",
        peer.mac_content(
            method, {"ed25519:A2": peer.ed25519}, to_user=ME, to_device="A1", transaction_id=TXN
        ),
    )
    ours.sync()
    ours.flush()
    assert peer.expect("m.key.verification.done") == {"transaction_id": TXN}
    assert _their_flow(ours).state is VerificationState.WAITING_FOR_DONE
    peer.send(ours, "m.key.verification.done", {"transaction_id": TXN})
    [done] = ours.sync().verifications
    assert done.state is VerificationState.DONE and done.verified_keys == ("ed25519:A2",)
    device = ours.machine.get_device(ME, "A2")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED


@pytest.mark.parametrize("peer_sas", sorted(PEER_SAS))
def test_we_request_and_start_they_accept(
    make_peer: MakePeer, server: FakeHomeserver, peer_sas: str
) -> None:
    method, make_sas = PEER_SAS[peer_sas]
    ours = make_peer(ME, "A1")
    peer = ScriptedDevice(server, ME, "A2", make_sas())
    _known(ours, peer)
    flow = ours.machine.request_verification(ME)
    ours.flush()
    request = peer.expect("m.key.verification.request")
    txn = request["transaction_id"]
    assert request["from_device"] == "A1"
    assert request["methods"] == ["m.sas.v1", "m.qr_code.show.v1", "m.reciprocate.v1"]
    assert isinstance(request["timestamp"], int) and txn == flow.flow_id
    peer.send(
        ours,
        "m.key.verification.ready",
        {"from_device": "A2", "methods": ["m.sas.v1"], "transaction_id": txn},
    )
    assert [v.state for v in ours.sync().verifications] == [VerificationState.READY]
    ours.machine.start_sas(flow.id)
    ours.flush()
    start = peer.expect("m.key.verification.start")
    assert start["key_agreement_protocols"] == ["curve25519-hkdf-sha256"]
    assert start["hashes"] == ["sha256"]
    assert start["message_authentication_codes"] == [V2, OLD]
    assert sorted(start["short_authentication_string"]) == ["decimal", "emoji"]
    assert start["from_device"] == "A1" and start["method"] == "m.sas.v1"
    peer.send(
        ours,
        "m.key.verification.accept",
        {
            "transaction_id": txn,
            "method": "m.sas.v1",
            "key_agreement_protocol": "curve25519-hkdf-sha256",
            "hash": "sha256",
            "message_authentication_code": method,
            "short_authentication_string": ["decimal", "emoji"],
            "commitment": spec_commitment(peer.sas.public_key, start),
        },
    )
    ours.sync()
    ours.flush()
    our_key = peer.expect("m.key.verification.key")["key"]
    peer.sas.agree(our_key)
    peer.send(ours, "m.key.verification.key", {"transaction_id": txn, "key": peer.sas.public_key})
    ours.sync()
    # We started: our side comes first in the info string.
    data = peer.sas.hkdf(spec_sas_info(ME, "A1", our_key, ME, "A2", peer.sas.public_key, txn), 6)
    shown = ours.machine.get_verification(flow.id)
    assert shown is not None and shown.state is VerificationState.KEYS_EXCHANGED
    assert shown.emoji is not None
    assert [e.number for e in shown.emoji] == spec_emoji_numbers(data)
    assert shown.decimals == spec_decimals(data[:5])
    # Their MAC may come before we confirm; it is checked, and done follows our confirm.
    peer.send(
        ours,
        "m.key.verification.mac",
        peer.mac_content(
            method, {"ed25519:A2": peer.ed25519}, to_user=ME, to_device="A1", transaction_id=txn
        ),
    )
    ours.sync()
    ours.flush()
    assert [e["type"] for e in peer.inbox()] == []
    ours.machine.confirm_sas(flow.id)
    ours.flush()
    types = [e["type"] for e in peer.inbox()]
    assert types == ["m.key.verification.mac", "m.key.verification.done"]
    mac = peer.received[-2]["content"]
    info = spec_mac_info(ME, "A1", ME, "A2", txn)
    assert mac["mac"]["ed25519:A1"] == peer.sas.mac(
        method, ours.machine.identity_keys.ed25519, info + "ed25519:A1"
    )
    peer.send(ours, "m.key.verification.done", {"transaction_id": txn})
    [done] = ours.sync().verifications
    assert done.state is VerificationState.DONE


def test_a_forged_commitment_is_refused(make_peer: MakePeer, server: FakeHomeserver) -> None:
    ours = make_peer(ME, "A1")
    peer = ScriptedDevice(server, ME, "A2")
    _known(ours, peer)
    flow = ours.machine.request_verification(ME)
    ours.flush()
    txn = peer.expect("m.key.verification.request")["transaction_id"]
    peer.send(
        ours,
        "m.key.verification.ready",
        {"from_device": "A2", "methods": ["m.sas.v1"], "transaction_id": txn},
    )
    ours.sync()
    ours.machine.start_sas(flow.id)
    ours.flush()
    start = peer.expect("m.key.verification.start")
    other_key = SpecSas().public_key
    peer.send(
        ours,
        "m.key.verification.accept",
        {
            "transaction_id": txn,
            "method": "m.sas.v1",
            "key_agreement_protocol": "curve25519-hkdf-sha256",
            "hash": "sha256",
            "message_authentication_code": V2,
            "short_authentication_string": ["decimal", "emoji"],
            # Committed to one key, sends another (a man in the middle's second try).
            "commitment": spec_commitment(other_key, start),
        },
    )
    ours.sync()
    ours.flush()
    peer.expect("m.key.verification.key")
    peer.send(ours, "m.key.verification.key", {"transaction_id": txn, "key": peer.sas.public_key})
    [cancelled] = ours.sync().verifications
    assert cancelled.state is VerificationState.CANCELLED
    assert cancelled.cancellation is not None
    assert cancelled.cancellation.code == "m.mismatched_commitment" and cancelled.cancellation.by_us
    ours.flush()
    assert peer.expect("m.key.verification.cancel")["code"] == "m.mismatched_commitment"


def test_canonical_json_of_the_commitment_is_the_spec_one() -> None:
    start = {"b": ["é", 1], "a": {"z": True, "m.relates_to": {"event_id": "$x"}}}
    assert (
        spec_canonical(start)
        == b'{"a":{"m.relates_to":{"event_id":"$x"},"z":true},"b":["\xc3\xa9",1]}'
    )
    assert commitment("k", start) == spec_commitment("k", start)
