"""Recovery from the UI: setting it up (palette, key shown once, saved to a file), the
encryption health screen, and (against Synapse) a new login restoring its history with
a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, ProgressBar, Static

from tui_client.crypto.secret_storage import DEFAULT_KEY_TYPE, KEY_BACKUP_TYPE, MEGOLM_BACKUP_V1
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.encryption import BACKEND_ENV
from tui_client.engine.updates import KeyRestoreProgress
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ChoiceDialog, ConfirmDialog, PromptDialog
from tui_client.ui.screens.recovery import EncryptionHealthScreen, RecoveryKeyDialog, RestoreDialog
from tui_client.ui.widgets.timeline import TimelineView

from ..integration.e2ee_support import client_for, encrypted_room, join, shown, until
from .conftest import save_screenshot
from .recovery_world import SECRET_ROOM, RecoveryServer, fixed_storage_key
from .test_snapshots import SIZE, freeze_cursors, wait_for

GENERAL = "!general0000000000000000000000000000000000001"


def _app(base_dir: Path, server: RecoveryServer) -> TuiClientApp:
    return TuiClientApp(base_dir=base_dir, transport=server.transport())


async def _ready(pilot: Pilot[None], app: TuiClientApp) -> None:
    """The chat screen is up, synced, and the start-up checks (backup, cross-signing) are done."""

    def ready() -> bool:
        client = app.client
        chat = app.chat_screen
        return (
            client is not None
            and chat is not None
            and chat.view is not None
            and app.is_connected
            and client.backup.checked.is_set()
            and client.sync_token not in (None, "s1")
            and client.cross_signing.state is not None
            and not client.cross_signing.state.needs_verification
        )

    await wait_for(pilot, ready, "the chat screen and the start-up checks")
    assert app.client is not None
    app.client.recovery.new_storage_key = fixed_storage_key


async def _choose(pilot: Pilot[None], app: TuiClientApp, key: str) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), "a choice")
    options = app.screen.query_one(OptionList)
    index = next(i for i in range(options.option_count) if options.get_option_at_index(i).id == key)
    options.highlighted = index
    options.focus()
    await pilot.press("enter")


async def _answer(pilot: Pilot[None], app: TuiClientApp, text: str) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "a prompt")
    field = app.screen.query_one(Input)
    field.value = text
    field.focus()
    await pilot.press("enter")


async def _set_up_with_a_key(pilot: Pilot[None], app: TuiClientApp) -> RecoveryKeyDialog:
    """Ctrl+P, "Set up recovery", a generated key: the key dialog."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
    await pilot.press(*"Set up recovery")
    await wait_for(
        pilot,
        lambda: app.screen.query_one(CommandList).highlighted is not None,
        "the palette's results",
    )
    await pilot.press("enter")
    await _choose(pilot, app, "key")
    await wait_for(pilot, lambda: isinstance(app.screen, RecoveryKeyDialog), "the recovery key")
    screen = app.screen
    assert isinstance(screen, RecoveryKeyDialog)
    return screen


def _shown_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_setting_up_recovery_shows_the_key_once_and_saves_it(
    fake_profile: Path, tmp_path: Path
) -> None:
    server = RecoveryServer()
    app = _app(fake_profile, server)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        client = app.client
        assert client is not None
        dialog = await _set_up_with_a_key(pilot, app)
        key = fixed_storage_key(None).recovery_key()
        assert _shown_text(dialog, "#recovery-key") == key
        # Secret storage: the key description, the four secrets, the default key last but
        # for the "backup enabled" flag.
        assert server.account_data_writes == [
            "m.secret_storage.key.FIXEDKEYID",
            "m.cross_signing.master",
            "m.cross_signing.self_signing",
            "m.cross_signing.user_signing",
            MEGOLM_BACKUP_V1,
            DEFAULT_KEY_TYPE,
            KEY_BACKUP_TYPE,
        ]
        assert server.account_data[DEFAULT_KEY_TYPE] == {"key": "FIXEDKEYID"}
        assert set(server.account_data[MEGOLM_BACKUP_V1]["encrypted"]) == {"FIXEDKEYID"}
        assert server.current_version == "1" and client.backup.status().state == "active"
        # Saved to a file only the user can read.
        target = tmp_path / "recovery.txt"
        await pilot.click("#save-key")
        await _answer(pilot, app, str(target))
        await wait_for(pilot, lambda: target.exists(), "the key file")
        assert key in target.read_text() and target.stat().st_mode & 0o777 == 0o600
        assert "readable only by you" in _shown_text(dialog, "#recovery-key-status")
        await pilot.click("#done")
        await wait_for(
            pilot, lambda: not isinstance(app.screen, RecoveryKeyDialog), "the dialog closed"
        )
        # The health screen says it all.
        await pilot.press("f7")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, EncryptionHealthScreen) and app.screen.health is not None
            ),
            f"health {app.screen} {_shown_text(app.screen, '#health-report') if isinstance(app.screen, EncryptionHealthScreen) else None}",
        )
        report = _shown_text(app.screen, "#health-report")
        for expected in (
            "✓ This session is verified",
            "✓ Secret storage is set up",
            "✓ Backup version 1 is in use",
            "✓ This device holds the backup key",
            "1 message (1 key): the key has not arrived",
            # The suite runs on either library (TUI_CLIENT_CRYPTO_BACKEND); python-olm is flagged.
            "✓ Encryption library: vodozemac"
            if client.encryption.backend_name == "vodozemac"
            else "✗ Encryption library: python-olm",
        ):
            assert expected in report, report


