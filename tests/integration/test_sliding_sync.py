"""Simplified sliding sync (MSC4186) against Synapse: the room list, live messages,
encryption, an expired connection, a kill mid-stream and switching to v2 and back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.sliding_sync import SlidingSyncSource
from tui_client.protocol.sliding_sync import PATH, POS_KEY, TO_DEVICE_KEY

from ..conftest import MakeUser
from ..engine.support import ClientPool, Wire, create_room, json_response, login, send_text
from .e2ee_support import bodies, encrypted_room, join, shown, until


def _sliding(request: httpx.Request) -> bool:
    return request.url.path == PATH and "pos" in request.url.params


def _send_to_device(
    synapse: SynapseServer, sender: RegisteredUser, user_id: str, device_id: str, n: int
) -> None:
    path = f"/_matrix/client/v3/sendToDevice/org.example.ping/ping-{n}"
    status, body = synapse.request_json(
        "PUT", path, {"messages": {user_id: {device_id: {"n": n}}}}, token=sender.access_token
    )
    assert status == 200, body


async def _count_body(client: MatrixClient, room_id: str, body: str) -> int:
    view = await client.open_room(room_id)
    return bodies(view).count(body)


async def test_room_list_dm_space_and_live_messages(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    room = create_room(synapse, bob, invite=[alice.user_id], name="Bob's room")
    send_text(synapse, bob, room, "history before alice", "h1")
    dm = create_room(synapse, bob, invite=[alice.user_id], is_direct=True)
    space = create_room(
        synapse,
        bob,
        invite=[alice.user_id],
        name="Bob's space",
        creation_content={"type": "m.space"},
    )

    client = pool.add(
        await login(synapse, alice, tmp_path / "alice", wire=wire, long_poll_ms=500, sliding=True)
    )
    assert client.sync_mode == "sliding sync"
    assert "sliding sync" in client.sync_state.describe(0)
    await until(lambda: {room, dm, space} <= set(client.rooms), "three invites")
    assert client.rooms[dm].is_dm and client.rooms[space].membership == "invite"
    for target in (room, dm, space):
        await join(client, target)
    await until(lambda: client.rooms[space].is_space, "the space known as a space")
    await until(lambda: client.rooms[room].name == "Bob's room", "the room's name")
    view = await client.open_room(room)
    await shown(view, "history before alice")
    send_text(synapse, bob, room, "live from bob", "live1")
    await shown(view, "live from bob")
    assert bodies(view).count("live from bob") == 1
    # Only sliding sync ran: no /sync v2 request.
    assert not [r for r in wire.requests if r.path.endswith("/v3/sync")]
    assert [r for r in wire.requests if r.path == PATH]


async def test_encrypted_room_over_sliding_sync(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = pool.add(
        await login(synapse, alice_user, tmp_path / "alice", long_poll_ms=500, sliding=True)
    )
    bob = pool.add(await login(synapse, bob_user, tmp_path / "bob", long_poll_ms=500, sliding=True))
    assert alice.sync_mode == bob.sync_mode == "sliding sync"
    room = await encrypted_room(alice, "secret", [bob_user.user_id])
    await join(bob, room)
    bob_view = await bob.open_room(room)
    alice_view = await alice.open_room(room)
    # The room key travels in a to-device message, through the to_device extension.
    await alice.send_message(room, "only bob reads this")
    await shown(bob_view, "only bob reads this")
    await bob.send_message(room, "and alice this")
    await shown(alice_view, "and alice this")
    item = next(i for i in bob_view.model.items if i.body == "only bob reads this")
    assert item.encrypted


@pytest.mark.parametrize(
    "errcode",
    # Synapse forgets a connection with M_UNKNOWN_POS; a position it cannot parse is a
    # plain 400 M_UNKNOWN, which must not leave the client retrying it for ever.
    ["M_UNKNOWN_POS", "M_UNKNOWN"],
)
async def test_unknown_pos_starts_a_new_connection_and_keeps_the_cache(
    synapse: SynapseServer,
    make_user: MakeUser,
    tmp_path: Path,
    wire: Wire,
    pool: ClientPool,
    errcode: str,
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    room = create_room(synapse, bob, invite=[alice.user_id], name="Expiry")
    client = pool.add(
        await login(synapse, alice, tmp_path / "alice", wire=wire, long_poll_ms=500, sliding=True)
    )
    await join(client, room)
    send_text(synapse, bob, room, "before expiry", "b1")
    view = await client.open_room(room)
    await shown(view, "before expiry")
    source = client._source
    assert isinstance(source, SlidingSyncSource)

    def expired(request: httpx.Request) -> httpx.Response:
        return json_response(400, {"errcode": errcode, "error": "Unknown position"})

    wire.inject(_sliding, expired)
    await until(lambda: source.restarts == 1, "a new connection")
    injected = next(r for r in wire.requests if r.injected)
    fresh = next(
        r for r in wire.requests if r.at >= injected.at and r.path == PATH and not r.injected
    )
    # The new connection drops pos but keeps the to-device token.
    assert "pos" not in fresh.url.params
    sent = json.loads(fresh.body)
    assert sent["extensions"]["to_device"].get("since") is not None
    send_text(synapse, bob, room, "after expiry", "b2")
    await shown(view, "after expiry")
    assert bodies(view).count("before expiry") == 1 and bodies(view).count("after expiry") == 1
    assert client.rooms[room].name == "Expiry"


async def test_killed_mid_stream_resumes_without_loss_or_duplicates(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    room = create_room(synapse, bob, invite=[alice.user_id], name="Kill")
    folder = tmp_path / "alice"
    client = pool.add(
        await login(synapse, alice, folder, wire=wire, long_poll_ms=500, sliding=True)
    )
    await join(client, room)
    send_text(synapse, bob, room, "before the kill", "k1")
    await shown(await client.open_room(room), "before the kill")
    committed = await client.db.run(client.cache.get_meta, TO_DEVICE_KEY)

    # The server answers with the to-device message (and maybe the new event), and the
    # client dies before committing them.
    answered = asyncio.Event()
    intercepted = asyncio.Event()

    async def die_after_answer(request: httpx.Request) -> httpx.Response:
        intercepted.set()
        real = await wire.forward(request)
        if b"org.example.ping" in real.content:
            answered.set()
            await asyncio.Event().wait()  # never returns: cancelled by close()
        return real

    wire.inject(_sliding, die_after_answer, times=None)
    # The sync loop sends one request at a time: once an intercepted one has started, none
    # from before the injection can carry the message past it.
    await asyncio.wait_for(intercepted.wait(), 30)
    send_text(synapse, bob, room, "during the kill", "k2")
    _send_to_device(synapse, bob, alice.user_id, client.device_id, 1)
    await asyncio.wait_for(answered.wait(), 30)
    await client.close()
    pool.forget(client)
    wire.clear()

    # Reopened from the same folder: the same message comes again and is stored once.
    seen: list[bytes] = []
    again = Wire()

    async def record(request: httpx.Request) -> httpx.Response:
        real = await again.forward(request)
        seen.append(real.content)
        return real

    again.inject(lambda r: r.url.path == PATH, record, times=None)
    restored = MatrixClient.restore(base_dir=folder, long_poll_ms=500, transport=again.transport())
    assert restored is not None
    pool.add(restored)
    await restored.open()
    assert await restored.db.run(restored.cache.get_meta, TO_DEVICE_KEY) == committed
    restored.start()
    view = await restored.open_room(room)
    await shown(view, "during the kill")
    await until(
        lambda: any(b"org.example.ping" in body for body in seen), "the to-device message again"
    )
    assert bodies(view).count("during the kill") == 1 and bodies(view).count("before the kill") == 1
    await until(
        lambda: restored.sync_loop is not None and restored.sync_loop.batches >= 2,
        "a batch after the message",
    )
    assert await restored.db.run(restored.cache.get_meta, TO_DEVICE_KEY) != committed
    await again.aclose()


async def test_switching_v2_sliding_v2_keeps_the_cache(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    room = create_room(synapse, bob, invite=[alice.user_id], name="Switch")
    client = pool.add(
        await login(
            synapse,
            alice,
            tmp_path / "alice",
            wire=wire,
            long_poll_ms=500,
            start=False,
            sliding=True,
        )
    )
    await client.set_sliding_sync(False)
    assert client.sync_mode == "sync v2"
    client.start()
    await client.wait_synced()
    await join(client, room)
    view = await client.open_room(room)
    for n, mode in enumerate((True, False, True)):
        send_text(synapse, bob, room, f"message {n}", f"s{n}")
        await shown(view, f"message {n}")
        await client.set_sliding_sync(mode)
        assert client.sync_mode == ("sliding sync" if mode else "sync v2")
    send_text(synapse, bob, room, "message 3", "s3")
    await shown(view, "message 3")
    # Every message once, in order, whichever sync brought it.
    assert [b for b in bodies(view) if b.startswith("message ")] == [
        f"message {n}" for n in range(4)
    ]
    assert await client.db.run(client.cache.get_meta, POS_KEY) is not None
    assert await client.db.run(client.cache.get_meta, "next_batch") is not None
    assert [r for r in wire.requests if r.path == PATH] and [
        r for r in wire.requests if r.path.endswith("/v3/sync")
    ]
    # The setting is kept: a restart with sliding sync allowed uses it again.
    assert client.sliding_sync_allowed


async def test_a_switch_under_way_when_the_client_closes_leaves_no_sync_running(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    """The switch of sync source at start (``/versions`` answered otherwise than last time)
    runs as one of the client's tasks; a close while it waits for the old loop to end
    cancels it. It used to swallow its own cancellation with the old loop's, start the new
    loop, and leave it running over the closed database thread ("cannot schedule new
    futures after shutdown" every few seconds, as after a rebuild of a damaged cache)."""
    client = await login(
        synapse, make_user("alice"), tmp_path / "alice", long_poll_ms=500, sliding=True
    )
    await client.wait_synced()
    old = client.sync_loop
    assert old is not None and client.sync_mode == "sliding sync"
    client._spawn(client.set_sliding_sync(False))  # as _recheck_sliding_sync does
    for _ in range(1_000_000):  # each turn of the event loop: caught while it waits
        if old._stopping:
            break
        await asyncio.sleep(0)
    assert old._stopping, "the switch did not begin"
    await client.close()
    await asyncio.sleep(1)
    left = [t for t in asyncio.all_tasks() if "SyncLoop.run" in repr(t.get_coro())]
    assert not left, left
    assert client.sync_loop is old
