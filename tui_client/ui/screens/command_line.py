"""The vim mode's ``:`` command line: ``:q`` / ``:quit``, and the composer's commands
without their slash (``:join #room:server``, ``:me waves``, ``:topic ...``)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Static

from ...protocol.commands import COMMANDS, CommandError, parse_command
from ...protocol.sanitize import clean_line
from ..messages import ComposerSubmitted

QUIT_COMMANDS = frozenset({"q", "q!", "quit", "quit!", "qa", "qa!", "qall"})


class CommandLine(ModalScreen[str | None]):
    """One line at the bottom, after a ``:``; Enter runs it, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialogs.cancel")]

    DEFAULT_CSS = """
    CommandLine {
        align: left bottom;
        background: $background 30%;
    }
    CommandLine > Horizontal {
        height: 1;
        width: 100%;
        background: $panel;
    }
    CommandLine #colon {
        width: 1;
    }
    CommandLine Input {
        border: none;
        height: 1;
        padding: 0;
        width: 1fr;
    }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(":", id="colon", markup=False)
            yield Input(id="command", compact=True)

    @on(Input.Submitted)
    def _run(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        """Escape."""
        self.dismiss(None)


def open_command_line(origin: Widget) -> None:
    """Show the command line; what is typed runs from ``origin`` (a composer, a list)."""
    origin.app.push_screen(CommandLine(), lambda line: run_command_line(origin, line or ""))


def run_command_line(origin: Widget, line: str) -> None:
    """Run a command line: quit, or hand ``/<line>`` to the chat screen as the composer
    would (so ``:me waves`` sends an emote to the open room)."""
    line = line.strip()
    if not line:
        return
    if line in QUIT_COMMANDS:
        origin.app.exit()
        return
    try:
        command = parse_command("/" + line)
    except CommandError as error:
        origin.notify(
            clean_line(str(error).replace("/help", ":help"), 200), severity="error", markup=False
        )
        return
    if command is None or command.name not in COMMANDS:
        return
    origin.post_message(ComposerSubmitted("/" + line))
