"""Stopping and starting a client's background work, against the real Synapse."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.updates import SyncStatus
from tui_client.protocol.timeline import SendState

from .support import ClientPool, Wire, bodies, create_room, login, server_messages, wait_until


async def test_stop_then_start_resumes_sync_and_sending(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    user = make_user("pauser")
    room_id = create_room(synapse, user)
    client = pool.add(await login(synapse, user, tmp_path / "p", wire=wire))
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    view = await client.open_room(room_id)

    await client.stop()
    assert client.sync_state.status is SyncStatus.STOPPED
    entry = await client.send_message(room_id, "written while stopped")
    await asyncio.sleep(0.3)
    assert not [r for r in wire.requests if r.is_send]
    (echo,) = [i for i in view.model.items if i.body == "written while stopped"]
    assert echo.send_state is SendState.PENDING

    client.start()
    await client.wait_synced()
    await wait_until(
        lambda: any(
            i.body == "written while stopped" and not i.is_local_echo for i in view.model.items
        ),
        what="delivery after start",
    )
    puts = [r for r in wire.requests if r.is_send]
    assert [r.path.rsplit("/", 1)[-1] for r in puts] == [entry.txn_id]
    assert (
        bodies(server_messages(synapse, user.access_token, room_id)).count("written while stopped")
        == 1
    )
