"""Recovery key, secret storage and key backup against a real Synapse.

Client A sets up recovery and backs up its room keys as they come; client B, a new
login of the same account with only the recovery key (or passphrase), becomes
verified and reads the history. The bad cases: a wrong key, a backup made by
someone without our keys, a backup replaced on the server, a damaged entry, and
server faults while uploading.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from tui_client.crypto import load_backend
from tui_client.crypto.backup import BACKUP_ALGORITHM, BackupKey, RestoreFailureKind
from tui_client.crypto.secret_storage import MEGOLM_BACKUP_V1, SecretStorageKey
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.recovery import RecoveryError
from tui_client.engine.uia import AuthCancelled, fixed_password
from tui_client.engine.updates import KeyRestoreProgress

from ..engine.support import Wire, json_response
from ..support.users import MakeUser
from .e2ee_support import bodies, client_for, encrypted_room, join, shown, until

ROOM_KEYS = "/_matrix/client/v3/room_keys"


def fast_passphrases(client: MatrixClient) -> None:
    """Passphrase-derived keys with fewer PBKDF2 rounds (the default takes ~1 s each time)."""
    client.recovery.new_storage_key = lambda passphrase: SecretStorageKey.create(
        passphrase=passphrase, iterations=20_000
    )


def server_backup(synapse: SynapseServer, token: str, version: str | None = None) -> dict[str, Any]:
    """The current (or given) backup version as the server describes it."""
    path = f"{ROOM_KEYS}/version" + (f"/{version}" if version else "")
    status, body = synapse.request_json("GET", path, None, token)
    assert status == 200, body
    return dict(body)


def server_account_data(
    synapse: SynapseServer, user: RegisteredUser, event_type: str
) -> dict[str, Any] | None:
    """The user's global account data of ``event_type`` on the server (``None`` if unset)."""
    path = f"/_matrix/client/v3/user/{urllib.parse.quote(user.user_id)}/account_data/{event_type}"
    status, body = synapse.request_json("GET", path, None, user.access_token)
    if status == 404:
        return None
    assert status == 200, body
    return dict(body)


def server_sessions(synapse: SynapseServer, token: str, version: str) -> dict[str, dict[str, Any]]:
    """Session ID -> backup entry, of every room, as the server stores them."""
    status, body = synapse.request_json("GET", f"{ROOM_KEYS}/keys?version={version}", None, token)
    assert status == 200, body
    return {sid: data for room in body["rooms"].values() for sid, data in room["sessions"].items()}


async def backed_up(client: MatrixClient, at_least: int) -> None:
    """Wait until ``at_least`` room keys are on this device and every one is backed up."""

    def done() -> bool:
        status = client.backup.status()
        return status.up_to_date and status.keys_total >= at_least

    await until(done, f"{at_least} keys backed up ({client.backup.status()})")


async def history_room(
    alice: MatrixClient, bob: MatrixClient, bob_user: RegisteredUser, texts: list[str]
) -> str:
    """An encrypted room where Bob and Alice wrote ``texts`` (alternating), all seen by Alice."""
    room = await encrypted_room(alice, "history", [bob_user.user_id])
    await join(bob, room)
    await until(lambda: alice.rooms[room].joined_count == 2, "bob's join at alice")
    view = await alice.open_room(room)
    for n, text in enumerate(texts):
        await (bob if n % 2 == 0 else alice).send_message(room, text)
        await shown(view, text)
    return room


async def read_all(client: MatrixClient, room: str) -> list[str]:
    """Page the room's whole history into a fresh view; the bodies shown."""
    client.close_room(room)
    view = await client.open_room(room)
    while not view.reached_start:
        await view.paginate_back()
    return bodies(view)