async def test_closing_the_key_dialog_unsaved_asks_first(fake_profile: Path) -> None:
    app = _app(fake_profile, RecoveryServer())
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await _set_up_with_a_key(pilot, app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the reminder")
        await pilot.click("#no")
        await wait_for(pilot, lambda: isinstance(app.screen, RecoveryKeyDialog), "the key again")


async def test_passphrases_that_differ_set_nothing_up(fake_profile: Path) -> None:
    server = RecoveryServer()
    app = _app(fake_profile, server)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        from tui_client.ui.screens import recovery

        assert app.client is not None
        recovery.set_up_recovery(app, app.client)
        await _choose(pilot, app, "passphrase")
        await _answer(pilot, app, "a long passphrase")
        await _answer(pilot, app, "another passphrase")
        await wait_for(
            pilot, lambda: any("differ" in n.message for n in app._notifications), "the mismatch"
        )
        assert server.account_data_writes == [] and server.versions == {}


def test_recovery_key_dialog_snapshot(snap_compare, fake_profile: Path) -> None:
    """The recovery key, shown once (a fixed key: the snapshot does not change)."""
    app = _app(fake_profile, RecoveryServer())

    async def run_before(pilot: Pilot[None]) -> None:
        await _ready(pilot, app)
        await _set_up_with_a_key(pilot, app)
        app.clear_notifications()
        await wait_for(pilot, lambda: True, "settling")
        freeze_cursors(app)
        save_screenshot("recovery_key", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_encryption_health_snapshot(
    snap_compare, fake_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F7 after recovery was set up: everything green but one undecryptable message."""
    # The picture is of the default library, whichever the suite runs on.
    monkeypatch.setenv(BACKEND_ENV, "vodozemac")
    app = _app(fake_profile, RecoveryServer())

    async def run_before(pilot: Pilot[None]) -> None:
        await _ready(pilot, app)
        client = app.client
        assert client is not None
        await client.recovery.set_up()
        await client.send_message(SECRET_ROOM, "a message of ours: its key goes to the backup")
        await wait_for(
            pilot,
            lambda: client.backup.status().keys_total == 1 and client.backup.status().up_to_date,
            "our room key backed up",
        )
        app.clear_notifications()
        await pilot.press("f7")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, EncryptionHealthScreen) and app.screen.health is not None
            ),
            "the health report",
        )
        app.clear_notifications()
        await wait_for(pilot, lambda: True, "settling")
        freeze_cursors(app)
        save_screenshot("encryption_health", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# --------------------------------------------------------------------------- a real new login


async def _history_with_recovery(
    synapse: SynapseServer, alice_user: RegisteredUser, bob_user: RegisteredUser, tmp_path: Path
) -> tuple[MatrixClient, MatrixClient, str, list[str], Any]:
    """Alice and bob in an encrypted room with four messages under four room keys, and
    alice's recovery set up with every key in the backup."""
    alice = await client_for(synapse, alice_user, tmp_path / "a")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    room = await encrypted_room(alice, "history", [bob_user.user_id])
    await join(bob, room)
    await until(lambda: alice.rooms[room].joined_count == 2, "bob's join")
    view = await alice.open_room(room)
    texts = [f"old message {n}" for n in range(4)]
    for text in texts:
        await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
        await bob.send_message(room, text)
        await shown(view, text)
    setup = await alice.recovery.set_up()
    await until(
        lambda: alice.backup.status().up_to_date and alice.backup.status().keys_total >= 4,
        "the backup",
    )
    return alice, bob, room, texts, setup


async def _open_and_read(
    pilot: Pilot[None], app: TuiClientApp, room: str, texts: list[str]
) -> list[Any]:
    """Open ``room`` and wait until its latest ``texts`` are shown decrypted; their items."""
    app.open_room(room)
    chat = app.chat_screen
    assert chat is not None
    await wait_for(
        pilot,
        lambda: (
            chat.view is not None
            and chat.view.room_id == room
            and all(t in [i.body for i in chat.query_one(TimelineView).items] for t in texts[-2:])
        ),
        "the history decrypted",
        timeout=60,
    )
    return [i for i in chat.query_one(TimelineView).items if i.body in texts]


async def test_closing_the_dialog_does_not_stop_the_restore(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, memory_keyring: None
) -> None:
    import asyncio

    from ..engine.support import Wire

    alice_user: RegisteredUser = make_user("alice")
    alice, bob, room, texts, setup = await _history_with_recovery(
        synapse, alice_user, make_user("bob"), tmp_path
    )
    wire = Wire()
    gate = asyncio.Event()

    async def held(_request: Any) -> None:
        await gate.wait()  # then forwarded to Synapse

    wire.inject(lambda r: r.method == "GET" and r.url.path.endswith("/room_keys/keys"), held)
    try:
        fresh = await MatrixClient.login(
            alice_user.user_id,
            alice_user.password,
            homeserver=synapse.base_url,
            base_dir=tmp_path / "new",
            long_poll_ms=500,
            transport=wire.transport(),
        )
        app = TuiClientApp(client=fresh, base_dir=tmp_path / "new")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, ChoiceDialog),
                "the offer to restore",
                timeout=60,
            )
            await _choose(pilot, app, "key")
            await wait_for(
                pilot, lambda: isinstance(app.screen, RestoreDialog), "the restore dialog"
            )
            dialog = app.screen
            assert isinstance(dialog, RestoreDialog)
            dialog.query_one("#restore-input", Input).value = setup.recovery_key
            await pilot.click("#restore")
            # (the restore's worker is running: wait without waiting for idle workers)
            for _ in range(1200):
                if (
                    fresh.recovery.progress is not None
                    and fresh.recovery.progress.stage == "downloading"
                ):
                    break
                await pilot.pause(0.05)
            assert (
                fresh.recovery.progress is not None
                and fresh.recovery.progress.stage == "downloading"
            )
            # Closed while the backup is on its way: the restore goes on, and says how it ended.
            await pilot.click("#close")
            await wait_for(
                pilot, lambda: not isinstance(app.screen, RestoreDialog), "the dialog closed"
            )
            gate.set()
            await wait_for(
                pilot,
                lambda: (
                    fresh.recovery.progress is not None and fresh.recovery.progress.stage == "done"
                ),
                "the restore to finish",
                timeout=60,
            )
            assert fresh.recovery.progress.imported >= 4
            await wait_for(
                pilot,
                lambda: any("Key backup restore finished" in n.message for n in app._notifications),
                "the notice",
            )
            assert await _open_and_read(pilot, app, room, texts)
    finally:
        await alice.close()
        await bob.close()
        await wire.aclose()


async def test_a_new_login_restores_its_history_with_a_progress_bar(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, memory_keyring: None
) -> None:
    alice_user: RegisteredUser = make_user("alice")
    alice, bob, room, texts, setup = await _history_with_recovery(
        synapse, alice_user, make_user("bob"), tmp_path
    )
    try:
        fresh = await MatrixClient.login(
            alice_user.user_id,
            alice_user.password,
            homeserver=synapse.base_url,
            base_dir=tmp_path / "new",
            long_poll_ms=500,
        )
        fresh.recovery.restore_batch = 1  # one key per step: the bar moves
        seen: list[KeyRestoreProgress] = []
        fresh.subscribe(lambda u: seen.append(u) if isinstance(u, KeyRestoreProgress) else None)
        app = TuiClientApp(client=fresh, base_dir=tmp_path / "new")
        async with app.run_test(size=SIZE) as pilot:
            # Offered at once: the account has secret storage and this session is not verified.
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, ChoiceDialog),
                "the offer to restore",
                timeout=60,
            )
            await _choose(pilot, app, "key")
            await wait_for(
                pilot, lambda: isinstance(app.screen, RestoreDialog), "the restore dialog"
            )
            dialog = app.screen
            assert isinstance(dialog, RestoreDialog)
            field = dialog.query_one("#restore-input", Input)
            # A wrong key first: said plainly, nothing changed, the field is back.
            field.value = "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"
            await pilot.click("#restore")
            await wait_for(
                pilot, lambda: not dialog.running and not field.disabled, "the refusal", timeout=60
            )
            assert "does not unlock" in _shown_text(dialog, "#restore-status")
            assert await fresh.encryption.call(fresh.encryption.machine.secret_names) == []  # type: ignore[union-attr]
            field.value = setup.recovery_key
            await pilot.click("#restore")
            await wait_for(pilot, lambda: dialog.result is not None, "the restore", timeout=60)
            bar = dialog.query_one("#restore-progress", ProgressBar)
            restoring = [p for p in seen if p.stage == "restoring"]
            assert len(restoring) >= 4 and [p.done for p in restoring] == sorted(
                p.done for p in restoring
            )
            assert bar.total is not None and bar.progress == bar.total >= 4
            status = _shown_text(dialog, "#restore-status")
            assert "✓ This session is verified." in status and "room keys restored" in status
            await pilot.click("#close")
            # The history, decrypted in place, marked as from a key whose sender is unproven.
            items = await _open_and_read(pilot, app, room, texts)
            assert items and all(i.trust == "unauthenticated" for i in items)
    finally:
        await alice.close()
        await bob.close()
