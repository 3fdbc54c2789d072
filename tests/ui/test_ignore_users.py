"""Ignoring users against Synapse, in the real app: /ignore and /unignore in the composer
(read back from the server's account data), the ignored user's messages hidden (cached
ones too, and in a thread), his invites, typing and receipts not shown, his messages
back on /unignore; the member list's Ignore and the "Ignored users" list that undoes it."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import TypingChanged, Update
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.dialogs import ChoiceDialog, ConfirmDialog
from tui_client.ui.screens.ignored import EMPTY_TEXT, IgnoredUsersScreen
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.member_list import MemberList
from tui_client.ui.widgets.room_list import RoomList
from tui_client.ui.widgets.timeline import TimelineView

from .test_flow import _join, _room, until
from .test_push_alerts import _palette


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _send(
    synapse: SynapseServer, user: RegisteredUser, room_id: str, content: dict[str, object], txn: str
) -> str:
    path = f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{txn}"
    status, answer = synapse.request_json("PUT", path, content, user.access_token)
    assert status == 200, answer
    return str(answer["event_id"])


def _say(synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, txn: str) -> str:
    return _send(synapse, user, room_id, {"msgtype": "m.text", "body": body}, txn)


def _ignored_on_server(synapse: SynapseServer, user: RegisteredUser) -> object:
    path = f"/_matrix/client/v3/user/{q(user.user_id)}/account_data/m.ignored_user_list"
    status, data = synapse.request_json("GET", path, None, user.access_token)
    if status == 404:
        return None
    assert status == 200, data
    return data


def _shown(chat: ChatScreen) -> list[str]:
    """The bodies the timeline widget holds (what is drawn)."""
    return [item.body for item in chat.query_one(TimelineView).items]


def _choices(app: TuiClientApp) -> list[str] | None:
    """The labels of the choice dialog on screen, once it is drawn."""
    if not isinstance(app.screen, ChoiceDialog):
        return None
    found = app.screen.query("#choices")
    if not found:
        return None
    choices = found.first(OptionList)
    return [str(choices.get_option_at_index(i).prompt) for i in range(choices.option_count)]


def _typing(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> None:
    path = f"/_matrix/client/v3/rooms/{q(room_id)}/typing/{q(user.user_id)}"
    status, body = synapse.request_json(
        "PUT", path, {"typing": True, "timeout": 30000}, user.access_token
    )
    assert status == 200, body


def _receipt(synapse: SynapseServer, user: RegisteredUser, room_id: str, event_id: str) -> None:
    path = f"/_matrix/client/v3/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}"
    status, body = synapse.request_json("POST", path, {}, user.access_token)
    assert status == 200, body


def _typing_line(chat: ChatScreen) -> str:
    """The "... is typing" line as drawn."""
    return str(chat.query_one("#typing", Static).content)


def _readers(chat: ChatScreen) -> set[str]:
    """Everyone the timeline marks as having read a message."""
    view = chat.view
    return {user for users in (view.read_by() if view else {}).values() for user in users}


def _toasts(app: TuiClientApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def _type(pilot: Pilot[None], chat: ChatScreen, line: str) -> None:
    chat.query_one(Composer).focus()
    await pilot.press(*line, "enter")


async def _start(
    synapse: SynapseServer,
    me: RegisteredUser,
    folder: Path,
    room: str,
    pilot_size: tuple[int, int] = (120, 36),
) -> tuple[TuiClientApp, MatrixClient]:
    client = await MatrixClient.login(
        me.user_id, me.password, homeserver=synapse.base_url, base_dir=folder
    )
    return TuiClientApp(client=client, base_dir=folder), client


async def test_ignore_and_unignore_from_the_composer(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    carol = make_user("carol", displayname="Carol")
    room = _room(synapse, alice, "Shared", [bob.user_id, carol.user_id])
    for user in (bob, carol):
        _join(synapse, user, room)
    root = _say(synapse, alice, room, "a thread root", "root")
    _say(synapse, bob, room, "bob was here before", "b1")
    _send(
        synapse,
        bob,
        room,
        {
            "msgtype": "m.text",
            "body": "bob in the thread",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        },
        "b-thread",
    )
    bob_root = _say(synapse, bob, room, "bob's own thread root", "b-root")
    _send(
        synapse,
        carol,
        room,
        {
            "msgtype": "m.text",
            "body": "carol in bob's thread",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": bob_root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": bob_root},
            },
        },
        "c-thread",
    )
    earlier_invite = _room(synapse, bob, "Bob's earlier invite", [alice.user_id])

    app, client = await _start(synapse, alice, tmp_path, room)
    typing: list[tuple[str, ...]] = []

    def note(update: Update) -> None:
        if isinstance(update, TypingChanged) and update.room_id == room:
            typing.append(update.user_ids)

    client.subscribe(note)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.chat_screen is not None, "the chat screen")
        chat = app.chat_screen
        assert chat is not None
        await until(
            pilot, lambda: room in client.rooms and earlier_invite in client.rooms, "the rooms"
        )
        app.open_room(room)
        await until(
            pilot,
            lambda: "bob was here before" in _shown(chat),
            "bob's message",
            on_timeout=lambda: str(_shown(chat)),
        )
        assert earlier_invite in chat.query_one(RoomList).room_ids
        thread = await client.threads.open(room, root)
        await until(
            pilot,
            lambda: "bob in the thread" in [i.body for i in thread.model.items],
            "bob's thread reply",
        )
        # Bob is typing and has read the root: both shown while he is not ignored.
        _typing(synapse, bob, room)
        _receipt(synapse, bob, room, root)
        view = chat.view
        assert view is not None
        await until(
            pilot,
            lambda: "Bob is typing" in _typing_line(chat),
            "bob typing",
            on_timeout=lambda: _typing_line(chat),
        )
        await until(pilot, lambda: bob.user_id in _readers(chat), "bob's receipt")

        # A malformed user ID is said on screen; nothing is sent.
        await _type(pilot, chat, "/ignore bob")
        await until(
            pilot,
            lambda: any("needs a full user ID" in t for t in _toasts(app)),
            "the error",
            on_timeout=lambda: str(_toasts(app)),
        )
        assert chat.query_one(Composer).text == "/ignore bob"  # given back to fix
        assert _ignored_on_server(synapse, alice) is None
        chat.query_one(Composer).text = ""
        await _type(pilot, chat, f"/ignore {alice.user_id}")
        await until(
            pilot, lambda: any("cannot ignore yourself" in t for t in _toasts(app)), "the refusal"
        )
        assert _ignored_on_server(synapse, alice) is None
        chat.query_one(Composer).text = ""

        await _type(pilot, chat, f"/ignore {bob.user_id}")
        await until(
            pilot,
            lambda: any(t.startswith(f"Ignoring {bob.user_id}") for t in _toasts(app)),
            "the confirmation",
        )
        assert _ignored_on_server(synapse, alice) == {"ignored_users": {bob.user_id: {}}}
        # The cached message goes from the timeline, the thread and the room list's invite.
        await until(
            pilot,
            lambda: "bob was here before" not in _shown(chat),
            "bob's message hidden",
            on_timeout=lambda: str(_shown(chat)),
        )
        assert "a thread root" in _shown(chat)
        assert [i.body for i in thread.model.items] == ["a thread root"]
        await until(
            pilot,
            lambda: earlier_invite not in chat.query_one(RoomList).room_ids,
            "his invite hidden",
        )
        # His typing and his receipt (both from before) are no longer shown.
        await until(
            pilot,
            lambda: "Bob" not in _typing_line(chat),
            "bob's typing hidden",
            on_timeout=lambda: _typing_line(chat),
        )
        assert bob.user_id not in _readers(chat)
        assert earlier_invite not in [r.room_id for r in client.room_list()]
        # The thread list: his thread is not listed, nor is his reply as the latest of ours.
        page = await client.threads.list_threads(room)
        assert [t.root_id for t in page.threads] == [root]
        assert page.threads[0].latest_sender != bob.user_id
        assert page.threads[0].latest_body != "bob in the thread"

        # New messages, invites, typing and receipts from him are not shown either.
        later = _say(synapse, bob, room, "bob writes while ignored", "b2")
        later_invite = _room(synapse, bob, "Bob's later invite", [alice.user_id])
        typing.clear()
        _typing(synapse, bob, room)
        _typing(synapse, carol, room)
        _say(synapse, carol, room, "carol after him", "c1")
        await until(pilot, lambda: "carol after him" in _shown(chat), "carol's message")
        await until(pilot, lambda: any(carol.user_id in users for users in typing), "carol typing")
        assert not any(bob.user_id in users for users in typing)
        assert "bob writes while ignored" not in _shown(chat)
        assert later not in [i.event_id for i in chat.query_one(TimelineView).items]
        assert later_invite not in chat.query_one(RoomList).room_ids
        assert "Bob" not in _typing_line(chat) and "Carol is typing" in _typing_line(chat)
        assert bob.user_id not in _readers(chat)

        # /unignore: the server's list is empty again and his cached messages are back.
        await _type(pilot, chat, f"/unignore {bob.user_id}")
        await until(
            pilot, lambda: f"No longer ignoring {bob.user_id}" in _toasts(app), "the confirmation"
        )
        assert _ignored_on_server(synapse, alice) == {"ignored_users": {}}
        await until(
            pilot,
            lambda: "bob was here before" in _shown(chat),
            "bob's message back",
            on_timeout=lambda: str(_shown(chat)),
        )
        assert "bob in the thread" in [i.body for i in thread.model.items]
        page = await client.threads.list_threads(room)
        assert {t.root_id for t in page.threads} == {root, bob_root}
        await until(
            pilot,
            lambda: earlier_invite in chat.query_one(RoomList).room_ids,
            "his earlier invite back",
        )


async def test_member_list_ignores_and_the_ignored_list_undoes_it(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room = _room(synapse, alice, "Shared", [bob.user_id])
    _join(synapse, bob, room)
    _say(synapse, bob, room, "hello from bob", "b1")

    app, client = await _start(synapse, alice, tmp_path, room)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.chat_screen is not None, "the chat screen")
        chat = app.chat_screen
        assert chat is not None
        await until(pilot, lambda: room in client.rooms, "the room")
        app.open_room(room)
        await until(pilot, lambda: "hello from bob" in _shown(chat), "bob's message")

        # Nobody ignored: the list says so.
        await _palette(pilot, app, "Ignored users")
        await until(pilot, lambda: isinstance(app.screen, IgnoredUsersScreen), "the ignored users")
        screen = app.screen
        assert screen.query_one("#ignored-empty").display
        assert EMPTY_TEXT in str(screen.query_one("#ignored-empty").render())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), "back to the chat")

        # The member list (F2): Enter on bob offers Ignore; confirmed, it is on the server.
        await pilot.press("f2")
        members = chat.query_one(MemberList)
        await until(
            pilot,
            lambda: any(
                members.get_option_at_index(i).id == bob.user_id
                for i in range(members.option_count)
            ),
            "bob listed",
        )
        index = next(
            i
            for i in range(members.option_count)
            if members.get_option_at_index(i).id == bob.user_id
        )
        members.focus()
        members.highlighted = index
        await pilot.press("enter")
        await until(pilot, lambda: _choices(app) is not None, "bob's actions")
        choices = app.screen.query_one("#choices", OptionList)
        labels = _choices(app) or []
        assert (
            "Ignore (hide their messages and invites)…" in labels and "Stop ignoring" not in labels
        )
        choices.highlighted = next(
            i for i, label in enumerate(labels) if label.startswith("Ignore")
        )
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await until(
            pilot,
            lambda: _ignored_on_server(synapse, alice) == {"ignored_users": {bob.user_id: {}}},
            "ignored on the server",
        )
        await until(pilot, lambda: "hello from bob" not in _shown(chat), "bob's message hidden")

        # The list shows him; Enter, confirmed, stops ignoring him.
        await _palette(pilot, app, "Ignored users")
        await until(pilot, lambda: isinstance(app.screen, IgnoredUsersScreen), "the ignored users")
        screen = app.screen
        assert isinstance(screen, IgnoredUsersScreen)
        listing = screen.query_one("#ignored-list", OptionList)
        assert listing.display and not screen.query_one("#ignored-empty").display
        assert [
            str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)
        ] == [bob.user_id]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await until(
            pilot,
            lambda: _ignored_on_server(synapse, alice) == {"ignored_users": {}},
            "unignored on the server",
        )
        await until(pilot, lambda: screen.query_one("#ignored-empty").display, "the empty list")
        assert not listing.display
        await pilot.press("escape")
        await until(pilot, lambda: "hello from bob" in _shown(chat), "bob's message back")

        # The member list now offers to stop ignoring only while he is ignored.
        await _type(pilot, chat, f"/ignore {bob.user_id}")
        await until(pilot, lambda: client.notifications.is_ignored(bob.user_id), "ignored again")
        chat.show_member(bob.user_id)
        await until(pilot, lambda: _choices(app) is not None, "bob's actions")
        choices = app.screen.query_one("#choices", OptionList)
        labels = _choices(app) or []
        assert "Stop ignoring" in labels
        choices.highlighted = labels.index("Stop ignoring")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: _ignored_on_server(synapse, alice) == {"ignored_users": {}},
            "unignored from the member list",
        )
