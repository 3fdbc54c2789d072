"""The help screen: the key bindings in force (the config's, else the defaults) and the
composer's commands."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...protocol.commands import COMMANDS
from ..bindings import HELP_BINDINGS
from ..keymap import CONTEXTS, KeySettings, display_keys, resolve

#: What the bindings table does not say: keys of the other screens, marks.
NOTES = (
    ("Tab / Shift+Tab", "move focus: rooms, timeline, composer"),
    ("Ctrl+P", "command palette"),
    ("Spaces sidebar", "Home: all rooms, People: direct chats, a space: its rooms"),
    ("In the directory", "j join, p preview, t whole topic, Ctrl+F search, Ctrl+S servers"),
    ("In a space", "j join, a join all suggested, s join the space, d depth"),
    ("In the devices screen", "v verify, r rename, s sign out, k key sharing, u verify the user"),
    ("In encryption health", "s set up recovery, k recovery key, b restore backup, x reset"),
    (
        "Beside a message's time",
        "✓ verified person, ! unverified device, ? key from a backup or file",
    ),
)

VIM_NOTES = (
    (
        "Composer, normal mode",
        "h l w b e 0 ^ $ j k gg G, counts (3w), x X D C dd cw ciw diw yw p P u Ctrl+R",
    ),
    ("Composer, to insert", "i a A I o O (Esc back to normal)"),
    ("Timeline and lists", "j k, gg G, Ctrl+D Ctrl+U"),
    (":", "command line: :q, :join #room:server, :me waves, :topic …"),
    ("/", "search (from the composer's normal mode)"),
)

_HEAD = Style(bold=True, underline=True)


def help_text(settings: KeySettings | None = None) -> Text:
    """The help as styled plain text: the key bindings in force, per context."""
    settings = settings or resolve({})
    text = Text()
    text.append("Keys", style=_HEAD)
    text.append(
        '  (rebind them in the config file\'s [keys.<context>]: action = "key")\n',
        style=Style(dim=True),
    )
    context = ""
    for action in settings.actions.values():
        if action.context != context:
            context = action.context
            text.append(
                f"\n {CONTEXTS.get(context, context).capitalize()} [{context}]\n",
                style=Style(bold=True),
            )
        keys = settings.keys_of(action.id)
        text.append(f"  {display_keys(keys):<22}", style=Style(bold=True))
        text.append(f"{action.name:<18}", style=Style(dim=True))
        text.append(action.description + "\n")
    text.append("\n")
    for key, what in NOTES:
        text.append(f"  {key:<40}", style=Style(bold=True))
        text.append(what + "\n")
    if settings.vim:
        text.append("\nVim mode (on)\n", style=_HEAD)
        for key, what in VIM_NOTES:
            text.append(f"  {key:<40}", style=Style(bold=True))
            text.append(what + "\n")
    text.append("\nCommands (type in the composer)\n", style=_HEAD)
    for spec in COMMANDS.values():
        text.append(f"  {spec.usage:<40}", style=Style(bold=True))
        text.append(spec.help + "\n")
    text.append("\n  //text sends a message that starts with a slash.\n", style=Style(dim=True))
    return text


class HelpScreen(ModalScreen[None]):
    """Shows :func:`help_text`."""

    BINDINGS = HELP_BINDINGS

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(help_text(getattr(self.app, "key_settings", None)), id="help-text")

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)
