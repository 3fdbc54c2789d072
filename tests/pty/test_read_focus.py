"""The real app on a pseudo-terminal: read receipts and the fully-read marker move only while
the terminal has focus (focus reporting, CSI ?1004: ESC [ O out, ESC [ I in), checked on the
server; our presence follows the focus too."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from ..integration.receipts_support import fully_read, presence_of, receipts_seen_by, say
from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room

FOCUS_OUT = b"\x1b[O"
FOCUS_IN = b"\x1b[I"


def wait_server(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"the server never showed {what}")


def test_receipts_wait_for_the_terminal_focus(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room_id = make_room(synapse, bob, "Focus room", alice)
    say(synapse, bob, room_id, "first news", "f1")
    second = say(synapse, bob, room_id, "second news", "f2")
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
    ) as app:
        log_in_on_pty(app, alice, "Focus room")
        assert b"\x1b[?1004h" in app.output  # the app asked the terminal for focus reports
        # Focused (a terminal that has not said otherwise): the open room is read.
        wait_server(
            lambda: fully_read(synapse, alice, room_id) == second,
            "the marker on the second message",
        )
        wait_server(
            lambda: receipts_seen_by(synapse, bob, room_id, alice.user_id).get("m.read") == second,
            "alice's receipt",
        )
        wait_server(lambda: presence_of(synapse, bob, alice.user_id) == "online", "alice online")

        app.write(FOCUS_OUT)
        wait_server(lambda: presence_of(synapse, bob, alice.user_id) == "unavailable", "alice away")
        third = say(synapse, bob, room_id, "third news", "f3")
        app.wait_for("third news")
        time.sleep(3.0)  # three times the delay before a receipt
        assert fully_read(synapse, alice, room_id) == second
        assert receipts_seen_by(synapse, bob, room_id, alice.user_id).get("m.read") == second
        assert presence_of(synapse, bob, alice.user_id) == "unavailable"  # later syncs keep it

        app.write(FOCUS_IN)
        wait_server(
            lambda: fully_read(synapse, alice, room_id) == third, "the marker on the third message"
        )
        wait_server(
            lambda: receipts_seen_by(synapse, bob, room_id, alice.user_id).get("m.read") == third,
            "the receipt moved",
        )
        wait_server(
            lambda: presence_of(synapse, bob, alice.user_id) == "online", "alice back online"
        )
