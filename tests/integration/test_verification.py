"""Verification and cross-signing through the engine, against a real Synapse.

Two clients of ours verify each other over to-device messages (two sessions of one
user) and in a DM (two users); the signatures they upload are what a third client's
machine computes trust from. Cancel, mismatch and timeout paths run through the
engine too. (The forged device ID case, a device named like a cross-signing key, is
covered by tests/crypto/test_verification.py::test_device_named_like_a_cross_signing_key_is_refused
and test_request_from_a_device_named_like_a_master_key.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui_client.crypto.types import DeviceTrust, MachineConfig
from tui_client.crypto.verification import VerificationConfig, VerificationState
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.devices import IdentityState
from tui_client.engine.uia import fixed_password
from tui_client.engine.updates import IdentityWarnings, VerificationChanged

from ..support.updates import Recorder
from ..support.users import MakeUser
from .e2ee_support import client_for, join, until
from .verification_support import (
    compare_and_confirm,
    cross_signing,
    cross_signing_complete,
    incoming,
    reach,
)


async def _device_trust(observer: MatrixClient, user_id: str, device_id: str) -> str:
    _, devices = await observer.devices.user_devices(user_id)
    [device] = [d for d in devices if d.device_id == device_id]
    return device.trust


async def test_own_sessions_and_another_user_verify_and_a_third_sees_the_signatures(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    a1 = await client_for(synapse, alice_user, tmp_path / "a1")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    a2 = None
    try:
        # First login of an account without an identity: cross-signing is set up by itself.
        await cross_signing_complete(a1)
        await cross_signing_complete(bob)
        assert not cross_signing(a1).needs_verification

        # A second session of alice: the account has an identity it cannot vouch for yet.
        a2 = await client_for(synapse, alice_user, tmp_path / "a2")
        await until(
            lambda: (
                a2.cross_signing.state is not None and a2.cross_signing.state.needs_verification
            ),
            "a2 asks to be verified",
        )
        status = cross_signing(a2).status
        assert status.published and not status.master_trusted and not status.has_master

        # To-device, between the two sessions: a2 asks, a1 accepts, a2 starts SAS by itself.
        asked = await a2.cross_signing.verify_this_session()
        assert asked.we_requested and asked.other_user_id == alice_user.user_id
        request = await incoming(a1)
        assert request.other_device_id == a2.device_id and not request.in_room
        await a1.verification.accept(request.id)
        await compare_and_confirm(a2, asked.id, a1, request.id)
        # The secrets followed (m.secret.request / m.secret.send) and a1 signed a2.
        await cross_signing_complete(a2)
        assert not cross_signing(a2).needs_verification
        await until(lambda: a1.devices.trust(alice_user.user_id) is not None, "a1's trust cache")

        # In a DM, between two users: bob asks alice; both her sessions are asked, a1 answers.
        room = await bob.admin.create_dm(alice_user.user_id)
        await join(a1, room)
        await until(
            lambda: room in a2.rooms and a2.rooms[room].membership == "join", "a2 in the DM"
        )
        await until(
            lambda: room in bob.rooms and bob.rooms[room].joined_count == 2, "alice in bob's DM"
        )
        asked = await bob.verification.verify_user(alice_user.user_id)
        assert asked.room_id == room
        request = await incoming(a1)
        assert request.in_room and request.other_user_id == bob_user.user_id
        also_asked = await incoming(a2)
        await a1.verification.accept(request.id)
        await compare_and_confirm(bob, asked.id, a1, request.id)
        # a2 saw a1 accept, and stopped asking.
        other = await reach(a2, also_asked.id, VerificationState.CANCELLED)
        assert other.cancellation is not None and other.cancellation.code == "m.accepted"

        # Both users are verified, on both sides.
        bob_trust = await bob.devices.refresh_trust([alice_user.user_id])
        assert bob_trust[alice_user.user_id].state is IdentityState.VERIFIED
        alice_trust = await a1.devices.refresh_trust([bob_user.user_id])
        assert alice_trust[bob_user.user_id].state is IdentityState.VERIFIED

        # The signatures are on the server: bob never met a2, yet trusts it (signed by
        # alice's self-signing key, whose master key bob verified)...
        await until_trust(bob, alice_user.user_id, a2.device_id, "verified")
        # ...and a2 trusts bob, through the signature a1's user-signing key put on bob's
        # master key (a2 holds the same identity).
        await until_trust(a2, bob_user.user_id, bob.device_id, "verified")
        # A device nobody verified or signed stays unverified.
        a3 = await client_for(synapse, alice_user, tmp_path / "a3")
        try:
            await until_trust(bob, alice_user.user_id, a3.device_id, "unverified")
        finally:
            await a3.close()
    finally:
        await a1.close()
        await bob.close()
        if a2 is not None:
            await a2.close()


async def until_trust(
    observer: MatrixClient, user_id: str, device_id: str, trust: str, timeout: float = 30.0
) -> None:
    """Wait until ``observer`` judges the device as ``trust`` (signatures arrive via sync)."""
    seen: list[str] = []
    for _ in range(int(timeout / 0.25)):
        try:
            seen.append(await _device_trust(observer, user_id, device_id))
        except ValueError:
            seen.append("absent")
        if seen[-1] == trust:
            return
        import asyncio

        await asyncio.sleep(0.25)
    raise AssertionError(
        f"{observer.device_id} judges {user_id}/{device_id} {seen[-1]}, not {trust}"
    )


async def test_an_identity_change_warns_until_acknowledged(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    recorder = Recorder(bob)
    try:
        await cross_signing_complete(alice)
        await cross_signing_complete(bob)
        room = await alice.admin.create_dm(bob_user.user_id)
        await join(bob, room)
        await until(lambda: alice.rooms[room].joined_count == 2, "bob in the DM")
        # /verify in the DM verifies its other person.
        text = await alice.submit(room, "/verify")
        assert text == f"Verification request sent to {bob_user.user_id}"
        [asked] = [f for f in alice.verification.active() if f.other_user_id == bob_user.user_id]
        request = await incoming(bob)
        await bob.verification.accept(request.id)
        await compare_and_confirm(alice, asked.id, bob, request.id)
        verified = await bob.devices.refresh_trust([alice_user.user_id])
        assert verified[alice_user.user_id].verified

        # Alice replaces her identity (the server asks for her password).
        alice.ask_password = fixed_password(alice_user.password)
        await alice.cross_signing.bootstrap(reset=True)
        await until(
            lambda: any(w.user_id == alice_user.user_id for w in bob.devices.warnings),
            "bob's warning",
        )
        [warning] = bob.devices.warnings
        assert warning.verification_violation
        assert recorder.of(IdentityWarnings)[-1].identities == (warning,)
        changed = await bob.devices.refresh_trust([alice_user.user_id])
        assert changed[alice_user.user_id].state is IdentityState.VIOLATION
        assert changed[alice_user.user_id].needs_attention

        # Bob acknowledges: the warning goes, and alice is not verified any more.
        await bob.devices.acknowledge(alice_user.user_id)
        assert bob.devices.warnings == ()
        assert recorder.of(IdentityWarnings)[-1].identities == ()
        after = bob.devices.trust(alice_user.user_id)
        assert after is not None and after.state is IdentityState.UNVERIFIED
    finally:
        await alice.close()
        await bob.close()


async def test_decline_mismatch_and_cancel_are_explained_on_both_sides(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    a1 = await client_for(synapse, alice_user, tmp_path / "a1")
    a1_updates = Recorder(a1)
    # a1 sets up the identity before a2 logs in (two first logins at once race to create it).
    await cross_signing_complete(a1)
    a2 = await client_for(synapse, alice_user, tmp_path / "a2")
    try:
        # Declined.
        asked = await a2.verification.verify_own_devices()
        request = await incoming(a1)
        await a1.verification.cancel(request.id)
        declined = await reach(a2, asked.id, VerificationState.CANCELLED)
        assert declined.cancellation is not None
        assert (declined.cancellation.code, declined.cancellation.by_us) == ("m.user", False)
        assert (
            declined.cancellation.explanation
            == "The other side declined or cancelled the verification."
        )

        # The emoji do not match.
        asked = await a2.verification.verify_own_devices()
        request = await incoming(a1)
        await a1.verification.accept(request.id)
        await reach(a1, request.id, VerificationState.KEYS_EXCHANGED)
        await a1.verification.mismatch(request.id)
        here = await reach(a1, request.id, VerificationState.CANCELLED)
        there = await reach(a2, asked.id, VerificationState.CANCELLED)
        assert here.cancellation is not None and there.cancellation is not None
        assert (here.cancellation.code, here.cancellation.by_us) == ("m.mismatched_sas", True)
        assert (there.cancellation.code, there.cancellation.by_us) == ("m.mismatched_sas", False)
        assert "Do not trust" in here.cancellation.explanation

        # Cancelled by the side that asked, while the other was comparing.
        asked = await a2.verification.verify_own_devices()
        request = await incoming(a1)
        await a1.verification.accept(request.id)
        await reach(a2, asked.id, VerificationState.KEYS_EXCHANGED)
        await a2.verification.cancel(asked.id)
        there = await reach(a1, request.id, VerificationState.CANCELLED)
        assert there.cancellation is not None and not there.cancellation.by_us
        # Nothing was verified by any of it.
        assert await _device_trust(a1, alice_user.user_id, a2.device_id) == "unverified"
        # Every step was published, each flow separately.
        ids = {u.verification.id for u in a1_updates.of(VerificationChanged)}
        assert len(ids) == 3
    finally:
        await a1.close()
        await a2.close()


async def test_requests_time_out(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    quick = MachineConfig(
        verification=VerificationConfig(
            timeout_ms=12_000, inactivity_ms=12_000, request_prompt_ms=4_000
        )
    )
    clients = []
    for name in ("a1", "a2"):
        client = await MatrixClient.login(
            alice_user.user_id,
            alice_user.password,
            homeserver=synapse.base_url,
            base_dir=tmp_path / name,
            long_poll_ms=500,
        )
        client.encryption.config = quick
        await client.open()
        client.start()
        await client.wait_synced()
        clients.append(client)
    a1, a2 = clients
    try:
        asked = await a2.verification.verify_own_devices()
        request = await incoming(a1)
        # Nobody answers: the prompt goes away quietly after four seconds (another session
        # of ours may still answer), and the request times out for its sender.
        dismissed = await reach(a1, request.id, VerificationState.CANCELLED, timeout=30)
        assert dismissed.cancellation is not None
        assert (dismissed.cancellation.code, dismissed.cancellation.by_us) == ("m.timeout", True)
        timed_out = await reach(a2, asked.id, VerificationState.CANCELLED, timeout=30)
        assert timed_out.cancellation is not None
        assert timed_out.cancellation.code == "m.timeout"
        assert timed_out.cancellation.explanation == "The verification timed out."
        assert timed_out.expires_ms - timed_out.created_ms <= 12_000
    finally:
        await a1.close()
        await a2.close()


async def test_verifying_a_device_of_another_user_to_device(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await alice.admin.create_dm(bob_user.user_id)
        await join(bob, room)
        asked = await alice.verification.verify_device(bob_user.user_id, bob.device_id)
        assert not asked.in_room
        request = await incoming(bob)
        await bob.verification.accept(request.id)
        await compare_and_confirm(alice, asked.id, bob, request.id)
        trust = await alice.devices.refresh_trust([bob_user.user_id])
        assert bob.device_id in trust[bob_user.user_id].verified_devices
        machine = alice.encryption.machine
        assert machine is not None
        device = machine.get_device(bob_user.user_id, bob.device_id)
        assert device is not None and machine.device_trust(device) is DeviceTrust.VERIFIED
    finally:
        await alice.close()
        await bob.close()


async def test_two_requests_at_once_do_not_mix(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    a1 = await client_for(synapse, alice_user, tmp_path / "a1")
    await cross_signing_complete(a1)
    a2 = await client_for(synapse, alice_user, tmp_path / "a2")
    a3 = await client_for(synapse, alice_user, tmp_path / "a3")
    try:
        from_a2 = await a2.verification.verify_own_devices([a1.device_id])
        from_a3 = await a3.verification.verify_own_devices([a1.device_id])
        await until(lambda: len(a1.verification.incoming()) == 2, "both requests at a1")
        by_device = {f.other_device_id: f for f in a1.verification.incoming()}
        assert set(by_device) == {a2.device_id, a3.device_id}
        await a1.verification.cancel(by_device[a3.device_id].id)
        await a1.verification.accept(by_device[a2.device_id].id)
        await compare_and_confirm(a2, from_a2.id, a1, by_device[a2.device_id].id)
        declined = await reach(a3, from_a3.id, VerificationState.CANCELLED)
        assert declined.cancellation is not None and declined.cancellation.code == "m.user"
        assert a1.verification.get(by_device[a3.device_id].id).state is VerificationState.CANCELLED  # type: ignore[union-attr]
        await until_trust(a1, alice_user.user_id, a2.device_id, "verified")
        assert await _device_trust(a1, alice_user.user_id, a3.device_id) == "unverified"
    finally:
        for client in (a1, a2, a3):
            await client.close()


async def test_crossing_requests_end_in_one_verification(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    a1 = await client_for(synapse, alice_user, tmp_path / "a1")
    a2 = await client_for(synapse, alice_user, tmp_path / "a2")
    try:
        await a1.devices.await_queried([alice_user.user_id])
        await a2.devices.await_queried([alice_user.user_id])
        # Both sessions ask at once: one request survives on both sides, SAS starts by itself.
        one, two = await asyncio.gather(
            a1.verification.verify_own_devices([a2.device_id]),
            a2.verification.verify_own_devices([a1.device_id]),
        )
        mine = await reach(a1, one.id, VerificationState.KEYS_EXCHANGED)
        theirs = await reach(a2, two.id, VerificationState.KEYS_EXCHANGED)
        assert mine.flow_id == theirs.flow_id and mine.we_requested != theirs.we_requested
        assert not a1.verification.incoming() and not a2.verification.incoming()
        # "Start comparing emoji" clicked after the automatic start: nothing to do, no error.
        assert (await a1.verification.start_sas(one.id)).state is VerificationState.KEYS_EXCHANGED
        assert (await a2.verification.start_sas(two.id)).state is VerificationState.KEYS_EXCHANGED
        await compare_and_confirm(a1, one.id, a2, two.id)
        for client in (a1, a2):
            assert [f.id for f in client.verification.active()] == []
    finally:
        await a1.close()
        await a2.close()
