"""The key bindings of the app, the chat screen, the help, the room switcher and the dialogs,
as data.

They live here, apart from their classes, so that :mod:`.keymap` (which lists every named
action for the config's ``[keys]`` and the help) reads them without importing the classes
that import it (nor, for the help and the switcher, before they are first opened: issue 13).
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

__all__ = [
    "APP_BINDINGS",
    "CHAT_BINDINGS",
    "CHOICE_BINDINGS",
    "CONFIRM_BINDINGS",
    "HELP_BINDINGS",
    "PROMPT_BINDINGS",
    "REACTION_BINDINGS",
    "SWITCHER_BINDINGS",
]

APP_BINDINGS: list[BindingType] = [
    # In every footer: how to leave should never be a question.
    Binding("ctrl+q", "quit", "Quit", show=True, priority=True, id="global.quit"),
    # Priority: the composer (a TextArea) would take the key otherwise.
    Binding("f6", "devices", "Devices", show=False, priority=True, id="global.devices"),
    Binding(
        "f7", "encryption_health", "Encryption", show=False, priority=True, id="global.encryption"
    ),
    Binding("f9", "accounts", "Accounts", show=False, priority=True, id="global.accounts"),
]

CHAT_BINDINGS: list[BindingType] = [
    # Priority: the composer (a TextArea) has its own meaning for some of these keys.
    Binding("ctrl+k", "switch_room", "Rooms", priority=True, id="global.switch_room"),
    Binding("f1", "help", "Help", priority=True, id="global.help"),
    Binding("f2", "toggle_members", "Members", priority=True, id="global.members"),
    Binding(
        "alt+up", "room_step(-1)", "Prev room", show=False, priority=True, id="global.previous_room"
    ),
    Binding(
        "alt+down", "room_step(1)", "Next room", show=False, priority=True, id="global.next_room"
    ),
    Binding("ctrl+o", "join_dialog", "Join", show=False, priority=True, id="global.join"),
    Binding(
        "ctrl+t",
        "thread_list",
        "The room's threads (all / mine)",
        show=False,
        priority=True,
        id="global.threads",
    ),
    Binding("ctrl+f", "search", "Search", show=False, priority=True, id="global.search"),
    Binding(
        "f8", "cancel_upload", "Cancel upload", show=False, priority=True, id="global.cancel_upload"
    ),
]

HELP_BINDINGS: list[BindingType] = [Binding("escape,f1,q", "close", "Close", id="dialogs.close")]

# The dialogs' (screens/dialogs.py; the reaction dialog adds its unnamed 1-8 keys).
PROMPT_BINDINGS: list[BindingType] = [Binding("escape", "cancel", "Cancel", id="dialogs.cancel")]
CONFIRM_BINDINGS: list[BindingType] = [
    Binding("escape", "no", "No", id="dialogs.no"),
    Binding("y", "yes", "Yes", id="dialogs.yes"),
]
CHOICE_BINDINGS: list[BindingType] = [Binding("escape", "cancel", "Cancel", id="dialogs.cancel")]
REACTION_BINDINGS: list[BindingType] = [Binding("escape", "cancel", "Cancel", id="dialogs.cancel")]

SWITCHER_BINDINGS: list[BindingType] = [
    Binding("escape", "cancel", "Close", id="dialogs.cancel"),
    Binding("down", "move(1)", "Next", show=False),
    Binding("up", "move(-1)", "Previous", show=False),
]
