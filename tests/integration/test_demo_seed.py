"""The demo world and the demo bot, against a real Synapse of their own.

Seeding uses fixed user names (alice, bob...), so this module runs its own
server rather than the session-wide one; it is seeded once for the module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tui_client.devtools.bot import parse_roll, run_bot
from tui_client.devtools.seed import (
    BOOK_CLUB_TOPIC,
    GENERAL_TOPIC,
    MARKER_FILE,
    SECRET_DM_NAME,
    DemoWorld,
    seed,
)
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.room_view import RoomView
from tui_client.protocol.timeline import TimelineItem

from ..support.synapse import own_synapse


def _seg(value: str) -> str:
    return quote(value, safe="")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    yield from own_synapse(tmp_path_factory, "demo-synapse")


@pytest.fixture(scope="module")
def world(demo_server: SynapseServer) -> DemoWorld:
    return seed(demo_server)


def _get(server: SynapseServer, token: str, path: str) -> dict[str, Any]:
    status, body = server.request_json("GET", path, token=token)
    assert status == 200, (path, status, body)
    return body


def _state(
    server: SynapseServer,
    world: DemoWorld,
    room: str,
    event_type: str,
    key: str = "",
    *,
    as_user: str = "alice",
) -> dict[str, Any]:
    path = f"/_matrix/client/v3/rooms/{_seg(room)}/state/{_seg(event_type)}/{_seg(key)}"
    # Alice has not joined Dev (she can join it from the space) nor the directory's rooms:
    # ask their creators.
    for name, creator in NOT_JOINED_BY_ALICE.items():
        if room == world.rooms.get(name):
            as_user = creator
    return _get(server, world.users[as_user].access_token, path)


NOT_JOINED_BY_ALICE = {
    "Dev": "bob",
    "Rust": "dave",
    "Python": "bob",
    "Terminal clients": "dave",
    "Board games": "carol",
    "Community": "carol",
    "Announcements": "carol",
    "Community lounge": "carol",
}


def _history(server: SynapseServer, world: DemoWorld, room: str) -> list[dict[str, Any]]:
    path = f"/_matrix/client/v3/rooms/{_seg(room)}/messages?dir=f&limit=500"
    chunk = _get(server, world.alice.access_token, path)["chunk"]
    assert isinstance(chunk, list)
    return chunk


# -- the world ------------------------------------------------------------------------


def test_users_exist_with_display_names(demo_server: SynapseServer, world: DemoWorld) -> None:
    assert set(world.users) == {"alice", "bob", "carol", "dave", "helper"}
    for user in world.users.values():
        assert user.user_id == f"@{user.localpart}:localhost"
        profile = _get(
            demo_server, user.access_token, f"/_matrix/client/v3/profile/{_seg(user.user_id)}"
        )
        assert profile["displayname"] == user.display_name
    assert world.alice.password == "alice-demo-password"


def test_rooms_have_names_topics_and_aliases(demo_server: SynapseServer, world: DemoWorld) -> None:
    expected = {
        "General",
        "Random",
        "Project Space",
        "Design",
        "Dev",
        "Team Space",
        "Standup",
        "Book club",
        "Rust",
        "Python",
        "Terminal clients",
        "Board games",
        "Community",
        "Announcements",
        "Community lounge",
    }
    assert set(world.rooms) == expected
    for name in expected - {"Book club"}:
        assert _state(demo_server, world, world.rooms[name], "m.room.name")["name"] == name
    assert (
        _state(demo_server, world, world.rooms["General"], "m.room.topic")["topic"] == GENERAL_TOPIC
    )

    general = _get(
        demo_server,
        world.alice.access_token,
        f"/_matrix/client/v3/directory/room/{_seg('#general:localhost')}",
    )
    assert general["room_id"] == world.rooms["General"]
    alias_state = _state(demo_server, world, world.rooms["General"], "m.room.canonical_alias")
    assert alias_state["alias"] == "#general:localhost"

    public = _get(demo_server, world.alice.access_token, "/_matrix/client/v3/publicRooms")
    listed = {room["room_id"]: room for room in public["chunk"]}
    assert world.rooms["General"] in listed
    assert listed[world.rooms["General"]]["topic"] == GENERAL_TOPIC
    assert world.rooms["Random"] in listed
    for name in ("Rust", "Python", "Terminal clients", "Board games", "Community", "Project Space"):
        assert world.rooms[name] in listed
    assert listed[world.rooms["Community"]]["room_type"] == "m.space"


def test_community_space_has_a_restricted_room(
    demo_server: SynapseServer, world: DemoWorld
) -> None:
    space = world.rooms["Community"]
    rules = _state(demo_server, world, world.rooms["Community lounge"], "m.room.join_rules")
    assert rules == {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": space}],
    }
    hierarchy = _get(
        demo_server,
        world.users["carol"].access_token,
        f"/_matrix/client/v1/rooms/{_seg(space)}/hierarchy",
    )
    children = {
        c["state_key"]: c["content"]
        for r in hierarchy["rooms"]
        if r["room_id"] == space
        for c in r["children_state"]
    }
    assert set(children) == {world.rooms["Announcements"], world.rooms["Community lounge"]}
    assert children[world.rooms["Announcements"]].get("suggested") is True


def test_general_has_varied_history(demo_server: SynapseServer, world: DemoWorld) -> None:
    events = _history(demo_server, world, world.rooms["General"])
    messages = [e for e in events if e["type"] == "m.room.message"]
    assert len(messages) >= 55
    senders = {e["sender"] for e in messages}
    assert {"@alice:localhost", "@bob:localhost", "@carol:localhost", "@dave:localhost"} <= senders
    msgtypes = {e["content"].get("msgtype") for e in messages if e["content"]}
    assert {"m.text", "m.emote", "m.notice"} <= msgtypes

    by_id = {e["event_id"]: e for e in events}
    reply = by_id[world.events["reply"]]["content"]
    assert reply["m.relates_to"]["m.in_reply_to"]["event_id"] == world.events["replied_to"]
    edits = [
        e for e in messages if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    ]
    assert edits and edits[0]["content"]["m.relates_to"]["event_id"] == world.events["edited"]
    assert "m.new_content" in edits[0]["content"]
    reactions = [e for e in events if e["type"] == "m.reaction"]
    assert {e["content"]["m.relates_to"]["key"] for e in reactions} >= {"👍", "🎉"}
    assert by_id[world.events["redacted"]]["content"] == {}
    assert any(e["type"] == "m.room.redaction" for e in events)
    thread = [
        e for e in messages if e["content"].get("m.relates_to", {}).get("rel_type") == "m.thread"
    ]
    assert len(thread) == 3
    assert all(
        e["content"]["m.relates_to"]["event_id"] == world.events["thread_root"] for e in thread
    )
    bodies = [e["content"].get("body", "") for e in messages]
    assert any("[bold]not bold[/bold]" in b for b in bodies)
    assert by_id[world.events["ansi"]]["content"]["body"].endswith("\u001b[31mred?\u001b[0m")
    renames = [
        e
        for e in events
        if e["type"] == "m.room.member"
        and e["content"].get("membership") == "join"
        and e.get("unsigned", {}).get("prev_content", {}).get("membership") == "join"
    ]
    assert len(renames) >= 3


def test_space_hierarchy_has_children_and_a_nested_subspace(
    demo_server: SynapseServer, world: DemoWorld
) -> None:
    space = world.rooms["Project Space"]
    body = _get(
        demo_server, world.alice.access_token, f"/_matrix/client/v1/rooms/{_seg(space)}/hierarchy"
    )
    rooms = {room["room_id"]: room for room in body["rooms"]}
    names = {room.get("name") for room in body["rooms"]}
    assert names == {"Project Space", "Design", "Dev", "Team Space", "Standup"}
    assert rooms[space]["room_type"] == "m.space"
    assert rooms[world.rooms["Team Space"]]["room_type"] == "m.space"

    children = {c["state_key"]: c["content"] for c in rooms[space]["children_state"]}
    assert set(children) == {world.rooms["Design"], world.rooms["Dev"], world.rooms["Team Space"]}
    assert all(c["via"] == ["localhost"] for c in children.values())
    assert children[world.rooms["Design"]].get("suggested") is True
    assert not children[world.rooms["Dev"]].get("suggested")
    team_children = {c["state_key"] for c in rooms[world.rooms["Team Space"]]["children_state"]}
    assert team_children == {world.rooms["Standup"]}

    for child, parent in (
        ("Design", "Project Space"),
        ("Dev", "Project Space"),
        ("Team Space", "Project Space"),
        ("Standup", "Team Space"),
    ):
        content = _state(
            demo_server, world, world.rooms[child], "m.space.parent", world.rooms[parent]
        )
        assert content["via"] == ["localhost"]


def test_direct_chats_are_marked_on_both_sides(
    demo_server: SynapseServer, world: DemoWorld
) -> None:
    assert set(world.dms) == {"bob", "helper", "helper_encrypted"}
    alice_direct = _get(
        demo_server,
        world.alice.access_token,
        f"/_matrix/client/v3/user/{_seg(world.alice.user_id)}/account_data/m.direct",
    )
    assert alice_direct == {
        "@bob:localhost": [world.dms["bob"]],
        "@helper:localhost": [world.dms["helper"], world.dms["helper_encrypted"]],
    }
    for name in ("bob", "helper"):
        user = world.users[name]
        direct = _get(
            demo_server,
            user.access_token,
            f"/_matrix/client/v3/user/{_seg(user.user_id)}/account_data/m.direct",
        )
        mine = [world.dms[name]] + ([world.dms["helper_encrypted"]] if name == "helper" else [])
        assert direct == {"@alice:localhost": mine}
        member = _state(demo_server, world, world.dms[name], "m.room.member", world.alice.user_id)
        invitee = world.alice if name == "bob" else user
        invite = _state(demo_server, world, world.dms[name], "m.room.member", invitee.user_id)
        assert member["membership"] == "join"
        assert invite["membership"] == "join"
    joined = _get(demo_server, world.alice.access_token, "/_matrix/client/v3/joined_rooms")[
        "joined_rooms"
    ]
    assert world.dms["bob"] in joined and world.dms["helper"] in joined


def test_alice_has_a_pending_invite_from_carol(
    demo_server: SynapseServer, world: DemoWorld
) -> None:
    sync_filter = quote('{"room":{"timeline":{"limit":1}}}', safe="")
    body = _get(
        demo_server,
        world.alice.access_token,
        f"/_matrix/client/v3/sync?timeout=0&filter={sync_filter}",
    )
    invites = body["rooms"]["invite"]
    book_club = world.rooms["Book club"]
    assert set(invites) == {book_club}
    state = {
        (e["type"], e.get("state_key")): e for e in invites[book_club]["invite_state"]["events"]
    }
    assert state[("m.room.name", "")]["content"]["name"] == "Book club"
    assert state[("m.room.member", world.alice.user_id)]["sender"] == "@carol:localhost"
    topic = _state(demo_server, world, book_club, "m.room.topic", as_user="carol")
    assert topic["topic"] == BOOK_CLUB_TOPIC
    # Alice is in every other room except Dev, which she can join from the space.
    joined = set(
        _get(demo_server, world.alice.access_token, "/_matrix/client/v3/joined_rooms")[
            "joined_rooms"
        ]
    )
    not_joined = {world.rooms[name] for name in NOT_JOINED_BY_ALICE}
    assert joined == (set(world.rooms.values()) - {book_club} - not_joined) | set(
        world.dms.values()
    )


def test_seeding_twice_returns_the_same_world(demo_server: SynapseServer, world: DemoWorld) -> None:
    joined_before = _get(demo_server, world.alice.access_token, "/_matrix/client/v3/joined_rooms")
    started = time.monotonic()
    again = seed(demo_server)
    assert time.monotonic() - started < 1
    assert again == world
    assert (demo_server.base_dir / MARKER_FILE).exists()
    assert (
        _get(demo_server, world.alice.access_token, "/_matrix/client/v3/joined_rooms")
        == joined_before
    )


def test_parse_roll() -> None:
    assert parse_roll("") == (1, 6)
    assert parse_roll("2d6") == (2, 6)
    assert parse_roll("d20") == (1, 20)
    assert parse_roll("0d6") is None
    assert parse_roll("101d6") is None
    assert parse_roll("2d1") is None
    assert parse_roll("two dice") is None


# -- the bot --------------------------------------------------------------------------


async def _wait_for(
    view: RoomView, predicate: Callable[[TimelineItem], bool], timeout: float = 15
) -> TimelineItem:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in view.model.items:
            if predicate(item):
                return item
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"nothing matched in {[(i.sender, i.kind, i.body) for i in view.model.items[-10:]]}"
    )


async def _sent(view: RoomView, body: str) -> str:
    item = await _wait_for(
        view, lambda i: i.body == body and i.event_id is not None and not i.is_local_echo
    )
    assert item.event_id is not None
    return item.event_id


def _answers(view: RoomView, bot: str, event_id: str) -> list[TimelineItem]:
    return [
        i
        for i in view.model.items
        if i.sender == bot and i.reply is not None and i.reply.event_id == event_id
    ]


async def test_bot_answers_alice_and_ignores_notices_and_old_messages(
    demo_server: SynapseServer, world: DemoWorld, tmp_path: Path
) -> None:
    bot_id = world.bot.user_id
    stop = asyncio.Event()
    ready = asyncio.Event()
    bot_task = asyncio.ensure_future(
        run_bot(
            demo_server.base_url,
            bot_id,
            world.bot.password,
            tmp_path / "bot",
            stop,
            ready=ready,
            long_poll_ms=2000,
        )
    )
    alice = await MatrixClient.login(
        world.alice.user_id,
        world.alice.password,
        homeserver=demo_server.base_url,
        base_dir=tmp_path / "alice",
        long_poll_ms=2000,
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 30)
        await alice.open()
        alice.start()
        await alice.wait_synced()
        dm = await alice.open_room(world.dms["helper"])

        await alice.send_message(world.dms["helper"], "!ping")
        ping = await _sent(dm, "!ping")
        pong = await _wait_for(
            dm, lambda i: i.sender == bot_id and i.reply is not None and i.reply.event_id == ping
        )
        assert pong.kind == "notice"
        assert pong.body.startswith("pong")

        await alice.send_message(world.dms["helper"], "!ping (as a notice)", msgtype="m.notice")
        ignored_notice = await _sent(dm, "!ping (as a notice)")
        await alice.send_message(world.dms["helper"], "good bot")
        echo_trigger = await _sent(dm, "good bot")
        echo = await _wait_for(dm, lambda i: i.sender == bot_id and i.body == "You said: good bot")
        assert echo.kind == "notice"
        assert echo.reply is not None and echo.reply.event_id == echo_trigger

        general = await alice.open_room(world.rooms["General"])
        await alice.send_message(world.rooms["General"], "just chatting, nobody asked the bot")
        chat = await _sent(general, "just chatting, nobody asked the bot")
        await alice.send_message(world.rooms["General"], "!roll 3d6")
        roll = await _sent(general, "!roll 3d6")
        rolled = await _wait_for(
            general,
            lambda i: i.sender == bot_id and i.reply is not None and i.reply.event_id == roll,
        )
        assert rolled.kind == "notice" and "3d6" in rolled.body

        root = world.events["thread_root"]
        await alice.send_message(
            world.rooms["General"],
            "!echo in a thread",
            extra={
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": root,
                    "is_falling_back": True,
                    "m.in_reply_to": {"event_id": root},
                }
            },
        )

        # Give the bot time to (wrongly) answer its own notices, the notice and the chatter.
        await asyncio.sleep(2.5)
        assert len(_answers(dm, bot_id, ping)) == 1
        assert _answers(dm, bot_id, ignored_notice) == []
        assert _answers(general, bot_id, chat) == []
        assert len(_answers(general, bot_id, roll)) == 1
        # Nothing the bot said was answered, and the message sent before it started was not.
        bot_items = {i.event_id for i in dm.model.items + general.model.items if i.sender == bot_id}
        for item in dm.model.items + general.model.items:
            if item.sender == bot_id and item.reply is not None:
                assert item.reply.event_id not in bot_items
        assert not [i for i in dm.model.items if i.body == "You said: hello?"]

        relations = _get(
            demo_server,
            world.alice.access_token,
            f"/_matrix/client/v1/rooms/{_seg(world.rooms['General'])}/relations/{_seg(root)}/m.thread",
        )["chunk"]
        in_thread = [e for e in relations if e["sender"] == bot_id]
        assert [e["content"]["body"] for e in in_thread] == ["in a thread"]
        assert in_thread[0]["content"]["msgtype"] == "m.notice"
    finally:
        stop.set()
        await asyncio.wait_for(bot_task, 30)
        await alice.close()


async def test_bot_joins_invites_and_greets(
    demo_server: SynapseServer, world: DemoWorld, tmp_path: Path
) -> None:
    bot_id = world.bot.user_id
    stop = asyncio.Event()
    ready = asyncio.Event()
    bot_task = asyncio.ensure_future(
        run_bot(
            demo_server.base_url,
            bot_id,
            world.bot.password,
            tmp_path / "bot",
            stop,
            ready=ready,
            long_poll_ms=2000,
        )
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 30)
        status, body = demo_server.request_json(
            "POST",
            "/_matrix/client/v3/createRoom",
            {"name": "Bot test", "preset": "private_chat", "invite": [bot_id]},
            world.users["dave"].access_token,
        )
        assert status == 200, body
        room = body["room_id"]
        deadline = time.monotonic() + 15
        greeting: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not greeting:
            await asyncio.sleep(0.2)
            events = [
                e
                for e in _get(
                    demo_server,
                    world.users["dave"].access_token,
                    f"/_matrix/client/v3/rooms/{_seg(room)}/messages?dir=b&limit=20",
                )["chunk"]
                if e["type"] == "m.room.message" and e["sender"] == bot_id
            ]
            greeting = events
        assert greeting and greeting[0]["content"]["msgtype"] == "m.notice"
        assert "!help" in greeting[0]["content"]["body"]
    finally:
        stop.set()
        await asyncio.wait_for(bot_task, 30)


async def test_bot_answers_in_an_encrypted_direct_chat(
    demo_server: SynapseServer, world: DemoWorld, tmp_path: Path
) -> None:
    bot_id = world.bot.user_id
    stop = asyncio.Event()
    ready = asyncio.Event()
    bot_task = asyncio.ensure_future(
        run_bot(
            demo_server.base_url,
            bot_id,
            world.bot.password,
            tmp_path / "bot",
            stop,
            ready=ready,
            long_poll_ms=1000,
        )
    )
    dave = await MatrixClient.login(
        world.users["dave"].user_id,
        world.users["dave"].password,
        homeserver=demo_server.base_url,
        base_dir=tmp_path / "dave",
        long_poll_ms=1000,
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 30)
        await dave.open()
        dave.start()
        await dave.wait_synced()
        room = await dave.create_room(
            {
                "preset": "trusted_private_chat",
                "is_direct": True,
                "invite": [bot_id],
                "initial_state": [
                    {
                        "type": "m.room.encryption",
                        "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                    }
                ],
            }
        )
        dm = await dave.open_room(room)
        greeting = await _wait_for(
            dm, lambda i: i.sender == bot_id and i.kind == "notice", timeout=60
        )
        assert greeting.encrypted and "!help" in greeting.body
        await dave.send_message(room, "!ping")
        ping = await _sent(dm, "!ping")
        pong = await _wait_for(
            dm,
            lambda i: i.sender == bot_id and i.reply is not None and i.reply.event_id == ping,
            timeout=60,
        )
        assert pong.encrypted and pong.kind == "notice" and pong.body.startswith("pong")
    finally:
        stop.set()
        await asyncio.wait_for(bot_task, 30)
        await dave.close()


async def test_alice_has_an_encrypted_direct_chat_where_the_bot_answers(
    demo_server: SynapseServer, world: DemoWorld, tmp_path: Path
) -> None:
    room = world.dms["helper_encrypted"]
    encryption = _state(demo_server, world, room, "m.room.encryption")
    assert encryption["algorithm"] == "m.megolm.v1.aes-sha2"
    assert _state(demo_server, world, room, "m.room.name")["name"] == SECRET_DM_NAME
    bot_id = world.bot.user_id
    assert _state(demo_server, world, room, "m.room.member", bot_id)["membership"] == "join"
    stop = asyncio.Event()
    ready = asyncio.Event()
    bot_task = asyncio.ensure_future(
        run_bot(
            demo_server.base_url,
            bot_id,
            world.bot.password,
            tmp_path / "bot",
            stop,
            ready=ready,
            long_poll_ms=1000,
        )
    )
    alice = await MatrixClient.login(
        world.alice.user_id,
        world.alice.password,
        homeserver=demo_server.base_url,
        base_dir=tmp_path / "alice",
        long_poll_ms=1000,
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 30)
        await alice.open()
        alice.start()
        await alice.wait_synced()
        assert alice.rooms[room].encrypted
        dm = await alice.open_room(room)
        await alice.send_message(room, "!ping")
        ping = await _sent(dm, "!ping")
        pong = await _wait_for(
            dm,
            lambda i: i.sender == bot_id and i.reply is not None and i.reply.event_id == ping,
            timeout=60,
        )
        assert pong.encrypted and pong.kind == "notice" and pong.body.startswith("pong")
    finally:
        stop.set()
        await asyncio.wait_for(bot_task, 30)
        await alice.close()
