"""Encryption actions of the chat screen: turn it on in a room, export and import room keys."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...crypto import EncryptionError
from ...crypto.key_export import KeyExportError
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ..messages import ActionFailed
from .dialogs import ConfirmDialog, PromptDialog

if TYPE_CHECKING:
    from .chat import ChatScreen

_FAILURES = (
    MatrixError,
    NetworkError,
    EncryptionError,
    KeyExportError,
    OSError,
    UnicodeDecodeError,
)


def _run(screen: ChatScreen, work: Callable[[], Awaitable[str]]) -> None:
    async def run() -> None:
        try:
            text = await work()
        except _FAILURES as error:
            screen.post_message(ActionFailed(f"Failed: {error}"))
            return
        screen.app.notify(clean_line(text), markup=False)

    screen.run_worker(run(), exit_on_error=False)


def can_enable_encryption(screen: ChatScreen) -> bool:
    """The open room is joined, not yet encrypted, and we may change its encryption state."""
    room = screen.current_room
    summary = screen.client.rooms.get(room) if room else None
    view = screen.view
    return bool(
        summary is not None
        and summary.membership == "join"
        and not summary.encrypted
        and view is not None
        and view.can_send_state("m.room.encryption")
    )


def enable_encryption(screen: ChatScreen) -> None:
    """Turn on end-to-end encryption in the open room, after a confirmation."""
    room = screen.current_room
    if room is None or not can_enable_encryption(screen):
        screen.app.notify("Encryption cannot be turned on here.", severity="warning")
        return

    def confirmed(yes: bool | None) -> None:
        if yes:

            async def work() -> str:
                await screen.client.enable_encryption(room)
                return "End-to-end encryption is on in this room."

            _run(screen, work)

    screen.app.push_screen(
        ConfirmDialog(
            "Turn on end-to-end encryption here? It cannot be turned off again, and bots or "
            "bridges that do not support encryption will stop seeing messages.",
            "Turn on",
            danger=True,
        ),
        confirmed,
    )


def _default_export_path() -> str:
    return str(Path.home() / f"tui_client-room-keys-{time.strftime('%Y-%m-%d')}.txt")


def export_keys(screen: ChatScreen) -> None:
    """Ask for a file and a passphrase, then export every room key (Element's format)."""

    def got_path(path: str | None) -> None:
        if not path:
            return
        screen.app.push_screen(
            PromptDialog("A passphrase to protect the file", password=True),
            lambda p: got_passphrase(path, p),
        )

    def got_passphrase(path: str, passphrase: str | None) -> None:
        if not passphrase:
            return
        screen.app.push_screen(
            PromptDialog("The same passphrase again", password=True),
            lambda again: confirmed(path, passphrase, again),
        )

    def confirmed(path: str, passphrase: str, again: str | None) -> None:
        if again is None:
            return
        if again != passphrase:
            screen.post_message(ActionFailed("The passphrases differ; nothing was exported."))
            return

        async def work() -> str:
            count = await screen.client.export_room_keys(Path(path).expanduser(), passphrase)
            return f"Exported {count} room keys to {path} (readable only by you)."

        _run(screen, work)

    screen.app.push_screen(
        PromptDialog("Export room keys to the file", value=_default_export_path()), got_path
    )


def import_keys(screen: ChatScreen) -> None:
    """Ask for an export file and its passphrase, then import its room keys."""

    def got_path(path: str | None) -> None:
        if not path:
            return
        screen.app.push_screen(
            PromptDialog("The file's passphrase", password=True), lambda p: got_passphrase(path, p)
        )

    def got_passphrase(path: str, passphrase: str | None) -> None:
        if not passphrase:
            return

        async def work() -> str:
            total, imported = await screen.client.import_room_keys(
                Path(path).expanduser(), passphrase
            )
            return f"Imported {imported} new room keys ({total} in the file); older messages decrypt now."

        _run(screen, work)

    screen.app.push_screen(
        PromptDialog("Import room keys from the file", "path to an exported key file"), got_path
    )
