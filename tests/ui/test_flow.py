"""The UI driven with Pilot against a real Synapse: log in, switch rooms, send, scroll."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.protocol.timeline import SendState
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.switcher import RoomSwitcher
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.timeline import TimelineView

from .synapse_login import log_in, until

HISTORY = 150


def _room(synapse: SynapseServer, owner: RegisteredUser, name: str, invite: list[str]) -> str:
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"name": name, "preset": "private_chat", "invite": invite},
        owner.access_token,
    )
    assert status == 200, body
    return str(body["room_id"])


def _join(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> None:
    status, body = synapse.request_json(
        "POST",
        f"/_matrix/client/v3/join/{urllib.parse.quote(room_id, safe='')}",
        {},
        user.access_token,
    )
    assert status == 200, body


def _say(synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, txn: str) -> None:
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/send/m.room.message/{txn}"
    )
    status, answer = synapse.request_json(
        "PUT", path, {"msgtype": "m.text", "body": body}, user.access_token
    )
    assert status == 200, answer


def _server_bodies(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> list[str]:
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/messages?dir=b&limit=50"
    )
    status, data = synapse.request_json("GET", path, None, user.access_token)
    assert status == 200, data
    return [e["content"].get("body") for e in data["chunk"] if e["type"] == "m.room.message"]


async def test_log_in_switch_rooms_send_and_scroll(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    history = _room(synapse, bob, "History", [alice.user_id])
    chat = _room(synapse, bob, "Chatter", [alice.user_id])
    for room in (history, chat):
        _join(synapse, alice, room)
    for n in range(HISTORY):
        _say(synapse, bob, history, f"old message {n}", f"h{n}")
    _say(synapse, bob, chat, "is anyone there?", "c0")

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await log_in(pilot, app, alice, synapse)
        await until(
            pilot,
            lambda: {history, chat} <= set(app.client.rooms) if app.client else False,
            "both rooms",
        )

        # Switch rooms with the fuzzy switcher.
        await pilot.press("ctrl+k")
        await until(pilot, lambda: isinstance(app.screen, RoomSwitcher), "the switcher")
        await pilot.press(*"chatter", "enter")
        await until(
            pilot,
            lambda: screen.current_room == chat and screen.view is not None,
            "Chatter to open",
        )
        timeline = screen.query_one(TimelineView)
        await until(
            pilot,
            lambda: any(i.body == "is anyone there?" for i in timeline.items),
            "bob's message",
        )

        # Send: shown at once as a local echo, then confirmed by the server.
        screen.query_one(Composer).focus()
        await pilot.press(*"hello from the terminal", "enter")
        await until(
            pilot,
            lambda: any(i.body == "hello from the terminal" for i in timeline.items),
            "the local echo",
        )
        await until(
            pilot,
            lambda: any(
                i.body == "hello from the terminal"
                and i.send_state is SendState.SENT
                and not i.is_local_echo
                for i in timeline.items
            ),
            "the server's echo",
        )
        assert "hello from the terminal" in await asyncio.to_thread(
            _server_bodies, synapse, bob, chat
        )
        assert screen.query_one(Composer).text == ""

        # Scroll the long room back to its first message (cache, then /messages).
        screen.open_room(history)
        await until(
            pilot,
            lambda: screen.view is not None and screen.view.room_id == history,
            "History to open",
        )
        await until(
            pilot,
            lambda: any(i.body == f"old message {HISTORY - 1}" for i in timeline.items),
            "the newest",
        )
        timeline.focus()
        for _ in range(200):
            if any(i.body == "old message 0" for i in timeline.items):
                break
            await pilot.press("pageup")
            await pilot.pause(0.05)
        await until(
            pilot,
            lambda: any(i.body == "old message 0" for i in timeline.items),
            "the first message",
        )
        bodies = [i.body for i in timeline.items if i.body.startswith("old message")]
        numbers = [int(b.rsplit(" ", 1)[1]) for b in bodies]
        assert numbers == sorted(numbers) and len(numbers) == len(set(numbers))
        view = screen.view
        assert view is not None
        for _ in range(50):
            if view.reached_start:
                break
            await pilot.press("pageup")
            await pilot.pause(0.05)
        await until(pilot, lambda: view.reached_start, "the start of the room")
        assert timeline.items[0].body.endswith("created the room")
