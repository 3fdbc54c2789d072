"""QR code verification between machines in memory: the spec's payload, every mode shown and
scanned, and what goes wrong (a wrong secret, wrong keys, the user saying no, a timeout)."""

from __future__ import annotations

import pytest

from tui_client.crypto.encoding import b64encode
from tui_client.crypto.types import DeviceTrust, LocalTrust, MachineConfig
from tui_client.crypto.verification import (
    CancelCode,
    Verification,
    VerificationConfig,
    VerificationError,
    VerificationState,
)
from tui_client.crypto.verification.qr_code import QrCode, QrCodeError, QrMode

from .conftest import MakePeer
from .flows import bootstrap, received_secrets, settle
from .harness import FakeClock, FakeHomeserver, FakeRoom, Peer

ALICE, BOB = "@alice:x", "@bob:y"
SAS, SHOW, SCAN, RECIPROCATE = (
    "m.sas.v1",
    "m.qr_code.show.v1",
    "m.qr_code.scan.v1",
    "m.reciprocate.v1",
)
#: A device that reads codes (a phone's camera): scans, and shows too.
PHONE = MachineConfig(verification=VerificationConfig(methods=(SAS, SHOW, SCAN, RECIPROCATE)))


# ---------------------------------------------------------------------------------- the payload


def test_the_spec_example() -> None:
    """The spec's example: mode 0x00 for "$ABCD…" (45 bytes), keys 00…1f and 10…2f, secret 20…27."""
    flow_id = "!ABCD" + "E" * 40
    code = QrCode(
        QrMode.VERIFY_OTHER_USER,
        flow_id,
        b64encode(bytes(range(0x00, 0x20))),
        b64encode(bytes(range(0x10, 0x30))),
        bytes(range(0x20, 0x28)),
    )
    data = code.to_bytes()
    assert data[:15] == bytes.fromhex("4D 41 54 52 49 58 02 00 00 2D 21 41 42 43 44")
    assert data[10 + 45 :] == bytes(range(0x00, 0x20)) + bytes(range(0x10, 0x30)) + bytes(
        range(0x20, 0x28)
    )
    # The spec's base64 spellings of the keys and the secret.
    assert code.first_key.startswith("AAECAwQFBg") and code.second_key.startswith("EBESExQVFh")
    assert code.secret_b64 == "ICEiIyQlJic"
    assert QrCode.from_bytes(data) == code


def test_a_new_code_has_a_fresh_secret_and_reads_back() -> None:
    key = b64encode(bytes(32))
    one = QrCode.new(QrMode.SELF_UNTRUSTED, "txn", key, key)
    two = QrCode.new(QrMode.SELF_UNTRUSTED, "txn", key, key)
    assert len(one.secret) == 8 and one.secret != two.secret
    assert QrCode.from_bytes(one.to_bytes()) == one


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a Matrix"),
        (b"MATRIY\x02\x00\x00\x01x" + bytes(72), "not a Matrix"),
        (b"MATRIX\x01\x00\x00\x01x" + bytes(72), "version"),
        (b"MATRIX\x02\x03\x00\x01x" + bytes(72), "mode"),
        (b"MATRIX\x02\x00\x00", "cut short"),
        (b"MATRIX\x02\x00\x00\x01x" + bytes(64 + 7), "cut short"),
        (b"MATRIX\x02\x00\x00\x05x" + bytes(72), "cut short"),
        (b"MATRIX\x02\x00\x00\x01\xff" + bytes(72), "UTF-8"),
    ],
)
def test_malformed_codes_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(QrCodeError, match=why):
        QrCode.from_bytes(data)


# ---------------------------------------------------------------------------------- flows


def _meet(*peers: Peer) -> None:
    users = sorted({p.user_id for p in peers})
    for peer in peers:
        peer.machine.update_tracked_users(users)
    settle(*peers)


def _incoming(peer: Peer) -> Verification:
    [flow] = [v for v in peer.machine.verifications() if v.state is VerificationState.INCOMING]
    return flow


