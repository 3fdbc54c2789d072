"""The space sidebar: Home, People, then the user's spaces as a tree.

Choosing an entry filters the room list: Home shows every room, People the direct
chats, a space the rooms anywhere under it (nested spaces included). Space names
are untrusted: prompts are ``Text`` from cleaned strings, and ``markup=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...protocol.sanitize import clean_line
from ...protocol.spaces import TreeNode

HOME = "home"
PEOPLE = "people"


def _entry(icon: str, name: str, depth: int, selected: bool, badge: int, width: int) -> Text:
    text = Text("  " * depth + icon + " ", style=Style(dim=not selected))
    room = max(3, width - len(text) - (len(str(badge)) + 1 if badge else 0))
    shown = name if len(name) <= room else name[: room - 1] + "…"
    text.append(shown, style=Style(bold=selected))
    if badge:
        text.append(f" {badge}", style=Style(color="#61afef", bold=True))
    return text


class SpaceBar(OptionList):
    """Home, People and the spaces the user is in."""

    DEFAULT_CSS = """
    SpaceBar {
        width: 20;
        height: 1fr;
        border: none;
        padding: 0;
        background: $surface;
        border-right: solid $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    SpaceBar:focus {
        border: none;
        border-right: solid $accent;
    }
    """

    class SpaceChosen(Message):
        """The user picked Home, People or a space (its room ID)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(markup=False, id=id)
        self.selected = HOME
        self._signature: tuple[object, ...] = ()

    def show(
        self,
        nodes: Sequence[TreeNode],
        names: Mapping[str, str],
        badges: Mapping[str, int] | None = None,
        selected: str | None = None,
    ) -> None:
        """Rebuild from the space tree (``names`` maps space IDs to display names)."""
        if selected is not None:
            self.selected = selected
        badges = badges or {}
        width = max(10, (self.size.width or 20) - 1)
        signature = (
            tuple((n.room_id, n.depth, names.get(n.room_id, "")) for n in nodes),
            tuple(sorted(badges.items())),
            self.selected,
            width,
        )
        if signature == self._signature:
            return
        self._signature = signature
        highlighted = self.highlighted_option.id if self.highlighted_option else self.selected
        options = [
            Option(
                _entry("⌂", "Home", 0, self.selected == HOME, badges.get(HOME, 0), width), id=HOME
            ),
            Option(
                _entry("☺", "People", 0, self.selected == PEOPLE, badges.get(PEOPLE, 0), width),
                id=PEOPLE,
            ),
        ]
        if nodes:
            options.append(
                Option(
                    Text("SPACES", style=Style(dim=True, bold=True)),
                    id="heading:spaces",
                    disabled=True,
                )
            )
        seen: dict[str, int] = {}
        for node in nodes:
            # A space under two parents is listed twice; option IDs must stay unique.
            seen[node.room_id] = seen.get(node.room_id, 0) + 1
            option_id = (
                node.room_id
                if seen[node.room_id] == 1
                else f"{node.room_id}\x00{seen[node.room_id]}"
            )
            name = clean_line(names.get(node.room_id) or node.room_id)
            options.append(
                Option(
                    _entry(
                        "◆",
                        name,
                        node.depth,
                        self.selected == node.room_id,
                        badges.get(node.room_id, 0),
                        width,
                    ),
                    id=option_id,
                )
            )
        self.set_options(options)
        if highlighted is not None:
            try:
                self.highlighted = self.get_option_index(highlighted)
            except Exception:
                self.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """An entry was chosen with Enter or a click."""
        event.stop()
        key = (event.option.id or "").split("\x00", 1)[0]
        if key and not key.startswith("heading:"):
            self.selected = key
            self.post_message(self.SpaceChosen(key))
