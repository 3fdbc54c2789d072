"""``/sync`` v2 with every response decoded and stored in slices of one room, against
Synapse: a first sync of several rooms, then encrypted messages whose room keys arrive in
the same response as the messages (to-device events in the outline, the message in a
later slice), then a restart from the cache: nothing missing, nothing twice."""

from __future__ import annotations

from pathlib import Path

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.sync import SyncV2Source
from tui_client.net.http import HomeserverConnection

from ..engine.support import create_room, join, send_text
from ..support.users import MakeUser
from .e2ee_support import bodies, client_for, encrypted_room, restore, shown, until

ROOMS = 5


def _sliced_v2(connection: HomeserverConnection) -> SyncV2Source:
    source = SyncV2Source(connection)
    source.slice_bytes = 0  # every response, however small
    source.slice_events = 1  # a slice a room
    return source


async def test_v2_in_slices_first_sync_encryption_and_restart(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    plain = []
    for n in range(ROOMS):
        room = create_room(synapse, bob_user, invite=[alice_user.user_id], name=f"Plain {n}")
        join(synapse, alice_user, room)
        for m in range(3):
            send_text(synapse, bob_user, room, f"room {n} message {m}", f"t{n}-{m}")
        plain.append(room)

    alice = await client_for(synapse, alice_user, tmp_path / "alice", sync_source=_sliced_v2)
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        assert alice.sync_mode == "sync v2"
        # The first sync, in slices: every room listed with its name and its messages.
        await until(lambda: all(r in alice.rooms for r in plain), "the rooms at alice")
        assert {alice.rooms[r].display_name for r in plain} == {f"Plain {n}" for n in range(ROOMS)}
        view = await alice.open_room(plain[2])
        assert [b for b in bodies(view) if b.startswith("room 2")] == [
            f"room 2 message {m}" for m in range(3)
        ]

        # Encrypted: the room key (to-device) and the message come in one response.
        secret = await encrypted_room(bob, "Secret", [alice_user.user_id])
        await until(lambda: secret in alice.rooms, "the invite at alice")
        await alice.join(secret)
        await until(lambda: alice.rooms[secret].membership == "join", "alice joined")
        await until(lambda: bob.rooms[secret].joined_count == 2, "alice's join at bob")
        secret_view = await alice.open_room(secret)
        await bob.send_message(secret, "only alice reads this")
        await shown(secret_view, "only alice reads this")
        # An open room gets new messages as they come (slices of later responses too).
        send_text(synapse, bob_user, plain[2], "while open", "t-open")
        await until(lambda: "while open" in bodies(view), "the new message in the open room")
    finally:
        await alice.close()
        await bob.close()

    # From the cache: the same messages, each once, and sync goes on from the token.
    alice = await restore(tmp_path / "alice", sync_source=_sliced_v2)
    try:
        await alice.wait_synced()
        view = await alice.open_room(plain[2])
        shown_bodies = bodies(view)
        assert [b for b in shown_bodies if b.startswith("room 2") or b == "while open"] == [
            *(f"room 2 message {m}" for m in range(3)),
            "while open",
        ]
        secret_view = await alice.open_room(secret)
        assert bodies(secret_view).count("only alice reads this") == 1
    finally:
        await alice.close()
