"""Recovery from the UI: set it up, restore from the recovery key, the encryption health screen.

- :func:`set_up_recovery`: a recovery key (generated, shown once in
  :class:`RecoveryKeyDialog`, optionally saved to a 0600 file) or a passphrase (asked
  twice); the engine does the rest (``client.recovery.set_up``).
- :class:`RestoreDialog`: the recovery key or passphrase of a new login; the device is
  verified, then the room keys are restored with a progress bar while the history
  decrypts in place. A wrong key says so and changes nothing.
- :class:`EncryptionHealthScreen` (F7): cross-signing, this session, secret storage,
  the key backup (trusted, up to date, keys counted), secrets cached here, one-time
  keys on the server, and the messages that could not be decrypted with their fixes;
  the resets, each behind a warning of what it loses.
- :func:`handle_update` routes the engine's progress and suggestions; :func:`commands`
  feeds the command palette.

Everything shown is built from ``Text`` (server-provided text is sanitised), never markup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, ProgressBar, Static

from ...crypto import EncryptionError
from ...crypto.backup import BackupError
from ...engine.recovery import (
    EncryptionHealth,
    RecoveryError,
    RecoveryResult,
    RestoreSummary,
    save_recovery_key,
)
from ...engine.uia import AuthCancelled, AuthFailed, AuthUnsupported
from ...engine.updates import BackupStatus, KeyRestoreProgress, RecoverySuggested, Update
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ..update_routes import UpdateRoutes
from ..widgets.key_footer import KeyFooter
from .dialogs import ChoiceDialog, ConfirmDialog, PromptDialog
from .health_report import BAD, DIM, GOOD, health_text

if TYPE_CHECKING:
    from textual.app import App

    from ...engine.client import MatrixClient

_FAILURES = (
    RecoveryError,
    MatrixError,
    NetworkError,
    EncryptionError,
    BackupError,
    AuthCancelled,
    AuthFailed,
    AuthUnsupported,
    OSError,
)


def _sentence(error: BaseException) -> str:
    text = clean_line(str(error), 400) or type(error).__name__
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- the key, shown once


class RecoveryKeyDialog(ModalScreen[None]):
    """The new recovery key, shown once: write it down, or save it to a file (mode 0600)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "done", "Done")]

    DEFAULT_CSS = """
    RecoveryKeyDialog .dialog { width: 76; }
    RecoveryKeyDialog #recovery-key {
        height: 3;
        content-align: center middle;
        text-style: bold;
        border: round $accent;
        margin: 1 0;
    }
    RecoveryKeyDialog #recovery-key-status { height: auto; margin-top: 1; }
    RecoveryKeyDialog #recovery-key-intro { height: auto; }
    """

    def __init__(self, recovery_key: str, user_id: str, *, passphrase: bool = False) -> None:
        super().__init__()
        self._key = recovery_key
        self._user_id = user_id
        self._passphrase = passphrase
        self.saved_to: Path | None = None

    def compose(self) -> ComposeResult:
        if self._passphrase:
            intro = (
                "Your passphrase now unlocks your encrypted messages on a new device. This key "
                "does too, should you forget the passphrase: keep it somewhere safe."
            )
        else:
            intro = (
                "It unlocks your encrypted messages on a new device. Write it down or save it "
                "somewhere safe: it is shown only this once, and nobody can recover it for you."
            )
        with Vertical(classes="dialog"):
            yield Label("Your recovery key", classes="dialog-title")
            yield Static(Text(intro), id="recovery-key-intro")
            yield Static(Text(self._key), id="recovery-key")
            with Horizontal(classes="dialog-buttons"):
                yield Button("I have saved it", variant="primary", id="done")
                yield Button("Save to file…", id="save-key")
            yield Static(id="recovery-key-status")

    def on_mount(self) -> None:
        self.query_one("#done", Button).focus()

    @on(Button.Pressed, "#save-key")
    def action_save(self) -> None:
        """Ask where, then write the key there (readable only by the user)."""
        localpart = self._user_id.lstrip("@").split(":", 1)[0]
        default = str(Path.home() / f"{clean_line(localpart, 40) or 'matrix'}-recovery-key.txt")
        self.app.push_screen(
            PromptDialog("Save the recovery key to the file", value=default), self._save
        )

    def _save(self, path: str | None) -> None:
        if not path:
            return
        target = Path(path).expanduser()
        try:
            save_recovery_key(target, self._key, self._user_id)
        except OSError as error:
            self._status(Text(f"Not saved: {_sentence(error)}", style=Style(color="red")))
            return
        self.saved_to = target
        self._status(
            Text(f"Saved to {clean_line(str(target), 200)} (readable only by you).", style=GOOD)
        )

    def _status(self, text: Text) -> None:
        self.query_one("#recovery-key-status", Static).update(text)

    @on(Button.Pressed, "#done")
    def action_done(self) -> None:
        """Close (after a last reminder if the key was not saved to a file)."""
        if self.saved_to is not None:
            self.dismiss(None)
            return

        def closed(yes: bool | None) -> None:
            if yes:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmDialog("Close? The recovery key will not be shown again.", "I have it"), closed
        )


