"""The room directory: public rooms of the user's server or others', searched as you type."""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from ...engine.client import MatrixClient
from ...engine.directory import (
    DIRECTORY_TIMEOUT,
    DirectoryBatch,
    DirectoryBrowser,
    bridged_protocols,
    parse_server_list,
)
from ...engine.updates import JoinProgress, RoomListChanged, Update
from ...protocol.directory import PublicRoom
from ...protocol.ids import InvalidIdentifier
from ...protocol.sanitize import clean_line
from ...protocol.thirdparty import (
    MATRIX_NETWORK,
    Network,
    ThirdPartyLocation,
    ThirdPartyProtocol,
    directory_networks,
)
from ..app_interface import client_app
from ..update_routes import UpdateRoutes
from ..widgets.directory_list import DirectoryList
from ..widgets.key_footer import KeyFooter
from .bridge_join import BridgeJoinDialog
from .dialogs import ChoiceDialog
from .follows import FollowsUpdates

SEARCH_DEBOUNCE = 0.35


class DirectoryScreen(FollowsUpdates, Screen[None]):
    """Browse, search and join public rooms."""

    # How long one directory server may take to answer a page.
    timeout = DIRECTORY_TIMEOUT

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("j", "join", "Join"),
        Binding("p", "preview", "Preview"),
        Binding("t", "expand", "Topic"),
        Binding("ctrl+f", "focus_search", "Search"),
        Binding("ctrl+s", "focus_servers", "Servers"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("n", "network", "Network"),
        Binding("b", "bridge_join", "Bridged channel"),
    ]

    def __init__(self, client: MatrixClient, *, servers: str = "", search: str = "") -> None:
        super().__init__()
        self.client = client
        self._initial_servers = servers
        self._routes = (
            UpdateRoutes()
            .on(RoomListChanged, lambda _update: self._sync_membership())
            .on(JoinProgress, self._on_join_progress)
        )
        self._initial_search = search
        self.browser: DirectoryBrowser | None = None
        self.fetching = False
        self.errors: list[str] = []
        self._debounce: Timer | None = None
        self._generation = 0
        #: Whose rooms are listed: Matrix (default), all networks, or one bridged network.
        self.network: Network = MATRIX_NETWORK
        #: The bridged protocols the homeserver offers (``None`` until known).
        self.protocols: list[ThirdPartyProtocol] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="directory-title")
        with Horizontal(id="directory-inputs"):
            yield Input(
                value=self._initial_search,
                placeholder="Search by name, topic or alias…",
                id="directory-search",
            )
            yield Input(
                value=self._initial_servers,
                placeholder="Other servers: matrix.org, …",
                id="directory-servers",
            )
        yield Static(id="directory-status")
        yield DirectoryList(id="directory-results")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._restart()
        self._load_protocols()
        # Opened to search: what is typed first goes into the search box, not to the
        # list's one-key actions (p would open a preview).
        self.query_one("#directory-search", Input).focus()

    # -- the list -------------------------------------------------------------------

    def _servers(self) -> list[str | None] | None:
        text = self.query_one("#directory-servers", Input).value
        try:
            names = parse_server_list(text)
        except InvalidIdentifier as error:
            self.errors = [str(error)]
            self._show_status()
            return None
        return list(names) if names else [None]

    def _restart(self) -> None:
        servers = self._servers()
        if servers is None:
            return
        search = self.query_one("#directory-search", Input).value
        self._generation += 1
        network = None if self.network is MATRIX_NETWORK else self.network
        self.browser = self.client.browse_directory(
            servers, search, timeout=self.timeout, network=network
        )
        self.errors = []
        results = self.query_one(DirectoryList)
        results.clear_rooms()
        self._sync_membership()
        self._title()
        self.fetching = False
        self._load_more()

    def _title(self) -> None:
        browser = self.browser
        text = Text("Explore public rooms", style=Style(bold=True))
        if browser is not None:
            text.append(
                "  ·  " + ", ".join(clean_line(s, 60) for s in browser.servers),
                style=Style(dim=True),
            )
            if browser.network is not None:
                text.append(f"  ·  ⇄ {self.network.label}", style=Style(bold=True))
            if browser.search:
                text.append(f"  ·  “{clean_line(browser.search, 60)}”", style=Style(dim=True))
        self.query_one("#directory-title", Static).update(text)

    def _load_more(self) -> None:
        browser = self.browser
        if browser is None or browser.done or self.fetching:
            return
        self.fetching = True
        self._show_status()
        self._fetch(browser, self._generation)

    @work(group="directory-load", exit_on_error=False)
    async def _fetch(self, browser: DirectoryBrowser, generation: int) -> None:
        try:
            batch = await browser.load_more()
        except Exception as error:  # a bug must not leave the screen saying "loading"
            batch = DirectoryBatch((), (), True)
            self.errors.append(f"Loading failed: {type(error).__name__}: {error}")
        if generation != self._generation:
            return
        self._apply(batch)

    def _apply(self, batch: DirectoryBatch) -> None:
        self.fetching = False
        results = self.query_one(DirectoryList)
        results.add_rooms(batch.added)
        browser = self.browser
        if browser is not None:
            for room in browser.rooms:
                if len(room.servers) > 1 and results.rooms.get(room.room_id) is not room:
                    results.update_room(room)
        self.errors.extend(f.message for f in batch.failures)
        self._sync_membership()
        self._show_status()
        # Fill the screen: a first page shorter than the window would never scroll.
        if (
            browser is not None
            and not browser.done
            and results.option_count * 2 < results.size.height + 20
        ):
            self._load_more()

    def _show_status(self) -> None:
        browser = self.browser
        text = Text()
        count = len(browser.rooms) if browser is not None else 0
        if count:
            text.append(f"{count} room{'s' if count != 1 else ''}")
            estimate = browser.total_estimate if browser is not None else None
            if estimate and estimate > count and not (browser and browser.done):
                text.append(f" of about {estimate}")
        elif browser is not None and browser.done and not self.fetching:
            text.append(
                "No rooms found." if browser.search else "This directory is empty.",
                style=Style(italic=True),
            )
        if self.fetching:
            text.append("  loading…", style=Style(dim=True, italic=True))
        elif browser is not None and not browser.done:
            text.append("  more below", style=Style(dim=True))
        for error in self.errors:
            text.append("\n⚠ " + clean_line(error, 300), style=Style(color="#e5c07b"))
        self.query_one("#directory-status", Static).update(text)

    def _sync_membership(self) -> None:
        results = self.query_one(DirectoryList)
        rooms = self.client.rooms
        memberships = {r: s.membership for r, s in rooms.items() if r in results.rooms}
        encrypted = {r: s.encrypted for r, s in rooms.items() if r in results.rooms and s.encrypted}
        results.set_membership(memberships, encrypted)

    def handle_update(self, update: Update) -> None:
        """Engine updates while this screen is shown."""
        self._routes.dispatch(update)

    def _on_join_progress(self, update: JoinProgress) -> None:
        if update.busy:
            self.query_one("#directory-status", Static).update(Text(update.describe(time.time())))
        else:
            self._show_status()

    @on(DirectoryList.NearEnd)
    def _near_end(self) -> None:
        self._load_more()

    # -- searching ------------------------------------------------------------------

    @on(Input.Changed, "#directory-search")
    def _search_changed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(SEARCH_DEBOUNCE, self._restart)

    def on_key(self, event: events.Key) -> None:
        """Down from an input goes into the list of rooms."""
        if event.key == "down" and isinstance(self.focused, Input):
            event.stop()
            self.query_one(DirectoryList).focus()

    @on(Input.Submitted, "#directory-search")
    @on(Input.Submitted, "#directory-servers")
    def _submitted(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._restart()
        self.query_one(DirectoryList).focus()

    # -- actions --------------------------------------------------------------------

    def _current(self) -> PublicRoom | None:
        return self.query_one(DirectoryList).highlighted_room

    @on(DirectoryList.Chosen)
    def _chosen(self, event: DirectoryList.Chosen) -> None:
        event.stop()
        self.action_open_entry()

    def action_open_entry(self) -> None:
        """Open a joined room, show a space, or preview a room to join."""
        room = self._current()
        if room is None:
            return
        summary = self.client.rooms.get(room.room_id)
        if room.is_space:
            client_app(self).show_space(room.room_id, via=room.servers)
        elif summary is not None and summary.membership == "join":
            client_app(self).show_room(room.room_id)
        else:
            self.action_preview()

    def action_preview(self) -> None:
        """Preview the highlighted room."""
        room = self._current()
        if room is not None:
            client_app(self).preview_room(room.room_id, via=self._via(room), known=room)

    def action_join(self) -> None:
        """Join the highlighted room (through the server that listed it)."""
        room = self._current()
        if room is None:
            return
        summary = self.client.rooms.get(room.room_id)
        if summary is not None and summary.membership == "join":
            self.app.notify(f"You are already in {room.display_name}.", markup=False)
            return
        client_app(self).join_flow.join(room.room_id, self._via(room), label=room.display_name)

    def _via(self, room: PublicRoom) -> tuple[str, ...]:
        return tuple(
            s for s in dict.fromkeys([*room.servers, _alias_server(room.canonical_alias)]) if s
        )

    def action_expand(self) -> None:
        """Show the whole topic of the highlighted room (or one line again)."""
        room = self._current()
        if room is not None:
            self.query_one(DirectoryList).toggle_expanded(room.room_id)

    def action_focus_search(self) -> None:
        """Type a search."""
        self.query_one("#directory-search", Input).focus()

    def action_focus_servers(self) -> None:
        """Choose which servers' directories to list."""
        self.query_one("#directory-servers", Input).focus()

    # -- bridged networks -------------------------------------------------------------

    @work(group="directory-protocols", exit_on_error=False)
    async def _load_protocols(self) -> None:
        try:
            self.protocols = await bridged_protocols(self.client, self.timeout)
        except Exception as error:  # no bridges is not an error worth a line; a failure is
            self.protocols = []
            self.errors.append(
                f"Could not ask for bridged networks: {error or type(error).__name__}"
            )
            self._show_status()

    def action_network(self) -> None:
        """Choose whose rooms to list: Matrix, all networks, or one bridged network."""
        if self.protocols is None:
            self.app.notify("Still asking the server which networks it bridges…", markup=False)
            return
        networks = {n.key: n for n in directory_networks(self.protocols)}
        choices = [
            (key, ("• " if key == self.network.key else "  ") + n.label)
            for key, n in networks.items()
        ]

        def chosen(key: str | None) -> None:
            if key is not None and key in networks:
                self.network = networks[key]
                self._restart()

        self.app.push_screen(ChoiceDialog("List the rooms of", choices), chosen)

    def action_bridge_join(self) -> None:
        """Join a bridged channel by the fields its bridge asks for (network, channel…)."""
        protocols = [p for p in self.protocols or [] if p.location_fields]
        instance = self.network.instance
        if instance is not None:
            protocols = [p for p in protocols if p.name == instance.protocol]
        if not protocols:
            self.app.notify(
                "This server offers no bridged networks to join channels of.", markup=False
            )
            return
        if len(protocols) == 1:
            self._ask_location(protocols[0])
            return
        by_name = {p.name: p for p in protocols}

        def chosen(name: str | None) -> None:
            if name in by_name:
                self._ask_location(by_name[name])

        self.app.push_screen(
            ChoiceDialog("Which network?", [(p.name, clean_line(p.name, 40)) for p in protocols]),
            chosen,
        )

    def _ask_location(self, protocol: ThirdPartyProtocol) -> None:
        instance = self.network.instance
        if instance is None or instance.protocol != protocol.name:
            instance = protocol.instances[0] if len(protocol.instances) == 1 else None

        def found(location: ThirdPartyLocation | str | None) -> None:
            if isinstance(location, ThirdPartyLocation):
                label = clean_line(location.alias, 80)
                client_app(self).join_flow.join(location.alias, label=label, open_after=True)

        self.app.push_screen(BridgeJoinDialog(self.client, protocol, instance), found)

    def action_reload(self) -> None:
        """Start again (after a server failed, say)."""
        self._restart()

    def action_back(self) -> None:
        """Back to the chat (or out of an input first)."""
        if isinstance(self.focused, Input):
            self.query_one(DirectoryList).focus()
            return
        self.dismiss(None)


def _alias_server(alias: str | None) -> str:
    if not alias or ":" not in alias:
        return ""
    return alias.split(":", 1)[1]
