"""The real app on a pseudo-terminal with two accounts: F9 adds one (a wrong password says
so on screen and keeps the first), the sidebar lists both with the unread count of the one
behind, F9 and a digit switch, and each account shows only its own rooms and messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from ..integration.receipts_support import say
from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room

F9 = "\x1b[20~"
TAB = "\t"
ESC = "\x1b"


def _sidebar_line(screen: str, start: str) -> str:
    """The account list's line that starts with ``start`` (up to the list's right edge)."""
    for line in screen.splitlines():
        if line.startswith(start):
            return line.split("│")[0].rstrip()
    return ""


def _add(app: PtyApp, user: RegisteredUser, password: str, synapse: SynapseServer) -> None:
    app.write(F9)
    app.wait_for("a adds one")
    app.write("a")
    app.wait_for("Add an account")
    # User ID, Tab, password, Tab, homeserver, Enter in one write, as a password manager
    # types them: each key lands in its field.
    app.write(user.user_id + TAB + password + TAB + synapse.base_url + "\r")


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_two_accounts_switch_on_a_terminal(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    size: tuple[int, int],
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    carol = make_user("carol", displayname="Carol")
    garden = make_room(synapse, carol, "Garden", alice)
    workshop = make_room(synapse, carol, "Workshop", bob)
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
        size=size,
    ) as app:
        log_in_on_pty(app, alice, "Garden")

        # A wrong password: said on screen; Escape goes back to alice, still connected.
        _add(app, bob, "wrong password", synapse)
        app.wait_for("Wrong user ID or password", timeout=60)
        app.write(ESC)
        app.wait_for(lambda s: "Garden" in s and "Add an account" not in s and "connected" in s)

        _add(app, bob, bob.password, synapse)
        screen = app.wait_for(lambda s: "Workshop" in s and "connected" in s, timeout=60)
        assert "Garden" not in screen
        # The sidebar lists both accounts (numbered), and carol's message to alice, behind,
        # shows as her unread count there, never on bob's screen.
        say(synapse, carol, garden, "hello alice", "g1")
        say(synapse, carol, workshop, "hello bob", "w1")
        screen = app.wait_for(
            lambda s: "hello bob" in s and _sidebar_line(s, "1 @alic").endswith(" 1"),
            timeout=60,
        )
        assert _sidebar_line(screen, "2 @bob")
        assert "hello alice" not in screen and "Garden" not in screen

        # F9, 1: alice in front, her room and message; nothing of bob's.
        app.write(F9)
        app.wait_for("a adds one")
        app.write("1")
        screen = app.wait_for(
            lambda s: "hello alice" in s and "Garden" in s and "a adds one" not in s
        )
        assert "Workshop" not in screen and "hello bob" not in screen
        # F9, 2: back to bob.
        app.write(F9)
        app.wait_for("a adds one")
        app.write("2")
        screen = app.wait_for(lambda s: "hello bob" in s and "a adds one" not in s)
        assert "hello alice" not in screen and "Garden" not in screen
