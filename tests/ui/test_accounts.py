"""Several accounts in one window, driven with Pilot against a real Synapse: two accounts
receiving at once, each message in its own account, the other account's unread count in
the sidebar, F9 switching, nothing of one account on the other's screen, both back after
a restart; a failing second login keeps the first account; logging out of one shows the
other."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.accounts import ACCOUNTS_FILE
from tui_client.ui.accounts import AccountBar, AccountSwitcher
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.add_account import AddAccountScreen
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.dialogs import ConfirmDialog
from tui_client.ui.widgets.timeline import TimelineView

from ..integration.receipts_support import say
from ..pty.test_composer_burst import make_room
from .conftest import save_screenshot
from .synapse_login import log_in, until


def _screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _chat(app: TuiClientApp) -> ChatScreen:
    screen = app.screen
    assert isinstance(screen, ChatScreen), type(screen).__name__
    return screen


def _bodies(chat: ChatScreen) -> list[str]:
    return [item.body for item in chat.query_one(TimelineView).items]


async def _add_account(
    pilot: Pilot[None],
    app: TuiClientApp,
    user: RegisteredUser,
    synapse: SynapseServer,
    password: str | None = None,
) -> None:
    """F9, a, and the login screen filled in."""
    await pilot.press("f9")
    await until(pilot, lambda: isinstance(app.screen, AccountSwitcher), "the account switcher")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AddAccountScreen), "the add-account login")
    app.screen.query_one("#user-id", Input).value = user.user_id
    app.screen.query_one("#password", Input).value = user.password if password is None else password
    app.screen.query_one("#homeserver", Input).value = synapse.base_url
    app.screen.query_one("#password", Input).focus()
    await pilot.press("enter")


async def test_two_accounts_receive_at_once_in_one_window(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    carol = make_user("carol", displayname="Carol")
    alices_room = make_room(synapse, carol, "Alice's garden", alice)
    bobs_room = make_room(synapse, carol, "Bob's workshop", bob)

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        first = await log_in(pilot, app, alice, synapse)
        await until(
            pilot,
            lambda: first.current_room == alices_room and first.view is not None,
            "alice's room open",
        )
        assert not first.query_one(AccountBar).display  # one account: no account list

        await _add_account(pilot, app, bob, synapse)
        await until(
            pilot,
            lambda: isinstance(app.screen, ChatScreen) and app.screen is not first,
            "bob's chat screen",
        )
        second = _chat(app)
        assert app.client is not None and app.client.user_id == bob.user_id
        await until(
            pilot,
            lambda: second.current_room == bobs_room and second.view is not None,
            "bob's room open",
        )
        assert first.client.user_id == alice.user_id and first.background and not second.background

        # Both receive at once: each message lands in its own account only.
        say(synapse, carol, alices_room, "for alice only", "a1")
        say(synapse, carol, bobs_room, "for bob only", "b1")
        say(synapse, carol, alices_room, "more for alice", "a2")
        await until(
            pilot, lambda: "for bob only" in _bodies(second), "bob's message on bob's screen"
        )
        await until(
            pilot,
            lambda: "more for alice" in _bodies(first),
            "alice's messages kept up in the background",
        )
        assert "for alice only" in _bodies(first)
        assert not {"for alice only", "more for alice"} & set(_bodies(second))
        assert "for bob only" not in _bodies(first)
        assert set(second.client.rooms) == {bobs_room} and set(first.client.rooms) == {alices_room}

        # Bob's sidebar lists both accounts, with alice's unread count.
        bar = second.query_one(AccountBar)
        await until(
            pilot,
            lambda: any(e.user_id == alice.user_id and e.notifications == 2 for e in bar.entries),
            "alice's two unread messages in bob's sidebar",
            on_timeout=lambda: repr(bar.entries),
        )
        await pilot.pause(0.2)
        shown = _screen_text(app)
        assert bar.display and alice.user_id[:12] in shown and bob.user_id[:12] in shown
        assert "Bob's workshop" in shown and "for bob only" in shown
        assert "Alice's garden" not in shown and "for alice" not in shown
        save_screenshot("accounts", app.export_screenshot(title="tui_client"))

        # F9, 1: alice in front, her rooms and messages, nothing of bob's.
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, AccountSwitcher), "the account switcher")
        await pilot.press("1")
        await until(
            pilot,
            lambda: app.screen is first,
            "alice's chat screen in front",
            on_timeout=lambda: (
                f"{app.screen!r} {app.current_mode} {first.client is app.client} {app.workers!r}"
            ),
        )
        assert app.client is first.client and not first.background and second.background
        await pilot.pause(0.3)
        shown = _screen_text(app)
        assert "Alice's garden" in shown and "more for alice" in shown
        assert "Bob's workshop" not in shown and "for bob only" not in shown

        # Bob keeps receiving while alice is in front: his count shows in her sidebar.
        say(synapse, carol, bobs_room, "bob, again", "b2")
        await until(
            pilot, lambda: "bob, again" in _bodies(second), "bob's message, in the background"
        )
        await until(
            pilot,
            lambda: any(
                e.user_id == bob.user_id and e.notifications >= 1
                for e in first.query_one(AccountBar).entries
            ),
            "bob's unread count in alice's sidebar",
        )
        assert "bob, again" not in _screen_text(app)

        # The sidebar switches too (Enter on bob's line).
        side = first.query_one(AccountBar)
        side.focus()
        side.highlighted = 1
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is second, "bob in front from the sidebar")

    listing = json.loads((tmp_path / "default" / ACCOUNTS_FILE).read_text())
    assert listing["active"] != "main" and len(listing["accounts"]) == 2

    # A restart: both accounts come back logged in, bob in front as he was.
    again = TuiClientApp(base_dir=tmp_path)
    async with again.run_test(size=(120, 36)) as pilot:
        await until(
            pilot,
            lambda: len(again.accounts.accounts) == 2 and isinstance(again.screen, ChatScreen),
            "both accounts",
        )
        assert again.client is not None and again.client.user_id == bob.user_id
        users = {a.client.user_id for a in again.accounts.accounts}
        assert users == {alice.user_id, bob.user_id}
        say(synapse, carol, alices_room, "after the restart", "a3")
        background = next(a for a in again.accounts.accounts if a.client.user_id == alice.user_id)
        front = next(a for a in again.accounts.accounts if a.client.user_id == bob.user_id)
        assert background.chat is not None and background.chat.background  # quiet behind
        assert front.chat is again.screen and not front.chat.background
        await until(
            pilot,
            lambda: background.chat is not None and "after the restart" in _bodies(background.chat),
            "alice syncing in the background after the restart",
        )
        assert "after the restart" not in _screen_text(again)


async def test_a_failed_second_login_keeps_the_first_account(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        first = await log_in(pilot, app, alice, synapse)
        client = app.client
        await _add_account(pilot, app, bob, synapse, password="not the password")
        await until(
            pilot,
            lambda: "Wrong user ID or password" in _screen_text(app),
            "the login error on screen",
            on_timeout=lambda: _screen_text(app),
        )
        assert isinstance(app.screen, AddAccountScreen)
        assert app.client is client and len(app.accounts.accounts) == 1
        await pilot.press("f9")  # no switcher over a login
        await pilot.pause(0.2)
        assert isinstance(app.screen, AddAccountScreen)

        # The same account twice: refused before asking the server.
        app.screen.query_one("#user-id", Input).value = alice.user_id
        app.screen.query_one("#password", Input).value = alice.password
        app.screen.query_one("#password", Input).focus()
        await pilot.press("enter")
        await until(
            pilot,
            lambda: "already open in this window" in _screen_text(app),
            "the duplicate refused",
        )

        await pilot.press("escape")
        await until(pilot, lambda: app.screen is first, "back to alice")
        assert app.client is client and app.is_connected and len(app.accounts.accounts) == 1
        assert not (tmp_path / "default" / ACCOUNTS_FILE).exists()


async def test_logging_out_of_one_account_shows_the_other(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        first = await log_in(pilot, app, alice, synapse)
        await _add_account(pilot, app, bob, synapse)
        await until(
            pilot,
            lambda: isinstance(app.screen, ChatScreen) and app.screen is not first,
            "bob's screen",
        )
        app.action_logout()
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the logout question")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is first, "alice in front after bob logged out")
        assert app.client is first.client and [a.client.user_id for a in app.accounts.accounts] == [
            alice.user_id
        ]
        await until(
            pilot, lambda: not first.query_one(AccountBar).display, "the account list hidden again"
        )
    listing = json.loads((tmp_path / "default" / ACCOUNTS_FILE).read_text())
    assert listing == {"accounts": ["main"], "active": "main"}


async def test_an_account_behind_logged_out_elsewhere_leaves_and_says_so(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    """Bob's session ends on the server (signed out from another device) while alice is in
    front: a toast naming bob says so, bob leaves the window and the list, alice stays.
    And a message to an account behind rings its own bell."""
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    carol = make_user("carol", displayname="Carol")
    bobs_room = make_room(synapse, carol, "Bob's workshop", bob)
    app = TuiClientApp(base_dir=tmp_path)
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        first = await log_in(pilot, app, alice, synapse)
        await _add_account(pilot, app, bob, synapse)
        await until(
            pilot,
            lambda: isinstance(app.screen, ChatScreen) and app.screen is not first,
            "bob's screen",
        )
        second = _chat(app)
        await until(
            pilot, lambda: app.is_connected and second.client.sync_loop is not None, "bob syncing"
        )
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, AccountSwitcher), "the account switcher")
        await pilot.press("1")
        await until(pilot, lambda: app.screen is first, "alice in front")
        await pilot.pause(1.0)  # bob's first sync done: what comes next is live

        # A message to bob, behind: his notifier rings (a room of two notifies with a sound).
        rings.clear()
        say(synapse, carol, bobs_room, "ring for bob", "r1")
        await until(pilot, lambda: "ring for bob" in _bodies(second), "bob's message behind")
        await until(pilot, lambda: len(rings) >= 1, "bob's bell")
        assert "ring for bob" not in _screen_text(app)

        token = second.client.connection.access_token
        status, body = synapse.request_json("POST", "/_matrix/client/v3/logout", {}, token)
        assert status == 200, body
        await until(
            pilot,
            lambda: [a.client.user_id for a in app.accounts.accounts] == [alice.user_id],
            "bob gone from the window",
        )
        await until(
            pilot,
            lambda: any(
                n.title == bob.user_id and "log in to it again" in n.message
                for n in app._notifications
            ),
            "a toast naming bob",
            on_timeout=lambda: repr([(n.title, n.message) for n in app._notifications]),
        )
        assert app.screen is first and app.client is first.client and app.is_connected
        await until(pilot, lambda: not first.query_one(AccountBar).display, "the list hidden")
    listing = json.loads((tmp_path / "default" / ACCOUNTS_FILE).read_text())
    assert listing == {"accounts": ["main"], "active": "main"}
