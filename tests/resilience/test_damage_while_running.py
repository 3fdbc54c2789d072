"""A damaged cache the open does not see: a page of the events table zeroed after a clean
close (a disk, a backup tool), or while the client runs. The full check after start, or
the first store operation that meets the page (a sync batch), finds it: the client says
so on screen, writes no more to the file, keeps what the user typed, and rebuilds it
(at once from the dialog, or at the next start) keeping the keys and the unsent
messages; the old messages decrypt again and the queued one is sent once."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.storage import DAMAGED, StorageUnavailable
from tui_client.engine.updates import CacheDamageFound, Notice
from tui_client.store.repair import damage_mark
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ChoiceDialog, ConfirmDialog
from tui_client.ui.screens.recovery import RestoreDialog
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.status_bar import StatusBar

from ..integration.e2ee_support import bodies, shown, until
from ..support.updates import Recorder
from ..ui.synapse_login import until as ui_until
from .test_damaged_cache import _prepared, _zero_page


async def _events_root(client: MatrixClient) -> tuple[int, int]:
    """The events table's root page and the page size (the test reads the cache's schema)."""
    db = client.cache._db

    def find() -> tuple[int, int]:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()
        return int(root[0]), int(db.execute("PRAGMA page_size").fetchone()[0])

    return await client.db.run(find)


def _say(synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str) -> None:
    """A plain message from ``user`` straight through the API (its client is closed)."""
    path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/send/m.room.message/t-{body.replace(' ', '-')}"
    status, answer = synapse.request_json(
        "PUT", path, {"msgtype": "m.text", "body": body}, user.access_token
    )
    assert status == 200, answer


async def test_damage_after_a_clean_close_is_found_after_start_and_rebuilt(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice, room, bob = await _prepared(synapse, make_user, tmp_path)
    path = alice.cache.path
    root, page_size = await _events_root(alice)
    await alice.close()  # a clean close: the next open only measures the file
    _zero_page(path, root, page_size)
    client = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=500)
    assert client is not None
    recorder = Recorder(client)
    try:
        assert client.cache_repair is None  # the open did not read every page
        await client.open()
        client.start()
        _say(synapse, bob, room, "said while the cache was damaged")
        await until(lambda: client.damage.reason is not None, "the damage found", 30)
        assert recorder.of(CacheDamageFound), "not said"
        assert damage_mark(path).exists()
        assert client.storage.problem == DAMAGED
        # Nothing new is written; a message typed now is refused (the composer keeps it).
        with pytest.raises(StorageUnavailable):
            await client.send_message(room, "typed after the damage")
    finally:
        await client.close()
    # The next start rebuilds it, keeping the keys and the message queued before.
    restored = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=500)
    assert restored is not None
    recorder = Recorder(restored)
    await restored.open()
    restored.start()
    try:
        report = restored.cache_repair
        assert report is not None and report.crypto_intact and report.unsent == 1, report
        assert any("rebuilt" in n.text for n in recorder.of(Notice))
        await restored.wait_synced()
        await until(lambda: room in restored.rooms, "the room back")
        view = await restored.open_room(room)
        await shown(view, "bob's old secret")
        await shown(view, "alice's old secret")
        await shown(view, "said while the cache was damaged")
        await shown(view, "queued before the damage")
        await until(lambda: bodies(view).count("queued before the damage") == 1, "sent once")
        assert "typed after the damage" not in bodies(view)
        assert restored.damage.reason is None and not damage_mark(path).exists()
    finally:
        await restored.close()


async def test_corruption_while_running_is_said_on_screen_and_rebuilt_at_once(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice, room, bob = await _prepared(synapse, make_user, tmp_path)
    await alice.close()
    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await ui_until(
            pilot,
            lambda: (
                app.chat_screen is not None and app.client is not None and room in app.client.rooms
            ),
            "the room",
        )
        chat = app.chat_screen
        assert chat is not None
        chat.open_room(room)
        first = app.client
        assert first is not None
        await ui_until(
            pilot,
            lambda: chat.view is not None and "bob's old secret" in bodies(chat.view),
            "the room shown",
        )
        await ui_until(
            pilot,
            lambda: bodies(chat.view).count("queued before the damage") == 1,  # type: ignore[arg-type]
            "the queued message sent",
        )
        # A page of the events table zeroed under the running client, its copy in memory dropped.
        root, page_size = await _events_root(first)
        db = first.cache._db
        await first.db.run(lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        _zero_page(first.cache.path, root, page_size)
        await first.db.run(lambda: db.execute("PRAGMA shrink_memory").fetchall())
        _say(synapse, bob, room, "arrives at the damaged cache")
        await ui_until(
            pilot,
            lambda: isinstance(app.screen, ConfirmDialog),
            "the rebuild offered",
        )
        shown_text = " ".join(
            str(label.render()) for label in app.screen.query("Label")
        )  # the dialog's words
        assert "cache is damaged" in shown_text and "Rebuild it now" in shown_text, shown_text
        await pilot.press("escape")  # later: go on reading
        await pilot.pause()
        status = chat.query_one(StatusBar)
        assert "the cache is damaged" in str(status.render()), str(status.render())
        # What the user types now is not lost: refused, and back in the composer.
        composer = chat.query_one(Composer)
        composer.focus()
        composer.text = "typed after the damage"
        await pilot.press("enter")
        await ui_until(
            pilot,
            lambda: composer.text == "typed after the damage",
            "the text kept in the composer",
        )
        # The palette's rebuild: a new client on a rebuilt cache.
        await pilot.press("ctrl+p")
        await pilot.pause()
        for char in "Rebuild the damaged":
            await pilot.press(char if char != " " else "space")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await ui_until(
            pilot,
            lambda: app.client is not None and app.client is not first,
            "a new client",
            timeout=30,
        )
        client = app.client
        assert client is not None and client.cache_repair is not None
        await ui_until(
            pilot,
            lambda: any(
                "damaged" in n.message and "encryption keys were kept" in n.message
                for n in app._notifications
            ),
            "what was kept said",
            on_timeout=lambda: str([n.message for n in app._notifications]),
        )
        new_chat = app.chat_screen
        assert new_chat is not None
        assert new_chat.query_one(Composer).text == "typed after the damage"
        await ui_until(
            pilot,
            lambda: (
                new_chat.view is not None
                and new_chat.view.room_id == room
                and {"bob's old secret", "arrives at the damaged cache"}
                <= set(bodies(new_chat.view))
            ),
            "the room back, its messages decrypted",
            timeout=30,
        )
        assert bodies(new_chat.view).count("queued before the damage") == 1  # type: ignore[arg-type]
        status = new_chat.query_one(StatusBar)
        assert "damaged" not in str(status.render())


async def test_room_keys_that_do_not_read_back_are_said_and_restore_is_offered(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    """The room keys' table damaged (found by the open after a crash): the rebuild says
    plainly that keys were lost and offers restore from the recovery key or a key file."""
    alice, _room, _bob = await _prepared(synapse, make_user, tmp_path)
    db = alice.cache._db
    path = alice.cache.path

    def layout() -> tuple[int, int]:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        root = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'crypto_inbound_sessions'"
        ).fetchone()
        return int(root[0]), int(db.execute("PRAGMA page_size").fetchone()[0])

    root, page_size = await alice.db.run(layout)
    copy = path.read_bytes()  # as a crash leaves it: not closed cleanly
    await alice.close()
    for ending in ("-wal", "-shm"):
        Path(f"{path}{ending}").unlink(missing_ok=True)
    path.write_bytes(copy)
    _zero_page(path, root, page_size)
    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await ui_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the offer")
        words = " ".join(str(label.render()) for label in app.screen.query("Label"))
        assert "encryption keys could not be read back: restore them" in words, words
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[:2] == ["Restore from recovery key", "Import a key file"], labels
        # Said in the dialog, not also in a toast drawn over it.
        assert not any("could not be read back" in n.message for n in app._notifications), [
            n.message for n in app._notifications
        ]
        options.focus()
        await pilot.press("enter")  # the first choice
        await ui_until(pilot, lambda: isinstance(app.screen, RestoreDialog), "the restore")
        client = app.client
        assert client is not None and client.cache_repair is not None
        assert not client.cache_repair.crypto_intact and client.cache_repair.unsent == 1
