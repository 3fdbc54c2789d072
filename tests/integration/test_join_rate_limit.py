"""Joining many rooms on a server that rate-limits joins: queued, Retry-After honoured,
progress shown, no join lost. Runs its own Synapse with join limits tightened."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.updates import JoinProgress

from ..engine.support import (
    ClientPool,
    Wire,
    create_room,
    login,
    room_path,
    wait_until,
    wait_until_async,
)
from ..support.synapse import own_synapse
from ..support.updates import Recorder

ROOMS = 5
_EASY = {"per_second": 1000, "burst_count": 1000}


@pytest.fixture(scope="module")
def strict_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A Synapse with rate limits on; joins limited to a burst of 2, then one every two
    seconds (slow enough that even a loaded machine's joins meet the limit)."""
    yield from own_synapse(
        tmp_path_factory,
        "strict-synapse",
        rate_limits=True,
        extra_config={
            "rc_joins": {
                "local": {"per_second": 0.5, "burst_count": 2},
                "remote": {"per_second": 0.5, "burst_count": 2},
            },
            "rc_room_creation": _EASY,
            "rc_login": {"address": _EASY, "account": _EASY, "failed_attempts": _EASY},
        },
    )


def _unlimited(server: SynapseServer, user: RegisteredUser) -> RegisteredUser:
    """Exempt a user from every rate limit (Synapse's admin override), for seeding."""
    path = f"/_synapse/admin/v1/users/{room_path(user.user_id)}/override_ratelimit"
    status, body = server.request_json(
        "POST", path, {"messages_per_second": 0, "burst_count": 0}, server.admin_token
    )
    assert status == 200, body
    return user


async def test_rate_limited_joins_are_queued_and_none_is_lost(
    strict_synapse: SynapseServer, wire: Wire, pool: ClientPool, tmp_path: Path
) -> None:
    owner = _unlimited(strict_synapse, strict_synapse.register_user("owner", "password-owner"))
    joiner = strict_synapse.register_user("joiner", "password-joiner")
    rooms = [
        create_room(strict_synapse, owner, preset="public_chat", name=f"Busy {n}")
        for n in range(ROOMS)
    ]
    client = pool.add(await login(strict_synapse, joiner, tmp_path, wire=wire))
    updates = Recorder(client)

    began = time.monotonic()
    jobs = client.joins.enqueue_many((room, [strict_synapse.server_name]) for room in rooms)
    assert client.joins.progress().total == ROOMS and client.joins.progress().busy
    joined = [await job.wait() for job in jobs]
    elapsed = time.monotonic() - began
    assert joined == rooms  # every one, in the order asked

    status, body = strict_synapse.request_json(
        "GET", "/_matrix/client/v3/joined_rooms", token=joiner.access_token
    )
    assert status == 200 and set(rooms) <= set(body["joined_rooms"])
    join_answers = [r for r in wire.requests if r.method == "POST" and "/join/" in r.path]
    # The server did refuse some (429), and each refused join was tried again later.
    assert len(join_answers) > ROOMS
    assert elapsed >= 4.0  # burst of 2, then one every 2 s: the waits were real

    progress: list[JoinProgress] = updates.of(JoinProgress)
    waiting = [s for p in progress for s in p.jobs if s.state == "waiting"]
    assert waiting and all(s.error == "rate limited" and s.retry_at is not None for s in waiting)
    described = [
        p.describe(time.time()) for p in progress if any(s.state == "waiting" for s in p.jobs)
    ]
    assert any("rate limited, next try in" in text for text in described)
    final = progress[-1]
    assert (final.total, final.joined, final.failed, final.busy) == (ROOMS, ROOMS, 0, False)
    assert final.describe(time.time()) == f"Joined {ROOMS} of {ROOMS} rooms"
    await wait_until(
        lambda: all(
            client.rooms.get(r) is not None and client.rooms[r].membership == "join" for r in rooms
        ),
        what="sync",
    )


