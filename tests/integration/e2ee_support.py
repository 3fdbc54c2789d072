"""Helpers for the end-to-end encryption tests against Synapse."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.room_view import RoomView

from ..support.waiting import until

ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def client_for(
    synapse: SynapseServer, user: RegisteredUser, folder: Path, **options: Any
) -> MatrixClient:
    """A started client of ours, logged in as ``user``, its data under ``folder``."""
    client = await MatrixClient.login(
        user.user_id,
        user.password,
        homeserver=synapse.base_url,
        base_dir=folder,
        long_poll_ms=500,
        **options,
    )
    await client.open()
    client.start()
    await client.wait_synced()
    return client


async def restore(folder: Path, **options: Any) -> MatrixClient:
    """The saved session under ``folder``, opened and started."""
    client = MatrixClient.restore(base_dir=folder, long_poll_ms=500, **options)
    assert client is not None
    await client.open()
    client.start()
    return client


def bodies(view: RoomView) -> list[str]:
    """Bodies of the server-confirmed items of a room view."""
    return [item.body for item in view.model.items if not item.is_local_echo]


async def shown(view: RoomView, body: str, timeout: float = 30.0) -> None:
    """Wait until ``body`` is shown decrypted (not as a local echo) in ``view``."""
    await until(
        lambda: body in bodies(view),
        f"{body!r} in {view.core.user_id}'s view: {bodies(view)[-4:]}",
        timeout,
    )


def server_event_types(synapse: SynapseServer, token: str, room_id: str) -> list[str]:
    """The types of the room's last events as the server stores them."""
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/messages?dir=b&limit=20"
    )
    status, data = synapse.request_json("GET", path, None, token)
    assert status == 200, data
    return [event["type"] for event in data["chunk"]]


async def encrypted_room(owner: MatrixClient, name: str, invite: list[str]) -> str:
    """A private encrypted room created by ``owner``."""
    return await owner.create_room(
        {
            "name": name,
            "preset": "private_chat",
            "invite": invite,
            "initial_state": [ENCRYPTION_STATE],
        }
    )


async def join(client: MatrixClient, room_id: str) -> None:
    """Accept an invite and wait until the room shows as joined."""
    await until(lambda: room_id in client.rooms, f"{client.user_id}'s invite to {room_id}")
    await client.join(room_id)
    await until(lambda: client.rooms[room_id].membership == "join", f"{client.user_id} joined")
