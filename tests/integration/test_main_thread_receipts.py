"""Receipts of a client that reads threads, against Synapse: the main timeline's receipt is
threaded with ``thread_id: "main"`` (public and private) and the fully-read marker still
moves; a thread's receipt names its root; marking all rooms read is unthreaded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer

from ..engine.support import ClientPool, login, wait_until
from .receipts_support import fully_read, q, receipts_by_thread, say


async def test_main_timeline_receipts_are_threaded_main_and_the_marker_follows(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = pool.add(await login(synapse, alice_user, tmp_path / "alice"))
    room = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
    status, body = synapse.request_json(
        "POST", f"/_matrix/client/v3/join/{q(room)}", {}, bob_user.access_token
    )
    assert status == 200, body
    view = await alice.open_room(room)

    async def seen(event_id: str) -> None:
        await wait_until(
            lambda: any(i.event_id == event_id for i in view.model.items), 30, "the message"
        )

    def by_thread(viewer: Any) -> dict[tuple[str, str | None], str]:
        return receipts_by_thread(synapse, viewer, room, alice_user.user_id)

    first = await asyncio.to_thread(say, synapse, bob_user, room, "first", "m1")
    await seen(first)
    await alice.mark_read(room, first)
    # Read back from the other user's sync: threaded, in the main timeline.
    assert await asyncio.to_thread(by_thread, bob_user) == {("m.read", "main"): first}
    assert await asyncio.to_thread(fully_read, synapse, alice_user, room) == first

    # Private: the marker and our own receipt (thread main) move; bob sees the old one.
    await alice.receipts.set_private(True)
    second = await asyncio.to_thread(say, synapse, bob_user, room, "second", "m2")
    await seen(second)
    await alice.mark_read(room, second)
    mine = await asyncio.to_thread(by_thread, alice_user)
    assert mine.get(("m.read.private", "main")) == second, mine
    assert await asyncio.to_thread(by_thread, bob_user) == {("m.read", "main"): first}
    assert await asyncio.to_thread(fully_read, synapse, alice_user, room) == second
    await alice.receipts.set_private(False)

    # A thread's receipt names its root, and leaves the main timeline's where it was.
    root = second
    status, answer = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/t1",
        {
            "msgtype": "m.text",
            "body": "in the thread",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        },
        bob_user.access_token,
    )
    assert status == 200, answer
    reply = answer["event_id"]
    await alice.mark_read(room, reply, thread_id=root)
    seen_by_bob = await asyncio.to_thread(by_thread, bob_user)
    assert seen_by_bob == {("m.read", "main"): first, ("m.read", root): reply}, seen_by_bob
    assert await asyncio.to_thread(fully_read, synapse, alice_user, room) == second
