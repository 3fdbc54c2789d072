"""The real app with Pilot against Synapse: receipts stop at what is on screen, private
receipts are not seen by others, all rooms marked read from the palette, and another
user's presence in the member list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.login import LoginScreen
from tui_client.ui.widgets.member_list import MemberList
from tui_client.ui.widgets.timeline import TimelineView

from ..integration.receipts_support import fully_read, q, receipts_seen_by, say
from .test_flow import _join, _room, until


async def _log_in(
    pilot: Pilot[None], app: TuiClientApp, synapse: SynapseServer, user: RegisteredUser
) -> ChatScreen:
    await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
    app.screen.query_one("#user-id", Input).value = user.user_id
    app.screen.query_one("#password", Input).value = user.password
    app.screen.query_one("#homeserver", Input).value = synapse.base_url
    app.screen.query_one("#password", Input).focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")
    assert isinstance(app.screen, ChatScreen)
    return app.screen


async def server(what: Callable[[], object]) -> object:
    return await asyncio.to_thread(what)


async def test_receipts_stop_at_the_last_message_on_screen_and_can_be_private(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room = _room(synapse, bob, "Long talk", [alice.user_id])
    _join(synapse, alice, room)
    newest = ""
    for n in range(40):
        newest = say(synapse, bob, room, f"early {n}", f"e{n}")
    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        timeline = screen.query_one(TimelineView)
        await until(
            pilot, lambda: any(i.body == "early 39" for i in timeline.items), "the newest message"
        )
        await until(
            pilot, lambda: fully_read(synapse, alice, room) == newest, "read to the end", timeout=15
        )

        # Scrolled up: what arrives now is below the screen and is not marked.
        timeline.focus()
        for _ in range(3):
            await pilot.press("pageup")
        await pilot.pause(0.2)
        later = [
            await server(lambda n=n: say(synapse, bob, room, f"later {n}", f"l{n}"))
            for n in range(30)
        ]
        await until(
            pilot, lambda: any(i.body == "later 29" for i in timeline.items), "the later messages"
        )
        await pilot.pause(2.5)
        assert fully_read(synapse, alice, room) == newest
        assert receipts_seen_by(synapse, bob, room, alice.user_id).get("m.read") == newest

        # Down until some of the later messages are on screen, not all: marked up to the last shown.
        for _ in range(20):
            visible = timeline.last_visible_event_id()
            if visible in later[5:-5]:
                break
            timeline.scroll_relative(y=3, animate=False, immediate=True)
            await pilot.pause(0.05)
        visible = timeline.last_visible_event_id()
        assert visible in later[5:-5], visible
        await until(
            pilot,
            lambda: fully_read(synapse, alice, room) == visible,
            "marked up to the screen's bottom",
            timeout=15,
        )
        assert receipts_seen_by(synapse, bob, room, alice.user_id).get("m.read") == visible
        await pilot.pause(1.5)
        assert fully_read(synapse, alice, room) == visible  # and no further

        # Private receipts: the marker and our private receipt move on, bob still sees the old one.
        await app.action_toggle_private_receipts()
        assert app.client is not None and app.client.receipts.private
        timeline.action_jump_to_latest()
        await until(
            pilot,
            lambda: fully_read(synapse, alice, room) == later[-1],
            "read to the end, privately",
            timeout=15,
        )
        mine = receipts_seen_by(synapse, alice, room, alice.user_id)
        assert mine.get("m.read.private") == later[-1], mine
        assert receipts_seen_by(synapse, bob, room, alice.user_id) == {"m.read": visible}


async def test_mark_all_read_from_the_palette_and_presence_in_the_member_list(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    first = _room(synapse, bob, "Alpha", [alice.user_id])
    second = _room(synapse, bob, "Beta", [alice.user_id])
    for room in (first, second):
        _join(synapse, alice, room)
    newest = {
        room: say(synapse, bob, room, f"news in {room}", f"n{i}")
        for i, room in enumerate((first, second))
    }
    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        client = app.client
        assert client is not None
        await until(
            pilot,
            lambda: screen.current_room is not None and screen.view is not None,
            "a room open",
        )
        other = second if screen.current_room == first else first
        await until(
            pilot,
            lambda: (
                client.rooms.get(other) is not None and client.rooms[other].notification_count > 0
            ),
            "unread elsewhere",
        )
        assert fully_read(synapse, alice, other) is None
        here = screen.current_room
        await until(
            pilot,
            lambda: fully_read(synapse, alice, here) == newest[here],
            "the open room read by itself",
        )
        await until(
            pilot, lambda: client.rooms[here].notification_count == 0, "no unread in the open room"
        )

        await screen.action_mark_all_read()
        await until(
            pilot, lambda: fully_read(synapse, alice, other) == newest[other], "the other room read"
        )
        assert receipts_seen_by(synapse, bob, other, alice.user_id).get("m.read") == newest[other]
        assert client.rooms[other].notification_count == 0
        toasts = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
        await until(
            pilot,
            lambda: "Marked 1 room as read." in toasts(),
            "the toast",
            on_timeout=lambda: str(toasts()),
        )

        # Bob goes away: the member list says so.
        status, body = synapse.request_json(
            "PUT",
            f"/_matrix/client/v3/presence/{q(bob.user_id)}/status",
            {"presence": "unavailable"},
            bob.access_token,
        )
        assert status == 200, body
        await pilot.press("f2")
        members = screen.query_one(MemberList)

        def bob_line() -> str:
            for index in range(members.option_count):
                option = members.get_option_at_index(index)
                if option.id == bob.user_id:
                    return str(option.prompt)
            return ""

        await until(
            pilot, lambda: "away" in bob_line(), "bob away in the member list", on_timeout=bob_line
        )
        status, body = synapse.request_json(
            "PUT",
            f"/_matrix/client/v3/presence/{q(bob.user_id)}/status",
            {"presence": "online"},
            bob.access_token,
        )
        await until(
            pilot,
            lambda: "online" in bob_line(),
            "bob online in the member list",
            on_timeout=bob_line,
        )
