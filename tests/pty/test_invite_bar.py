"""The invite bar on a real terminal: Bob invites Alice to a room on the real Synapse; her
client, on a pseudo-terminal, lists the invite, she opens it from the room list with the
keys, the bar says who invited her with Accept and Reject, and keys written in one burst
(as a terminal delivers them typed quickly) accept or reject it: the server has her joined
(then what she types arrives) or not joined, and the screen follows."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room

TAB = "\t"
SHIFT_TAB = "\x1b[Z"
HOME = "\x1b[H"
ENTER = "\r"


def _invite(synapse: SynapseServer, owner: RegisteredUser, name: str, guest: RegisteredUser) -> str:
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"name": name, "preset": "private_chat", "invite": [guest.user_id]},
        owner.access_token,
    )
    assert status == 200, body
    return str(body["room_id"])


def _alice_invited(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser]
) -> tuple[RegisteredUser, RegisteredUser, str]:
    """Alice, in a room with Bob ("Lobby", opened at the start), and invited by him to
    "Book club" (its ID returned)."""
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    make_room(synapse, bob, "Lobby", alice)
    return alice, bob, _invite(synapse, bob, "Book club", alice)


def _membership(synapse: SynapseServer, viewer: RegisteredUser, room_id: str, user_id: str) -> str:
    """The user's membership in the room, as the server tells a member (``viewer``)."""
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}"
        f"/state/m.room.member/{urllib.parse.quote(user_id, safe='')}"
    )
    status, body = synapse.request_json("GET", path, None, viewer.access_token)
    assert status == 200, body
    return str(body["membership"])


def _bodies(synapse: SynapseServer, viewer: RegisteredUser, room_id: str, sender: str) -> list[str]:
    """The bodies of the sender's messages in the room, as ``viewer`` reads them."""
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/messages?dir=b&limit=100"
    )
    status, body = synapse.request_json("GET", path, None, viewer.access_token)
    assert status == 200, body
    return [
        str(event["content"].get("body", ""))
        for event in reversed(body["chunk"])
        if event["type"] == "m.room.message" and event["sender"] == sender
    ]


def _until(check: Callable[[], bool], what: str, app: PtyApp, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the server never showed {what}; the screen:\n{app.text()}")
        time.sleep(0.1)


def _room_list(screen: str) -> list[str]:
    """The room list's column (between the space bar and the timeline), row by row."""
    rows = []
    for line in screen.splitlines()[1:-2]:
        cells = line.split("│")
        rows.append(cells[1].strip(" ▌") if len(cells) > 2 else "")
    return rows


def _in_timeline(screen: str, text: str) -> bool:
    """``text`` on a row above the composer (sent, not still typed)."""
    lines = screen.splitlines()
    top = next((i for i, line in enumerate(lines) if "╭" in line), len(lines))
    return any(text in line for line in lines[:top])


def _bar_words(lines: list[str], buttons: list[int]) -> str:
    """The bar's left column (who invited, and "invited you") joined across its rows: at
    80x24 a long user ID wraps inside it ("@bob222-24f4" over "62:localhost")."""
    if len(buttons) != 1:
        return ""
    row = buttons[0]
    cells = []
    for line in lines[max(0, row - 1) : row + 2]:
        cell = line.rsplit("│", 1)[-1]
        for edge in ("▔", "▁", "Accept"):
            cell = cell.split(edge)[0]
        cells.append(cell.strip())
    return "".join(cells)


def _bar_shown(screen: str, inviter: RegisteredUser) -> bool:
    """The invite is open: its name in the header, the bar between the timeline and the
    composer saying who invited, with Accept then Reject on one row."""
    lines = screen.splitlines()
    buttons = [i for i, line in enumerate(lines) if "Accept" in line and "Reject" in line]
    composer = [i for i, line in enumerate(lines) if "╭" in line]
    return (
        "Book club" in lines[0]
        and "(invited)" in lines[0]
        and "invited you" in screen
        and inviter.user_id.split(":")[0] in _bar_words(lines, buttons)
        and len(buttons) == 1
        and lines[buttons[0]].index("Accept") < lines[buttons[0]].index("Reject")
        and len(composer) == 1
        and buttons[0] < composer[0]
    )


def _open_the_invite(app: PtyApp, inviter: RegisteredUser) -> None:
    """From the composer of the room open at the start, in one write: Shift+Tab to the
    timeline, Shift+Tab to the room list, Home (its first row: the invites come first) and
    Enter. (Home and Enter reach the composer's queue before its Shift+Tab is handled: the
    composer moves the focus and hands them on to the room list.)"""
    app.wait_for(lambda s: "INVITES" in s and "Book club" in _room_list(s))
    app.write(SHIFT_TAB + SHIFT_TAB + HOME + ENTER)
    app.wait_for(lambda s: _bar_shown(s, inviter))


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_an_invite_accepted_with_keys_in_one_burst(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    size: tuple[int, int],
) -> None:
    alice, bob, book = _alice_invited(synapse, make_user)
    with PtyApp.for_account(tmp_path / "data", synapse.base_url, alice.user_id, size=size) as app:
        log_in_on_pty(app, alice, "Lobby")
        _open_the_invite(app, bob)
        assert _membership(synapse, bob, book, alice.user_id) == "invite"
        # The room list keeps the focus (the composer is off in an invite): Tab to the
        # timeline, Tab to Accept, Enter, in one write.
        app.write(TAB + TAB + ENTER)
        _until(lambda: _membership(synapse, bob, book, alice.user_id) == "join", "the join", app)
        # The joined room: the bar gone, the room under ROOMS.
        app.wait_for(
            lambda s: (
                "Book club" in s.splitlines()[0]
                and "(invited)" not in s
                and "Accept" not in s
                and "invited you" not in s
                and "INVITES" not in s
                and _room_list(s)[0] == "ROOMS"
                and {"Book club", "Lobby"} <= set(_room_list(s))
            )
        )
        # The composer is usable: a line typed and Enter reach Bob.
        app.write("hello book club" + ENTER)
        _until(
            lambda: _bodies(synapse, bob, book, alice.user_id) == ["hello book club"],
            "Alice's message",
            app,
        )
        app.wait_for(lambda s: _in_timeline(s, "hello book club"))


def test_an_invite_rejected_with_keys_in_one_burst(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice, bob, book = _alice_invited(synapse, make_user)
    with PtyApp.for_account(tmp_path / "data", synapse.base_url, alice.user_id) as app:
        log_in_on_pty(app, alice, "Lobby")
        _open_the_invite(app, bob)
        # Tab to the timeline, to Accept, to Reject, Enter.
        app.write(TAB + TAB + TAB + ENTER)
        _until(
            lambda: _membership(synapse, bob, book, alice.user_id) == "leave", "the refusal", app
        )
        # The invite leaves the list, the bar goes.
        app.wait_for(
            lambda s: (
                _room_list(s)[:2] == ["ROOMS", "Lobby"]
                and "Book club" not in _room_list(s)
                and "Accept" not in s
                and "invited you" not in s
            )
        )
