"""A thread in an encrypted room: relations in the clear, bodies decrypted, answered in the thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from .e2ee_support import client_for, encrypted_room, join, shown, until


async def test_a_thread_in_an_encrypted_room_is_read_and_answered(
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
        await bob.send_text(room, "the secret root")
        await shown(bob_room, "the secret root")
        root = next(i.event_id for i in bob_room.model.items if i.body == "the secret root")
        assert root is not None
        bob_thread = await bob.threads.open(room, root)
        await bob_thread.send_text("a secret reply")
        await until(
            lambda: any(
                i.body == "a secret reply" and not i.is_local_echo for i in bob_thread.model.items
            ),
            "bob's reply confirmed",
        )

        alice_room = await alice.open_room(room)
        await shown(alice_room, "the secret root")
        thread = await alice.threads.open(room, root)
        await until(
            lambda: (
                [i.body for i in thread.model.items if not i.is_local_echo]
                == ["the secret root", "a secret reply"]
            ),
            f"the decrypted thread: {[i.body for i in thread.model.items]}",
        )
        assert all(i.encrypted for i in thread.model.items)
        await thread.send_text("an encrypted answer")
        await until(
            lambda: any(
                i.body == "an encrypted answer" and not i.is_local_echo
                for i in bob_thread.model.items
            ),
            "alice's answer in bob's thread",
        )
        answer = next(i for i in bob_thread.model.items if i.body == "an encrypted answer")
        assert answer.encrypted and answer.sender == alice.user_id
        assert not any(i.body == "an encrypted answer" for i in bob_room.model.items)
        page = await alice.threads.list_threads(room)
        assert [(t.root_id, t.root_body, t.count) for t in page.threads] == [
            (root, "the secret root", 2)
        ]
        assert page.threads[0].latest_body == "an encrypted answer"
    finally:
        await alice.close()
        await bob.close()
