"""Presence over sliding sync, against Synapse: its sliding sync has no ``set_presence``
and no presence extension, so ours is said apart (others see us online, then away when
the terminal loses focus, still away after the 30 s in which Synapse drops a device
that neither syncs v2 nor says its presence) and the open room's members' presence is
read apart (the member list shows another user going away and coming back)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from ..conftest import MakeUser
from ..engine.support import ClientPool, create_room, login
from .e2ee_support import join, until
from .receipts_support import presence_of, q


def _set_presence(synapse: SynapseServer, user: RegisteredUser, state: str) -> None:
    status, body = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/presence/{q(user.user_id)}/status",
        {"presence": state},
        user.access_token,
    )
    assert status == 200, body


async def test_presence_is_said_and_read_apart_over_sliding_sync(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, pool: ClientPool
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    room = create_room(synapse, bob, invite=[alice.user_id], name="Presence")
    client = pool.add(
        await login(synapse, alice, tmp_path / "alice", long_poll_ms=500, sliding=True)
    )
    assert client.sync_mode == "sliding sync"
    await until(lambda: room in client.rooms, "the invite")
    await join(client, room)
    await client.open_room(room)

    # Ours: online while syncing, away when the terminal loses focus, and it stays so.
    await until(lambda: presence_of(synapse, bob, alice.user_id) == "online", "alice online")
    client.presence.set_focused(False)
    await until(lambda: presence_of(synapse, bob, alice.user_id) == "unavailable", "alice away")
    await asyncio.sleep(35)
    assert presence_of(synapse, bob, alice.user_id) == "unavailable"

    # Theirs: a member of the open room goes away and comes back.
    _set_presence(synapse, bob, "unavailable")
    await until(
        lambda: (p := client.presence.of(bob.user_id)) is not None and p.label == "away", "bob away"
    )
    _set_presence(synapse, bob, "online")
    await until(
        lambda: (p := client.presence.of(bob.user_id)) is not None and p.label == "online",
        "bob online",
    )
