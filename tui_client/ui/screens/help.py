"""The help screen: key bindings and composer commands."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...protocol.commands import COMMANDS

KEYS = (
    ("Ctrl+K", "jump to a room (fuzzy search)"),
    ("Ctrl+P", "command palette"),
    ("Alt+Up / Alt+Down", "previous / next room"),
    ("Tab / Shift+Tab", "move focus: rooms, timeline, composer"),
    ("F1", "this help"),
    ("F2", "show or hide the member list (Enter on a member: DM, remove, ban)"),
    ("F3", "explore public rooms (search, other servers, preview, join)"),
    ("F4", "the selected space: every room in it, joined or not"),
    ("F6", "your sessions and devices: verify, rename, sign out"),
    ("F7", "encryption health: recovery key, key backup, undecryptable messages"),
    ("Ctrl+N", "create a room (Ctrl+P for a space or a direct chat)"),
    ("Ctrl+O", "join by alias, room ID, matrix.to link or matrix: URI"),
    ("Enter", "send (in the composer)"),
    ("Shift+Enter, Ctrl+J, Alt+Enter", "new line in the composer"),
    ("Up (empty composer)", "edit your last message"),
    ("Esc", "cancel reply or edit; back to the composer"),
    ("In the timeline", "Up/Down select a message, PgUp/PgDn scroll, End latest"),
    ("  r / e / + / d", "reply / edit / react / delete the selected message"),
    ("  R / X", "retry / discard a message that failed to send"),
    ("  o", "open or join the room the selected message links to"),
    ("  s", "save the selected message's file (decrypted) to your Downloads folder"),
    ("Spaces sidebar", "Home: all rooms, People: direct chats, a space: its rooms"),
    ("In the directory", "j join, p preview, t whole topic, Ctrl+F search, Ctrl+S servers"),
    ("In a space", "j join, a join all suggested, s join the space, d depth"),
    ("In the devices screen", "v verify, r rename, s sign out, k key sharing, u verify the user"),
    ("In encryption health", "s set up recovery, k recovery key, b restore backup, x reset"),
    ("Beside a message's time", "✓ verified person, ! unverified device, ? key from a backup or file"),
    ("Ctrl+Q", "quit"),
)


def help_text() -> Text:
    """The help as styled plain text."""
    text = Text()
    text.append("Keys\n", style=Style(bold=True, underline=True))
    for key, what in KEYS:
        text.append(f"  {key:<34}", style=Style(bold=True))
        text.append(what + "\n")
    text.append("\nCommands (type in the composer)\n", style=Style(bold=True, underline=True))
    for spec in COMMANDS.values():
        text.append(f"  {spec.usage:<34}", style=Style(bold=True))
        text.append(spec.help + "\n")
    text.append("\n  //text sends a message that starts with a slash.\n", style=Style(dim=True))
    return text


class HelpScreen(ModalScreen[None]):
    """Shows :func:`help_text`."""

    BINDINGS = [Binding("escape,f1,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(help_text(), id="help-text")

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)
