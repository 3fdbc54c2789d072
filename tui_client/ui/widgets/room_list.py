"""The room list: invites, favourites, people, rooms and low priority, by recent activity.

A line-API widget (``ScrollView`` + ``render_line``): one row per room or heading,
and only the rows on screen are rendered, so an account with thousands of rooms
costs nothing more to show. Room names are untrusted: they become the text of
segments, never markup.

:meth:`RoomList.show_rooms` lays out every row (a filter chosen, a first sync);
:meth:`RoomList.update_rooms` moves, adds or drops only the rooms a sync batch changed,
each found and placed by bisection in its group (issue 13: a live message in one room of
a thousand re-sorted and rebuilt every row).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...protocol.bridges import bridge_short_label
from ...protocol.room_state import RoomSummary
from ...protocol.sanitize import clean_line
from ..pictures import image_service, picture_lines
from .scrolling import set_virtual_size

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


def visible_rooms(
    rooms: Iterable[RoomSummary],
    include_spaces: bool = False,
    hidden: Callable[[RoomSummary], bool] | None = None,
) -> list[RoomSummary]:
    """Rooms shown in the list (joined or invited; spaces have their own view), but
    those ``hidden`` names (invites from ignored users)."""
    return [
        r
        for r in rooms
        if r.membership in ("join", "invite")
        and (include_spaces or not r.is_space)
        and not (hidden and hidden(r))
    ]


def sort_key(room: RoomSummary) -> tuple[int, str, str]:
    """Where a room goes in its group: recent activity, then name (then ID: ties are rare,
    but bisection needs every key to be different)."""
    return (-room.last_ts, room.display_name.casefold(), room.room_id)


def ordered(rooms: Iterable[RoomSummary]) -> list[tuple[str, list[RoomSummary]]]:
    """Rooms by group, each group by recent activity then name."""
    by_group: dict[str, list[RoomSummary]] = {key: [] for key, _ in GROUPS}
    for room in rooms:
        by_group[group_of(room)].append(room)
    result = []
    for key, _title in GROUPS:
        members = sorted(by_group[key], key=sort_key)
        if members:
            result.append((key, members))
    return result


def room_segments(room: RoomSummary, width: int) -> list[Segment]:
    """One room's row: name, padlock, unread or highlight count, within ``width`` cells."""
    badge = ""
    badge_style = Style()
    if room.highlight_count:
        badge, badge_style = f" @{room.highlight_count}", Style(color="#e06c75", bold=True)
    elif room.notification_count:
        badge, badge_style = f" {room.notification_count}", Style(color="#61afef", bold=True)
    marks = " 🔒" if room.encrypted else ""
    name = clean_line(room.display_name or room.room_id)
    bridges = room.bridge_list if room.bridges else []
    if bridges:
        # The first bridge, and how many more (the header lists them all); when the row
        # is short, the name keeps at least half of it and the bridge is cut.
        more = f" +{len(bridges) - 1}" if len(bridges) > 1 else ""
        label = bridge_short_label(bridges[0])
        free = width - cell_len(badge) - cell_len(marks) - cell_len(more) - 1
        if cell_len(name) + cell_len(label) > free:
            keep = max(3, free - min(cell_len(name), free // 2))
            if cell_len(label) > keep:
                label = chop_cells(label, keep - 1)[0] + "…"
        marks = " " + label + more + marks
    room_width = max(4, width - cell_len(badge) - cell_len(marks))
    if cell_len(name) > room_width:
        name = chop_cells(name, room_width - 1)[0] + "…"
    bold = bool(room.notification_count or room.highlight_count or room.membership == "invite")
    segments = [Segment(name, Style(bold=bold, italic=room.membership == "invite"))]
    if marks:
        segments.append(Segment(marks, Style(dim=True) if bridges else Style()))
    if badge:
        segments.append(Segment(badge, badge_style))
    return segments


@dataclass(frozen=True, slots=True)
class _Row:
    """A heading (``room`` and ``unjoined`` are None), a room, or a room of the selected
    space that the user has not joined (``unjoined`` is its ID)."""

    title: str
    room: RoomSummary | None = None
    unjoined: str | None = None
    #: A room's :func:`sort_key` (the order within its group).
    key: tuple[int, str, str] = (0, "", "")

    @property
    def room_id(self) -> str | None:
        return self.room.room_id if self.room is not None else None

    @property
    def selectable(self) -> bool:
        return self.room is not None or self.unjoined is not None


def _row_key(row: _Row) -> tuple[int, str, str]:
    return row.key


class RoomList(ScrollView, can_focus=True):
    """The rooms of the account, grouped; Up/Down/Enter or the mouse to pick one."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False, id="room_list.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="room_list.down"),
        Binding("pageup", "cursor(-10)", "Page up", show=False, id="room_list.page_up"),
        Binding("pagedown", "cursor(10)", "Page down", show=False, id="room_list.page_down"),
        Binding("home", "first", "First", show=False, id="room_list.first"),
        Binding("end", "last", "Last", show=False, id="room_list.last"),
        Binding("enter", "choose", "Open", show=False, id="room_list.open"),
    ]

    DEFAULT_CSS = """
    RoomList {
        width: 32;
        height: 1fr;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    """

    highlighted: reactive[int | None] = reactive(None)

    class RoomChosen(Message):
        """The user picked a room."""

        def __init__(self, room_id: str) -> None:
            super().__init__()
            self.room_id = room_id

    class UnjoinedChosen(Message):
        """The user picked a room of the selected space that they have not joined."""

        def __init__(self, room_id: str) -> None:
            super().__init__()
            self.room_id = room_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._current_room: str | None = None
        self._rows: list[_Row] = []
        self._signature: tuple[object, ...] = ()
        self._listening = False
        #: The groups shown (with a heading), in order, and how many rooms each has.
        self._sizes: dict[str, int] = {}
        #: Each listed room's group and sort key (to find its row by bisection).
        self._placed: dict[str, tuple[str, tuple[int, str, str]]] = {}

    @property
    def current_room(self) -> str | None:
        """The room open beside the list (marked ▌)."""
        return self._current_room

    @current_room.setter
    def current_room(self, room_id: str | None) -> None:
        """A room opened from anywhere (the switcher, a link, a notice) is marked at once,
        and the cursor moves to it, as if it had been chosen here."""
        if room_id == self._current_room:
            return
        self._current_room = room_id
        index = self._index_of(room_id) if room_id is not None else None
        if index is not None:
            self.highlighted = index
        self.refresh()

    @property
    def option_count(self) -> int:
        """How many rows (headings and rooms) the list has."""
        return len(self._rows)

    @property
    def room_ids(self) -> list[str]:
        """The listed rooms, top to bottom."""
        return [row.room.room_id for row in self._rows if row.room is not None]

    def show_rooms(
        self,
        rooms: Iterable[RoomSummary],
        current: str | None = None,
        unjoined: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Rebuild the rows (keeps the highlighted room where it was).

        ``unjoined`` lists ``(room ID, name)`` of rooms in the selected space that the
        user has not joined; they are shown last, under their own heading.
        """
        if current is not None:
            self._current_room = current
        groups = ordered(rooms)
        signature = tuple(
            (
                key,
                tuple(
                    (
                        r.room_id,
                        r.display_name,
                        r.notification_count,
                        r.highlight_count,
                        r.encrypted,
                        r.membership,
                        str(r.bridges),
                    )
                    for r in members
                ),
            )
            for key, members in groups
        ) + (tuple(unjoined),)
        if signature == self._signature:
            return
        self._signature = signature
        keep = self._highlighted_room()
        titles = dict(GROUPS)
        rows: list[_Row] = []
        self._sizes, self._placed = {}, {}
        for key, members in groups:
            rows.append(_Row(titles[key].upper()))
            for room in members:
                order = sort_key(room)
                rows.append(_Row(room.display_name, room, key=order))
                self._placed[room.room_id] = (key, order)
            self._sizes[key] = len(members)
        if unjoined:
            rows.append(_Row("IN THIS SPACE, NOT JOINED"))
            rows.extend(_Row(name, None, room_id) for room_id, name in unjoined)
        self._rows = rows
        self._relayout(keep)

    def update_rooms(self, rooms: Mapping[str, RoomSummary | None]) -> bool:
        """Move, add or drop only these rooms (``None``: no longer listed); every other row
        stays as it is. False, having changed nothing, where a heading would come or go:
        then :meth:`show_rooms` lays the list out."""
        sizes = dict(self._sizes)
        for room_id, room in rooms.items():
            old = self._placed.get(room_id)
            if old is not None:
                sizes[old[0]] -= 1
            if room is not None:
                group = group_of(room)
                if group not in sizes:
                    return False
                sizes[group] += 1
        if not all(sizes.values()):
            return False
        keep = self._highlighted_room()
        for room_id, room in rooms.items():
            old = self._placed.pop(room_id, None)
            if old is not None:
                del self._rows[self._find(*old)]
                self._sizes[old[0]] -= 1
            if room is not None:
                group, order = group_of(room), sort_key(room)
                self._rows.insert(
                    self._find(group, order), _Row(room.display_name, room, key=order)
                )
                self._sizes[group] += 1
                self._placed[room_id] = (group, order)
        self._signature = ()  # (the next show_rooms lays it all out again)
        self._relayout(keep)
        return True

    def _highlighted_room(self) -> str | None:
        if self.highlighted is None or self.highlighted >= len(self._rows):
            return None
        return self._rows[self.highlighted].room_id

    def _relayout(self, keep: str | None) -> None:
        set_virtual_size(self, Size(self.size.width, len(self._rows)))
        target = keep or self.current_room
        self.highlighted = self._index_of(target) if target is not None else None
        self.refresh()

    def _find(self, group: str, order: tuple[int, str, str]) -> int:
        """The row of ``order`` in ``group`` (or where it goes), by bisection."""
        start = 0
        for key, size in self._sizes.items():
            start += 1  # (the heading)
            if key == group:
                return bisect_left(self._rows, order, start, start + size, key=_row_key)
            start += size
        raise KeyError(group)

    def _index_of(self, room_id: str) -> int | None:
        placed = self._placed.get(room_id)
        if placed is not None:
            return self._find(*placed)
        for index in range(sum(self._sizes.values()) + len(self._sizes), len(self._rows)):
            if self._rows[index].unjoined == room_id:
                return index
        return None

    def render_line(self, y: int) -> Strip:
        """One row of the list."""
        width = self.scrollable_content_region.width or self.size.width
        index = round(self.scroll_y) + y
        if index >= len(self._rows):
            return Strip.blank(width)
        row = self._rows[index]
        if row.unjoined is not None:
            name = clean_line(row.title)
            if cell_len(name) > width - 3:
                name = chop_cells(name, max(1, width - 4))[0] + "…"
            segments = [
                Segment(" + ", Style(dim=True)),
                Segment(name, Style(dim=True, italic=True)),
            ]
            strip = Strip(segments).adjust_cell_length(width)
            if index == self.highlighted:
                strip = strip.apply_style(
                    Style(reverse=True) if self.has_focus else Style(bgcolor="#2c313a")
                )
            return strip
        if row.room is None:
            segments = [Segment(" " + row.title, Style(dim=True, bold=True))]
            return Strip(segments).adjust_cell_length(width)
        current = row.room.room_id == self.current_room
        marker = Segment("▌" if current else " ", Style(color="#61afef", bold=True))
        avatar = self._avatar(row.room)
        segments = [
            marker,
            *avatar,
            *room_segments(row.room, width - 1 - sum(s.cell_length for s in avatar)),
        ]
        style = None
        if index == self.highlighted:
            style = Style(reverse=True) if self.has_focus else Style(bgcolor="#2c313a")
        elif current:
            style = Style(bgcolor="#2c313a")
        strip = Strip(segments).adjust_cell_length(width)
        return strip.apply_style(style) if style is not None else strip

    def _avatar(self, room: RoomSummary) -> list[Segment]:
        """A room's avatar, 2 cells and a space, while avatars are on (blank until it is
        loaded; nothing for a room without one, so rooms without avatars look as before)."""
        client = getattr(self.app, "client", None)
        if client is None or not room.avatar_url:
            return []
        service = image_service(client)
        if not self._listening:
            self._listening = True
            service.listen(self._settings_changed)
        if not service.avatars:
            return []
        picture = service.avatar(room.avatar_url)
        if picture is not None:
            return [*picture_lines(picture)[0], Segment(" ")]
        service.request_avatar(room.avatar_url, self._avatar_loaded)
        return [Segment("   ")]

    def _avatar_loaded(self, _mxc: str) -> None:
        self.refresh()

    def _settings_changed(self) -> None:
        self.refresh()

    def watch_highlighted(self, _old: int | None, new: int | None) -> None:
        if new is not None:
            top = round(self.scroll_y)
            height = self.scrollable_content_region.height or 1
            if new < top:
                self.scroll_to(y=new, animate=False)
            elif new >= top + height:
                self.scroll_to(y=new - height + 1, animate=False)
        self.refresh()

    def on_focus(self) -> None:
        if self.highlighted is None and self.current_room is not None:
            self.highlighted = self._index_of(self.current_room)
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_cursor(self, step: int) -> None:
        """Move the highlight by ``step`` rooms, skipping headings."""
        rooms = [i for i, row in enumerate(self._rows) if row.selectable]
        if not rooms:
            return
        if self.highlighted is None or self.highlighted not in rooms:
            self.highlighted = rooms[0] if step > 0 else rooms[-1]
            return
        position = rooms.index(self.highlighted)
        self.highlighted = rooms[max(0, min(len(rooms) - 1, position + step))]

    def action_first(self) -> None:
        """Highlight the first room."""
        self.highlighted = None
        self.action_cursor(1)

    def action_last(self) -> None:
        """Highlight the last room."""
        self.highlighted = None
        self.action_cursor(-1)

    def action_choose(self) -> None:
        """Open the highlighted room."""
        if self.highlighted is not None and self.highlighted < len(self._rows):
            unjoined = self._rows[self.highlighted].unjoined
            if unjoined is not None:
                self.post_message(self.UnjoinedChosen(unjoined))
                return
            room_id = self._rows[self.highlighted].room_id
            if room_id is not None:
                self.current_room = room_id
                self.post_message(self.RoomChosen(room_id))

    def on_click(self, event: events.Click) -> None:
        """Open the clicked room."""
        index = round(self.scroll_y) + event.y
        if 0 <= index < len(self._rows) and self._rows[index].selectable:
            self.highlighted = index
            self.action_choose()

    def on_resize(self, event: events.Resize) -> None:
        set_virtual_size(self, Size(self.size.width, len(self._rows)))