def _now(peer: Peer, flow: Verification) -> Verification:
    current = peer.machine.get_verification(flow.id)
    assert current is not None
    return current


def _ready_to_device(shower: Peer, scanner: Peer) -> tuple[Verification, Verification]:
    """``shower`` asks ``scanner`` (its own other device); both ready, the code shown."""
    ours = shower.machine.request_verification(scanner.user_id, [scanner.device_id])
    settle(shower, scanner)
    theirs = _incoming(scanner)
    assert SCAN in theirs.methods and RECIPROCATE in theirs.methods
    scanner.machine.accept_verification(theirs.id)
    settle(shower, scanner)
    ours, theirs = _now(shower, ours), _now(scanner, theirs)
    assert ours.state is theirs.state is VerificationState.READY
    assert ours.methods == (SAS, SHOW, RECIPROCATE)
    assert theirs.methods == (SAS, SCAN, RECIPROCATE)
    assert ours.qr_code is not None and theirs.qr_code is None
    return ours, theirs


def _new_session(make_peer: MakePeer) -> tuple[Peer, Peer]:
    """Alice's phone (trusts her cross-signing keys, scans) and a new terminal session."""
    phone = make_peer(ALICE, "PHONE", config=PHONE)
    bootstrap(phone)
    phone.machine.save_secret("m.megolm_backup.v1", "YmFja3VwIGtleQ")
    terminal = make_peer(ALICE, "TERM")
    settle(phone, terminal)
    assert terminal.machine.cross_signing_status().master_trusted is False
    return phone, terminal


def test_a_phone_scans_a_new_session(make_peer: MakePeer, server: FakeHomeserver) -> None:
    """Mode 0x02: this session does not trust the master key yet; the phone does."""
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    code = QrCode.from_bytes(ours.qr_code)
    master = phone.machine.user_identity(ALICE).master_key  # type: ignore[union-attr]
    assert code.mode is QrMode.SELF_UNTRUSTED and code.flow_id == ours.flow_id
    assert code.first_key == terminal.machine.identity_keys.ed25519
    assert code.second_key == master
    # The same code in every snapshot until it is used.
    assert _now(terminal, ours).qr_code == ours.qr_code
    scanned = phone.machine.scan_qr_code(theirs.id, ours.qr_code)
    assert scanned.state is VerificationState.WAITING_FOR_DONE
    [start] = [
        r for r in phone.machine.outgoing_requests() if r.event_type == "m.key.verification.start"
    ]
    content = start.messages[ALICE]["TERM"]  # type: ignore[attr-defined]
    assert content["method"] == RECIPROCATE and content["secret"] == code.secret_b64
    settle(phone, terminal)
    asked = _now(terminal, ours)
    assert asked.state is VerificationState.QR_SCANNED
    # Nothing is trusted before the user says the phone confirmed.
    assert terminal.machine.cross_signing_status().master_trusted is False
    done = terminal.machine.confirm_qr_scanned(ours.id)
    assert done.state is VerificationState.WAITING_FOR_DONE
    settle(phone, terminal)
    settle(phone, terminal)
    ours, theirs = _now(terminal, ours), _now(phone, theirs)
    assert ours.state is theirs.state is VerificationState.DONE, (ours, theirs)
    assert ours.verified_keys == (f"ed25519:{master}",)
    assert terminal.machine.cross_signing_status().master_trusted is True
    # The phone verified this session and signed it with the self-signing key.
    device = phone.machine.get_device(ALICE, "TERM")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED
    signatures = server.device_keys[ALICE]["TERM"]["signatures"][ALICE]
    self_signing = phone.machine.user_identity(ALICE).self_signing_key  # type: ignore[union-attr]
    assert f"ed25519:{self_signing}" in signatures
    # Trusting the master key made the session ask for the secrets, and the phone sent them.
    assert terminal.machine.cross_signing_status().complete
    assert {s.name for s in received_secrets(terminal)} >= {
        "m.cross_signing.master",
        "m.cross_signing.self_signing",
        "m.cross_signing.user_signing",
        "m.megolm_backup.v1",
    }


