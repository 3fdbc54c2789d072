"""End-to-end encryption against a real Synapse: our clients, and matrix-nio's crypto."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx

from tui_client.crypto.types import FailureReason
from tui_client.devtools.synapse import SynapseServer

from ..engine.support import Wire, is_sync
from ..support.users import MakeUser
from .e2ee_support import (
    bodies,
    client_for,
    encrypted_room,
    join,
    restore,
    server_event_types,
    shown,
    until,
)


async def test_two_clients_exchange_encrypted_messages(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await encrypted_room(alice, "secret", [bob_user.user_id])
        await join(bob, room)
        alice_view, bob_view = await alice.open_room(room), await bob.open_room(room)
        await alice.send_message(room, "hello bob, only you can read this")
        await shown(bob_view, "hello bob, only you can read this")
        await bob.send_message(room, "hello alice, likewise")
        await shown(alice_view, "hello alice, likewise")
        # The server only ever saw ciphertext.
        types = server_event_types(synapse, bob_user.access_token, room)
        assert types.count("m.room.encrypted") >= 2 and "m.room.message" not in types
        item = next(
            i for i in bob_view.model.items if i.body == "hello bob, only you can read this"
        )
        assert item.encrypted and item.trust == "unverified"
        assert alice.rooms[room].encrypted and bob.rooms[room].encrypted
    finally:
        await alice.close()
        await bob.close()


async def test_a_late_joiner_reads_new_messages_but_not_old_ones(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user, carol_user = make_user("alice"), make_user("bob"), make_user("carol")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    carol = await client_for(synapse, carol_user, tmp_path / "carol")
    try:
        room = await encrypted_room(alice, "late", [bob_user.user_id])
        await join(bob, room)
        bob_view = await bob.open_room(room)
        await alice.send_message(room, "before carol")
        await shown(bob_view, "before carol")
        await alice.invite(room, carol_user.user_id)
        await join(carol, room)
        await until(lambda: alice.rooms[room].joined_count == 3, "carol's join at alice")
        await alice.send_message(room, "after carol joined")
        carol_view = await carol.open_room(room)
        await shown(carol_view, "after carol joined")
        while not carol_view.reached_start:
            await carol_view.paginate_back()
        old = [i for i in carol_view.model.items if i.kind == "encrypted"]
        assert old, bodies(carol_view)
        assert "before carol" not in bodies(carol_view)
        assert all(i.body.startswith("unable to decrypt") for i in old)
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_a_member_who_left_cannot_read_what_follows(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, carol_user = make_user("alice"), make_user("carol")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    carol = await client_for(synapse, carol_user, tmp_path / "carol")
    try:
        room = await encrypted_room(alice, "leavers", [carol_user.user_id])
        await join(carol, room)
        carol_view = await carol.open_room(room)
        await alice.send_message(room, "while carol is here")
        await shown(carol_view, "while carol is here")
        await carol.leave(room)
        await until(lambda: alice.rooms[room].joined_count == 1, "carol's leave at alice")
        await alice.send_message(room, "after carol left")
        await until(
            lambda: not any(s.state == "pending" for s in alice.cache.outbox(room)),
            "the message sent",
        )
        await alice.invite(room, carol_user.user_id)
        await join(carol, room)
        await until(lambda: alice.rooms[room].joined_count == 2, "carol back at alice")
        await alice.send_message(room, "carol is back")
        carol.close_room(room)
        view = await carol.open_room(room)
        await shown(view, "carol is back")
        while not view.reached_start:
            await view.paginate_back()
        assert "while carol is here" in bodies(view)
        assert "after carol left" not in bodies(view)
        assert any(i.kind == "encrypted" for i in view.model.items)
    finally:
        await alice.close()
        await carol.close()


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from tui_client.engine.client import MatrixClient

    async def main(folder, room):
        client = MatrixClient.restore(base_dir=Path(folder), long_poll_ms=500)
        await client.open()
        client.start()
        await client.wait_synced()
        print("READY", flush=True)
        query = "SELECT COUNT(*) FROM crypto_inbound_sessions WHERE room_id = ?"
        while True:
            rows = await client.db.run(client.cache.execute_readonly, query, (room,))
            if rows[0][0] >= 1:
                os._exit(9)  # killed the moment a room key is committed
            await asyncio.sleep(0.01)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_a_client_killed_right_after_a_room_key_arrives_still_decrypts(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await encrypted_room(alice, "crash", [bob_user.user_id])
        await join(bob, room)
        await until(lambda: alice.rooms[room].joined_count == 2, "bob's join at alice")
        await bob.close()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "bob"), room],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        ready = await asyncio.to_thread(child.stdout.readline)
        assert ready.strip() == "READY"
        await alice.send_message(room, "the key travels with this")
        code = await asyncio.to_thread(child.wait, 60)
        assert code == 9
        bob = await restore(tmp_path / "bob")
        view = await bob.open_room(room)
        await shown(view, "the key travels with this")
    finally:
        await alice.close()
        await bob.close()


async def test_exported_keys_decrypt_old_messages_on_a_fresh_login(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    fresh = None
    try:
        room = await encrypted_room(alice, "history", [bob_user.user_id])
        await join(bob, room)
        bob_view = await bob.open_room(room)
        await bob.send_message(room, "a message from the past")
        await shown(bob_view, "a message from the past")
        alice_view = await alice.open_room(room)
        await shown(alice_view, "a message from the past")
        export = tmp_path / "keys.txt"
        count = await alice.export_room_keys(export, "correct horse battery staple")
        assert count >= 1 and export.read_text().startswith("-----BEGIN MEGOLM SESSION DATA-----")
        assert export.stat().st_mode & 0o777 == 0o600

        fresh = await client_for(synapse, alice_user, tmp_path / "alice-new-device")
        view = await fresh.open_room(room)
        while not view.reached_start:
            await view.paginate_back()
        await until(
            lambda: any(i.kind == "encrypted" for i in view.model.items),
            "the undecryptable history",
        )
        assert "a message from the past" not in bodies(view)
        total, imported = await fresh.import_room_keys(export, "correct horse battery staple")
        assert total >= 1 and imported >= 1
        await shown(view, "a message from the past")
    finally:
        await alice.close()
        await bob.close()
        if fresh is not None:
            await fresh.close()


async def test_matrix_nio_and_we_read_each_other(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    from nio import AsyncClient, AsyncClientConfig, MegolmEvent, RoomMessageText

    alice_user, nio_user = make_user("alice"), make_user("niouser")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    store = tmp_path / "nio-store"
    store.mkdir()
    nio = AsyncClient(
        synapse.base_url,
        nio_user.user_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    received: list[str] = []
    undecrypted: list[str] = []
    stop = asyncio.Event()

    async def nio_sync() -> None:
        while not stop.is_set():
            response = await nio.sync(timeout=500)
            for room in getattr(getattr(response, "rooms", None), "join", {}).values():
                for event in room.timeline.events:
                    if isinstance(event, RoomMessageText):
                        received.append(event.body)
                    elif isinstance(event, MegolmEvent):
                        undecrypted.append(event.event_id)
            if nio.should_upload_keys:
                await nio.keys_upload()
            if nio.should_query_keys:
                await nio.keys_query()
            if nio.should_claim_keys:
                await nio.keys_claim(nio.get_users_for_key_claiming())

    try:
        await nio.login(nio_user.password, device_name="nio test peer")
        task = asyncio.ensure_future(nio_sync())
        room = await encrypted_room(alice, "interop", [nio_user.user_id])
        await until(lambda: room in nio.invited_rooms, "nio's invite")
        await nio.join(room)
        await until(lambda: alice.rooms[room].joined_count == 2, "nio's join at alice")
        await until(lambda: not nio.should_upload_keys, "nio's keys uploaded")
        alice_view = await alice.open_room(room)
        await alice.send_message(room, "hello nio, from tui_client")
        await until(
            lambda: "hello nio, from tui_client" in received,
            f"nio decrypting ours (undecrypted: {undecrypted})",
        )
        await until(
            lambda: room in nio.rooms and nio.rooms[room].encrypted,
            "nio knows the room is encrypted",
        )
        answer = await nio.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "hello tui_client, from nio"},
            ignore_unverified_devices=True,
        )
        assert getattr(answer, "event_id", None), answer
        await shown(alice_view, "hello tui_client, from nio")
        stop.set()
        await task
    finally:
        stop.set()
        await nio.close()
        await alice.close()


async def test_a_message_sent_the_moment_a_room_is_created_is_never_plaintext(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    gate = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return await wire.forward(request)

    # After her first sync, Alice's syncs are held: her client cannot learn of the new
    # room (nor that it is encrypted) until they are let through.
    wire.inject(is_sync, held, times=None)
    alice = await client_for(synapse, alice_user, tmp_path / "alice", transport=wire.transport())
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await encrypted_room(alice, "instant", [bob_user.user_id])
        entry = await alice.send_message(room, "sent at once")
        await asyncio.sleep(1.0)
        assert room not in alice.rooms
        assert not wire.requests_to(f"/send/m.room.message/{entry.txn_id}")
        gate.set()
        await join(bob, room)
        bob_view = await bob.open_room(room)
        await shown(bob_view, "sent at once")
        types = server_event_types(synapse, bob_user.access_token, room)
        assert "m.room.message" not in types and "m.room.encrypted" in types
    finally:
        gate.set()
        await alice.close()
        await bob.close()


async def test_a_python_olm_device_moves_to_vodozemac_at_its_next_start(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    """Started on python-olm, restarted on the default (vodozemac): same device, same keys.

    Bob keeps his room key after Alice's restart, so his next message decrypts only if
    Alice's inbound session came across; Alice's own next message needs her account
    and an Olm channel to Bob, and a new outbound session (libolm's is not carried).
    """
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice", crypto_backend="olm")
    bob = await client_for(synapse, bob_user, tmp_path / "bob", crypto_backend="vodozemac")
    try:
        room = await encrypted_room(alice, "moving", [bob_user.user_id])
        await join(bob, room)
        alice_view, bob_view = await alice.open_room(room), await bob.open_room(room)
        await alice.send_message(room, "sent on python-olm")
        await shown(bob_view, "sent on python-olm")
        await bob.send_message(room, "read on python-olm")
        await shown(alice_view, "read on python-olm")
        machine = alice.encryption.machine
        assert machine is not None and alice.encryption.backend_name == "olm"
        identity = machine.identity_keys
        store = alice.encryption.store
        before = await alice.encryption.call(lambda: store.get_outbound_group_session(room))
        assert before is not None
        await alice.close()

        alice = await restore(tmp_path / "alice", crypto_backend="vodozemac")
        machine = alice.encryption.machine
        assert machine is not None and alice.encryption.backend_name == "vodozemac"
        assert machine.identity_keys == identity
        store = alice.encryption.store
        assert await alice.encryption.call(store.load_pickle_format) == "vodozemac"
        health = await alice.recovery.health(check_backup=False)
        assert health.available and health.crypto_backend == "vodozemac"
        alice_view = await alice.open_room(room)
        await bob.send_message(room, "bob's old key, alice's new library")
        await shown(alice_view, "bob's old key, alice's new library")
        await alice.send_message(room, "sent on vodozemac")
        await shown(bob_view, "sent on vodozemac")
        after = await alice.encryption.call(lambda: store.get_outbound_group_session(room))
        assert after is not None and after["session_id"] != before["session_id"]
    finally:
        await alice.close()
        await bob.close()


async def test_a_back_filled_event_is_decrypted_with_a_key_that_came_while_it_was_not_stored(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    """Sliding sync sends a room's older events again; those the cache cannot place yet
    are decrypted but not stored, and a key that comes later is retried only over stored
    events. When a back-fill page stores such an event, the failure noted before its key
    came must not stand: the event is decrypted with the key now held."""
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await encrypted_room(alice, "late key", [bob_user.user_id])
        await join(bob, room)
        bob_view = await bob.open_room(room)
        await alice.send_message(room, "seen before its key")
        await shown(bob_view, "seen before its key")
        store = bob.encryption.store

        def as_if_seen_before_its_key() -> dict[str, Any]:
            stored, _gap = bob.cache.load_before(room, None, 1000)
            encrypted = [s.event for s in stored if s.event.get("type") == "m.room.encrypted"]
            clear = store.decrypted([e["event_id"] for e in encrypted])
            event = next(
                e
                for e in encrypted
                if clear[e["event_id"]][0]["content"]["body"] == "seen before its key"
            )
            db = bob.cache._db  # its clear form (and so its search entry) goes
            db.execute(
                "DELETE FROM message_fts WHERE rowid = (SELECT seq FROM events WHERE event_id = ?)",
                (event["event_id"],),
            )
            db.execute("DELETE FROM decrypted_events WHERE event_id = ?", (event["event_id"],))
            store.save_undecrypted(
                event["event_id"],
                room,
                event["content"]["session_id"],
                FailureReason.MISSING_ROOM_KEY.value,
                "key not received",
            )
            return event

        event = await bob.db.run(as_if_seen_before_its_key)
        forms = await bob.db.run(bob.encryption.fetched_forms, room, [event])
        assert forms[event["event_id"]]["content"]["body"] == "seen before its key"
        assert await bob.db.run(store.undecrypted, [event["event_id"]]) == {}
        assert event["event_id"] in await bob.db.run(store.decrypted, [event["event_id"]])
    finally:
        await alice.close()
        await bob.close()