async def test_joins_survive_server_errors_and_a_cut_connection(
    strict_synapse: SynapseServer, wire: Wire, pool: ClientPool, tmp_path: Path
) -> None:
    import httpx

    from ..engine.support import json_response

    owner = _unlimited(strict_synapse, strict_synapse.register_user("owner2", "password-owner"))
    user = strict_synapse.register_user("unlucky", "password-unlucky")
    room = create_room(strict_synapse, owner, preset="public_chat", name="Flaky")
    client = pool.add(await login(strict_synapse, user, tmp_path, wire=wire, start=False))
    client.joins.backoff_base = 0.05

    def is_join(request: httpx.Request) -> bool:
        return request.method == "POST" and "/join/" in request.url.path

    def cut(request: httpx.Request) -> Any:
        raise httpx.RemoteProtocolError("connection cut", request=request)

    wire.inject(
        is_join,
        lambda r: json_response(502, {"errcode": "M_UNKNOWN", "error": "bad gateway"}),
        times=1,
    )
    wire.inject(is_join, cut, times=1)
    updates = Recorder(client)
    assert await client.joins.join(room) == room
    assert len([r for r in wire.requests if r.method == "POST" and "/join/" in r.path]) == 3
    waits = [s.error for p in updates.of(JoinProgress) for s in p.jobs if s.state == "waiting"]
    assert waits == ["server error 502", "connection problem"]


async def test_joins_still_queued_when_the_client_stops_are_made_after_a_restart(
    synapse: SynapseServer, wire: Wire, pool: ClientPool, tmp_path: Path
) -> None:
    from tui_client.engine.client import MatrixClient
    from tui_client.engine.joins import JoinFailed
    from tui_client.engine.updates import Notice

    from ..engine.support import json_response

    owner = synapse.register_user("keeper", "password-keeper")
    user = synapse.register_user("quitter", "password-quitter")
    rooms = [create_room(synapse, owner, preset="public_chat", name=f"Later {n}") for n in range(3)]
    client = pool.add(await login(synapse, user, tmp_path, wire=wire))
    # The first join goes through; then the server wants a minute's pause.
    joins_seen = 0

    def second_join_on(request: Any) -> bool:
        nonlocal joins_seen
        if request.method == "POST" and "/join/" in request.url.path:
            joins_seen += 1
            return joins_seen > 1
        return False

    wire.inject(
        second_join_on,
        lambda r: json_response(
            429, {"errcode": "M_LIMIT_EXCEEDED", "error": "slow down", "retry_after_ms": 60_000}
        ),
        times=None,
    )
    jobs = client.joins.enqueue_many((room, [synapse.server_name]) for room in rooms)
    assert await jobs[0].wait() == rooms[0]
    await wait_until(
        lambda: jobs[1].state == "waiting", what="the second join waiting out the limit"
    )
    await client.close()
    pool.forget(client)
    for job in jobs[1:]:
        with pytest.raises(JoinFailed, match="closed before"):
            await job.wait()

    # The next start makes the two joins left (the rate limit is over), in order.
    wire.clear()
    before = len(wire.requests)
    restored = MatrixClient.restore(base_dir=tmp_path, transport=wire.transport(), long_poll_ms=200)
    assert restored is not None
    pool.add(restored)
    updates = Recorder(restored)
    await restored.open()
    restored.start()
    await wait_until(
        lambda: all(
            restored.rooms.get(r) is not None and restored.rooms[r].membership == "join"
            for r in rooms
        ),
        what="every room joined after the restart",
        timeout=30,
    )
    assert any(n.text == "Resuming 2 joins left unfinished last time" for n in updates.of(Notice))
    import urllib.parse

    posted = [
        urllib.parse.unquote(r.path)
        for r in wire.requests[before:]
        if r.method == "POST" and "/join/" in r.path
    ]
    assert len(posted) == 2 and all(
        room in path for path, room in zip(posted, rooms[1:], strict=True)
    ), posted
    status, body = synapse.request_json(
        "GET", "/_matrix/client/v3/joined_rooms", token=user.access_token
    )
    assert status == 200 and set(rooms) <= set(body["joined_rooms"])
    # Nothing is left to resume on the start after that (removed once each answer is handled).
    await wait_until_async(
        lambda: _nothing_pending(restored), what="the pending joins cleared", timeout=30
    )


async def _nothing_pending(client: Any) -> bool:
    return await client.db.run(client.cache.joins_pending) == []
