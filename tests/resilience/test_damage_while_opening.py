"""A damaged cache found while the account is still opening (its room list painted, the
encryption machine still loading): the dialog offers the rebuild at once, and the user
may answer before the opening is done.

"Rebuild now" closes the client whose opening is under way: that opening ends quietly
(before, it went on over the closed database thread: "Could not finish opening the
account: cannot schedule new futures after shutdown", or a sync loop started on the
closed client, failing every few seconds); the rebuilt client takes over. "Later" leaves
the client as damage while running does: sync and sending paused, the status line says so.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.encryption import Encryption
from tui_client.engine.storage import DAMAGED, CacheDamagedError
from tui_client.engine.updates import SyncStatus
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ConfirmDialog
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.status_bar import StatusBar

from ..integration.e2ee_support import bodies
from ..ui.synapse_login import until as ui_until
from .test_damage_while_running import _events_root, _say
from .test_damaged_cache import _prepared, _zero_page


class HeldMachine:
    """Once :meth:`hold` is called, the encryption machine's open waits until :meth:`release`
    (a slow machine: a large store, a loaded computer), so the account is still opening
    when the dialog is answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.gate = asyncio.Event()

    def hold(self) -> None:
        original = Encryption.open
        gate = self.gate

        async def held(self: Encryption) -> None:
            await gate.wait()
            await original(self)

        self._monkeypatch.setattr(Encryption, "open", held)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def held_machine(monkeypatch: pytest.MonkeyPatch) -> HeldMachine:
    return HeldMachine(monkeypatch)


async def _damaged(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, held: HeldMachine
) -> str:
    """Alice's cache with the events table's root page zeroed after a clean close (the
    open's first reads meet it), a message from bob waiting on the server, the machine's
    next open held; the room."""
    alice, room, bob = await _prepared(synapse, make_user, tmp_path)
    root, page_size = await _events_root(alice)
    await alice.close()
    _zero_page(alice.cache.path, root, page_size)
    _say(synapse, bob, room, "said while the cache was damaged")
    held.hold()
    return room


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}"
        for r in caplog.records
        if r.exc_info is not None and r.levelno >= logging.WARNING
    ]


async def test_rebuild_asked_for_while_the_account_opens(
    synapse: SynapseServer,
    make_user: Any,
    tmp_path: Path,
    held_machine: HeldMachine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = await _damaged(synapse, make_user, tmp_path, held_machine)
    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await ui_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the offer")
        first = app.client
        assert first is not None and first.damage.reason is not None
        assert first.sync_loop is None, "the machine is held: the account is still opening"
        await pilot.press("enter")  # Rebuild now
        await ui_until(
            pilot,
            lambda: app.client is not None and app.client is not first,
            "the rebuilt client",
        )
        held_machine.release()  # the first client's opening goes on, over its closed cache
        client = app.client
        assert client is not None and client.cache_repair is not None
        await ui_until(
            pilot,
            lambda: client.sync_state.status is SyncStatus.CONNECTED and room in client.rooms,
            "the rebuilt client syncing",
        )
        chat = app.chat_screen
        assert chat is not None
        chat.open_room(room)
        await ui_until(
            pilot,
            lambda: (
                chat.view is not None
                and {"bob's old secret", "said while the cache was damaged"}
                <= set(bodies(chat.view))
            ),
            "the room back, decrypted",
        )
        await pilot.pause(1)
        messages = [n.message for n in app._notifications]
        assert not [m for m in messages if "Could not finish opening" in m], messages
        assert any("has been rebuilt" in m for m in messages), messages
        # The first client was closed while it opened: it never started.
        assert first.closed and first.sync_loop is None
        assert first.sync_state.status is SyncStatus.STARTING
        status = str(chat.query_one(StatusBar).render())
        assert "damaged" not in status and "connected" in status, status
    assert not _tracebacks(caplog), _tracebacks(caplog)


async def test_later_leaves_it_as_damage_while_running_does(
    synapse: SynapseServer,
    make_user: Any,
    tmp_path: Path,
    held_machine: HeldMachine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = await _damaged(synapse, make_user, tmp_path, held_machine)
    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await ui_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the offer")
        client = app.client
        assert client is not None
        await pilot.press("escape")  # Later
        held_machine.release()
        chat = app.chat_screen
        assert chat is not None
        await ui_until(
            pilot,
            lambda: client.sync_state.detail == f"{DAMAGED}: sync paused",
            "sync paused",
            on_timeout=lambda: str(client.sync_state),
        )
        status = str(chat.query_one(StatusBar).render())
        assert "the cache is damaged" in status, status
        assert client.storage.problem == DAMAGED and not client.storage.writable.is_set()
        # What the user types is refused and kept in the composer.
        chat.open_room(room)
        composer = chat.query_one(Composer)
        composer.focus()
        composer.text = "typed after the damage"
        await pilot.press("enter")
        await pilot.pause(1)
        assert composer.text == "typed after the damage"
        messages = [n.message for n in app._notifications]
        assert not [m for m in messages if "Could not finish opening" in m], messages
    assert not _tracebacks(caplog), _tracebacks(caplog)


async def test_a_client_closed_while_it_opened_starts_nothing(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, held_machine: HeldMachine
) -> None:
    """The engine's side: an open under way when the client is closed ends quietly, and a
    start after the close starts no sync loop over the closed database thread."""
    room = await _damaged(synapse, make_user, tmp_path, held_machine)
    client = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=500)
    assert client is not None
    await client.open_cache()
    opening = asyncio.ensure_future(client.open_services())
    with pytest.raises(CacheDamagedError):
        await client.open_room(room)  # as the chat screen reopens the last room
    assert client.damage.reason is not None and not opening.done()
    await client.close()
    held_machine.release()
    await opening  # no "cannot schedule new futures after shutdown"
    client.start()
    assert client.sync_loop is None and not client._tasks
    # Opened whole, then closed before the start (the app's worker starts it last): no sync
    # loop goes on over the closed database thread.
    again = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=500)
    assert again is not None
    await again.open()
    await again.close()
    again.start()
    assert again.sync_loop is None and not again._tasks
