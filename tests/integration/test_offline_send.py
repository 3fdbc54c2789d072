"""Sending survives a homeserver that goes away and a client that is killed.

The stop/restart tests run their own Synapse (in its own folder), never the
session one; each message must reach the server exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.room_view import RoomView
from tui_client.engine.updates import SyncStatus
from tui_client.protocol.timeline import SendState, TimelineItem

from ..engine.support import (
    ClientPool,
    Wire,
    bodies,
    create_room,
    is_send,
    is_sync,
    join,
    json_response,
    login,
    server_messages,
    wait_until,
    wait_until_async,
)
from ..support.synapse import own_synapse
from ..support.updates import Recorder


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A homeserver of this module's own, free to be stopped and restarted."""
    yield from own_synapse(tmp_path_factory, "restartable-synapse")


@pytest.fixture
def up(restartable: SynapseServer) -> Iterator[SynapseServer]:
    """The module's server, running at the start and at the end of each test."""
    restartable.start()
    yield restartable
    restartable.start()


_users = iter(range(1, 1000))


def _pair(server: SynapseServer) -> tuple[RegisteredUser, RegisteredUser, str]:
    n = next(_users)
    alice = server.register_user(f"alice{n}", f"pw-alice{n}", displayname="Alice")
    bob = server.register_user(f"bob{n}", f"pw-bob{n}", displayname="Bob")
    room_id = create_room(server, alice, name="Outage", invite=[bob.user_id])
    join(server, bob, room_id)
    return alice, bob, room_id


def _items(view: RoomView, body: str) -> list[TimelineItem]:
    return [i for i in view.model.items if i.body == body]


def _delivered(view: RoomView, body: str) -> bool:
    items = _items(view, body)
    return len(items) == 1 and not items[0].is_local_echo and items[0].send_state is SendState.SENT


async def _tried(client: MatrixClient) -> bool:
    return any(e.attempts for e in await client.db.run(client.cache.outbox))


async def test_message_queued_while_the_server_is_down(
    up: SynapseServer, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user, room_id = _pair(up)
    alice = pool.add(await login(up, alice_user, tmp_path / "alice"))
    await wait_until(lambda: room_id in alice.rooms, what="room synced")
    view = await alice.open_room(room_id)
    recorder = Recorder(alice)

    await asyncio.to_thread(up.stop)
    entry = await alice.send_message(room_id, "sent while down")
    (echo,) = _items(view, "sent while down")
    assert echo.is_local_echo and echo.send_state is SendState.PENDING
    # The queue tries, fails, and keeps the message pending (not failed).
    await wait_until_async(lambda: _tried(alice), what="a first attempt")
    await wait_until(
        lambda: any(s.status is SyncStatus.OFFLINE for _, s in recorder.states()),
        timeout=15,
        what="offline status",
    )
    (echo,) = _items(view, "sent while down")
    assert echo.send_state is SendState.PENDING and echo.is_local_echo
    assert echo.error is not None and "retrying" in echo.error

    await asyncio.to_thread(up.start)
    # Connectivity is back: what a network-change hook or the user's "retry now" does.
    assert alice.sync_loop is not None
    alice.sync_loop.retry_now()
    await wait_until(
        lambda: _delivered(view, "sent while down"), timeout=20, what="delivery after restart"
    )
    (delivered,) = _items(view, "sent while down")
    on_server = server_messages(up, bob_user.access_token, room_id)
    assert bodies(on_server).count("sent while down") == 1
    assert delivered.key == next(
        e["event_id"] for e in on_server if e["content"]["body"] == "sent while down"
    )
    assert delivered.txn_id in (None, entry.txn_id)
    assert await alice.db.run(alice.cache.outbox) == []
    # Status went offline and came back.
    statuses = [s.status for _, s in recorder.states()]
    assert SyncStatus.CONNECTED in statuses[statuses.index(SyncStatus.OFFLINE) :]


async def test_pending_message_survives_killing_the_client(
    up: SynapseServer, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user, room_id = _pair(up)
    alice = pool.add(await login(up, alice_user, tmp_path / "alice"))
    await wait_until(lambda: room_id in alice.rooms, what="room synced")

    await asyncio.to_thread(up.stop)
    entry = await alice.send_message(room_id, "survives a crash")
    await wait_until_async(lambda: _tried(alice), what="a first attempt")
    # Killed: the message never left.
    await alice.close()
    pool.forget(alice)
    await asyncio.to_thread(up.start)
    assert (
        bodies(server_messages(up, bob_user.access_token, room_id)).count("survives a crash") == 0
    )

    restored = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=1000)
    assert restored is not None
    pool.add(restored)
    await restored.open()
    view = await restored.open_room(room_id)
    # Shown as pending straight from the cache, before any network.
    (echo,) = _items(view, "survives a crash")
    assert (
        echo.is_local_echo and echo.send_state is SendState.PENDING and echo.txn_id == entry.txn_id
    )
    restored.start()
    await wait_until(
        lambda: _delivered(view, "survives a crash"), timeout=15, what="delivery after restore"
    )
    assert (
        bodies(server_messages(up, bob_user.access_token, room_id)).count("survives a crash") == 1
    )
    assert await restored.db.run(restored.cache.outbox) == []


async def test_lost_answer_then_kill_is_resent_once(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    room_id = create_room(synapse, alice_user, invite=[bob_user.user_id])
    join(synapse, bob_user, room_id)
    first_wire = Wire()
    try:
        # After the first batch, hold back sync (so the echo cannot arrive)...
        first_wire.inject(
            is_sync, lambda r: json_response(503, {"errcode": "M_UNKNOWN"}), times=None
        )
        alice = pool.add(await login(synapse, alice_user, tmp_path / "alice", wire=first_wire))
        assert room_id in alice.rooms

        async def store_then_drop(request: httpx.Request) -> httpx.Response:
            await first_wire.forward(request)
            raise httpx.ReadError("connection reset by peer", request=request)

        # ...and lose the answer to the send.
        first_wire.inject(is_send, store_then_drop)
        view = await alice.open_room(room_id)
        entry = await alice.send_message(room_id, "answer lost")
        # The attempt failed as far as the client knows: still pending, to be retried.
        await wait_until(
            lambda: any(i.error and "retrying" in i.error for i in _items(view, "answer lost")),
            what="a failed attempt",
        )
        await alice.close()
        pool.forget(alice)
    finally:
        await first_wire.aclose()
    # The server did get it once.
    assert (
        bodies(server_messages(synapse, bob_user.access_token, room_id)).count("answer lost") == 1
    )

    second_wire = Wire()
    try:
        restored = MatrixClient.restore(
            base_dir=tmp_path / "alice", transport=second_wire.transport(), long_poll_ms=1000
        )
        assert restored is not None
        pool.add(restored)
        await restored.open()
        view = await restored.open_room(room_id)
        restored.start()
        await wait_until(
            lambda: _delivered(view, "answer lost"), timeout=15, what="delivery after restore"
        )
        resends = [r for r in second_wire.requests if r.is_send]
        # Resent with the same transaction ID: the server answered with the same event.
        assert [r.path.rsplit("/", 1)[-1] for r in resends] == [entry.txn_id]
        assert (
            bodies(server_messages(synapse, bob_user.access_token, room_id)).count("answer lost")
            == 1
        )
        assert await restored.db.run(restored.cache.outbox) == []
    finally:
        await pool.close_all()
        await second_wire.aclose()
