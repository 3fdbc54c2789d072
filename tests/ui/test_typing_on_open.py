"""Who types in a room shows as soon as the room is opened, against Synapse in the real app
at 80x24: Synapse says who types only when it changes (and a notice lasts up to 30 s), so
a room switched to while Bob types must show "Bob is typing" from what the engine already
knows (``typing_in``), not wait for the next change; and once he has stopped, coming back
shows nothing stale. Over sliding sync (the default) and /sync v2."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import TypingChanged, Update
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen

from .test_flow import _join, _room, _say, until
from .test_login_errors import screen_text
from .test_read_receipts_flow import server


def _set_typing(synapse: SynapseServer, user: RegisteredUser, room_id: str, on: bool) -> None:
    path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/typing/"
    path += urllib.parse.quote(user.user_id, safe="")
    body: dict[str, object] = {"typing": on, "timeout": 30000} if on else {"typing": False}
    status, answer = synapse.request_json("PUT", path, body, user.access_token)
    assert status == 200, answer


def _typing_line(chat: ChatScreen) -> str:
    return str(chat.query_one("#typing", Static).content)


def _opened(chat: ChatScreen, room_id: str) -> bool:
    return chat.view is not None and chat.view.room_id == room_id


@pytest.mark.parametrize("sliding", [True, False], ids=["sliding-sync", "sync-v2"])
async def test_switching_to_a_room_shows_who_already_types_and_nothing_stale(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    sliding: bool,
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room_a = _room(synapse, alice, "Room A", [bob.user_id])
    room_b = _room(synapse, alice, "Room B", [bob.user_id])
    for room in (room_a, room_b):
        _join(synapse, bob, room)
    _say(synapse, bob, room_a, "hello in A", "a1")
    _say(synapse, bob, room_b, "hello in B", "b1")
    client = await MatrixClient.login(
        alice.user_id, alice.password, homeserver=synapse.base_url, base_dir=tmp_path
    )
    if not sliding:
        await client.set_sliding_sync(False)
    said_in_b: list[tuple[str, ...]] = []

    def note(update: Update) -> None:
        if isinstance(update, TypingChanged) and update.room_id == room_b:
            said_in_b.append(update.user_ids)

    client.subscribe(note)
    app = TuiClientApp(client=client, base_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.chat_screen is not None, "the chat screen")
        chat = app.chat_screen
        assert chat is not None
        await until(pilot, lambda: {room_a, room_b} <= set(client.rooms), "both rooms")
        assert client.sync_mode == ("sliding sync" if sliding else "sync v2")
        app.open_room(room_a)
        await until(pilot, lambda: _opened(chat, room_a), "room A open")

        # Bob starts typing in B while Alice reads A: the engine hears it, A shows nothing.
        await server(lambda: _set_typing(synapse, bob, room_b, True))
        await until(
            pilot,
            lambda: client.typing_in.get(room_b) == (bob.user_id,),
            "bob typing in B known",
            on_timeout=lambda: repr(client.typing_in),
        )
        await pilot.pause()
        assert "typing" not in _typing_line(chat)
        heard = len(said_in_b)

        # Alice switches to B: Bob shows typing as the room opens, with no new typing news.
        app.open_room(room_b)
        await until(pilot, lambda: _opened(chat, room_b), "room B open")
        await pilot.pause()
        assert len(said_in_b) == heard, said_in_b
        assert _typing_line(chat) == "Bob is typing…", screen_text(app)
        assert "Bob is typing…" in screen_text(app)

        # Back to A; Bob stops typing in B meanwhile; back in B nothing stale is shown.
        app.open_room(room_a)
        await until(pilot, lambda: _opened(chat, room_a), "room A open again")
        assert "typing" not in screen_text(app)
        await server(lambda: _set_typing(synapse, bob, room_b, False))
        await until(pilot, lambda: room_b not in client.typing_in, "bob stopped in B")
        app.open_room(room_b)
        await until(pilot, lambda: _opened(chat, room_b), "room B open again")
        await pilot.pause()
        assert _typing_line(chat) == "", screen_text(app)
        assert "typing" not in screen_text(app)
