"""Unread counts per thread survive a restart, against Synapse: read from the cache before
the first sync of the next start, and a thread read here stays read after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient

from ..engine.support import ClientPool, login, wait_until
from .receipts_support import q, say


def _in_thread(synapse: SynapseServer, user: Any, room: str, root: str, body: str, txn: str) -> str:
    status, answer = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn}",
        {
            "msgtype": "m.text",
            "body": body,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        },
        user.access_token,
    )
    assert status == 200, answer
    return str(answer["event_id"])


async def _restart(folder: Path, pool: ClientPool) -> MatrixClient:
    client = MatrixClient.restore(base_dir=folder)
    assert client is not None
    pool.add(client)
    await client.open()  # the cache only: no sync yet
    return client


async def test_thread_unread_counts_survive_a_restart(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    folder = tmp_path / "alice"
    # The default where offered: sliding sync (Synapse's sends no counts per thread: the
    # client counts them).
    alice = pool.add(await login(synapse, alice_user, folder))
    assert alice.sync_mode == "sliding sync"
    room = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
    status, body = synapse.request_json(
        "POST", f"/_matrix/client/v3/join/{q(room)}", {}, bob_user.access_token
    )
    assert status == 200, body
    root = await asyncio.to_thread(say, synapse, bob_user, room, "a thread", "root")
    await asyncio.to_thread(_in_thread, synapse, bob_user, room, root, "one", "t1")
    await asyncio.to_thread(_in_thread, synapse, bob_user, room, root, "two", "t2")
    await wait_until(
        lambda: alice.threads.unread_in(room).get(root) == (2, 0), 30, "the thread count"
    )
    await alice.close()
    pool.forget(alice)

    restarted = await _restart(folder, pool)
    assert restarted.threads.unread_in(room) == {root: (2, 0)}

    # Read here (the threaded receipt sent), then a restart: still read, before any sync.
    restarted.start()
    await restarted.wait_synced()
    await restarted.threads.open(room, root)
    await restarted.threads.mark_read(room, root)
    assert restarted.threads.unread_in(room) == {}
    await restarted.close()
    pool.forget(restarted)
    again = await _restart(folder, pool)
    assert again.threads.unread_in(room) == {}