def test_a_session_that_trusts_the_master_key_shows_mode_1(make_peer: MakePeer) -> None:
    """Mode 0x01: the terminal trusts the master key; a new phone scans it."""
    terminal = make_peer(ALICE, "TERM")
    bootstrap(terminal)
    phone = make_peer(ALICE, "PHONE", config=PHONE)
    settle(terminal, phone)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    code = QrCode.from_bytes(ours.qr_code)
    assert code.mode is QrMode.SELF_TRUSTED
    assert code.first_key == terminal.machine.user_identity(ALICE).master_key  # type: ignore[union-attr]
    assert code.second_key == phone.machine.identity_keys.ed25519
    phone.machine.scan_qr_code(theirs.id, ours.qr_code)
    settle(terminal, phone)
    terminal.machine.confirm_qr_scanned(ours.id)
    settle(terminal, phone)
    settle(terminal, phone)
    assert _now(terminal, ours).state is _now(phone, theirs).state is VerificationState.DONE
    # The terminal verified the phone (and cross-signed it); the phone trusts the master key.
    device = terminal.machine.get_device(ALICE, "PHONE")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED
    assert phone.machine.cross_signing_status().master_trusted is True


def test_users_verify_by_qr_in_their_dm(make_peer: MakePeer, clock: FakeClock) -> None:
    """Mode 0x00: Alice's terminal shows, Bob's phone scans; each verifies the other's identity."""
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "PHONE", config=PHONE)
    bootstrap(alice)
    bootstrap(bob)
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    ours = alice.machine.request_verification_in_room(room.room_id, BOB)
    settle(alice, bob, rooms=[room])
    theirs = _incoming(bob)
    bob.machine.accept_verification(theirs.id)
    settle(alice, bob, rooms=[room])
    ours = _now(alice, ours)
    assert ours.state is VerificationState.READY and ours.qr_code is not None
    code = QrCode.from_bytes(ours.qr_code)
    assert code.mode is QrMode.VERIFY_OTHER_USER and code.flow_id == room.timeline[0]["event_id"]
    assert code.first_key == alice.machine.user_identity(ALICE).master_key  # type: ignore[union-attr]
    assert code.second_key == alice.machine.user_identity(BOB).master_key  # type: ignore[union-attr]
    bob.machine.scan_qr_code(theirs.id, ours.qr_code)
    settle(alice, bob, rooms=[room])
    assert _now(alice, ours).state is VerificationState.QR_SCANNED
    alice.machine.confirm_qr_scanned(ours.id)
    settle(alice, bob, rooms=[room])
    settle(alice, bob, rooms=[room])
    assert _now(alice, ours).state is _now(bob, theirs).state is VerificationState.DONE
    start = [e for e in room.timeline if e["type"] == "m.key.verification.start"]
    assert start[0]["content"]["method"] == RECIPROCATE
    for peer, other in ((alice, BOB), (bob, ALICE)):
        identity = peer.machine.user_identity(other)
        assert identity is not None and identity.verified
        [device] = peer.machine.get_user_devices(other)
        assert peer.machine.device_trust(device) is DeviceTrust.VERIFIED


def test_no_code_for_a_device_that_cannot_scan(make_peer: MakePeer) -> None:
    """A device offering SAS only gets no code: SAS as before."""
    terminal = make_peer(ALICE, "TERM")
    bootstrap(terminal)
    other = make_peer(ALICE, "OTHER")
    settle(terminal, other)
    ours = terminal.machine.request_verification(ALICE, ["OTHER"])
    settle(terminal, other)
    theirs = _incoming(other)
    assert theirs.methods == (SAS,)
    other.machine.accept_verification(theirs.id)
    settle(terminal, other)
    ours = _now(terminal, ours)
    assert ours.state is VerificationState.READY and ours.qr_code is None
    assert ours.methods == (SAS,)
    with pytest.raises(VerificationError, match="does not show QR codes"):
        terminal.machine.scan_qr_code(ours.id, b"MATRIX")


