"""The real app on a pseudo-terminal while the homeserver is down: each line typed is shown
as pending at once, the composer empties at once, and every line reaches the server once,
as its own message, in order, when the server is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_client.devtools.synapse import SynapseServer

from ..support.synapse import own_synapse
from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room, server_messages


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A homeserver of this module's own, free to be stopped and restarted."""
    yield from own_synapse(tmp_path_factory, "pty-outage-synapse")


def test_lines_typed_during_an_outage_are_pending_then_sent_one_by_one(
    restartable: SynapseServer, tmp_path: Path
) -> None:
    server = restartable
    alice = server.register_user("alice-outage", "password-alice-outage", displayname="Alice")
    bob = server.register_user("bob-outage", "password-bob-outage", displayname="Bob")
    room_id = make_room(server, bob, "Outage room", alice)
    lines = ["before-stop", "during-outage 1", "during-outage 2", "during-outage 3"]
    with PtyApp.for_account(
        str(tmp_path / "data"),
        server.base_url,
        alice.user_id,
        size=(120, 40),
    ) as app:
        log_in_on_pty(app, alice, "Outage room")
        # The last line before the server goes: sent, or still on its way when it stops.
        app.write(lines[0] + "\r")
        server.stop()
        for line in lines[1:]:
            app.write(line + "\r")
            # Shown in the timeline (pending) and gone from the composer at once.
            screen = app.wait_for(line, timeout=10)
            assert screen.count(line) == 1, screen
            time.sleep(1.5)
        screen = app.text()
        assert "⏳" in screen, screen
        server.start()
        deadline = time.monotonic() + 90
        received = server_messages(server, alice, room_id)
        while len(received) < len(lines) and time.monotonic() < deadline:
            time.sleep(0.5)
            received = server_messages(server, alice, room_id)
        time.sleep(1.0)
        received = server_messages(server, alice, room_id)
        assert received == [("m.text", line) for line in lines], app.text()
        app.wait_for(lambda s: "⏳" not in s, timeout=30)