# --------------------------------------------------------------------------- restore


class RestoreDialog(ModalScreen[None]):
    """Enter the recovery key (or passphrase): verify this session and restore the room keys.

    With ``from_backup`` the backup key this device holds is used, and nothing is asked.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    DEFAULT_CSS = """
    RestoreDialog .dialog { width: 80; }
    RestoreDialog #restore-intro { margin-bottom: 1; }
    RestoreDialog #restore-input { margin-bottom: 1; }
    RestoreDialog #restore-status { height: auto; margin-top: 1; }
    RestoreDialog #restore-progress { margin-top: 1; width: 100%; }
    RestoreDialog #restore-progress Bar { width: 1fr; }
    """

    def __init__(self, client: MatrixClient, *, from_backup: bool = False) -> None:
        super().__init__()
        self.client = client
        self.from_backup = from_backup
        self.result: RecoveryResult | RestoreSummary | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        if self.from_backup:
            title = "Restore room keys from the key backup"
            intro = "This device holds the backup key: every room key in the backup is restored."
        else:
            title = "Restore from your recovery key"
            intro = (
                "Enter your recovery key (12 groups of 4 characters) or your recovery passphrase. "
                "This session then becomes verified, and your encrypted history is restored from "
                "the key backup."
            )
        with Vertical(classes="dialog"):
            yield Label(title, classes="dialog-title")
            yield Static(Text(intro), id="restore-intro")
            if not self.from_backup:
                yield Input(
                    placeholder="recovery key or passphrase", password=True, id="restore-input"
                )
            progress = ProgressBar(total=None, show_eta=False, id="restore-progress")
            progress.display = False
            yield progress
            yield Static(id="restore-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Restore", variant="primary", id="restore")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        if self.from_backup:
            self.query_one("#restore", Button).focus()
        else:
            self.query_one("#restore-input", Input).focus()
        current = self.client.recovery.progress
        if current is not None and not current.finished and self.client.recovery.busy:
            self.show_progress(current)

    @on(Input.Submitted)
    @on(Button.Pressed, "#restore")
    def _start(self) -> None:
        if self.running:
            return
        text = "" if self.from_backup else self.query_one("#restore-input", Input).value
        if not self.from_backup and not text.strip():
            self._status(Text("Enter your recovery key or passphrase.", style=BAD))
            return
        self.running = True
        self.query_one("#restore", Button).disabled = True
        if not self.from_backup:
            self.query_one("#restore-input", Input).disabled = True
        self._status(
            Text("Unlocking…" if not self.from_backup else "Downloading the backup…", style=DIM)
        )
        self._restore(text)

    @work(group="restore", exclusive=True, exit_on_error=False)
    async def _restore(self, text: str) -> None:
        recovery = self.client.recovery
        # The engine owns the work: closing this dialog stops only the waiting (shield).
        try:
            if self.from_backup:
                summary = await asyncio.shield(recovery.in_background(recovery.restore_backup()))
                self.result = summary
                self._finished(self._summary_text(summary, []), ok=True)
            else:
                result = await asyncio.shield(recovery.in_background(recovery.recover(text)))
                self.result = result
                self._finished(self._result_text(result), ok=True)
        except _FAILURES as error:
            self._finished(Text(_sentence(error), style=Style(color="red")), ok=False)

    def _finished(self, text: Text, *, ok: bool) -> None:
        self.running = False
        self._status(text)
        restore = self.query_one("#restore", Button)
        if ok:
            restore.display = False
            self.query_one("#close", Button).focus()
        else:
            restore.disabled = False
            if not self.from_backup:
                field = self.query_one("#restore-input", Input)
                field.disabled = False
                field.focus()

    def _result_text(self, result: RecoveryResult) -> Text:
        text = Text()
        if result.device_verified:
            text.append("✓ This session is verified.\n", style=GOOD)
        else:
            text.append("This session could not be verified with your recovery.\n", style=BAD)
        if result.restore is not None:
            text.append_text(self._summary_text(result.restore, []))
        for problem in result.problems:
            text.append(f"\n! {clean_line(problem, 300)}", style=BAD)
        return text

    @staticmethod
    def _summary_text(summary: RestoreSummary, _problems: list[str]) -> Text:
        text = Text(
            f"✓ {summary.imported:,} room keys restored from backup version {clean_line(summary.version, 40)}",
            style=GOOD,
        )
        if summary.redecrypted:
            text.append(f"; {summary.redecrypted:,} messages decrypted in place", style=GOOD)
        text.append(".")
        if summary.failures:
            text.append(
                f"\n! {len(summary.failures)} damaged backup entries were skipped (the rest is restored).",
                style=BAD,
            )
        return text

    def show_progress(self, progress: KeyRestoreProgress) -> None:
        """Follow the engine's progress."""
        bar = self.query_one("#restore-progress", ProgressBar)
        labels = {
            "unlocking": "Unlocking secret storage…",
            "verifying": "Verifying this session with your cross-signing keys…",
            "downloading": "Downloading the key backup…",
        }
        if progress.stage == "restoring":
            bar.display = True
            bar.update(total=max(progress.total, 1), progress=progress.done)
            line = f"Restoring room keys: {progress.done:,} of {progress.total:,}"
            if progress.failed:
                line += f" ({progress.failed} damaged entries skipped)"
            if not self.running:
                return
            self._status(Text(line, style=DIM))
        elif progress.stage == "done" and progress.total:
            bar.display = True
            bar.update(total=max(progress.total, 1), progress=progress.total)
        elif progress.stage in labels and self.running:
            self._status(Text(labels[progress.stage], style=DIM))

    def _status(self, text: Text) -> None:
        self.query_one("#restore-status", Static).update(text)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Close (a restore under way goes on in the background)."""
        self.dismiss(None)


class EncryptionHealthScreen(Screen[None]):
    """Everything about encryption on this device and account, and what to do about it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("s", "set_up", "Set up recovery"),
        Binding("k", "restore_key", "Recovery key"),
        Binding("b", "restore_backup", "Restore backup"),
        Binding("q", "request_keys", "Request keys"),
        Binding("i", "import_keys", "Import file"),
        Binding("x", "reset", "Reset…"),
        Binding("f5", "reload", "Refresh"),
    ]

    DEFAULT_CSS = """
    EncryptionHealthScreen #health-title {
        height: auto;
        padding: 0 1;
        background: $boost;
        text-style: bold;
    }
    EncryptionHealthScreen #health-body { height: 1fr; padding: 1 2; }
    EncryptionHealthScreen #health-report { height: auto; }
    """

    def __init__(self, client: MatrixClient, *, check_backup: bool = True) -> None:
        super().__init__()
        self.client = client
        self.health: EncryptionHealth | None = None
        self._check_backup = check_backup

    def compose(self) -> ComposeResult:
        title = Text(
            f"Encryption health · {clean_line(self.client.user_id, 80)} · session {clean_line(self.client.device_id, 40)}"
        )
        yield Static(title, id="health-title")
        with VerticalScroll(id="health-body"):
            yield Static(Text("Checking…", style=DIM), id="health-report")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.reload()

    @work(group="health", exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        """Read everything again (the backup is checked on the server)."""
        try:
            health = await self.client.recovery.health(check_backup=self._check_backup)
        except _FAILURES as error:
            for report in self.query("#health-report").results(Static):
                report.update(Text(f"Could not check: {_sentence(error)}", style=BAD))
            return
        self.show(health)

    def show(self, health: EncryptionHealth) -> None:
        """Render a report."""
        self.health = health
        # (an update may come while the screen is being built or taken down)
        for report in self.query("#health-report").results(Static):
            report.update(health_text(health))

    def handle_update(self, update: Update) -> None:
        """Follow the backup's progress."""
        if isinstance(update, BackupStatus) and self.health is not None:
            self.show(replace(self.health, backup=update))

    def action_close(self) -> None:
        """Back."""
        self.dismiss(None)

    def action_reload(self) -> None:
        """F5."""
        self.reload()

    def action_set_up(self) -> None:
        """Set up recovery (or a new recovery key)."""
        set_up_recovery(self.app, self.client, after=self.reload)

    def action_restore_key(self) -> None:
        """Enter the recovery key."""
        self.app.push_screen(RestoreDialog(self.client), self._reload_after)

    def action_restore_backup(self) -> None:
        """Restore with the backup key this device holds."""
        if self.health is not None and not self.health.backup.key_cached:
            self.notify(
                "This device does not hold the backup key: press k to enter your recovery key.",
                markup=False,
            )
            return
        self.app.push_screen(RestoreDialog(self.client, from_backup=True), self._reload_after)

    def _reload_after(self, _result: None) -> None:
        self.reload()

    def action_request_keys(self) -> None:
        """Ask our other devices for every missing key."""

        async def work() -> str:
            asked = await self.client.recovery.request_missing_keys()
            if not asked:
                return (
                    "No new request: the keys were asked for already, or you have no other session."
                )
            return f"Asked your other sessions for {asked} keys; messages decrypt as the keys arrive (only from verified sessions)."

        _run(self.app, work, after=self.reload)

    def action_import_keys(self) -> None:
        """Import a key file (the chat screen's flow)."""
        from . import security

        chat = getattr(self.app, "chat_screen", None)
        if chat is not None:
            security.import_keys(chat)

    def action_reset(self) -> None:
        """The resets, each with its warning."""
        choose_reset(self.app, self.client, after=self.reload)


# --------------------------------------------------------------------------- flows


def _run(
    app: App[Any], work: Callable[[], Awaitable[str]], *, after: Callable[[], object] | None = None
) -> None:
    async def run() -> None:
        try:
            message = await work()
        except _FAILURES as error:
            app.notify(_sentence(error), severity="error", markup=False, timeout=10)
        else:
            if message:
                app.notify(clean_line(message, 300), markup=False, timeout=8)
        if after is not None:
            after()

    app.run_worker(run(), group="recovery", exit_on_error=False)


def set_up_recovery(
    app: App[Any],
    client: MatrixClient,
    *,
    new_backup: bool = False,
    reset_identity: bool = False,
    after: Callable[[], object] | None = None,
) -> None:
    """Choose a recovery key or a passphrase, then set up recovery and show the key once."""

    def chosen(choice: str | None) -> None:
        if choice == "key":
            start(None)
        elif choice == "passphrase":
            app.push_screen(
                PromptDialog("A recovery passphrase (not your account password)", password=True),
                first,
            )

    def first(passphrase: str | None) -> None:
        if not passphrase:
            return
        if len(passphrase) < 8:
            app.notify(
                "Use a passphrase of at least 8 characters (a few words is best).",
                severity="warning",
                markup=False,
            )
            return
        app.push_screen(
            PromptDialog("The same passphrase again", password=True),
            lambda again: second(passphrase, again),
        )

    def second(passphrase: str, again: str | None) -> None:
        if again is None:
            return
        if again != passphrase:
            app.notify(
                "The passphrases differ; nothing was set up.", severity="error", markup=False
            )
            return
        start(passphrase)

    def start(passphrase: str | None) -> None:
        async def run() -> None:
            app.notify("Setting up recovery…", markup=False, timeout=4)
            try:
                setup = await client.recovery.set_up(
                    passphrase,
                    new_backup=new_backup,
                    delete_old_backup=new_backup,
                    reset_identity=reset_identity,
                )
            except _FAILURES as error:
                app.notify(_sentence(error), severity="error", markup=False, timeout=12)
                return
            finally:
                if after is not None:
                    after()
            app.push_screen(
                RecoveryKeyDialog(setup.recovery_key, client.user_id, passphrase=setup.passphrase)
            )

        app.run_worker(run(), group="recovery", exit_on_error=False)

    app.push_screen(
        ChoiceDialog(
            "Protect your recovery with",
            [
                ("key", "A recovery key, generated for you (recommended)"),
                ("passphrase", "A passphrase you choose"),
            ],
        ),
        chosen,
    )


def start_set_up(app: App[Any], client: MatrixClient) -> None:
    """Set up recovery; if the account has it already, warn that the old key stops working."""

    async def run() -> None:
        existing = await client.db.run(client.cache.account_data, "m.secret_storage.default_key")
        if existing is None:
            set_up_recovery(app, client)
            return
        app.push_screen(
            ConfirmDialog(
                "This account already has recovery set up. A new recovery key replaces the old one, "
                "which stops working (your backup and identity are kept). Continue?",
                "New recovery key",
            ),
            lambda yes: set_up_recovery(app, client) if yes else None,
        )

    app.run_worker(run(), group="recovery", exit_on_error=False)


RESETS = (
    (
        "recovery",
        "New recovery key (lost the old one; this device still holds your keys)",
        "Make a new recovery key? The old one stops working; your backup and identity are kept.",
    ),
    (
        "backup",
        "New key backup (the old backup is deleted)",
        "Make a new key backup and delete the old one? Keys that only the old backup holds (from "
        "sessions signed out since) are lost: their messages stay unreadable on new devices. "
        "You get a new recovery key.",
    ),
    (
        "identity",
        "New cross-signing identity (lost every verified session)",
        "Reset your cross-signing identity? Everyone who verified you, and your other sessions, "
        "will see your identity change and must verify you again; until then they do not trust "
        "this session. If this device cannot open your key backup, a new one is made and keys "
        "only the old one holds are lost. Your password is asked. You get a new recovery key.",
    ),
)


def choose_reset(
    app: App[Any], client: MatrixClient, *, after: Callable[[], object] | None = None
) -> None:
    """Pick a reset, confirm its warning, do it."""
    warnings = {key: warning for key, _label, warning in RESETS}

    def chosen(choice: str | None) -> None:
        if choice is None:
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            set_up_recovery(
                app,
                client,
                new_backup=choice == "backup",
                reset_identity=choice == "identity",
                after=after,
            )

        app.push_screen(ConfirmDialog(warnings[choice], "Reset", danger=True), confirmed)

    app.push_screen(
        ChoiceDialog("What did you lose?", [(key, label) for key, label, _warning in RESETS]),
        chosen,
    )


def offer_restore(app: App[Any], client: MatrixClient, text: str) -> None:
    """A new login of an account with secret storage: offer the recovery key."""

    def chosen(choice: str | None) -> None:
        if choice == "key":
            app.push_screen(RestoreDialog(client))
        elif choice == "verify":
            security = getattr(app, "security", None)
            if security is not None:
                security.verify_this_session()

    app.push_screen(
        ChoiceDialog(
            clean_line(text, 400),
            [
                ("key", "Enter your recovery key or passphrase"),
                ("verify", "Verify from another of your sessions"),
                ("later", "Not now"),
            ],
        ),
        chosen,
    )


def handle_update(app: App[Any], client: MatrixClient | None, update: Update) -> None:
    """Route the engine's recovery updates to the screens that show them."""
    if client is None:
        return
    UpdateRoutes().on(KeyRestoreProgress, partial(_restore_progress, app)).on(
        BackupStatus, partial(_backup_status, app)
    ).on(RecoverySuggested, partial(_suggested, app, client)).dispatch(update)


def _restore_progress(app: App[Any], update: KeyRestoreProgress) -> None:
    shown = False
    for screen in app.screen_stack:
        if isinstance(screen, RestoreDialog) and screen.is_mounted:
            screen.show_progress(update)
            shown = True
    if not shown and update.finished:
        # The dialog was closed while the restore went on: say how it ended.
        if update.stage == "done" and update.total:
            message = f"Key backup restore finished: {update.imported:,} room keys restored"
            message += f", {update.failed} damaged entries skipped." if update.failed else "."
            app.notify(message, markup=False, timeout=10)
        elif update.stage == "done":
            detail = f": {clean_line(update.detail, 300)}" if update.detail else "."
            app.notify(f"Recovery finished{detail}", markup=False, timeout=10)
        else:
            app.notify(
                f"Key backup restore failed: {clean_line(update.detail, 300)}",
                markup=False,
                severity="error",
                timeout=10,
            )


def _backup_status(app: App[Any], update: BackupStatus) -> None:
    for screen in app.screen_stack:
        if isinstance(screen, EncryptionHealthScreen) and screen.is_mounted:
            screen.handle_update(update)


def _suggested(app: App[Any], client: MatrixClient, update: RecoverySuggested) -> None:
    if update.kind == "restore":
        offer_restore(app, client, update.text)


def show_health(app: App[Any], client: MatrixClient) -> None:
    """The encryption health screen (once)."""
    if not isinstance(app.screen, EncryptionHealthScreen):
        app.push_screen(EncryptionHealthScreen(client))


def commands(app: App[Any], client: MatrixClient) -> Iterable[SystemCommand]:
    """Palette entries."""
    yield SystemCommand(
        "Encryption health",
        "Cross-signing, key backup, recovery, undecryptable messages (F7)",
        lambda: show_health(app, client),
    )
    yield SystemCommand(
        "Set up recovery",
        "A recovery key (or passphrase) and a key backup for your encrypted messages",
        lambda: start_set_up(app, client),
    )
    yield SystemCommand(
        "Restore from recovery key",
        "Verify this session and restore your encrypted history",
        lambda: app.push_screen(RestoreDialog(client)),
    )
    if client.backup.status().key_cached:
        yield SystemCommand(
            "Restore keys from backup",
            "Restore every room key from the key backup",
            lambda: app.push_screen(RestoreDialog(client, from_backup=True)),
        )
    yield SystemCommand(
        "Reset recovery",
        "New recovery key, new backup or new identity, with what each loses",
        lambda: choose_reset(app, client),
    )