def test_sas_is_still_possible_while_the_code_shows(make_peer: MakePeer) -> None:
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    terminal.machine.start_sas(ours.id)
    settle(phone, terminal)
    ours, theirs = _now(terminal, ours), _now(phone, theirs)
    assert ours.state is theirs.state is VerificationState.KEYS_EXCHANGED
    assert ours.qr_code is None and ours.emoji == theirs.emoji


# ---------------------------------------------------------------------------------- errors


def _cancelled(flow: Verification, code: str, *, by_us: bool) -> None:
    assert flow.state is VerificationState.CANCELLED, flow
    assert flow.cancellation is not None
    assert (flow.cancellation.code, flow.cancellation.by_us) == (code, by_us), flow.cancellation


def test_a_wrong_secret_is_an_attack(make_peer: MakePeer) -> None:
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    forged = ours.qr_code[:-1] + bytes([ours.qr_code[-1] ^ 0xFF])
    phone.machine.scan_qr_code(theirs.id, forged)
    settle(phone, terminal)
    ours, theirs = _now(terminal, ours), _now(phone, theirs)
    _cancelled(ours, CancelCode.KEY_MISMATCH, by_us=True)
    assert ours.cancellation is not None and "secret did not match" in ours.cancellation.explanation
    _cancelled(theirs, CancelCode.KEY_MISMATCH, by_us=False)
    assert terminal.machine.cross_signing_status().master_trusted is False
    device = phone.machine.get_device(ALICE, "TERM")
    assert device is not None and device.local_trust is LocalTrust.UNSET


@pytest.mark.parametrize("which", ["first", "second"])
def test_a_code_with_keys_we_do_not_know_is_refused(make_peer: MakePeer, which: str) -> None:
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    code = QrCode.from_bytes(ours.qr_code)
    other = b64encode(bytes(32))
    forged = QrCode(
        code.mode,
        code.flow_id,
        other if which == "first" else code.first_key,
        other if which == "second" else code.second_key,
        code.secret,
    )
    phone.machine.scan_qr_code(theirs.id, forged.to_bytes())
    settle(phone, terminal)
    ours, theirs = _now(terminal, ours), _now(phone, theirs)
    _cancelled(theirs, CancelCode.KEY_MISMATCH, by_us=True)
    assert theirs.cancellation is not None
    assert "keys in the QR code" in theirs.cancellation.explanation
    _cancelled(ours, CancelCode.KEY_MISMATCH, by_us=False)
    device = phone.machine.get_device(ALICE, "TERM")
    assert device is not None and device.local_trust is LocalTrust.UNSET


def test_a_code_of_another_flow_or_garbage_is_an_error_not_a_cancel(make_peer: MakePeer) -> None:
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    code = QrCode.from_bytes(ours.qr_code)
    elsewhere = QrCode(code.mode, "another", code.first_key, code.second_key, code.secret)
    with pytest.raises(VerificationError, match="another verification"):
        phone.machine.scan_qr_code(theirs.id, elsewhere.to_bytes())
    with pytest.raises(VerificationError, match="not a verification QR code"):
        phone.machine.scan_qr_code(theirs.id, b"https://example.org")
    assert _now(phone, theirs).state is VerificationState.READY


def test_the_user_says_the_other_device_did_not_confirm(make_peer: MakePeer) -> None:
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    phone.machine.scan_qr_code(theirs.id, ours.qr_code)
    settle(phone, terminal)
    refused = terminal.machine.qr_not_scanned(ours.id)
    _cancelled(refused, CancelCode.USER, by_us=True)
    assert refused.cancellation is not None
    assert "did not confirm the scan" in refused.cancellation.explanation
    settle(phone, terminal)
    _cancelled(_now(phone, theirs), CancelCode.USER, by_us=False)
    assert terminal.machine.cross_signing_status().master_trusted is False
    with pytest.raises(VerificationError):
        terminal.machine.confirm_qr_scanned(ours.id)


