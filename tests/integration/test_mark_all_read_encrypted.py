"""Mark all rooms as read, against Synapse, with an encrypted room the client counts itself
(engine/notifications.py): its count and highlight go to zero and stay there through the
following syncs, reading an older thread afterwards (a threaded receipt on an earlier
event), and a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.threads import thread_relation
from tui_client.engine.updates import RoomListChanged, Update
from tui_client.protocol.timeline import TimelineItem

from .e2ee_support import client_for, encrypted_room, join, restore, until


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
async def test_mark_all_read_clears_the_local_counts_of_an_encrypted_room(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    private: bool,
) -> None:
    me = make_user("alice", displayname="Alice Tester")
    bob_user = make_user("bob", displayname="Bob")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    alice = await client_for(synapse, me, tmp_path / "alice")
    clients = [bob, alice]
    try:
        await alice.receipts.set_private(private)
        secret = await encrypted_room(bob, "Secret", [me.user_id])
        await join(alice, secret)
        await until(lambda: bob.rooms[secret].joined_count == 2, "bob sees the join")
        bob_view = await bob.open_room(secret)
        root_entry = await bob.send_message(secret, "a thread")
        await until(
            lambda: (
                any(i.txn_id == root_entry.txn_id and i.event_id for i in bob_view.model.items)
                and not any(i.is_local_echo for i in bob_view.model.items)
            ),
            "the root sent",
        )
        root = next(i.event_id for i in bob_view.model.items if i.body == "a thread")
        assert root is not None
        reply = await bob.send_message(
            secret, "in the thread", extra={"m.relates_to": thread_relation(root, root)}
        )
        await bob.send_message(secret, "just chatting")
        await bob.send_message(
            secret, "Alice Tester: lunch?", extra={"m.mentions": {"user_ids": [me.user_id]}}
        )
        # Counted here (the server cannot see the mention in the encrypted body).
        await until(
            lambda: alice.rooms[secret].highlight_count == 1,
            "the local highlight",
        )

        def counts() -> tuple[int, int]:
            summary = alice.rooms[secret]
            return summary.notification_count, summary.highlight_count

        published: list[tuple[int, int]] = []

        def note(update: Update) -> None:
            if isinstance(update, RoomListChanged) and secret in update.changed:
                room = next(r for r in update.rooms if r.room_id == secret)
                published.append((room.notification_count, room.highlight_count))

        alice.subscribe(note)
        marked, failed = await alice.receipts.mark_all_read()
        assert (marked, failed) == (1, 0)
        assert counts() == (0, 0), published
        # Our receipt comes back by sync and the room is counted again from it: still none.
        await until(
            lambda: alice.cache.receipts_for(secret).get(me.user_id) is not None,
            "our receipt back from the server",
        )
        await asyncio.sleep(1.5)
        assert counts() == (0, 0)

        # Reading the thread now: a threaded receipt on its (older) reply, later in time.
        reply_id = reply.event_id or next(
            e.event_id for e in await _thread_events(alice, secret, root) if e.event_id
        )
        before = len(alice.cache.execute_readonly("SELECT * FROM receipts", ()))
        await alice.mark_read(secret, reply_id, thread_id=root)
        await until(
            lambda: len(alice.cache.execute_readonly("SELECT * FROM receipts", ())) > before,
            "the threaded receipt back from the server",
        )
        await asyncio.sleep(1.5)
        assert counts() == (0, 0)
        assert published and set(published) == {(0, 0)}, published  # never shown again

        await alice.close()
        clients.remove(alice)
        alice = await restore(tmp_path / "alice")
        clients.append(alice)
        await until(lambda: secret in alice.rooms, "the room after the restart")
        await asyncio.sleep(2.0)
        assert counts() == (0, 0)
    finally:
        for client in clients:
            await client.close()


async def _thread_events(client: MatrixClient, room_id: str, root: str) -> list[TimelineItem]:
    """The thread's replies as ``client`` shows them."""
    view = await client.threads.open(room_id, root)
    await until(lambda: len(view.model.items) > 1, "the thread's reply")
    return [i for i in view.model.items if i.event_id != root]
