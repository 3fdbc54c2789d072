"""Key bindings from the config: every action has a name, the config maps keys to them.

Each rebindable binding carries an id ``"<context>.<action>"`` (``"timeline.reply"``);
the config's ``[keys.<context>]`` tables give an action new keys::

    [keys]
    vim = true              # the vim mode (off by default)

    [keys.timeline]
    reply = "y"             # one key
    delete = ["d", "delete"]  # or several

    [keys.global]
    switch_room = "ctrl+g"

:func:`resolve` checks the table against the actions the client has (an unknown context or
action, a bad value, two actions on one key where both are in force at once) and returns
the keymap Textual applies (``App.set_keymap``) with the problems, named, for a toast.
The composer's keys are not bindings (it reads them in ``_on_key``, to keep the order of a
burst of keys): :meth:`KeySettings.composer_keys` gives it the map it consults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from textual.binding import Binding, BindingType
from textual.keys import _character_to_key, format_key

from ..config import Config, config_path, load_config
from .bindings import (
    APP_BINDINGS,
    CHAT_BINDINGS,
    CHOICE_BINDINGS,
    CONFIRM_BINDINGS,
    HELP_BINDINGS,
    PROMPT_BINDINGS,
    REACTION_BINDINGS,
    SWITCHER_BINDINGS,
)

__all__ = [
    "CONTEXTS",
    "KeyAction",
    "KeySettings",
    "all_actions",
    "load_key_settings",
    "resolve",
]

#: The contexts a config can bind keys in, and what each one covers.
CONTEXTS: dict[str, str] = {
    "global": "anywhere in the chat screen",
    "room_list": "the room list",
    "timeline": "the timeline (a message selected)",
    "composer": "the composer",
    "dialogs": "dialogs and the help",
}

#: The composer's own keys, read in its ``_on_key`` (not bindings): action -> default keys.
COMPOSER_ACTIONS: dict[str, tuple[str, str]] = {
    "send": ("enter", "Send"),
    "newline": ("shift+enter,ctrl+j,alt+enter,ctrl+enter", "New line"),
    "cancel": ("escape", "Cancel reply or edit; back to the timeline"),
    "edit_last": ("up", "Edit your last message (empty composer)"),
    "complete": ("tab", "Complete the word (@member, #room, :emoji:, /command); next candidate"),
    "complete_previous": ("shift+tab", "Previous completion candidate"),
}


@dataclass(frozen=True, slots=True)
class KeyAction:
    """One named action: where it is bound by default and what it does."""

    id: str
    keys: str
    description: str
    #: Where the binding is in force (a screen or widget class); global ones share one.
    owners: frozenset[str]

    @property
    def context(self) -> str:
        """The context part of the id."""
        return self.id.partition(".")[0]

    @property
    def name(self) -> str:
        """The action part of the id (what a config names)."""
        return self.id.partition(".")[2]


def _binding_owners() -> list[tuple[str, Iterable[BindingType]]]:
    """The classes whose bindings have ids, with their own BINDINGS (imported late: the
    screens import widgets that import this module's callers)."""
    from .screens.chat_rooms import RoomActions
    from .widgets.room_list import RoomList
    from .widgets.timeline import TimelineView

    def of(owner: type) -> tuple[str, Iterable[BindingType]]:
        return owner.__name__, owner.__dict__.get("BINDINGS", ())

    # The app's, the chat screen's and the help's come from .bindings (those classes import
    # this module); the composer's are COMPOSER_ACTIONS.
    return [
        ("TuiClientApp", APP_BINDINGS), of(RoomActions), ("ChatScreen", CHAT_BINDINGS), of(RoomList),
        of(TimelineView), ("PromptDialog", PROMPT_BINDINGS), ("ConfirmDialog", CONFIRM_BINDINGS),
        ("ChoiceDialog", CHOICE_BINDINGS), ("ReactionDialog", REACTION_BINDINGS),
        ("HelpScreen", HELP_BINDINGS), ("RoomSwitcher", SWITCHER_BINDINGS),
    ]  # fmt: skip


def all_actions() -> dict[str, KeyAction]:
    """Every named action, by id, in the order the help lists them."""
    found: dict[str, KeyAction] = {}
    for owner, bindings in _binding_owners():
        for binding in bindings:
            if not isinstance(binding, Binding) or binding.id is None:
                continue
            if binding.id.startswith("composer."):
                continue  # listed from COMPOSER_ACTIONS, which the composer reads
            group = "global" if binding.id.startswith("global.") else owner
            known = found.get(binding.id)
            owners = frozenset({group}) | (known.owners if known else frozenset())
            found[binding.id] = KeyAction(binding.id, binding.key, binding.description, owners)
    for name, (keys, description) in COMPOSER_ACTIONS.items():
        found[f"composer.{name}"] = KeyAction(
            f"composer.{name}", keys, description, frozenset({"Composer"})
        )
    contexts = list(CONTEXTS)
    ordered = sorted(found.values(), key=lambda action: contexts.index(action.context))
    return {action.id: action for action in ordered}


def normalise_key(key: str) -> str:
    """A key as Textual names it (``"?"`` is ``"question_mark"``, ``"Ctrl+S"`` ``"ctrl+s"``)."""
    key = key.strip()
    if len(key) == 1:
        return _character_to_key(key)
    *modifiers, last = key.split("+")
    if len(last) == 1:
        last = _character_to_key(last) if not last.isalnum() else last
    return "+".join(
        [*(modifier.lower() for modifier in modifiers), last if len(last) == 1 else last.lower()]
    )


def split_keys(keys: str) -> list[str]:
    """``"d,delete"`` -> ``["d", "delete"]`` (``","`` alone is the comma key)."""
    if keys.strip() == ",":
        return ["comma"]
    return [normalise_key(key) for key in keys.split(",") if key.strip()]


def display_keys(keys: str) -> str:
    """Keys as the footer writes them: ``"ctrl+k"`` -> ``"^k"``, several joined by ``/``."""
    return " / ".join(format_key(key) for key in split_keys(keys))


@dataclass(slots=True)
class KeySettings:
    """The bindings in force: the keymap for Textual, the problems found, the vim switch."""

    actions: dict[str, KeyAction]
    #: id -> keys, only for the actions the config rebinds (what App.set_keymap takes).
    keymap: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    vim: bool = False

    def keys_of(self, action_id: str) -> str:
        """The keys in force for an action (``""`` if unknown)."""
        if action_id in self.keymap:
            return self.keymap[action_id]
        action = self.actions.get(action_id)
        return action.keys if action is not None else ""

    def composer_keys(self) -> dict[str, str]:
        """key -> composer action, as the composer's ``_on_key`` consults it."""
        keys: dict[str, str] = {}
        for name in COMPOSER_ACTIONS:
            for key in split_keys(self.keys_of(f"composer.{name}")):
                keys.setdefault(key, name)
        return keys


def resolve(table: Mapping[str, object] | None) -> KeySettings:
    """Check a config's ``keys`` table and turn it into the bindings in force."""
    actions = all_actions()
    settings = KeySettings(actions)
    for context, bindings in (table or {}).items():
        if context == "vim":
            if isinstance(bindings, bool):
                settings.vim = bindings
            else:
                settings.problems.append(f"keys.vim must be true or false, not {bindings!r}")
            continue
        if context not in CONTEXTS:
            settings.problems.append(
                f"keys.{context}: unknown context (known: {', '.join(CONTEXTS)})"
            )
            continue
        if not isinstance(bindings, Mapping):
            settings.problems.append(f'keys.{context} must be a table of action = "key"')
            continue
        chosen: dict[str, list[str]] = {}
        for left, value in bindings.items():
            found = _entry(context, str(left), value, actions)
            if isinstance(found, str):
                settings.problems.append(found)
                continue
            action_id, keys = found
            chosen.setdefault(action_id, []).extend(keys)
        for action_id, keys in chosen.items():
            settings.keymap[action_id] = ",".join(dict.fromkeys(keys))
    settings.problems.extend(_conflicts(settings))
    return settings


def _entry(
    context: str, left: str, value: object, actions: Mapping[str, KeyAction]
) -> tuple[str, list[str]] | str:
    """One line of ``[keys.<context>]``: ``action = "key"`` (or a list of keys), or the
    other way round, ``"key" = "action"``. Returns (action id, keys) or the problem."""
    where = f"keys.{context}.{left}"
    if f"{context}.{left}" in actions:
        if isinstance(value, str):
            texts = [value]
        elif isinstance(value, list) and value and all(isinstance(key, str) for key in value):
            texts = [str(key) for key in value]
        else:
            return f'{where}: a key ("ctrl+s") or a list of keys, not {value!r}'
        keys = [key for text in texts for key in split_keys(text)]
        return (f"{context}.{left}", keys) if keys else f"{where}: no key given"
    if isinstance(value, str) and f"{context}.{value}" in actions:
        keys = split_keys(left)
        return (f"{context}.{value}", keys) if keys else f"{where}: no key given"
    named = left if left.isidentifier() and len(left) > 1 else value
    return f"{where}: unknown action {named!r} in {context} (see the help, F1)"


def _conflicts(settings: KeySettings) -> list[str]:
    """Two actions on one key, where both are in force at once (the same screen or
    widget, or both global)."""
    problems: list[str] = []
    by_key: dict[tuple[str, str], list[KeyAction]] = {}
    for action in settings.actions.values():
        for key in split_keys(settings.keys_of(action.id)):
            for owner in action.owners:
                by_key.setdefault((owner, key), []).append(action)
    reported: set[tuple[str, ...]] = set()
    for (_owner, key), clashing in by_key.items():
        ids = tuple(sorted({action.id for action in clashing}))
        if len(ids) < 2 or not any(action_id in settings.keymap for action_id in ids):
            continue  # the defaults' own overlaps (none today) are not the user's doing
        if (key, *ids) in reported:
            continue
        reported.add((key, *ids))
        names = " and ".join(ids)
        problems.append(f"key conflict: {format_key(key)} is bound to {names}")
    return problems


def load_key_settings(config: Config | None = None) -> KeySettings:
    """The bindings in force for this run, from the config's ``[keys]`` table (the config
    file found by :func:`tui_client.config.config_path` unless one is given). Problems of
    the file itself are the config's to report; these are the key bindings' own."""
    if config is None:
        config = load_config(config_path())
    return resolve(config.keys)
