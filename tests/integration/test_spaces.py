"""Spaces against the real Synapse: a nested subspace, a suggested room, restricted rooms
joined through space membership (and refused until the space is joined), the
hierarchy's pages and depth, the graph built from sync, and loops."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.joins import JoinFailed
from tui_client.engine.updates import JoinProgress, SpacesChanged

from ..engine.support import ClientPool, create_room, join, login, room_path, wait_until
from ..support.updates import Recorder

SPACE_BODY = {
    "preset": "public_chat",
    "creation_content": {"type": "m.space"},
    "power_level_content_override": {"events_default": 100},
}


@dataclass
class SpaceWorld:
    """Outer (public space) holds Suggested (suggested), Members (restricted to Outer),
    Readable (restricted to Outer, world-readable) and Inner (a public subspace), which
    holds Deep."""

    owner: RegisteredUser
    outer: str
    inner: str
    deep: str
    suggested: str
    members: str
    readable: str


def _set_state(
    synapse: SynapseServer,
    user: RegisteredUser,
    room: str,
    event_type: str,
    key: str,
    content: dict[str, Any],
) -> None:
    status, body = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_path(room)}/state/{event_type}/{room_path(key)}",
        content,
        user.access_token,
    )
    assert status == 200, body


def _add_child(
    synapse: SynapseServer,
    owner: RegisteredUser,
    space: str,
    child: str,
    order: str,
    suggested: bool = False,
) -> None:
    content: dict[str, Any] = {"via": [synapse.server_name], "order": order}
    if suggested:
        content["suggested"] = True
    _set_state(synapse, owner, space, "m.space.child", child, content)
    _set_state(
        synapse,
        owner,
        child,
        "m.space.parent",
        space,
        {"via": [synapse.server_name], "canonical": True},
    )


def _restricted(space: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": space}],
            },
        }
    ]


def build_world(synapse: SynapseServer, owner: RegisteredUser) -> SpaceWorld:
    outer = create_room(synapse, owner, name="Outer", topic="The whole project", **SPACE_BODY)
    inner = create_room(synapse, owner, name="Inner", **SPACE_BODY)
    deep = create_room(synapse, owner, preset="public_chat", name="Deep")
    suggested = create_room(
        synapse, owner, preset="public_chat", name="Suggested", topic="Start here"
    )
    members = create_room(
        synapse, owner, name="Members", room_version="10", initial_state=_restricted(outer)
    )
    readable = create_room(
        synapse,
        owner,
        name="Readable",
        room_version="12",
        initial_state=[
            *_restricted(outer),
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            },
        ],
    )
    _add_child(synapse, owner, outer, suggested, "10", suggested=True)
    _add_child(synapse, owner, outer, members, "20")
    _add_child(synapse, owner, outer, readable, "25")
    _add_child(synapse, owner, outer, inner, "30")
    _add_child(synapse, owner, inner, deep, "10")
    return SpaceWorld(owner, outer, inner, deep, suggested, members, readable)


@pytest.fixture(scope="module")
def shared_world(synapse: SynapseServer) -> SpaceWorld:
    """One world for the tests that only add members to it (each with its own users)."""
    localpart = f"architect-{secrets.token_hex(3)}"
    return build_world(
        synapse, synapse.register_user(localpart, f"password-{localpart}", displayname="Architect")
    )


@pytest.fixture
def world(synapse: SynapseServer, make_user: Any) -> SpaceWorld:
    """A world of its own, for a test that changes the spaces."""
    return build_world(synapse, make_user("architect", displayname="Architect"))


def _joined(synapse: SynapseServer, user: RegisteredUser) -> set[str]:
    status, body = synapse.request_json(
        "GET", "/_matrix/client/v3/joined_rooms", token=user.access_token
    )
    assert status == 200
    return set(body["joined_rooms"])


async def test_hierarchy_pages_depth_and_suggested(
    synapse: SynapseServer,
    make_user: Any,
    shared_world: SpaceWorld,
    pool: ClientPool,
    tmp_path: Path,
) -> None:
    world = shared_world
    client = pool.add(await login(synapse, make_user("explorer"), tmp_path, start=False))
    browser = client.spaces.browse(world.outer, page_size=2)
    while not browser.done:
        await browser.load_more()
    assert browser.pages >= 3
    rows = browser.hierarchy.rows()
    described = [(r.room_id, r.depth, r.suggested, r.info.name if r.info else None) for r in rows]
    assert described == [
        (world.outer, 0, False, "Outer"),
        (world.suggested, 1, True, "Suggested"),
        # Members is restricted to Outer, which the explorer has not joined: the server
        # does not describe it, the space still lists it.
        (world.members, 1, False, None),
        # Readable is world-readable, so it is described, with who may join it.
        (world.readable, 1, False, "Readable"),
        (world.inner, 1, False, "Inner"),
        (world.deep, 2, False, "Deep"),
    ]
    readable = rows[3].info
    assert (
        readable is not None
        and readable.join_rule == "restricted"
        and readable.allowed_room_ids == (world.outer,)
    )
    assert rows[4].is_space and rows[1].via == (synapse.server_name,)
    assert [r.room_id for r in browser.hierarchy.suggested_rooms()] == [world.suggested]

    shallow = client.spaces.browse(world.outer, max_depth=1)
    await shallow.load_all()
    assert [r.room_id for r in shallow.hierarchy.rows() if r.info] == [
        world.outer,
        world.suggested,
        world.readable,
        world.inner,
    ]
    only_suggested = client.spaces.browse(world.outer, suggested_only=True)
    await only_suggested.load_all()
    assert {r.room_id for r in only_suggested.hierarchy.rows() if r.info} == {
        world.outer,
        world.suggested,
    }


async def test_join_space_and_all_suggested_then_restricted_through_membership(
    synapse: SynapseServer,
    make_user: Any,
    shared_world: SpaceWorld,
    pool: ClientPool,
    tmp_path: Path,
) -> None:
    world = shared_world
    user = make_user("member")
    client = pool.add(await login(synapse, user, tmp_path))
    client.spaces.start()
    browser = client.spaces.browse(world.outer)
    await browser.load_all()
    await client.joins.join(world.outer)
    jobs = client.joins.enqueue_many(
        (row.room_id, row.via) for row in browser.hierarchy.suggested_rooms()
    )
    assert [await job.wait() for job in jobs] == [world.suggested]
    # A restricted room, joined through the membership of the space.
    assert await client.joins.join(world.members, [synapse.server_name]) == world.members
    assert {world.outer, world.suggested, world.members} <= _joined(synapse, user)
    # Now a member, the hierarchy describes the restricted room too.
    again = client.spaces.browse(world.outer)
    await again.load_all()
    (members,) = [r for r in again.hierarchy.rows() if r.room_id == world.members]
    assert members.info is not None and members.info.join_rule == "restricted"
    assert members.info.allowed_room_ids == (world.outer,)


async def test_restricted_room_refused_until_the_space_is_joined(
    synapse: SynapseServer,
    make_user: Any,
    shared_world: SpaceWorld,
    pool: ClientPool,
    tmp_path: Path,
) -> None:
    world = shared_world
    user = make_user("outsider")
    client = pool.add(await login(synapse, user, tmp_path))
    updates = Recorder(client)
    # Found by browsing the space: the space lists the room, the room is not described.
    browser = client.spaces.browse(world.outer)
    await browser.load_all()
    with pytest.raises(JoinFailed) as refused:
        await client.joins.join(world.members, [synapse.server_name])
    (space,) = refused.value.required
    assert (space.room_id, space.name, space.certain) == (world.outer, "Outer", False)
    assert "Outer" in refused.value.message and "have not joined" in refused.value.message
    # A world-readable restricted room says itself which space it needs.
    with pytest.raises(JoinFailed) as certain:
        await client.joins.join(world.readable, [synapse.server_name])
    (needed,) = certain.value.required
    assert (needed.room_id, needed.certain) == (world.outer, True)
    assert certain.value.message == "Readable is open to members of Outer only: join Outer first."
    progress = [u for u in updates.of(JoinProgress)][-1]
    assert progress.jobs[-1].required_spaces == (world.outer,)
    assert world.members not in _joined(synapse, user)

    # The offer: join the space first, then the room.
    first, then = client.joins.enqueue_via_space(world.members, [synapse.server_name], space)
    assert await then.wait() == world.members
    assert first.state == "joined"
    assert {world.outer, world.members} <= _joined(synapse, user)
    assert (
        await client.joins.join(world.readable) == world.readable
    )  # via found from the space's links


async def test_space_graph_from_sync_filters_rooms_and_lists_unjoined_children(
    synapse: SynapseServer, make_user: Any, world: SpaceWorld, pool: ClientPool, tmp_path: Path
) -> None:
    owner = world.owner
    # A room that claims Outer as parent without Outer listing it: valid, because its
    # sender (the owner) may add children to Outer. And one whose claim is not.
    claimed = create_room(
        synapse,
        owner,
        preset="public_chat",
        name="Claimed",
        initial_state=[
            {
                "type": "m.space.parent",
                "state_key": world.outer,
                "content": {"via": [synapse.server_name]},
            }
        ],
    )
    stranger = make_user("stranger")
    bogus = create_room(
        synapse,
        stranger,
        preset="public_chat",
        name="Bogus",
        initial_state=[
            {
                "type": "m.space.parent",
                "state_key": world.outer,
                "content": {"via": [synapse.server_name]},
            }
        ],
    )
    user = make_user("resident")
    for room in (world.outer, world.inner, world.suggested, claimed, bogus):
        join(synapse, user, room)
    client = pool.add(await login(synapse, user, tmp_path))
    updates = Recorder(client)
    client.spaces.start()
    await wait_until(lambda: bool(updates.of(SpacesChanged)), what="the space graph")
    spaces = client.spaces
    assert [(n.room_id, n.depth) for n in spaces.sidebar()] == [(world.outer, 0), (world.inner, 1)]
    inside = spaces.rooms_in(world.outer)
    assert {
        world.suggested,
        world.members,
        world.readable,
        world.inner,
        world.deep,
        claimed,
    } <= inside
    assert bogus not in inside
    assert spaces.rooms_in(world.inner) == {world.deep}
    unjoined = {c.room_id: c for c in spaces.unjoined_in(world.outer)}
    assert set(unjoined) == {world.members, world.readable, world.deep}
    assert (
        unjoined[world.deep].via == (synapse.server_name,)
        and unjoined[world.deep].space_id == world.inner
    )

    # Rooms visible before joining them: the hierarchy gives their names.
    await spaces.learn_children(world.outer)
    deep = spaces.describe(world.deep)
    assert deep is not None and deep.name == "Deep"

    # Joining one updates the lists; a new child added by the owner shows up live.
    count = len(updates.of(SpacesChanged))
    await client.joins.join(world.deep, unjoined[world.deep].via)
    await wait_until(
        lambda: world.deep not in {c.room_id for c in spaces.unjoined_in(world.outer)},
        what="deep joined",
    )
    late = create_room(synapse, owner, preset="public_chat", name="Late")
    _add_child(synapse, owner, world.inner, late, "20")
    await wait_until(lambda: late in spaces.rooms_in(world.outer), what="the new child")
    assert len(updates.of(SpacesChanged)) > count
    # Leaving a space takes its rooms out of the graph's reach.
    await client.leave(world.inner)
    await wait_until(lambda: late not in spaces.rooms_in(world.outer), what="the subspace left")
    assert [n.room_id for n in spaces.sidebar()] == [world.outer]


async def test_space_loops_on_a_real_server(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    owner = make_user("looper")
    first = create_room(synapse, owner, name="Ping", **SPACE_BODY)
    second = create_room(synapse, owner, name="Pong", **SPACE_BODY)
    room = create_room(synapse, owner, preset="public_chat", name="Ball")
    _add_child(synapse, owner, first, second, "1")
    _add_child(synapse, owner, second, first, "1")
    _add_child(synapse, owner, second, room, "2")
    _add_child(synapse, owner, first, first, "0")  # a space inside itself
    client = pool.add(await login(synapse, owner, tmp_path))
    client.spaces.start()
    await wait_until(lambda: room in client.spaces.rooms_in(first), what="the graph")
    spaces = client.spaces
    assert spaces.rooms_in(first) == {second, room}
    assert spaces.rooms_in(second) == {first, room}
    assert [(n.room_id, n.depth) for n in spaces.sidebar()] == [
        (min(first, second), 0),
        (max(first, second), 1),
    ]
    browser = spaces.browse(first)
    await asyncio.wait_for(browser.load_all(), 20)
    assert browser.done
    assert [r.room_id for r in browser.hierarchy.rows()] == [first, second, room]
