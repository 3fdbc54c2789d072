"""Ctrl+K and a room's name typed in one burst, on a real terminal: the real app on a
pseudo-terminal, Alice in "Lobby" (open at the start) and "Book club" on the real Synapse.
Ctrl+K, "book" and Enter written at once (as a user types them fast) open Book club: the
letters typed behind Ctrl+K go to the switcher's input, none to the composer or the room
behind it; nothing is sent, a draft stays as it was, and what is typed next goes to Book
club once, also when it is written in the same burst ("Ctrl+K book Enter hi Enter")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room, server_messages

CTRL_K = "\x0b"
ENTER = "\r"


def _composer_text(screen: str) -> str:
    """What the composer's box holds (its rows between the corners, joined)."""
    lines = screen.splitlines()
    top = next(i for i, line in enumerate(lines) if "╭" in line)
    bottom = next(i for i in range(top + 1, len(lines)) if "╰" in lines[i])
    rows = [line.split("│")[-2].strip() for line in lines[top + 1 : bottom] if line.count("│") >= 2]
    return " ".join(row for row in rows if row)


def _book_club_open(screen: str) -> bool:
    """Book club in the header, the switcher gone, the composer focused (its Send key in
    the footer)."""
    lines = screen.splitlines()
    return (
        "Book club" in lines[0]
        and "Jump to room" not in screen
        and "Send" in lines[-1]
        and "╭" in screen
    )


def _until_sent(
    synapse: SynapseServer, alice: RegisteredUser, room_id: str, count: int, app: PtyApp
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 30
    found = server_messages(synapse, alice, room_id)
    while len(found) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server has {found}; the screen:\n{app.text()}")
        time.sleep(0.1)
        found = server_messages(synapse, alice, room_id)
    time.sleep(1.0)  # a duplicate would come after
    return server_messages(synapse, alice, room_id)


@pytest.mark.parametrize("line_too", [False, True], ids=["then-line", "line-in-burst"])
@pytest.mark.parametrize("draft", ["", "my draft"], ids=["empty", "draft"])
@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_ctrl_k_and_a_name_in_one_burst_open_the_room(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    size: tuple[int, int],
    draft: str,
    line_too: bool,
) -> None:
    """``line_too``: the line sent next is written in the same burst as Ctrl+K."""
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    book = make_room(synapse, bob, "Book club", alice)
    lobby = make_room(synapse, bob, "Lobby", alice)  # the newest: open at the start
    with PtyApp.for_account(tmp_path / "data", synapse.base_url, alice.user_id, size=size) as app:
        log_in_on_pty(app, alice, "Lobby")
        # Lobby open, Book club listed, and the keyring notice (a toast over the composer)
        # gone.
        app.wait_for(
            lambda s: "Lobby" in s.splitlines()[0] and "Book club" in s and "only by" not in s,
            timeout=60,
        )
        if draft:
            app.write(draft)
            app.wait_for(lambda s: _composer_text(s) == draft)
        line = (" hi" if draft else "hi") + ENTER
        expected = [("m.text", f"{draft} hi" if draft else "hi")]
        if line_too:
            app.write(CTRL_K + "book" + ENTER + line)
            assert _until_sent(synapse, alice, book, 1, app) == expected, app.text()
            assert server_messages(synapse, alice, lobby) == [], app.text()
            app.wait_for(lambda s: _book_club_open(s) and _composer_text(s) == "")
            return
        app.write(CTRL_K + "book" + ENTER)
        app.wait_for(_book_club_open)
        # Nothing typed behind Ctrl+K reached the composer (the switcher may still be
        # closing when the header changes: wait for the screen to settle on the draft).
        time.sleep(1.0)
        screen = app.text()
        assert _book_club_open(screen), screen
        assert _composer_text(screen) == draft, screen
        assert server_messages(synapse, alice, lobby) == [], screen
        assert server_messages(synapse, alice, book) == [], screen
        # What is typed next goes to Book club, once.
        app.write(line)
        assert _until_sent(synapse, alice, book, 1, app) == expected, app.text()
        assert server_messages(synapse, alice, lobby) == [], app.text()
        app.wait_for(lambda s: _composer_text(s) == "")
