"""The header of the open room: name, padlock, and the topic on one line."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...protocol.room_state import RoomSummary
from ...protocol.sanitize import clean_line


class RoomHeader(Widget):
    """Name and topic of the current room."""

    DEFAULT_CSS = """
    RoomHeader {
        height: 1;
        background: $boost;
    }
    """

    room: reactive[RoomSummary | None] = reactive(None, always_update=True)
    member_count: reactive[int] = reactive(0)

    def render(self) -> Text:
        """One line."""
        room = self.room
        if room is None:
            return Text(" tui_client — pick a room (Ctrl+K)", style=Style(dim=True))
        text = Text(" ")
        if room.encrypted:
            text.append("🔒 ")
        text.append(clean_line(room.display_name), style=Style(bold=True))
        if room.is_dm:
            text.append("  (direct message)", style=Style(dim=True))
        if room.membership == "invite":
            text.append("  (invited)", style=Style(italic=True))
        count = self.member_count or room.joined_count
        if count:
            text.append(f"  · {count} member{'s' if count != 1 else ''}", style=Style(dim=True))
        if room.topic:
            text.append("  │  ", style=Style(dim=True))
            text.append(clean_line(room.topic), style=Style(dim=True, italic=True))
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text
