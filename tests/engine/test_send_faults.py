"""The send queue against a real Synapse, with faults injected at the transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.room_view import RoomView
from tui_client.engine.updates import Notice
from tui_client.protocol.timeline import SendState, TimelineItem

from ..support.updates import Recorder
from .support import (
    ClientPool,
    Wire,
    bodies,
    create_room,
    is_send,
    json_response,
    login,
    server_messages,
    wait_until,
)


def _items_with_body(view: RoomView, body: str) -> list[TimelineItem]:
    return [i for i in view.model.items if i.body == body]


def _delivered(view: RoomView, body: str) -> bool:
    items = _items_with_body(view, body)
    return len(items) == 1 and not items[0].is_local_echo and items[0].send_state is SendState.SENT


async def test_rate_limited_send_is_delivered_once(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    user = make_user("sender")
    room_id = create_room(synapse, user)
    client = pool.add(await login(synapse, user, tmp_path / "p", wire=wire))
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    view = await client.open_room(room_id)
    recorder = Recorder(client)
    wire.inject(
        is_send,
        lambda r: json_response(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300}),
    )

    entry = await client.send_message(room_id, "patience")
    (echo,) = _items_with_body(view, "patience")
    assert echo.is_local_echo and echo.send_state is SendState.PENDING
    await wait_until(lambda: _delivered(view, "patience"), what="delivery")

    puts = [r for r in wire.requests if r.method == "PUT" and "/send/" in r.path]
    assert len(puts) == 2
    # The retry reused the transaction ID, after the server's delay.
    assert puts[0].url == puts[1].url and puts[0].path.endswith(entry.txn_id)
    assert puts[1].at - puts[0].at >= 0.29
    assert any(isinstance(n, Notice) and "Rate limited" in n.text for n in recorder.of(Notice))
    assert bodies(server_messages(synapse, user.access_token, room_id)).count("patience") == 1
    assert await client.db.run(client.cache.outbox) == []


async def test_forbidden_send_fails_readably_and_retry_works(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    owner, guest = make_user("owner"), make_user("guest")
    room_id = create_room(synapse, owner, invite=[guest.user_id])
    client = pool.add(await login(synapse, guest, tmp_path / "guest", wire=wire))
    await wait_until(lambda: room_id in client.rooms, what="invite synced")
    assert client.rooms[room_id].membership == "invite"
    view = await client.open_room(room_id)

    # Not joined yet: the message is refused (by the client, before the server would).
    entry = await client.send_message(room_id, "too early")
    await wait_until(
        lambda: any(i.send_state is SendState.FAILED for i in _items_with_body(view, "too early")),
        what="failure",
    )
    (failed,) = _items_with_body(view, "too early")
    assert failed.is_local_echo
    assert failed.error == "you are not in this room (invite)"
    (stored,) = await client.db.run(client.cache.outbox)
    assert (stored.txn_id, stored.state, stored.error) == (entry.txn_id, "failed", failed.error)
    # A failed message is not retried by itself.
    attempts = stored.attempts

    await client.join(room_id)
    await wait_until(lambda: client.rooms[room_id].membership == "join", what="join synced")
    (still,) = await client.db.run(client.cache.outbox)
    assert still.attempts == attempts

    await client.retry_send(entry.txn_id)
    await wait_until(lambda: _delivered(view, "too early"), what="delivery after retry")
    puts = [r for r in wire.requests if r.method == "PUT" and "/send/" in r.path]
    assert {r.path for r in puts} == {puts[0].path}
    assert puts[0].path.endswith(entry.txn_id)
    assert bodies(server_messages(synapse, owner.access_token, room_id)).count("too early") == 1
    assert await client.db.run(client.cache.outbox) == []


async def test_server_errors_on_send_are_retried_with_the_same_transaction(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    user = make_user("retry")
    room_id = create_room(synapse, user)
    client = pool.add(await login(synapse, user, tmp_path / "p", wire=wire))
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    view = await client.open_room(room_id)

    async def lose_answer(request: Any) -> Any:
        # The server stores the message, but its answer never arrives.
        await wire.forward(request)
        return json_response(502, {"errcode": "M_UNKNOWN", "error": "proxy lost the answer"})

    wire.inject(is_send, lose_answer)
    await client.send_message(room_id, "stored once")
    await wait_until(lambda: _delivered(view, "stored once"), timeout=15, what="delivery")
    # Either the echo came by sync first (the entry is then done) or the retry got
    # the server's answer for the same transaction: never a second event.
    await wait_until(lambda: client.send_queue.idle.is_set(), what="queue idle")
    puts = [r for r in wire.requests if r.method == "PUT" and "/send/" in r.path]
    # One PUT if the echo arrived first, two if the retry went out: both with one txn ID.
    assert 1 <= len(puts) <= 2 and len({r.url for r in puts}) == 1
    assert await client.db.run(client.cache.outbox) == []
    assert bodies(server_messages(synapse, user.access_token, room_id)).count("stored once") == 1
