"""The real app on an 80x24 pseudo-terminal, started on a cache damaged after it was closed
cleanly (a page of the events table zeroed, as a disk or a backup tool may leave it): the
dialog says so and Enter rebuilds it; the room's messages come back and the next start
finds nothing wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.store.repair import damage_mark

from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room


def _say(synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, txn: str) -> None:
    from urllib.parse import quote

    path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send/m.room.message/{txn}"
    status, answer = synapse.request_json(
        "PUT", path, {"msgtype": "m.text", "body": body}, user.access_token
    )
    assert status == 200, answer


def _events_root(data: Path) -> tuple[Path, int, int]:
    """The cache file, its events table's root page and page size (read in this process,
    with the device's key, then closed cleanly)."""

    async def read() -> tuple[Path, int, int]:
        client = MatrixClient.restore(base_dir=data)
        assert client is not None
        db = client.cache._db
        root = int(
            db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        )
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        path = client.cache.path
        await client.close()
        return path, root, page_size

    return asyncio.run(read())


def test_damage_after_a_clean_close_is_said_and_rebuilt_with_one_key(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room_id = make_room(synapse, bob, "Damage room", alice)
    _say(synapse, bob, room_id, "before the damage", "d1")
    data = tmp_path / "data"
    with PtyApp.for_account(str(data), synapse.base_url, alice.user_id) as app:
        log_in_on_pty(app, alice, "Damage room")
        app.wait_for("before the damage", timeout=30)
        app.write("\x11")  # Ctrl+Q: a clean close
        app.process.wait(20)
    path, root, page_size = _events_root(data)
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\0" * page_size)
    _say(synapse, bob, room_id, "after the damage", "d2")
    with PtyApp.for_account(str(data), synapse.base_url, alice.user_id) as app:
        screen = app.wait_for(lambda s: "damaged" in s and "Rebuild now" in s, timeout=60)
        assert "Traceback" not in screen, screen
        app.write("\r")  # the dialog's first button: Rebuild now
        screen = app.wait_for(lambda s: "rebuilt" in s, timeout=60)
        app.wait_for(
            lambda s: "before the damage" in s and "after the damage" in s and "damaged" not in s,
            timeout=60,
        )
        assert "Traceback" not in app.text()
        assert not damage_mark(path).exists()
        app.write("\x11")
        app.process.wait(20)
