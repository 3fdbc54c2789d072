"""Cross-signing: bootstrap, trust from checked signatures, identity changes, key sharing,
private keys at rest and between devices."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui_client.crypto import load_backend
from tui_client.crypto.cross_signing import CrossSigningError, parse_cross_signing_key
from tui_client.crypto.encoding import b64encode
from tui_client.crypto.local_secrets import SecretSealError, open_secret, seal_secret
from tui_client.crypto.requests import (
    DeviceSigningUploadRequest,
    KeysQueryRequest,
    SignatureUploadRequest,
    ToDeviceRequest,
)
from tui_client.crypto.signing import sign_json, verify_signed_json
from tui_client.crypto.types import DeviceTrust, EncryptionSettings, LocalTrust

from .conftest import MakePeer
from .flows import bootstrap, settle, verify_in_room, verify_to_device
from .harness import FakeClock, FakeHomeserver, FakeRoom, Peer

ALICE, BOB, CAROL = "@alice:x", "@bob:y", "@carol:z"
ROOM = "!room:x"


def _meet(*peers: Peer) -> None:
    users = sorted({p.user_id for p in peers})
    for peer in peers:
        peer.machine.update_tracked_users(users)
    settle(*peers)


def _trust(peer: Peer, user_id: str, device_id: str) -> DeviceTrust:
    device = peer.machine.get_device(user_id, device_id)
    assert device is not None
    return peer.machine.device_trust(device)


# ------------------------------------------------------------------------- bootstrap


def test_bootstrap_builds_a_signed_identity(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    peer = Peer(server, ALICE, "A1", backend_name, clock)
    with pytest.raises(CrossSigningError, match="queried"):
        peer.machine.bootstrap_cross_signing()
    peer.login()
    request = peer.machine.bootstrap_cross_signing()
    assert isinstance(request, DeviceSigningUploadRequest)
    assert all(r.request_id != request.request_id for r in peer.machine.outgoing_requests())
    backend = load_backend(backend_name)
    body = request.body
    [master] = body["master_key"]["keys"].values()
    assert body["master_key"]["usage"] == ["master"] and body["master_key"]["user_id"] == ALICE
    ed25519 = peer.machine.identity_keys.ed25519
    assert verify_signed_json(backend, body["master_key"], ALICE, "ed25519:A1", ed25519)
    for name, usage in (("self_signing_key", "self_signing"), ("user_signing_key", "user_signing")):
        assert body[name]["usage"] == [usage]
        assert verify_signed_json(backend, body[name], ALICE, f"ed25519:{master}", master)
    # User-interactive authentication: the caller adds ``auth``.
    plain = request.to_http()
    assert (
        plain.path == "/_matrix/client/v3/keys/device_signing/upload" and "auth" not in plain.body
    )
    auth = {"type": "m.login.password", "session": "s", "password": "p"}
    assert request.to_http(auth=auth).body["auth"] == auth
    assert "auth" not in request.body
    # Retried before the server confirmed: the same keys (the server needs no new auth).
    again = peer.machine.bootstrap_cross_signing()
    assert again is not None and again.body == request.body
    peer.machine.mark_request_as_sent(again.request_id, server.handle(ALICE, "A1", again))
    status = peer.machine.cross_signing_status()
    assert status.published and status.master_trusted and not status.this_device_signed
    uploads = [r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)]
    [upload] = uploads
    assert set(upload.body[ALICE]) == {"A1"}  # the master key already carries our signature
    settle(peer)
    assert peer.machine.cross_signing_status().complete
    assert peer.machine.bootstrap_cross_signing() is None
    assert "seed" not in repr(request) and master not in repr(request)


def test_an_existing_identity_is_not_replaced_unless_reset(make_peer: MakePeer) -> None:
    a1 = make_peer(ALICE, "A1")
    bootstrap(a1)
    bob = make_peer(BOB, "B1")
    bootstrap(bob)
    _meet(a1, bob)
    verify_in_room(bob, a1, FakeRoom(ROOM, a1.clock))
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    with pytest.raises(CrossSigningError, match="already has"):
        a2.machine.bootstrap_cross_signing()
    old_master = a1.machine.user_identity(ALICE).master_key  # type: ignore[union-attr]
    reset = a2.machine.bootstrap_cross_signing(reset=True)
    assert reset is not None
    a2.machine.mark_request_as_sent(reset.request_id, a2.server.handle(ALICE, "A2", reset))
    a1.sync()
    outcomes = a1.flush()
    [change] = [c for o in outcomes for c in o.identity_changes]
    assert (change.user_id, change.old_master_key, change.was_verified) == (ALICE, old_master, True)
    own = a1.machine.user_identity(ALICE)
    assert own is not None and own.verification_violation and not own.verified
    assert not a1.machine.cross_signing_status().master_trusted
    bob.sync()
    [change] = [c for o in bob.flush() for c in o.identity_changes]
    assert change.user_id == ALICE and change.was_verified
    assert a2.machine.cross_signing_status().complete is False  # A2 not signed yet
    settle(a2)
    assert a2.machine.cross_signing_status().complete


# ---------------------------------------------------------------- trust computation


def _verified_pair(make_peer: MakePeer, *, signatures_only: bool = False) -> tuple[Peer, Peer]:
    """Alice and Bob with identities, verified in a room; Bob's device trusted via his keys.

    ``signatures_only``: Alice also forgets that she verified Bob's master key with SAS,
    so only the chain of signatures (her user-signing key on his master key) remains.
    """
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "B1")
    bootstrap(alice)
    bootstrap(bob)
    _meet(alice, bob)
    verify_in_room(alice, bob, FakeRoom(ROOM, alice.clock))
    settle(alice, bob)
    alice.machine.set_local_trust(BOB, "B1", LocalTrust.UNSET)
    if signatures_only:
        record = alice.store.get_user_identity(BOB)
        assert record is not None and record["verified_master_key"] is not None
        alice.store.save_user_identity({**record, "verified_master_key": None})
        assert alice.machine.user_identity(BOB).verified_by == "user_signing_key"  # type: ignore[union-attr]
    return alice, bob


def _pk(seed: bytes | None = None) -> Any:
    return load_backend("olm").pk_signing_from_seed(seed or secrets.token_bytes(32))


def _drop_ssk_signature(server: FakeHomeserver) -> None:
    [ssk] = server.cross_signing[BOB]["self_signing"]["keys"]
    del server.device_keys[BOB]["B1"]["signatures"][BOB][ssk]


def _corrupt_ssk_signature(server: FakeHomeserver) -> None:
    [ssk] = server.cross_signing[BOB]["self_signing"]["keys"]
    signatures = server.device_keys[BOB]["B1"]["signatures"][BOB]
    signatures[ssk] = ("A" if signatures[ssk][0] != "A" else "B") + signatures[ssk][1:]


def _ssk_not_signed_by_master(server: FakeHomeserver) -> None:
    forged = _pk()
    key_id = f"ed25519:{forged.public_key}"
    obj = {"user_id": BOB, "usage": ["self_signing"], "keys": {key_id: forged.public_key}}
    server.cross_signing[BOB]["self_signing"] = sign_json(obj, BOB, key_id, forged.sign)
    device = {k: v for k, v in server.device_keys[BOB]["B1"].items() if k != "signatures"}
    signed = sign_json(device, BOB, key_id, forged.sign)
    server.device_keys[BOB]["B1"]["signatures"][BOB][key_id] = signed["signatures"][BOB][key_id]


def _drop_usk_signature(server: FakeHomeserver) -> None:
    server.cross_signing[BOB]["master"]["signatures"].pop(ALICE)


def _usk_not_signed_by_master(server: FakeHomeserver) -> None:
    forged = _pk()
    key_id = f"ed25519:{forged.public_key}"
    obj = {"user_id": ALICE, "usage": ["user_signing"], "keys": {key_id: forged.public_key}}
    server.cross_signing[ALICE]["user_signing"] = sign_json(obj, ALICE, key_id, forged.sign)
    master = server.cross_signing[BOB]["master"]
    unsigned = {k: v for k, v in master.items() if k != "signatures"}
    master["signatures"][ALICE] = sign_json(unsigned, ALICE, key_id, forged.sign)["signatures"][
        ALICE
    ]


BREAKAGES: dict[str, Callable[[FakeHomeserver], None]] = {
    "device not signed by the self-signing key": _drop_ssk_signature,
    "device signature corrupt": _corrupt_ssk_signature,
    "self-signing key not signed by the master key": _ssk_not_signed_by_master,
    "master key not signed by our user-signing key": _drop_usk_signature,
    "our user-signing key not signed by our master key": _usk_not_signed_by_master,
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_every_signature_is_checked(
    make_peer: MakePeer, server: FakeHomeserver, breakage: str
) -> None:
    alice, _ = _verified_pair(make_peer, signatures_only=True)
    assert _trust(alice, BOB, "B1") is DeviceTrust.VERIFIED
    BREAKAGES[breakage](server)
    server.notify_changed(BOB)
    server.notify_changed(ALICE)
    settle(alice)
    assert _trust(alice, BOB, "B1") is DeviceTrust.UNVERIFIED
    identity = alice.machine.user_identity(BOB)
    assert identity is not None and identity.verified is ("user-signing" not in breakage)


def test_a_master_key_verified_with_sas_is_signed_again(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    alice, _ = _verified_pair(make_peer)
    _drop_usk_signature(server)
    server.notify_changed(BOB)
    settle(alice)
    # Alice verified Bob's master key herself: she restores her missing signature.
    assert ALICE in server.cross_signing[BOB]["master"]["signatures"]
    assert alice.machine.user_identity(BOB).verified_by == "user_signing_key"  # type: ignore[union-attr]


def test_our_own_master_key_must_be_trusted(make_peer: MakePeer) -> None:
    alice, _ = _verified_pair(make_peer, signatures_only=True)
    record = alice.store.get_user_identity(ALICE)
    assert record is not None
    alice.store.save_user_identity({**record, "verified_master_key": None})
    assert _trust(alice, BOB, "B1") is DeviceTrust.UNVERIFIED
    assert not alice.machine.cross_signing_status().master_trusted


def test_local_decisions_come_first(make_peer: MakePeer) -> None:
    alice, _ = _verified_pair(make_peer)
    alice.machine.set_local_trust(BOB, "B1", LocalTrust.BLOCKED)
    assert _trust(alice, BOB, "B1") is DeviceTrust.BLOCKED
    carol = make_peer(CAROL, "C1")
    _meet(alice, carol)
    assert _trust(alice, CAROL, "C1") is DeviceTrust.UNVERIFIED
    alice.machine.set_local_trust(CAROL, "C1", LocalTrust.VERIFIED)
    assert _trust(alice, CAROL, "C1") is DeviceTrust.VERIFIED


def test_own_devices_trusted_through_our_master_key(make_peer: MakePeer) -> None:
    a1 = make_peer(ALICE, "A1")
    bootstrap(a1)
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    verify_to_device(a2, a1)
    a3 = make_peer(ALICE, "A3")
    settle(a1, a2, a3)
    assert _trust(a3, ALICE, "A2") is DeviceTrust.UNVERIFIED
    keys = a1.machine.export_cross_signing_keys()
    status = a3.machine.import_cross_signing_keys(master=keys["m.cross_signing.master"])
    assert status.master_trusted and status.has_master and not status.has_self_signing
    for device in ("A1", "A2"):
        assert _trust(a3, ALICE, device) is DeviceTrust.VERIFIED
        record = a3.machine.get_device(ALICE, device)
        assert record is not None and record.local_trust is LocalTrust.UNSET


def test_imported_keys_must_match(make_peer: MakePeer) -> None:
    a1 = make_peer(ALICE, "A1")
    a2 = make_peer(ALICE, "A2")
    with pytest.raises(CrossSigningError, match="no published"):
        a2.machine.import_cross_signing_keys(master=b64encode(bytes(32)))
    bootstrap(a1)
    settle(a1, a2)
    keys = a1.machine.export_cross_signing_keys()
    assert set(keys) == {
        "m.cross_signing.master",
        "m.cross_signing.self_signing",
        "m.cross_signing.user_signing",
    }
    with pytest.raises(CrossSigningError, match="does not match"):
        a2.machine.import_cross_signing_keys(
            self_signing=keys["m.cross_signing.self_signing"],
            user_signing=keys["m.cross_signing.master"],
        )
    with pytest.raises(CrossSigningError, match="malformed"):
        a2.machine.import_cross_signing_keys(master="not base64!")
    assert a2.machine.export_cross_signing_keys() == {}
    status = a2.machine.import_cross_signing_keys(self_signing=keys["m.cross_signing.self_signing"])
    assert status.has_self_signing and not status.master_trusted


# ------------------------------------------------------------------ identity changes


@pytest.mark.parametrize("resolution", ["acknowledge", "verify again"])
def test_a_verified_users_new_master_key_is_a_warning(make_peer: MakePeer, resolution: str) -> None:
    alice, bob = _verified_pair(make_peer)
    old = alice.machine.user_identity(BOB)
    assert old is not None and old.verified and not old.needs_attention
    reset = bob.machine.bootstrap_cross_signing(reset=True)
    assert reset is not None
    bob.machine.mark_request_as_sent(reset.request_id, bob.server.handle(BOB, "B1", reset))
    settle(bob)
    alice.sync()
    [change] = [c for o in alice.flush() for c in o.identity_changes]
    assert (change.user_id, change.old_master_key, change.was_verified) == (
        BOB,
        old.master_key,
        True,
    )
    settle(alice)
    identity = alice.machine.user_identity(BOB)
    assert identity is not None and identity.verification_violation and identity.changed
    assert identity.pinned_master_key == old.master_key != identity.master_key
    assert [i.user_id for i in alice.machine.identities_needing_attention()] == [BOB]
    assert _trust(alice, BOB, "B1") is DeviceTrust.UNVERIFIED
    # The warning stays until the user acts.
    settle(alice, bob)
    assert alice.machine.user_identity(BOB).verification_violation  # type: ignore[union-attr]
    if resolution == "acknowledge":
        assert alice.machine.acknowledge_identity_change(BOB)
        identity = alice.machine.user_identity(BOB)
        assert identity is not None and not identity.verified and not identity.needs_attention
        assert identity.pinned_master_key == identity.master_key
    else:
        verify_in_room(alice, bob, FakeRoom("!dm2:x", alice.clock))
        settle(alice, bob)
        identity = alice.machine.user_identity(BOB)
        assert identity is not None and identity.verified and not identity.needs_attention
    assert alice.machine.identities_needing_attention() == []


def test_an_unverified_users_new_master_key_is_noticed(make_peer: MakePeer) -> None:
    alice = make_peer(ALICE, "A1")
    carol = make_peer(CAROL, "C1")
    bootstrap(carol)
    _meet(alice, carol)
    first = alice.machine.user_identity(CAROL)
    assert first is not None and first.pinned_master_key == first.master_key
    assert not first.needs_attention
    reset = carol.machine.bootstrap_cross_signing(reset=True)
    assert reset is not None
    carol.machine.mark_request_as_sent(reset.request_id, carol.server.handle(CAROL, "C1", reset))
    alice.sync()
    [change] = [c for o in alice.flush() for c in o.identity_changes]
    assert change.was_verified is False
    identity = alice.machine.user_identity(CAROL)
    assert identity is not None and identity.changed and not identity.verification_violation
    assert identity.needs_attention
    assert alice.machine.acknowledge_identity_change(CAROL)
    assert not alice.machine.user_identity(CAROL).needs_attention  # type: ignore[union-attr]
    assert not alice.machine.acknowledge_identity_change("@nobody:x")


# ------------------------------------------------------------------------ key sharing


def test_only_verified_key_sharing_follows_cross_signing(make_peer: MakePeer) -> None:
    alice, bob = _verified_pair(make_peer)
    b2 = make_peer(BOB, "B2")
    b3 = make_peer(BOB, "B3")
    settle(bob, b2, b3)
    verify_to_device(b2, bob)  # Bob's B1 signs B2 with his self-signing key
    settle(alice, bob, b2, b3)
    assert _trust(alice, BOB, "B1") is DeviceTrust.VERIFIED
    assert _trust(alice, BOB, "B2") is DeviceTrust.VERIFIED
    assert _trust(alice, BOB, "B3") is DeviceTrust.UNVERIFIED
    settings = EncryptionSettings(only_verified=True)
    event = alice.encrypt(ROOM, [ALICE, BOB], "for verified devices", settings=settings)
    for device in (bob, b2):
        device.sync()
        assert device.decrypt(event, ROOM).content["body"] == "for verified devices"
    assert [w.code for w in b3.sync().withheld] == ["m.unverified"]
    shares = {s["device_id"]: s["state"] for s in alice.machine.room_key_shares(ROOM)}
    assert shares == {"B1": "sent", "B2": "sent", "B3": "withheld"}


# ------------------------------------------------------------------ signature uploads


def test_a_refused_signature_upload_is_retried_later(
    make_peer: MakePeer, server: FakeHomeserver, clock: FakeClock
) -> None:
    peer = make_peer(ALICE, "A1")
    request = peer.machine.bootstrap_cross_signing()
    assert request is not None
    peer.machine.mark_request_as_sent(request.request_id, server.handle(ALICE, "A1", request))
    [upload] = [
        r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)
    ]
    outcome = peer.machine.mark_request_as_sent(
        upload.request_id,
        {"failures": {ALICE: {"A1": {"errcode": "M_INVALID_SIGNATURE", "error": "no"}}}},
    )
    assert outcome.signature_failures == ((ALICE, "A1", "M_INVALID_SIGNATURE"),)
    # Not again at once: after our keys were queried again (the refusal may be stale).
    [query] = [r for r in peer.machine.outgoing_requests() if isinstance(r, KeysQueryRequest)]
    assert not [
        r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)
    ]
    peer.send(query)
    [again] = [r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)]
    peer.machine.mark_request_as_failed(again.request_id)
    assert not [
        r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)
    ]
    clock.advance(60_000)
    [third] = [r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)]
    peer.send(third)
    settle(peer)
    assert peer.machine.cross_signing_status().this_device_signed
    assert not [
        r for r in peer.machine.outgoing_requests() if isinstance(r, SignatureUploadRequest)
    ]


def test_verification_messages_go_first(make_peer: MakePeer) -> None:
    a1 = make_peer(ALICE, "A1")
    a2 = make_peer(ALICE, "A2")
    settle(a1, a2)
    a1.machine.request_room_key(ROOM, "session")
    a1.machine.request_verification(ALICE, ["A2"])
    kinds = [r.kind.value for r in a1.machine.outgoing_requests() if isinstance(r, ToDeviceRequest)]
    assert kinds == ["verification", "key_request"]


# ------------------------------------------------------------------------ at rest


def test_secrets_are_sealed_under_the_pickle_key(make_peer: MakePeer) -> None:
    peer = make_peer(ALICE, "A1")
    bootstrap(peer)
    record = peer.store.get_secret("m.cross_signing.master")
    assert record is not None
    clear = peer.machine.get_secret("m.cross_signing.master")
    assert clear is not None and clear not in record["sealed"]
    with pytest.raises(SecretSealError):
        open_secret(peer.pickle_key, "m.cross_signing.self_signing", record["sealed"])
    with pytest.raises(SecretSealError):
        open_secret(secrets.token_bytes(32), "m.cross_signing.master", record["sealed"])
    assert open_secret(peer.pickle_key, "m.cross_signing.master", record["sealed"]) == clear
    assert seal_secret(peer.pickle_key, "n", "v") != seal_secret(peer.pickle_key, "n", "v")
    peer.machine.save_secret("m.megolm_backup.v1", "backup")
    assert peer.machine.secret_names() == [
        "m.cross_signing.master",
        "m.cross_signing.self_signing",
        "m.cross_signing.user_signing",
        "m.megolm_backup.v1",
    ]
    peer.machine.delete_secret("m.megolm_backup.v1")
    assert peer.machine.get_secret("m.megolm_backup.v1") is None
    assert clear not in repr(peer.machine)


def test_cross_signing_survives_a_restart_on_sqlite(
    server: FakeHomeserver, clock: FakeClock, tmp_path: Path, backend_name: str
) -> None:
    from tui_client.store.cache import Cache

    cache = Cache(tmp_path / "cache.sqlite3")
    store = cache.crypto_store()
    alice = Peer(server, ALICE, "A1", backend_name, clock, store=store)  # type: ignore[arg-type]
    alice.login()
    bootstrap(alice)
    bob = make_bob = Peer(server, BOB, "B1", backend_name, clock)
    make_bob.login()
    bootstrap(bob)
    _meet(alice, bob)
    verify_in_room(alice, bob, FakeRoom(ROOM, clock))
    settle(alice, bob)
    alice.restart()
    assert alice.machine.cross_signing_status().complete
    identity = alice.machine.user_identity(BOB)
    assert identity is not None and identity.verified
    cache.close()


# ----------------------------------------------------------------------- parsing


def test_cross_signing_key_shapes() -> None:
    key = _pk().public_key
    good = {"user_id": BOB, "usage": ["master"], "keys": {f"ed25519:{key}": key}}
    assert parse_cross_signing_key(good, BOB, "master") is not None
    bad: list[Any] = [
        {**good, "user_id": ALICE},
        {**good, "usage": ["self_signing"]},
        {**good, "keys": {}},
        {**good, "keys": {f"ed25519:{key}": key, "ed25519:other": key}},
        {**good, "keys": {"ed25519:other": key}},
        {**good, "keys": {f"ed25519:{key}": "short"}},
        {**good, "usage": "master"},
        "nonsense",
        {**good, "extra": 1.5},
    ]
    for obj in bad:
        assert parse_cross_signing_key(obj, BOB, "master") is None, obj
