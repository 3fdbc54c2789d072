"""Rooms of a directory as a line-API list: two lines each, only the rows on screen rendered.

A directory can list tens of thousands of rooms. The list keeps nothing per room but
the room itself (a slotted dataclass of strings), and renders the rows on screen
into strips when they are drawn (a few hundred are cached): no widget, option or
styled text object per room, so the memory the garbage collector walks stays small
and a long list scrolls like a short one.

Everything shown comes from other servers: names and topics are cleaned
(``clean_line``) and become the text of segments, never markup.
"""

from __future__ import annotations

import bisect
import textwrap
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...protocol.directory import PublicRoom, join_rule_label
from ...protocol.sanitize import clean_line
from .scrolling import set_virtual_size

NEAR_END = 15
CACHED_STRIPS = 400
DIM = Style(dim=True)
NAME = Style(bold=True)
TOPIC = Style(dim=True, italic=True)
TOPIC_OPEN = Style(italic=True)
JOINED = Style(color="#98c379", bold=True)
MEMBERSHIP_MARKS = {
    "join": "✓ joined",
    "invite": "✉ invited",
    "knock": "… knocked",
    "ban": "⊘ banned",
}


def room_facts(
    room: PublicRoom,
    *,
    membership: str | None = None,
    encrypted: bool | None = None,
    names: Mapping[str, str] | None = None,
) -> Text:
    """``42 members · public · 🔒 encrypted · ✓ joined``: the facts about a room."""
    facts = Text(style=DIM)
    facts.append(_facts_line(room, encrypted, names))
    mark = MEMBERSHIP_MARKS.get(membership or "")
    if mark:
        facts.append(" · ")
        facts.append(mark, style=Style(color="#98c379", bold=True, dim=False))
    return facts


def _facts_line(
    room: PublicRoom, encrypted: bool | None, names: Mapping[str, str] | None = None
) -> str:
    count = room.num_joined_members
    parts = [f"{count} member{'s' if count != 1 else ''}"]
    rule = join_rule_label(room.join_rule)
    if room.is_restricted and room.allowed_room_ids and names:
        spaces = ", ".join(clean_line(names.get(r, r), 30) for r in room.allowed_room_ids[:2])
        rule = f"members of {spaces}"
    parts.append(rule)
    if encrypted or (encrypted is None and room.encryption):
        parts.append("🔒 encrypted")
    if room.world_readable:
        parts.append("readable by anyone")
    return " · ".join(parts)


def _fit(segments: list[Segment], width: int) -> list[Segment]:
    """Cut segments to ``width`` cells, with an ellipsis where text was cut."""
    fitted: list[Segment] = []
    used = 0
    for segment in segments:
        length = cell_len(segment.text)
        if used + length <= width:
            fitted.append(segment)
            used += length
            continue
        room = width - used - 1
        if room > 0:
            fitted.append(Segment(chop_cells(segment.text, room)[0], segment.style))
        fitted.append(Segment("…", segment.style))
        break
    return fitted


