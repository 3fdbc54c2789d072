"""Encryption actions from the UI: export and import room keys, turn encryption on."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens import security
from tui_client.ui.screens.dialogs import ConfirmDialog, PromptDialog

from .fake_world import FakeHomeserver
from .test_snapshots import wait_for

RANDOM = "!random00000000000000000000000000000000000004"


async def _answer(pilot, app: TuiClientApp, text: str) -> None:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "a prompt")
    field = app.screen.query_one(Input)
    field.value = text
    field.focus()
    await pilot.press("enter")


async def test_export_then_import_room_keys(fake_profile: Path, tmp_path: Path) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    target = tmp_path / "keys.txt"
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None and app.client is not None
        assert app.client.encryption.available
        security.export_keys(chat)
        await _answer(pilot, app, str(target))
        await _answer(pilot, app, "a long passphrase")
        await _answer(pilot, app, "a long passphrase")
        await wait_for(pilot, lambda: target.exists(), "the export file")
        assert target.read_text().startswith("-----BEGIN MEGOLM SESSION DATA-----")
        assert target.stat().st_mode & 0o777 == 0o600
        security.import_keys(chat)
        await _answer(pilot, app, str(target))
        await _answer(pilot, app, "a long passphrase")
        await wait_for(
            pilot,
            lambda: any("room keys" in n.message for n in app._notifications),
            "the import report",
        )


async def test_a_mismatched_passphrase_exports_nothing(fake_profile: Path, tmp_path: Path) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    target = tmp_path / "keys.txt"
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None
        security.export_keys(chat)
        await _answer(pilot, app, str(target))
        await _answer(pilot, app, "first try")
        await _answer(pilot, app, "second try")
        await wait_for(
            pilot, lambda: any("differ" in n.message for n in app._notifications), "the mismatch"
        )
        assert not target.exists()


async def test_turning_encryption_on_asks_first(fake_profile: Path) -> None:
    server = FakeHomeserver()
    app = TuiClientApp(base_dir=fake_profile, transport=server.transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        app.open_room(RANDOM)
        chat = app.chat_screen
        assert chat is not None
        await wait_for(
            pilot, lambda: chat.view is not None and chat.view.room_id == RANDOM, "Random"
        )
        assert security.can_enable_encryption(chat)
        security.enable_encryption(chat)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: any(r.url.path.endswith("/state/m.room.encryption/") for r in server.requests),
            "the m.room.encryption state event",
        )
        request = next(
            r for r in server.requests if r.url.path.endswith("/state/m.room.encryption/")
        )
        assert b"m.megolm.v1.aes-sha2" in request.content
