"""The real app on a pseudo-terminal against Synapse: a message the push rules notify of
writes a desktop notification escape (OSC 777 for WezTerm) when the terminal has lost
focus (ESC [ O) or the room is not on screen, nothing when the room is on screen and
focused (ESC [ I), nothing for a muted room; inside tmux the passthrough form is used."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from ..integration.receipts_support import say
from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room

FOCUS_OUT = b"\x1b[O"
FOCUS_IN = b"\x1b[I"
ST = b"\x1b\\"


def osc777(title: str, body: str, tmux: bool) -> bytes:
    escape = b"\x1b]777;notify;" + title.encode() + b";" + body.encode() + ST
    if tmux:
        return b"\x1bPtmux;" + escape.replace(b"\x1b", b"\x1b\x1b") + ST
    return escape


def wait_output(app: PtyApp, expected: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected in bytes(app.output):
            return
        time.sleep(0.05)
    raise AssertionError(
        f"the app never wrote {expected!r}; notification escapes written: {escapes(app)}"
    )


def escapes(app: PtyApp) -> list[bytes]:
    """Every notification escape the app wrote, bare or wrapped for tmux."""
    return re.findall(rb"(?:\x1bPtmux;)?\x1b+\]777;[^\x1b]*", bytes(app.output))


def mute(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> None:
    """Element's shape of a muted room: an override rule with no actions."""
    rule = urllib.parse.quote(room_id, safe="")
    status, body = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/pushrules/global/override/{rule}",
        {
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
            "actions": [],
        },
        user.access_token,
    )
    assert status == 200, body


@pytest.mark.parametrize("tmux", [False, True], ids=["plain", "tmux"])
def test_a_notification_reaches_the_terminal_when_the_user_is_not_looking(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path, tmux: bool
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    muted = make_room(synapse, bob, "Muted room", alice)
    other = make_room(synapse, bob, "Other room", alice)
    focus = make_room(synapse, bob, "Focus room", alice)
    say(synapse, bob, focus, "hello", "p0")  # the newest room: it opens first
    mute(synapse, alice, muted)
    env = {
        "TERM_PROGRAM": "WezTerm",
        "TMUX": "/tmp/tmux-1000/default,4242,0" if tmux else "",
        # No desktop bus (it would be used instead), not over SSH, no other terminal's hints.
        "DBUS_SESSION_BUS_ADDRESS": "",
        "KITTY_WINDOW_ID": "",
        "LC_TERMINAL": "",
        "WT_SESSION": "",
        "TUI_CLIENT_NOTIFY_ESCAPE": "",
    }
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
        size=(120, 36),
        env=env,
    ) as app:
        log_in_on_pty(app, alice, "Focus room")
        app.wait_for("hello")
        # Focused, the room on screen: the message is seen, nothing else is written.
        say(synapse, bob, focus, "Alice: seen on screen", "p1")
        app.wait_for("seen on screen")
        time.sleep(1.0)
        assert escapes(app) == []

        # Focus lost: a mention writes the escape with the room, the sender and the text.
        app.write(FOCUS_OUT)
        time.sleep(0.3)
        say(synapse, bob, muted, "Alice: in the muted room", "p2")
        say(synapse, bob, focus, "Alice: are you there?", "p3")
        wait_output(app, osc777("Focus room", "Bob: Alice: are you there?", tmux))
        # The muted room's mention, sent before, wrote nothing.
        assert b"muted" not in b"".join(escapes(app))
        assert len(escapes(app)) == 1
        if tmux:
            assert re.search(rb"(?<!\x1b)\x1b\]777", bytes(app.output)) is None  # only wrapped

        # Focus back: a message in another room still notifies; one on screen does not.
        app.write(FOCUS_IN)
        time.sleep(0.3)
        say(synapse, bob, focus, "Alice: back on screen", "p4")
        app.wait_for("back on screen")
        say(synapse, bob, other, "Alice: elsewhere", "p5")
        wait_output(app, osc777("Other room", "Bob: Alice: elsewhere", tmux))
        assert len(escapes(app)) == 2