class DirectoryList(ScrollView, can_focus=True):
    """Directory results; posts :class:`NearEnd` when the user gets close to the last one."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "choose", "Open", show=False),
    ]

    DEFAULT_CSS = """
    DirectoryList {
        height: 1fr;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    """

    highlighted: reactive[int | None] = reactive(None)

    class NearEnd(Message):
        """The user reached the last loaded entries: time to load more."""

    class Chosen(Message):
        """The user pressed Enter on (or clicked) a room."""

        def __init__(self, room: PublicRoom) -> None:
            super().__init__()
            self.room = room

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rooms: dict[str, PublicRoom] = {}
        self.order: list[str] = []
        self.expanded: set[str] = set()
        self.memberships: dict[str, str] = {}
        self.encrypted: dict[str, bool] = {}
        # First line of each entry; the total height last.
        self._offsets: list[int] = [0]
        self._strips: OrderedDict[tuple[str, int, int], Strip] = OrderedDict()

    # -- the data -----------------------------------------------------------------------

    @property
    def option_count(self) -> int:
        """How many rooms are listed."""
        return len(self.order)

    def clear_rooms(self) -> None:
        """Empty the list."""
        self.rooms.clear()
        self.order.clear()
        self.expanded.clear()
        self._strips.clear()
        self._offsets = [0]
        self.highlighted = None
        self._resize()
        self.scroll_to(y=0, animate=False)

    def add_rooms(self, rooms: Iterable[PublicRoom]) -> None:
        """Append rooms (a new page)."""
        offsets = self._offsets
        for room in rooms:
            if room.room_id in self.rooms:
                continue
            self.rooms[room.room_id] = room
            self.order.append(room.room_id)
            offsets.append(offsets[-1] + 2)
        if self.highlighted is None and self.order:
            self.highlighted = 0
        self._resize()

    def update_room(self, room: PublicRoom) -> None:
        """Show new facts about a listed room (found on another server, say)."""
        if room.room_id in self.rooms:
            self.rooms[room.room_id] = room
            self._forget(room.room_id)

    def set_membership(self, memberships: Mapping[str, str], encrypted: Mapping[str, bool]) -> None:
        """Mark the rooms the user is in; only changed entries are redrawn."""
        changed = {
            room_id
            for room_id in set(memberships)
            | set(self.memberships)
            | set(encrypted)
            | set(self.encrypted)
            if memberships.get(room_id) != self.memberships.get(room_id)
            or encrypted.get(room_id) != self.encrypted.get(room_id)
        }
        self.memberships = dict(memberships)
        self.encrypted = dict(encrypted)
        for room_id in changed:
            self._forget(room_id)

    def toggle_expanded(self, room_id: str) -> None:
        """Show the whole topic of an entry, or one line of it again."""
        if room_id not in self.rooms:
            return
        self.expanded.symmetric_difference_update({room_id})
        self._forget(room_id)
        self._relayout()

    @property
    def highlighted_room(self) -> PublicRoom | None:
        """The room under the cursor."""
        if self.highlighted is None or self.highlighted >= len(self.order):
            return None
        return self.rooms[self.order[self.highlighted]]

    # -- layout -------------------------------------------------------------------------

    def _width(self) -> int:
        return self.scrollable_content_region.width or self.size.width or 80

    def _topic_lines(self, room: PublicRoom, width: int) -> list[str]:
        topic = room.topic_line
        if room.room_id in self.expanded and topic:
            return textwrap.wrap(topic, max(10, width - 4)) or [""]
        return [topic or ""]

    def _relayout(self) -> None:
        width = self._width()
        offsets = [0]
        for room_id in self.order:
            height = 1 + (
                len(self._topic_lines(self.rooms[room_id], width))
                if room_id in self.expanded
                else 1
            )
            offsets.append(offsets[-1] + height)
        self._offsets = offsets
        self._resize()

    def _resize(self) -> None:
        set_virtual_size(self, Size(self._width(), self._offsets[-1]))
        self.refresh()

    def on_resize(self, _event: events.Resize) -> None:
        self._strips.clear()
        if self.expanded:
            self._relayout()
        else:
            self._resize()

    def _forget(self, room_id: str) -> None:
        for key in [k for k in self._strips if k[0] == room_id]:
            del self._strips[key]
        self.refresh()

    # -- drawing ------------------------------------------------------------------------

    def _entry_at(self, line: int) -> tuple[int, int] | None:
        if line < 0 or line >= self._offsets[-1]:
            return None
        index = bisect.bisect_right(self._offsets, line) - 1
        return index, line - self._offsets[index]

    def render_line(self, y: int) -> Strip:
        """One line of the list."""
        width = self._width()
        found = self._entry_at(round(self.scroll_y) + y)
        if found is None:
            return Strip.blank(width)
        index, within = found
        room_id = self.order[index]
        key = (room_id, within, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = Strip(
                _fit(self._segments(self.rooms[room_id], within, width), width)
            ).adjust_cell_length(width)
            self._strips[key] = strip
            if len(self._strips) > CACHED_STRIPS:
                self._strips.popitem(last=False)
        if index == self.highlighted:
            return strip.apply_style(
                Style(reverse=True) if self.has_focus else Style(bgcolor="#2c313a")
            )
        return strip

    def _segments(self, room: PublicRoom, within: int, width: int) -> list[Segment]:
        if within == 0:
            segments = [Segment(" ")]
            if room.is_space:
                segments.append(Segment("◆ ", NAME))
            segments.append(Segment(room.display_name, NAME))
            if room.canonical_alias and clean_line(room.canonical_alias) != room.display_name:
                segments.append(Segment("  " + clean_line(room.canonical_alias), DIM))
            segments.append(
                Segment("  " + _facts_line(room, self.encrypted.get(room.room_id)), DIM)
            )
            mark = MEMBERSHIP_MARKS.get(self.memberships.get(room.room_id, ""))
            if mark:
                segments.append(Segment(" · ", DIM))
                segments.append(Segment(mark, JOINED))
            if len(room.servers) > 1:
                segments.append(
                    Segment("  (" + ", ".join(clean_line(s, 40) for s in room.servers) + ")", DIM)
                )
            return segments
        lines = self._topic_lines(room, width)
        text = lines[within - 1] if within - 1 < len(lines) else ""
        if not room.topic_line:
            return [Segment("   no topic", TOPIC)]
        return [Segment("   " + text, TOPIC_OPEN if room.room_id in self.expanded else TOPIC)]

    # -- moving -------------------------------------------------------------------------

    def watch_highlighted(self, _old: int | None, new: int | None) -> None:
        if new is not None and new < len(self.order):
            top = round(self.scroll_y)
            height = self.scrollable_content_region.height or 1
            first, last = self._offsets[new], self._offsets[new + 1] - 1
            if first < top:
                self.scroll_to(y=first, animate=False)
            elif last >= top + height:
                self.scroll_to(y=last - height + 1, animate=False)
            if new >= len(self.order) - NEAR_END:
                self.post_message(self.NearEnd())
        self.refresh()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        bottom = max(0, self.virtual_size.height - self.scrollable_content_region.height)
        if self.order and new_value >= bottom - 2 * NEAR_END:
            self.post_message(self.NearEnd())

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_cursor(self, step: int) -> None:
        """Move the highlight by ``step`` rooms."""
        if not self.order:
            return
        current = self.highlighted if self.highlighted is not None else -1
        self.highlighted = max(0, min(len(self.order) - 1, current + step))

    def action_page(self, direction: int) -> None:
        """Move the highlight by a screenful."""
        rows = max(1, (self.scrollable_content_region.height or 2) // 2)
        self.action_cursor(direction * rows)

    def action_first(self) -> None:
        """Highlight the first room."""
        if self.order:
            self.highlighted = 0

    def action_last(self) -> None:
        """Highlight the last room loaded (which asks for more)."""
        if self.order:
            self.highlighted = len(self.order) - 1

    def action_choose(self) -> None:
        """Open, preview or join the highlighted room (the screen decides)."""
        room = self.highlighted_room
        if room is not None:
            self.post_message(self.Chosen(room))

    def on_click(self, event: events.Click) -> None:
        """Highlight the clicked room; a second click chooses it."""
        found = self._entry_at(round(self.scroll_y) + event.y)
        if found is None:
            return
        if self.highlighted == found[0]:
            self.action_choose()
        else:
            self.highlighted = found[0]
