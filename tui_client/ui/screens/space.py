"""A space's hierarchy: every room and subspace in it, joined or not, with joining."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from ...engine.client import MatrixClient
from ...engine.spaces import HierarchyBrowser, HierarchyError
from ...engine.updates import JoinProgress, RoomListChanged, Update
from ...protocol.sanitize import clean_line, clean_text
from ..app_interface import client_app
from ..update_routes import UpdateRoutes
from ..widgets.key_footer import KeyFooter
from ..widgets.space_tree import SpaceTree
from .follows import FollowsUpdates

DEPTHS: tuple[int | None, ...] = (None, 1, 2, 3)
AUTO_PAGES = 10


class SpaceScreen(FollowsUpdates, Screen[None]):
    """The space view (``/hierarchy``)."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("j", "join", "Join room"),
        Binding("a", "join_suggested", "Join suggested"),
        Binding("s", "join_space", "Join space"),
        Binding("p", "preview", "Preview"),
        Binding("d", "depth", "Depth"),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, client: MatrixClient, space_id: str, *, via: Sequence[str] = ()) -> None:
        super().__init__()
        self.client = client
        self.space_id = space_id
        self._routes = (
            UpdateRoutes()
            .on(RoomListChanged, self._on_room_list)
            .on(JoinProgress, self._on_join_progress)
        )
        self.via = tuple(via)
        self.max_depth: int | None = None
        self.browser: HierarchyBrowser | None = None
        self.fetching = False
        self.error: str | None = None
        self.progress: str = ""
        self._generation = 0
        summary = client.rooms.get(space_id)
        self._space_joined = summary is not None and summary.membership == "join"

    def compose(self) -> ComposeResult:
        yield Static(id="space-title")
        yield Static(id="space-status")
        yield SpaceTree(id="space-rows")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._restart()
        self.query_one(SpaceTree).focus()

    # -- loading ----------------------------------------------------------------------

    def _restart(self) -> None:
        self._generation += 1
        self.browser = self.client.spaces.browse(self.space_id, max_depth=self.max_depth)
        self.error = None
        self.fetching = False
        self._redraw()
        self._load_more()

    def _load_more(self) -> None:
        browser = self.browser
        if browser is None or browser.done or self.fetching or self.error:
            return
        self.fetching = True
        self._show_status()
        self._fetch(browser, self._generation)

    @work(group="space-load", exit_on_error=False)
    async def _fetch(self, browser: HierarchyBrowser, generation: int) -> None:
        try:
            await browser.load_more()
            error = None
        except HierarchyError as failure:
            error = str(failure)
        if generation != self._generation:
            return
        self.fetching = False
        self.error = error
        self._redraw()
        if error is None and not browser.done and browser.pages < AUTO_PAGES:
            self._load_more()

    # -- showing ----------------------------------------------------------------------

    def _space_name(self) -> str:
        summary = self.client.rooms.get(self.space_id)
        if summary is not None and summary.display_name:
            return summary.display_name
        described = self.client.spaces.describe(self.space_id)
        return described.display_name if described is not None else clean_line(self.space_id)

    def _redraw(self) -> None:
        self._title()
        browser = self.browser
        rows = browser.hierarchy.rows() if browser is not None else []
        rooms = self.client.rooms
        names = {r: s.display_name for r, s in rooms.items()}
        names.update(
            {r: d.display_name for r, d in self.client.spaces.described.items() if r not in names}
        )
        self.query_one(SpaceTree).show_rows(
            rows,
            memberships={
                r.room_id: rooms[r.room_id].membership for r in rows if r.room_id in rooms
            },
            encrypted={
                r.room_id: True for r in rows if r.room_id in rooms and rooms[r.room_id].encrypted
            },
            names=names,
            space_name=self._space_name(),
            in_space=self.space_id in rooms and rooms[self.space_id].membership == "join",
        )
        self._show_status()

    def _title(self) -> None:
        summary = self.client.rooms.get(self.space_id)
        described = self.client.spaces.describe(self.space_id)
        text = Text("◆ " + self._space_name(), style=Style(bold=True))
        members = (
            summary.joined_count
            if summary is not None and summary.joined_count
            else (described.num_joined_members if described else 0)
        )
        if members:
            text.append(f" · {members} member{'s' if members != 1 else ''}", style=Style(dim=True))
        joined = summary is not None and summary.membership == "join"
        text.append(
            " · "
            + ("you are in this space" if joined else "you have not joined this space (s to join)"),
            style=Style(dim=True),
        )
        topic = (summary.topic if summary else None) or (described.topic if described else None)
        if topic:
            text.append(
                "\n" + clean_line(clean_text(topic), 300), style=Style(italic=True, dim=True)
            )
        self.query_one("#space-title", Static).update(text)

    def _show_status(self) -> None:
        browser = self.browser
        text = Text()
        if browser is not None:
            rows = browser.hierarchy.rows()
            rooms = [r for r in rows if r.depth > 0]
            suggested = [r for r in rooms if r.suggested]
            text.append(f"{len(rooms)} room{'s' if len(rooms) != 1 else ''} and spaces")
            if suggested:
                text.append(f" · {len(suggested)} suggested (a to join them)")
            text.append(
                f" · depth: {'all' if self.max_depth is None else self.max_depth} (d)",
                style=Style(dim=True),
            )
        if self.fetching:
            text.append("  loading…", style=Style(dim=True, italic=True))
        elif browser is not None and not browser.done and not self.error:
            text.append("  more below", style=Style(dim=True))
        if self.progress:
            text.append("  ·  " + self.progress, style=Style(bold=True))
        if self.error:
            text.append("\n⚠ " + clean_line(self.error, 300), style=Style(color="#e5c07b"))
        self.query_one("#space-status", Static).update(text)

    def handle_update(self, update: Update) -> None:
        """Engine updates while this screen is shown."""
        self._routes.dispatch(update)

    def _on_room_list(self, update: RoomListChanged) -> None:
        if self._access_changed():
            # Joined the space (or a room the server would not describe): what the
            # user may see has changed, so ask again.
            self._restart()
        else:
            self._redraw()

    def _on_join_progress(self, update: JoinProgress) -> None:
        self.progress = update.describe(time.time())
        self._show_status()

    def _access_changed(self) -> bool:
        rooms = self.client.rooms
        joined = self.space_id in rooms and rooms[self.space_id].membership == "join"
        changed = joined != self._space_joined
        self._space_joined = joined
        browser = self.browser
        if browser is not None and not changed:
            hidden = {row.room_id for row in browser.hierarchy.rows() if row.info is None}
            changed = any(r in rooms and rooms[r].membership == "join" for r in hidden)
        return changed

    @on(SpaceTree.NearEnd)
    def _near_end(self) -> None:
        self._load_more()

    # -- actions ----------------------------------------------------------------------

    @on(SpaceTree.OptionSelected)
    def _selected(self, event: SpaceTree.OptionSelected) -> None:
        event.stop()
        row = self.query_one(SpaceTree).highlighted_row
        if row is None:
            return
        summary = self.client.rooms.get(row.room_id)
        if row.is_space and row.room_id != self.space_id:
            client_app(self).show_space(row.room_id, via=row.via)
        elif summary is not None and summary.membership == "join" and not row.is_space:
            client_app(self).show_room(row.room_id)
        elif row.info is None:
            self.action_join()
        elif not row.is_space:
            self.action_preview()

    def action_preview(self) -> None:
        """Preview the highlighted room."""
        row = self.query_one(SpaceTree).highlighted_row
        if row is not None:
            client_app(self).preview_room(row.room_id, via=row.via or self.via, known=row.info)

    def action_join(self) -> None:
        """Join the highlighted room or subspace."""
        row = self.query_one(SpaceTree).highlighted_row
        if row is None:
            return
        summary = self.client.rooms.get(row.room_id)
        if summary is not None and summary.membership == "join":
            self.app.notify("You are already in it.", markup=False)
            return
        label = row.info.display_name if row.info is not None else ""
        client_app(self).join_flow.join(row.room_id, row.via or self.via, label=label)

    def action_join_suggested(self) -> None:
        """Join every suggested room not joined yet."""
        browser = self.browser
        if browser is None:
            return
        rooms = self.client.rooms
        wanted = [
            (row.room_id, row.via or self.via)
            for row in browser.hierarchy.suggested_rooms()
            if not (row.room_id in rooms and rooms[row.room_id].membership == "join")
        ]
        if not wanted:
            self.app.notify("You are in every suggested room already.", markup=False)
            return
        client_app(self).join_flow.join_many(wanted)

    def action_join_space(self) -> None:
        """Join the space itself."""
        summary = self.client.rooms.get(self.space_id)
        if summary is not None and summary.membership == "join":
            self.app.notify("You are in this space already.", markup=False)
            return
        client_app(self).join_flow.join(self.space_id, self.via, label=self._space_name())

    def action_depth(self) -> None:
        """Show all levels, or only 1, 2 or 3 levels deep."""
        index = DEPTHS.index(self.max_depth) if self.max_depth in DEPTHS else 0
        self.max_depth = DEPTHS[(index + 1) % len(DEPTHS)]
        self._restart()

    def action_reload(self) -> None:
        """Load the hierarchy again."""
        self._restart()

    def action_back(self) -> None:
        """Back."""
        self.dismiss(None)