def test_an_unanswered_scan_times_out(make_peer: MakePeer, clock: FakeClock) -> None:
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    phone.machine.scan_qr_code(theirs.id, ours.qr_code)
    settle(phone, terminal)
    assert _now(terminal, ours).state is VerificationState.QR_SCANNED
    clock.advance(10 * 60_000 + 1)
    terminal.machine.expire_verifications()
    _cancelled(_now(terminal, ours), CancelCode.TIMEOUT, by_us=True)
    settle(phone, terminal)
    # (The phone's own clock ran out too: it cancelled as well, or heard ours first.)
    phone_side = _now(phone, theirs)
    assert phone_side.cancellation is not None and phone_side.cancellation.code == "m.timeout"
    assert terminal.machine.cross_signing_status().master_trusted is False


def test_the_phone_may_ask_and_scan(make_peer: MakePeer) -> None:
    """The phone sends the request; the terminal (which cannot scan) shows, the phone scans."""
    phone, terminal = _new_session(make_peer)
    ours = phone.machine.request_verification(ALICE, ["TERM"])
    settle(phone, terminal)
    theirs = _incoming(terminal)
    assert theirs.methods == (SAS, SHOW, RECIPROCATE)
    terminal.machine.accept_verification(theirs.id)
    settle(phone, terminal)
    phone_side, shown = _now(phone, ours), _now(terminal, theirs)
    assert phone_side.qr_code is None and phone_side.methods == (SAS, SCAN, RECIPROCATE)
    assert shown.qr_code is not None
    phone.machine.scan_qr_code(ours.id, shown.qr_code)
    settle(phone, terminal)
    terminal.machine.confirm_qr_scanned(theirs.id)
    settle(phone, terminal)
    settle(phone, terminal)
    assert _now(phone, ours).state is _now(terminal, theirs).state is VerificationState.DONE
    assert terminal.machine.cross_signing_status().master_trusted is True


def test_a_done_before_the_user_answers_waits_for_the_answer(
    make_peer: MakePeer, server: FakeHomeserver
) -> None:
    """A scanner that sends its done right after reciprocating: nothing is trusted until yes."""
    phone, terminal = _new_session(make_peer)
    ours, theirs = _ready_to_device(terminal, phone)
    assert ours.qr_code is not None
    phone.machine.scan_qr_code(theirs.id, ours.qr_code)
    phone.flush()
    server.deliver(
        ALICE,
        "TERM",
        {
            "type": "m.key.verification.done",
            "sender": ALICE,
            "content": {"transaction_id": ours.flow_id},
        },
    )
    terminal.sync()
    assert _now(terminal, ours).state is VerificationState.QR_SCANNED
    assert terminal.machine.cross_signing_status().master_trusted is False
    # The answer completes it at once (their done is already here).
    assert terminal.machine.confirm_qr_scanned(ours.id).state is VerificationState.DONE
    assert terminal.machine.cross_signing_status().master_trusted is True


def test_no_code_without_the_keys_it_needs_then_sas_only(
    make_peer: MakePeer, clock: FakeClock
) -> None:
    """Bob has no cross-signing identity: Alice can show no mode 0x00 code, SAS remains."""
    alice = make_peer(ALICE, "A1")
    bob = make_peer(BOB, "PHONE", config=PHONE)
    bootstrap(alice)
    _meet(alice, bob)
    room = FakeRoom("!dm:x", clock)
    ours = alice.machine.request_verification_in_room(room.room_id, BOB)
    settle(alice, bob, rooms=[room])
    bob.machine.accept_verification(_incoming(bob).id)
    settle(alice, bob, rooms=[room])
    ours = _now(alice, ours)
    assert ours.state is VerificationState.READY
    assert ours.qr_code is None and ours.methods == (SAS,)
    assert _now(alice, ours).methods == (SAS,)
