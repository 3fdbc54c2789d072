"""History fetched in the moment between the first paint and the crypto machine's opening
(a thread, the thread list, older messages indexed for search) waits for the machine and is
decrypted, as the room timeline's back-fill is: never shown undecrypted for good."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient

from ..engine.support import seed_messages
from .e2ee_support import client_for, encrypted_room, join, restore, shown, until


async def test_threads_and_search_opened_before_the_machine_show_decrypted_history(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    bob_user = make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await encrypted_room(bob, "Secret plans", [alice.user_id])
        await join(alice, room)
        bob_room = await bob.open_room(room)
        await until(lambda: alice.user_id in bob_room.members, "alice in bob's member list", 30)
        await bob.send_text(room, "hello alice")  # the room key reaches alice's device
        await shown(await alice.open_room(room), "hello alice")
        await alice.close()

        # While alice is away: a thread, then more than her sync's window of messages,
        # so the thread is in a gap of her cache (fetched, never synced).
        await bob.send_text(room, "the buried treasure")
        await shown(bob_room, "the buried treasure")
        await bob.send_text(room, "the hidden root")
        await shown(bob_room, "the hidden root")
        root = next(i.event_id for i in bob_room.model.items if i.body == "the hidden root")
        assert root is not None
        bob_thread = await bob.threads.open(room, root)
        await bob_thread.send_text("a hidden reply")
        await until(
            lambda: any(
                i.body == "a hidden reply" and not i.is_local_echo for i in bob_thread.model.items
            ),
            "bob's reply confirmed",
        )
        await seed_messages(synapse, bob_user, room, [f"filler {n}" for n in range(60)])
        away = await restore(tmp_path / "alice")
        await away.wait_synced()
        cached = await away.db.run(away.cache.load_events, [root])
        assert root not in cached, "the thread must be in a gap, not synced"
        await away.close()

        # The first paint: the cache is open, the machine is not.
        client = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=500)
        assert client is not None
        alice = client
        await client.open_cache()
        assert client.encryption.machine is None
        waiting: set[asyncio.Task[object] | None] = set()
        opened = client.encryption.ready

        async def ready() -> None:
            waiting.add(asyncio.current_task())
            await opened()

        client.encryption.ready = ready  # type: ignore[method-assign]
        tasks = [
            asyncio.ensure_future(client.threads.open(room, root)),
            asyncio.ensure_future(client.threads.list_threads(room)),
            asyncio.ensure_future(client.search.index_older(room, page_size=40)),
        ]
        # Each has fetched its page and is waiting for the machine (or went on without it).
        await until(lambda: all(t.done() or t in waiting for t in tasks), "history fetched", 30)
        await client.open_services()
        assert client.encryption.available
        thread, page, indexed = await asyncio.wait_for(asyncio.gather(*tasks), 60)

        items = [i for i in thread.model.items if not i.is_local_echo]
        assert [i.body for i in items] == ["the hidden root", "a hidden reply"], [
            i.body for i in items
        ]
        assert all(i.encrypted for i in items)
        assert [(t.root_body, t.latest_body) for t in page.threads] == [
            ("the hidden root", "a hidden reply")
        ]
        assert indexed.error is None
        found = await client.search.search("buried treasure", room_id=room)
        assert [r.body for r in found.results] == ["the buried treasure"]
    finally:
        await alice.close()
        await bob.close()