@pytest.mark.parametrize("backend", ["olm", "vodozemac"])
async def test_a_new_login_with_only_the_recovery_key_is_verified_and_reads_the_history(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, backend: str
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a", crypto_backend=backend)
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    fresh: MatrixClient | None = None
    try:
        room = await history_room(
            alice, bob, bob_user, ["bob: before recovery", "alice: before recovery"]
        )
        setup = await alice.recovery.set_up()
        assert setup.new_backup and setup.recovery_key.count(" ") == 11
        await backed_up(alice, 2)
        version = setup.backup_version
        info = server_backup(synapse, alice_user.access_token)
        assert info["version"] == version and info["algorithm"] == BACKUP_ALGORITHM
        signers = set(info["auth_data"]["signatures"][alice_user.user_id])
        assert (
            f"ed25519:{alice.device_id}" in signers and len(signers) == 2
        )  # device and master key
        # Continuous backup: a message's new session appears on the server by itself.
        alice.close_room(room)
        view = await alice.open_room(room)
        before = set(server_sessions(synapse, alice_user.access_token, version))
        await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
        await bob.send_message(room, "bob: after recovery")
        await shown(view, "bob: after recovery")
        await until(
            lambda: len(server_sessions(synapse, alice_user.access_token, version)) > len(before),
            "the new session in the backup",
        )

        fresh = await client_for(synapse, alice_user, tmp_path / "b", crypto_backend=backend)
        assert "bob: before recovery" not in await read_all(fresh, room)
        progress: list[KeyRestoreProgress] = []
        fresh.subscribe(lambda u: progress.append(u) if isinstance(u, KeyRestoreProgress) else None)
        result = await fresh.recovery.recover(setup.recovery_key)
        assert result.device_verified, result
        assert set(result.imported) >= {
            "m.cross_signing.master",
            "m.cross_signing.self_signing",
            MEGOLM_BACKUP_V1,
        }
        assert result.problems == ()
        restore = result.restore
        assert restore is not None and restore.version == version and restore.failures == ()
        assert restore.total >= 3 and restore.imported == restore.total
        stages = [p.stage for p in progress]
        assert stages[0] == "unlocking" and "restoring" in stages and stages[-1] == "done"
        assert progress[-1].done == progress[-1].total == restore.total
        view = await fresh.open_room(room)
        for text in ("bob: before recovery", "alice: before recovery", "bob: after recovery"):
            await shown(view, text)
        restored = next(i for i in view.model.items if i.body == "bob: before recovery")
        assert restored.trust == "unauthenticated"  # a key from the backup: sender not proven
        # The new device is cross-signed: the first one sees it verified, with no SAS.
        await device_verified_at(alice, fresh.device_id)
        # The restored keys are already in the backup: nothing is uploaded again.
        assert fresh.backup.status().state == "active" and fresh.backup.status().up_to_date
    finally:
        for client in (alice, bob, fresh):
            if client is not None:
                await client.close()


async def device_verified_at(client: MatrixClient, device_id: str, timeout: float = 30.0) -> None:
    """Wait until ``client`` lists its account's ``device_id`` as verified."""
    for _ in range(int(timeout / 0.25)):
        devices = {d.device_id: d for d in await client.devices.own_devices()}
        if device_id in devices and devices[device_id].verified:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{device_id} never became verified for {client.device_id}")


async def test_a_wrong_key_or_passphrase_changes_nothing_and_the_passphrase_works(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    fast_passphrases(alice)
    fresh: MatrixClient | None = None
    try:
        room = await history_room(alice, bob, bob_user, ["the first secret"])
        setup = await alice.recovery.set_up("correct horse battery staple")
        assert setup.passphrase
        await backed_up(alice, 1)
        fresh = await client_for(synapse, alice_user, tmp_path / "b")
        machine = fresh.encryption.machine
        assert machine is not None
        await fresh.backup.checked.wait()

        async def untouched() -> None:
            status = await fresh.encryption.call(machine.cross_signing_status)
            assert not (status.has_master or status.has_self_signing or status.this_device_signed)
            assert await fresh.encryption.call(machine.secret_names) == []
            assert await fresh.encryption.call(fresh.encryption.store.load_backup_state) is None
            assert (
                fresh.backup.status().state == "untrusted"
            )  # signed by keys it cannot vouch for yet

        await untouched()
        wrong_key = BackupKey.create(load_backend("olm")).recovery_key()
        mistyped = setup.recovery_key[:-1] + ("a" if setup.recovery_key[-1] != "a" else "b")
        for attempt, message in (
            ("correct horse battery stapler", "does not unlock"),
            (wrong_key, "does not unlock"),
            (mistyped, "mistyped"),
            ("", "(?i)no recovery key"),
        ):
            with pytest.raises(RecoveryError, match=message):
                await fresh.recovery.recover(attempt)
            await untouched()
        assert fresh.recovery.progress is not None and fresh.recovery.progress.stage == "failed"
        result = await fresh.recovery.recover("correct horse battery staple")
        assert (
            result.device_verified and result.restore is not None and result.restore.imported >= 1
        )
        assert "the first secret" in await read_all(fresh, room)
        # The recovery key of a passphrase-made key opens it as well.
        info = await fresh.recovery.secret_storage()
        assert info.has_passphrase and info.description is not None
        SecretStorageKey.from_recovery_key(setup.recovery_key, info.description)
    finally:
        for client in (alice, bob, fresh):
            if client is not None:
                await client.close()


async def test_a_backup_made_without_our_keys_is_never_used(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    fresh: MatrixClient | None = None
    try:
        room = await history_room(alice, bob, bob_user, ["kept safe"])
        setup = await alice.recovery.set_up()
        await backed_up(alice, 1)
        # Someone holding the access token but none of our keys replaces the backup with theirs.
        rogue = BackupKey.create(load_backend("olm"))
        status, body = synapse.request_json(
            "POST",
            f"{ROOM_KEYS}/version",
            {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": rogue.public_key}},
            alice_user.access_token,
        )
        assert status == 200, body
        rogue_version = body["version"]
        # Alice's next upload is refused (wrong version): she looks, does not trust it, stops.
        view = await alice.open_room(room)
        await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
        await bob.send_message(room, "after the swap")
        await shown(view, "after the swap")
        await until(
            lambda: alice.backup.status().state == "untrusted",
            f"untrusted ({alice.backup.status()})",
        )
        status_now = alice.backup.status()
        assert status_now.version == rogue_version and not status_now.up_to_date
        assert "another key" in status_now.detail
        assert server_sessions(synapse, alice_user.access_token, rogue_version) == {}
        # A new login with the recovery key is verified, but restores nothing from it.
        fresh = await client_for(synapse, alice_user, tmp_path / "b")
        result = await fresh.recovery.recover(setup.recovery_key)
        assert result.device_verified and result.restore is None
        assert any("not made with your backup key" in p for p in result.problems), result.problems
        assert "kept safe" not in await read_all(fresh, room)
        # (the backup loop looks at the version again in the background after the recovery)
        await until(
            lambda: fresh.backup.status().state == "untrusted",
            f"untrusted ({fresh.backup.status()})",
        )
        # The rogue version deleted, ours is the current one again: Alice goes back to it.
        status, body = synapse.request_json(
            "DELETE", f"{ROOM_KEYS}/version/{rogue_version}", None, alice_user.access_token
        )
        assert status == 200, body
        health = await alice.recovery.health()
        assert health.backup.state == "active" and health.backup.version == setup.backup_version
        await backed_up(alice, 2)
        # Ours deleted too: she finds no backup at all, and says so.
        status, body = synapse.request_json(
            "DELETE", f"{ROOM_KEYS}/version/{setup.backup_version}", None, alice_user.access_token
        )
        assert status == 200, body
        health = await alice.recovery.health()
        assert (
            health.backup.state == "none" and health.secret_storage and not health.backup.up_to_date
        )
    finally:
        for client in (alice, bob, fresh):
            if client is not None:
                await client.close()


async def test_a_backup_replaced_by_another_of_our_devices_is_followed(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    second: MatrixClient | None = None
    try:
        room = await history_room(alice, bob, bob_user, ["one", "two"])
        setup = await alice.recovery.set_up()
        await backed_up(alice, 2)
        second = await client_for(synapse, alice_user, tmp_path / "b")
        assert (await second.recovery.recover(setup.recovery_key)).device_verified
        # The second device makes a new backup (and a new recovery key), signed by our identity.
        replaced = await second.recovery.set_up(new_backup=True, delete_old_backup=True)
        assert replaced.new_backup and replaced.backup_version != setup.backup_version
        assert replaced.recovery_key != setup.recovery_key
        status, _ = synapse.request_json(
            "GET", f"{ROOM_KEYS}/version/{setup.backup_version}", None, alice_user.access_token
        )
        assert status == 404
        # Alice's next upload is refused; the new version is trusted (our master key signed
        # it), so she uploads everything to it.
        view = await alice.open_room(room)
        await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
        await bob.send_message(room, "three")
        await shown(view, "three")
        await until(
            lambda: (
                alice.backup.status().version == replaced.backup_version
                and alice.backup.status().up_to_date
            ),
            f"alice following the new backup ({alice.backup.status()})",
        )
        assert (
            alice.backup.trust is not None
            and "your cross-signing identity" in alice.backup.trust.explain()
        )
        on_server = server_sessions(synapse, alice_user.access_token, replaced.backup_version)
        assert len(on_server) >= alice.backup.status().keys_total >= 3
        # She held the old backup's key: she asks her other session for the new one.
        await until(
            lambda: alice.backup.status().key_cached,
            f"the new key asked for ({alice.backup.status()})",
        )

        # A new recovery key made here keeps that backup (secret storage gets its key).
        again = await alice.recovery.set_up()
        assert not again.new_backup and again.backup_version == replaced.backup_version
        await until(
            lambda: alice.backup.status().key_cached, f"the key held ({alice.backup.status()})"
        )
        # The other session replaces the backup once more and goes offline: with nobody to
        # send the key, a setup here refuses, says what to do, and changes nothing.
        latest = await second.recovery.set_up(new_backup=True, delete_old_backup=True)
        await second.close()
        second = None
        alice.recovery.secret_wait = 1.0
        alice.backup.recheck()
        await until(
            lambda: alice.backup.status().version == latest.backup_version,
            "alice sees the latest backup",
        )
        default_before = server_account_data(synapse, alice_user, "m.secret_storage.default_key")
        with pytest.raises(RecoveryError, match="whose key this device does not hold"):
            await alice.recovery.set_up()
        assert server_backup(synapse, alice_user.access_token)["version"] == latest.backup_version
        assert (
            server_account_data(synapse, alice_user, "m.secret_storage.default_key")
            == default_before
        )
    finally:
        for client in (alice, bob, second):
            if client is not None:
                await client.close()


async def test_a_damaged_backup_entry_is_skipped_and_reported(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    fresh: MatrixClient | None = None
    try:
        room = await encrypted_room(alice, "damaged", [bob_user.user_id])
        await join(bob, room)
        view = await alice.open_room(room)
        for text in ("readable", "damaged in the backup"):
            await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
            await bob.send_message(room, text)
            await shown(view, text)
        bob_view = await bob.open_room(room)
        damaged_session = next(i for i in bob_view.model.items if i.body == "damaged in the backup")
        setup = await alice.recovery.set_up()
        await backed_up(alice, 2)
        # One entry that never was a room key, put there by raw API...
        junk = {
            "first_message_index": 0,
            "forwarded_count": 0,
            "is_verified": False,
            "session_data": {"ephemeral": "AAAA", "ciphertext": "broken", "mac": "AAAA"},
        }
        path = f"{ROOM_KEYS}/keys/{urllib.parse.quote(room, safe='')}/junksession?version={setup.backup_version}"
        status, body = synapse.request_json("PUT", path, junk, alice_user.access_token)
        assert status == 200, body
        # ...and a real one damaged on its way to the new device (at the transport).
        machine = bob.encryption.machine
        assert machine is not None
        target = next(
            s["session_id"]
            for s in await bob.encryption.call(lambda: machine.export_sessions(room))
            if damaged_session.event_id
            and s["session_id"] == _session_of(bob, damaged_session.event_id)
        )

        async def corrupt(request: httpx.Request) -> httpx.Response:
            answer = await wire.forward(request)
            data = json.loads(answer.content)
            entry = data["rooms"][room]["sessions"][target]["session_data"]
            entry["ciphertext"] = entry["ciphertext"][:-8]
            return json_response(200, data)

        wire.inject(lambda r: r.method == "GET" and r.url.path.endswith("/room_keys/keys"), corrupt)
        fresh = await client_for(synapse, alice_user, tmp_path / "b", transport=wire.transport())
        result = await fresh.recovery.recover(setup.recovery_key)
        restore = result.restore
        assert restore is not None
        kinds = {(f.room_id, f.session_id): f.kind for f in restore.failures}
        assert kinds == {
            (room, "junksession"): RestoreFailureKind.UNDECRYPTABLE,
            (room, target): RestoreFailureKind.UNDECRYPTABLE,
        }
        assert restore.imported == restore.total - 2 >= 1
        shown_bodies = await read_all(fresh, room)
        assert "readable" in shown_bodies and "damaged in the backup" not in shown_bodies
        health = await fresh.recovery.health()
        assert any(u.code == "missing_room_key" and u.events >= 1 for u in health.undecryptable)
    finally:
        for client in (alice, bob, fresh):
            if client is not None:
                await client.close()


def _session_of(client: MatrixClient, event_id: str) -> str:
    """The Megolm session ID of one of ``client``'s stored encrypted events."""
    rows = client.db.call(
        client.cache.execute_readonly, "SELECT json FROM events WHERE event_id = ?", (event_id,)
    )
    return str(json.loads(rows[0][0])["content"]["session_id"])


async def test_uploads_ride_out_server_faults_and_resume_after_a_restart(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a", transport=wire.transport())
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    alice.backup.max_backoff = 0.3
    try:
        room = await history_room(alice, bob, bob_user, ["a", "b"])

        def is_upload(request: httpx.Request) -> bool:
            return request.method == "PUT" and request.url.path.endswith("/room_keys/keys")

        wire.inject(
            is_upload, lambda _r: json_response(503, {"errcode": "M_UNKNOWN", "error": "down"})
        )
        wire.inject(
            is_upload,
            lambda _r: json_response(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 10}),
        )
        setup = await alice.recovery.set_up()
        await backed_up(alice, 2)
        uploads = wire.requests_to("/room_keys/keys", "PUT")
        assert len(uploads) >= 3 and sum(r.injected for r in uploads) == 2
        count = alice.backup.status().keys_total
        assert len(server_sessions(synapse, alice_user.access_token, setup.backup_version)) == count
        await alice.close()
        # A restart: the version the flags refer to is kept, nothing is uploaded again...
        seen = len(wire.requests)
        alice = MatrixClient.restore(
            base_dir=tmp_path / "a", long_poll_ms=500, transport=wire.transport()
        )  # type: ignore[assignment]
        assert alice is not None
        await alice.open()
        alice.start()
        await alice.backup.checked.wait()
        await alice.backup.idle.wait()
        assert (
            alice.backup.status().version == setup.backup_version
            and alice.backup.status().up_to_date
        )
        assert not [
            r for r in wire.requests[seen:] if r.method == "PUT" and "/room_keys/keys" in r.path
        ]
        # ...and a key arriving later is.
        view = await alice.open_room(room)
        await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
        await bob.send_message(room, "c")
        await shown(view, "c")
        await backed_up(alice, count + 1)
        assert (
            len(server_sessions(synapse, alice_user.access_token, setup.backup_version))
            == count + 1
        )
    finally:
        await alice.close()
        await bob.close()


async def test_with_everything_lost_the_identity_is_reset_behind_the_password(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "a")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    lost: MatrixClient | None = None
    third: MatrixClient | None = None
    try:
        await history_room(alice, bob, bob_user, ["before the reset"])
        old = await alice.recovery.set_up()
        await backed_up(alice, 1)
        old_master = alice.encryption.machine.user_identity(alice_user.user_id).master_key  # type: ignore[union-attr]
        # A new login without the recovery key cannot set up recovery over an identity it
        # cannot vouch for: it is told what to do.
        lost = await client_for(synapse, alice_user, tmp_path / "b")
        with pytest.raises(RecoveryError, match="does not hold its keys"):
            await lost.recovery.set_up()
        # Without a password, no reset.
        with pytest.raises(AuthCancelled):
            await lost.recovery.set_up(reset_identity=True)
        lost.ask_password = fixed_password(alice_user.password)
        reset = await lost.recovery.set_up(reset_identity=True)
        assert (
            reset.new_identity and reset.new_backup and reset.backup_version != old.backup_version
        )
        machine = lost.encryption.machine
        assert machine is not None
        new_master = (
            await lost.encryption.call(lambda: machine.user_identity(alice_user.user_id))
        ).master_key  # type: ignore[union-attr]
        assert new_master is not None and new_master != old_master
        info = server_backup(synapse, alice_user.access_token)
        assert f"ed25519:{new_master}" in info["auth_data"]["signatures"][alice_user.user_id]
        # The first session no longer trusts the account's identity: it stops using the
        # new backup until it is verified again (what the reset's warning says).
        alice.backup.recheck()
        await until(
            lambda: alice.backup.status().state == "untrusted",
            f"untrusted at alice ({alice.backup.status()})",
        )
        # The old recovery key no longer opens anything; the new one verifies a new login.
        third = await client_for(synapse, alice_user, tmp_path / "c")
        with pytest.raises(RecoveryError, match="does not unlock"):
            await third.recovery.recover(old.recovery_key)
        result = await third.recovery.recover(reset.recovery_key)
        assert result.device_verified and result.restore is not None
        assert result.restore.version == reset.backup_version
    finally:
        for client in (alice, bob, lost, third):
            if client is not None:
                await client.close()
