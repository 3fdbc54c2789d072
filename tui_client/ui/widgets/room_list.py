"""The room list: invites, favourites, people, rooms and low priority, by recent activity.

Built on ``OptionList`` (a line-API widget), so thousands of rooms scroll fine.
Room names are untrusted: prompts are ``Text`` built from plain strings, and the
list is created with ``markup=False``.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...protocol.room_state import RoomSummary
from ...protocol.sanitize import clean_line

GROUPS = (
    ("invites", "Invites"),
    ("favourites", "Favourites"),
    ("people", "People"),
    ("rooms", "Rooms"),
    ("low", "Low priority"),
)


def group_of(room: RoomSummary) -> str:
    """Which heading a room goes under."""
    if room.membership == "invite":
        return "invites"
    if "m.favourite" in room.tags:
        return "favourites"
    if "m.lowpriority" in room.tags:
        return "low"
    if room.is_dm:
        return "people"
    return "rooms"


def visible_rooms(rooms: Iterable[RoomSummary], include_spaces: bool = False) -> list[RoomSummary]:
    """Rooms shown in the list (joined or invited; spaces have their own view)."""
    return [
        r
        for r in rooms
        if r.membership in ("join", "invite") and (include_spaces or not r.is_space)
    ]


def ordered(rooms: Iterable[RoomSummary]) -> list[tuple[str, list[RoomSummary]]]:
    """Rooms by group, each group by recent activity then name."""
    by_group: dict[str, list[RoomSummary]] = {key: [] for key, _ in GROUPS}
    for room in rooms:
        by_group[group_of(room)].append(room)
    result = []
    for key, _title in GROUPS:
        members = sorted(by_group[key], key=lambda r: (-r.last_ts, r.display_name.casefold()))
        if members:
            result.append((key, members))
    return result


def room_prompt(room: RoomSummary, width: int = 28) -> Text:
    """One room's line: name, padlock, unread and highlight counts."""
    name = clean_line(room.display_name or room.room_id)
    badge = ""
    if room.highlight_count:
        badge = f" @{room.highlight_count}"
    elif room.notification_count:
        badge = f" {room.notification_count}"
    marks = ""
    if room.encrypted:
        marks += "🔒"
    room_width = max(4, width - len(badge) - len(marks) - 1)
    if len(name) > room_width:
        name = name[: room_width - 1] + "…"
    text = Text()
    bold = bool(room.notification_count or room.membership == "invite")
    text.append(name, style=Style(bold=bold, italic=room.membership == "invite"))
    if marks:
        text.append(" " + marks)
    if room.highlight_count:
        text.append(badge, style=Style(color="#e06c75", bold=True))
    elif room.notification_count:
        text.append(badge, style=Style(color="#61afef", bold=True))
    return text


class RoomList(OptionList):
    """The rooms of the account, grouped."""

    DEFAULT_CSS = """
    RoomList {
        width: 32;
        height: 1fr;
        border: none;
        padding: 0;
    }
    """

    class RoomChosen(Message):
        """The user picked a room."""

        def __init__(self, room_id: str) -> None:
            super().__init__()
            self.room_id = room_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(markup=False, id=id)
        self.current_room: str | None = None
        self._signature: tuple[object, ...] = ()

    def show_rooms(self, rooms: Iterable[RoomSummary], current: str | None = None) -> None:
        """Rebuild the list (keeps the highlighted room)."""
        if current is not None:
            self.current_room = current
        groups = ordered(rooms)
        signature = tuple(
            (key, tuple((r.room_id, r.display_name, r.notification_count, r.highlight_count, r.encrypted, r.membership) for r in members))
            for key, members in groups
        )
        if signature == self._signature:
            return
        self._signature = signature
        highlighted = self.highlighted_option.id if self.highlighted_option else self.current_room
        options: list[Option] = []
        titles = dict(GROUPS)
        for key, members in groups:
            heading = Text(titles[key].upper(), style=Style(dim=True, bold=True))
            options.append(Option(heading, id=f"group:{key}", disabled=True))
            options.extend(Option(room_prompt(room), id=room.room_id) for room in members)
        self.set_options(options)
        if highlighted is not None:
            try:
                self.highlighted = self.get_option_index(highlighted)
            except Exception:
                self.highlighted = None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A room was chosen with Enter or a click."""
        event.stop()
        if event.option.id and not event.option.id.startswith("group:"):
            self.current_room = event.option.id
            self.post_message(self.RoomChosen(event.option.id))
