"""The published room directory against the real Synapse: 155 seeded public rooms,
pagination, server-side search, another server's directory, merging, faults, preview."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.directory import parse_server_list, preview_room
from tui_client.protocol.ids import InvalidIdentifier

from ..engine.support import (
    ClientPool,
    Wire,
    create_room,
    json_response,
    login,
    room_path,
    send_text,
)
from ..support.users import MakeUser
from .directory_world import DIRECTORY_SIZE, DirectoryWorld

LogIn = Callable[..., Awaitable[MatrixClient]]


@pytest.fixture
def log_in(
    synapse: SynapseServer,
    make_user: MakeUser,
    directory_world: DirectoryWorld,
    wire: Wire,
    pool: ClientPool,
    tmp_path: Path,
) -> LogIn:
    """``await log_in(name, start=False)``: a new user's client, through ``wire``, once the
    directory is seeded (not syncing unless ``start``)."""
    directory_world.wait()

    async def log_in(name: str, *, start: bool = False) -> MatrixClient:
        return pool.add(await login(synapse, make_user(name), tmp_path, wire=wire, start=start))

    return log_in


def _directory_requests(wire: Wire) -> list[tuple[str | None, dict[str, Any]]]:
    return [
        (r.url.params.get("server"), json.loads(r.body))
        for r in wire.requests
        if r.path.endswith("/publicRooms") and not r.injected
    ]


async def test_pages_through_every_seeded_room(
    log_in: LogIn,
    synapse: SynapseServer,
    directory_world: DirectoryWorld,
    wire: Wire,
) -> None:
    client = await log_in("browser")
    browser = client.browse_directory(search=directory_world.token, page_size=40)
    batches = []
    while not browser.done:
        batches.append(await browser.load_more())
    names = [room.name for room in browser.rooms]
    assert sorted(names) == sorted(directory_world.names)  # every room, once
    assert len(names) == DIRECTORY_SIZE == len(set(r.room_id for r in browser.rooms))
    assert [len(b.added) for b in batches] == [40, 40, 40, 35]
    assert not browser.failures
    # Pagination used the server's tokens: each request after the first sent `since`.
    requests = _directory_requests(wire)
    assert len(requests) == 4
    assert "since" not in requests[0][1] and all("since" in body for _, body in requests[1:])
    assert all(
        body["filter"] == {"generic_search_term": directory_world.token} for _, body in requests
    )
    (room,) = [r for r in browser.rooms if r.name == directory_world.names[7]]
    assert room.canonical_alias == directory_world.aliases[7]
    assert room.topic == f"Room number 7 of the {directory_world.token} directory test"
    assert (room.join_rule, room.num_joined_members, room.servers) == (
        "public",
        1,
        (synapse.server_name,),
    )
    assert room.room_id == directory_world.room_ids[room.name]


async def test_whole_directory_without_a_search_has_no_duplicates(
    log_in: LogIn,
    directory_world: DirectoryWorld,
) -> None:
    client = await log_in("browser")
    browser = client.browse_directory(page_size=100)
    while not browser.done:
        await browser.load_more()
    ids = [r.room_id for r in browser.rooms]
    assert len(ids) == len(set(ids)) >= DIRECTORY_SIZE
    assert set(directory_world.room_ids.values()) <= set(ids)


async def test_search_happens_on_the_server(
    log_in: LogIn,
    directory_world: DirectoryWorld,
    wire: Wire,
) -> None:
    client = await log_in("searcher")
    # By name: "<token> 12" matches 120-129.
    browser = client.browse_directory(search=f"{directory_world.token} 12")
    await browser.load_until(1000)
    assert sorted(r.name or "" for r in browser.rooms) == sorted(
        n for n in directory_world.names if f"{directory_world.token} 12" in n
    )
    assert len(browser.rooms) == 10
    # By topic, and by alias.
    by_topic = client.browse_directory(search=f"number 150 of the {directory_world.token}")
    await by_topic.load_until(1000)
    assert [r.name for r in by_topic.rooms] == [directory_world.names[150]]
    by_alias = client.browse_directory(search=directory_world.aliases[33][1:].split(":")[0])
    await by_alias.load_until(1000)
    assert [r.canonical_alias for r in by_alias.rooms] == [directory_world.aliases[33]]
    nothing = client.browse_directory(search=f"{directory_world.token} no such room")
    batch = await nothing.load_more()
    assert batch.added == () and batch.done and nothing.done
    assert {body["filter"]["generic_search_term"] for _, body in _directory_requests(wire)} == {
        f"{directory_world.token} 12",
        f"number 150 of the {directory_world.token}",
        directory_world.aliases[33][1:].split(":")[0],
        f"{directory_world.token} no such room",
    }


async def test_another_servers_directory_side_by_side_merged(
    log_in: LogIn,
    synapse: SynapseServer,
    directory_world: DirectoryWorld,
    wire: Wire,
) -> None:
    client = await log_in("federated")
    own = synapse.server_name
    # Our own list, and the same server asked by name (`server=`): the same rooms,
    # listed once.
    browser = client.browse_directory([None, own], search=directory_world.token, page_size=100)
    await browser.load_until(10_000)
    assert len(browser.rooms) == DIRECTORY_SIZE
    asked = {server for server, _ in _directory_requests(wire)}
    assert asked == {None, own}
    # A third server (its answer injected at the transport) lists one of the same rooms
    # and one of its own: the shared one is merged and says where it was found.
    # (A room of our first page: merged in order, our description comes first.)
    shared_id = browser.rooms[0].room_id
    shared_name = browser.rooms[0].name
    remote = {
        "chunk": [
            {
                "room_id": shared_id,
                "name": "Shared, described by the other server",
                "num_joined_members": 9,
                "world_readable": False,
                "guest_can_join": False,
            },
            {
                "room_id": "!remote:other.example",
                "name": "Only over there",
                "num_joined_members": 3,
                "world_readable": True,
                "guest_can_join": False,
                "join_rule": "knock",
            },
        ]
    }
    wire.inject(
        lambda r: r.url.params.get("server") == "other.example",
        lambda r: json_response(200, remote),
        times=None,
    )
    both = client.browse_directory(
        [None, "other.example"], search=directory_world.token, page_size=100
    )
    await both.load_until(10_000)
    assert len(both.rooms) == DIRECTORY_SIZE + 1
    shared = both.room(shared_id)
    assert shared is not None and shared.servers == (own, "other.example")
    assert shared.name == shared_name  # the first description stays
    only = both.room("!remote:other.example")
    assert only is not None and only.servers == ("other.example",) and only.can_knock


async def test_a_down_or_slow_directory_server_times_out_without_blocking_others(
    log_in: LogIn,
    directory_world: DirectoryWorld,
    wire: Wire,
) -> None:
    client = await log_in("patient", start=True)

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return json_response(200, {"chunk": []})

    wire.inject(lambda r: r.url.params.get("server") == "slow.example", hang, times=None)
    wire.inject(
        lambda r: r.url.params.get("server") == "down.example",
        lambda r: json_response(
            502, {"errcode": "M_UNKNOWN", "error": "Failed to fetch room list"}
        ),
        times=None,
    )
    browser = client.browse_directory(
        [None, "slow.example", "down.example"], search=directory_world.token, timeout=1.5
    )
    began = time.monotonic()
    batch = await browser.load_more()
    elapsed = time.monotonic() - began
    assert elapsed < 10  # the slow server was given up on; nothing waited for its 60 s
    assert len(batch.added) == 50  # our own server's page is there
    failures = {f.server: f.message for f in batch.failures}
    assert set(failures) == {"slow.example", "down.example"}
    assert (
        "did not answer within 2 s" in failures["slow.example"]
        and "slow.example" in failures["slow.example"]
    )
    assert (
        "could not be reached" in failures["down.example"]
        and "Failed to fetch room list" in failures["down.example"]
    )
    # The failed servers are not asked again; our own list goes on paging.
    await browser.load_until(10_000)
    assert len(browser.rooms) == DIRECTORY_SIZE and browser.done
    assert sum(1 for s, _ in _directory_requests(wire) if s == "down.example") == 0
    # Meanwhile the rest of the client went on working: sync stayed connected.
    assert client.sync_state.status.value == "connected"


def test_server_lists_are_validated() -> None:
    with pytest.raises(InvalidIdentifier, match="server!"):
        parse_server_list("matrix.org, bad-server!")
    assert parse_server_list(" matrix.org,example.org:8448  matrix.org") == [
        "matrix.org",
        "example.org:8448",
    ]
    assert parse_server_list("") == []


async def test_preview_shows_world_readable_history_only(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    owner = make_user("host", displayname="Host")
    readable = create_room(
        synapse,
        owner,
        preset="public_chat",
        name="Open book",
        topic="Anyone may read",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    for n in range(3):
        send_text(synapse, owner, readable, f"visible message {n} [bold]not markup[/bold]", f"p{n}")
    closed = create_room(synapse, owner, preset="public_chat", name="Members only")
    send_text(synapse, owner, closed, "secret", "s0")
    private = create_room(synapse, owner, name="Private")
    client = pool.add(await login(synapse, make_user("visitor"), tmp_path, start=False))

    preview = await preview_room(client, readable)
    assert (
        preview.info is not None
        and preview.info.name == "Open book"
        and preview.info.world_readable
    )
    bodies = [item.body for item in preview.history]
    assert bodies[-3:] == [f"visible message {n} [bold]not markup[/bold]" for n in range(3)]
    assert any(item.sender == owner.user_id for item in preview.history)

    members_only = await preview_room(client, closed)
    assert members_only.info is not None and members_only.info.name == "Members only"
    assert members_only.history == () and "members only" in members_only.history_note.lower()

    hidden = await preview_room(client, private)
    assert hidden.info is None and hidden.error is not None and "not visible" in hidden.error
    status, _ = synapse.request_json(
        "GET", f"/_matrix/client/v1/room_summary/{room_path(private)}", token=owner.access_token
    )
    assert status == 200  # the room exists; it is only hidden from the visitor
