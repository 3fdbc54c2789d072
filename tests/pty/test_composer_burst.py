"""The real app on a pseudo-terminal: lines typed (or pasted) at full speed reach the server
exactly once each, in order, nothing merged or lost."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from .app import PtyApp


def make_room(
    synapse: SynapseServer, owner: RegisteredUser, name: str, member: RegisteredUser
) -> str:
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"name": name, "preset": "private_chat", "invite": [member.user_id]},
        owner.access_token,
    )
    assert status == 200, body
    room_id = str(body["room_id"])
    status, body = synapse.request_json(
        "POST",
        f"/_matrix/client/v3/join/{urllib.parse.quote(room_id, safe='')}",
        {},
        member.access_token,
    )
    assert status == 200, body
    return room_id


def server_messages(
    synapse: SynapseServer, user: RegisteredUser, room_id: str
) -> list[tuple[str, str]]:
    """(msgtype, body) of every message in the room, oldest first."""
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/messages?dir=b&limit=500"
    )
    status, data = synapse.request_json("GET", path, None, user.access_token)
    assert status == 200, data
    found = [
        (e["content"].get("msgtype", ""), e["content"].get("body", ""))
        for e in data["chunk"]
        if e["type"] == "m.room.message" and e["sender"] == user.user_id
    ]
    return found[::-1]


def log_in_on_pty(app: PtyApp, user: RegisteredUser, room_name: str) -> None:
    """Type the password at the login screen and wait for the room to be open."""
    app.wait_for("Log in", timeout=60)
    app.write(user.password + "\r")
    app.wait_for(room_name, timeout=60)
    # The footer shows the composer's "Send" once the room is open and the composer focused.
    app.wait_for(lambda s: room_name in s and "Send" in s and "connected" in s, timeout=60)


def _vim_config(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("[keys]\nvim = true\n", encoding="utf-8")
    return {"TUI_CLIENT_CONFIG": str(config)}


@pytest.mark.parametrize(
    ("size", "vim"),
    [((80, 24), False), ((200, 60), False), ((80, 24), True)],
    ids=["80x24", "200x60", "80x24-vim"],
)
def test_fifty_lines_in_one_write_arrive_once_each_in_order(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    size: tuple[int, int],
    vim: bool,
) -> None:
    """(With the vim mode on, the composer starts in insert mode: the same burst.)"""
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room_id = make_room(synapse, bob, "Burst room", alice)
    # 50 Enters in one write: plain lines, a /me in the burst, and lines with a newline
    # typed by Ctrl+J (LF) and by Shift+Enter (kitty keyboard protocol) inside them.
    expected: list[tuple[str, str]] = []
    typed = ""
    for n in range(1, 51):
        if n == 20:
            typed += f"/me waves {n:02d}\r"
            expected.append(("m.emote", f"waves {n:02d}"))
        elif n == 30:
            typed += f"burst {n:02d} first\nsecond\r"
            expected.append(("m.text", f"burst {n:02d} first\nsecond"))
        elif n == 40:
            # Shift+Enter as a terminal with the kitty keyboard protocol sends it.
            typed += f"burst {n:02d} top\x1b[13;2ubottom\r"
            expected.append(("m.text", f"burst {n:02d} top\nbottom"))
        else:
            typed += f"burst {n:02d}\r"
            expected.append(("m.text", f"burst {n:02d}"))
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
        size=size,
        env=_vim_config(tmp_path) if vim else None,
    ) as app:
        log_in_on_pty(app, alice, "Burst room")
        if vim:
            app.wait_for(lambda s: " INSERT " in s, timeout=10)
        app.write(typed)
        deadline = time.monotonic() + 60
        received = server_messages(synapse, alice, room_id)
        while len(received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.25)
            received = server_messages(synapse, alice, room_id)
        # A little longer: a duplicate would arrive after the 50th.
        time.sleep(1.0)
        received = server_messages(synapse, alice, room_id)
        assert received == expected, app.text()
