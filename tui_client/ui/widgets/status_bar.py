"""The status line: the vim mode, sync status (with a live countdown while retrying),
account, notices."""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...engine.updates import SyncState, SyncStatus

STATUS_COLOURS = {
    SyncStatus.CONNECTED: "#98c379",
    SyncStatus.SYNCING: "#61afef",
    SyncStatus.STARTING: "#61afef",
    SyncStatus.BACKING_OFF: "#e5c07b",
    SyncStatus.OFFLINE: "#e06c75",
    SyncStatus.LOGGED_OUT: "#e06c75",
    SyncStatus.STOPPED: "#8a8a8a",
}


class StatusBar(Widget):
    """One line at the bottom of the chat screen."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    state: reactive[SyncState] = reactive(SyncState(SyncStatus.STARTING), always_update=True)
    account: reactive[str] = reactive("")
    message: reactive[str] = reactive("")
    #: The composer's vim mode ("NORMAL" / "INSERT"), empty when the vim mode is off.
    vim_mode: reactive[str] = reactive("")
    #: Why the cache cannot be written ("the disk is full"), empty when it can.
    storage: reactive[str] = reactive("")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.state.retry_at is not None:
            self.refresh()

    def render(self) -> Text:
        """Status, account, and the latest notice."""
        text = Text()
        if self.vim_mode:
            text.append(f" {self.vim_mode} ", style=Style(bold=True, reverse=True))
        if self.storage:
            # First: a narrow status line cuts its end, and this matters most.
            text.append(
                f" ⚠ {self.storage}: nothing new is saved ",
                style=Style(color="#e06c75", bold=True, reverse=True),
            )
        colour = STATUS_COLOURS.get(self.state.status, "#8a8a8a")
        text.append(" ● ", style=Style(color=colour, bold=True))
        text.append(self.state.describe(time.time()), style=Style(color=colour))
        if self.state.detail and self.state.status not in (
            SyncStatus.CONNECTED,
            SyncStatus.SYNCING,
        ):
            text.append(f" ({self.state.detail})", style=Style(dim=True))
        if self.account:
            text.append("  │  " + self.account, style=Style(dim=True))
        if self.message:
            text.append("  │  " + self.message)
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text
