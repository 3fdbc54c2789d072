"""The two ways a cache rebuild (ui/cache_damage.py) can go wrong, as an 80x24 terminal
shows them: the rebuild itself fails (the folder cannot be written), and the device's
encryption identity does not read back from the damaged file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList

from tui_client.engine.client import CACHE_FILE, MatrixClient
from tui_client.store import repair
from tui_client.store.repair import damage_mark, mark_damaged
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.dialogs import ChoiceDialog, ConfirmDialog

from ..support.waiting import pilot_until
from .fake_world import FakeHomeserver
from .test_first_minutes import screen_lines, toast_texts

FRAMES = "█▀▄▌▊▎▔▁"


def _screen(pilot: Any) -> str:
    """The terminal's rows as drawn, joined without the frames' blocks (a dialog's words
    wrap over several rows, between its borders)."""
    text = " ".join(screen_lines(pilot))
    return " ".join(text.translate({ord(c): " " for c in FRAMES}).split())


async def test_a_rebuild_that_cannot_write_ends_with_what_to_do(
    fake_profile: Path,
    fake_server: FakeHomeserver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Damage found while running, the rebuild asked for, and the folder refuses the new
    file (what SQLite says for a read-only folder): the app ends saying why and what to do,
    and the damaged cache is left as it was (marked, rebuilt at the next start)."""
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    opening = repair.connect
    refused: list[Path] = []

    def read_only_folder(path: Path, key: bytes | None = None) -> Any:
        if path.name.endswith(".rebuilding"):
            refused.append(path)
            raise sqlite3.OperationalError("unable to open database file")
        return opening(path, key)

    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot_until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")
        client = app.client
        assert client is not None
        # What the database thread calls when SQLite says the file is malformed.
        client.damage.found("database disk image is malformed")
        await pilot_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the offer")
        assert "The local cache is damaged (database disk image is malformed)" in _screen(pilot)
        capsys.readouterr()
        monkeypatch.setattr(repair, "connect", read_only_folder)
        await pilot.press("enter")  # Rebuild now
        await pilot_until(pilot, lambda: app.return_code is not None, "the app ending", 15)
    assert refused, "the rebuild never tried to write"
    assert app.return_code == 1
    # Textual prints the exit message on the terminal once the screen is given back.
    said = " ".join(capsys.readouterr().err.split())
    assert said == (
        "tui_client could not rebuild its cache: unable to open database file. Nothing else "
        "was changed; start it again."
    ), said
    cache = fake_profile / "default" / CACHE_FILE
    assert cache.exists() and damage_mark(cache).exists()  # the next start rebuilds it


async def _crypto_account_page(client: MatrixClient) -> tuple[int, int]:
    """The crypto account table's root page and the page size (the test reads the schema)."""
    db = client.cache._db

    def find() -> tuple[int, int]:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        root = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'crypto_account'"
        ).fetchone()
        return int(root[0]), int(db.execute("PRAGMA page_size").fetchone()[0])

    return await client.db.run(find)


async def test_an_identity_that_does_not_read_back_offers_logout_or_later(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """The page holding the device's account zeroed in a cache marked damaged: the rebuild
    at the next start cannot keep the identity; the screen says so and offers "Log out…"
    or "Later", and "Later" leaves the client usable."""
    client = MatrixClient.restore(base_dir=fake_profile, transport=fake_server.transport())
    assert client is not None
    await client.open()  # the machine creates and stores the device's account
    path = client.cache.path
    root, page_size = await _crypto_account_page(client)
    await client.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\0" * page_size)
    mark_damaged(path, "database disk image is malformed")

    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the offer", 15)
        # An error said while the dialog is up (here: one like a failed send's) is not
        # drawn over it; the report itself is said in the dialog, not in a toast.
        app.notify("Could not send: the server is unreachable", severity="error", markup=False)
        await pilot_until(
            pilot,
            lambda: any("server is unreachable" in n.message for n in app._notifications),
            "the error toast posted",
            10,
        )
        await pilot.pause()
        shown = _screen(pilot)
        assert (
            "The local cache was damaged (database disk image is malformed) and has been "
            "rebuilt from the server. This device's encryption" in shown
        ), shown
        assert (
            "identity could not be read back: log out and log in again, then restore your "
            "keys from your recovery key or a key file." in shown
        ), shown
        assert "The damaged file is kept as cache.sqlite3.damaged-" in shown, shown
        assert "Log out…" in shown and "Later" in shown, shown
        assert "unreachable" not in shown, shown
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels == ["Log out…", "Later"], labels
        assert app.client is not None
        assert app.client.cache_repair is not None and app.client.cache_repair.account_lost
        options.focus()
        await pilot.press("down", "enter")  # Later
        await pilot_until(pilot, lambda: isinstance(app.screen, ChatScreen), "the dialog closed")
        assert app.client is not None  # still logged in
        # The error comes back once the dialog is closed; the report's toast does not.
        await pilot_until(
            pilot,
            lambda: any("server is unreachable" in t for t in toast_texts(pilot)),
            "the error toast again",
            10,
        )
        assert not any("could not be read back" in t for t in toast_texts(pilot))
        app.clear_notifications()
        await pilot.press("ctrl+p")  # the app still answers keys
        await pilot_until(pilot, lambda: "CommandPalette" in type(app.screen).__name__, "palette")
        await pilot.press("escape")
        await pilot_until(pilot, lambda: isinstance(app.screen, ChatScreen), "palette closed")
        # Still the same account, syncing into the rebuilt cache, its chat screen drawn.
        await pilot_until(pilot, lambda: app.client.sync_loop is not None, "sync", 10)  # type: ignore[union-attr]
        shown = _screen(pilot)
        assert "connected" in shown and "@alice:examp" in shown, shown
        assert "encryption identity could not be read back" not in shown, shown
