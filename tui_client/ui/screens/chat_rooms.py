"""The chat screen's room actions: the space sidebar and its filter, the directory and
space views, joining (also from links in messages), creating rooms and DMs, room
settings and moderation, each offered only where the user's power level allows.

:class:`RoomActions` is the base class of :class:`~tui_client.ui.screens.chat.ChatScreen`;
it keeps these concerns out of the screen's message and timeline handling.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import on, work
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import OptionList

from ...engine.client import MatrixClient
from ...engine.identity import IdentityError
from ...engine.room_view import RoomView
from ...engine.updates import JoinProgress, Reminder, RoomListChanged, SpacesChanged, Update
from ...protocol.commands import CommandError, parse_command
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.ids import MatrixLink, server_name_of
from ...protocol.media import MediaError
from ...protocol.room_state import RoomSummary
from ...protocol.sanitize import clean_line
from ...protocol.timeline import TimelineItem
from .. import identity_flow
from ..app_interface import client_app
from ..messages import ActionFailed
from ..pictures import image_service
from ..update_routes import UpdateRoutes
from ..widgets.room_list import RoomList, visible_rooms
from ..widgets.space_bar import HOME, PEOPLE, SpaceBar
from ..widgets.status_bar import StatusBar
from ..widgets.timeline import TimelineView

if TYPE_CHECKING:
    from ...protocol.room_create import RoomCreateOptions
    from ...protocol.thirdparty import ThirdPartyLocation, ThirdPartyProtocol


class RoomActions(Screen[None]):
    """Spaces, the directory, joins, room creation and moderation for the chat screen."""

    BINDINGS = [
        # (the app's quit key, listed here so that it comes early in the footer)
        Binding("ctrl+q", "app.quit", "Quit", priority=True, id="global.quit"),
        Binding("f3", "directory", "Explore", priority=True, id="global.directory"),
        Binding("f4", "space_view", "Space", priority=True, id="global.space_view"),
        Binding(
            "ctrl+n", "create_room", "New room", show=False, priority=True, id="global.create_room"
        ),
    ]

    client: MatrixClient
    current_room: str | None
    view: RoomView | None

    def __init__(self) -> None:
        super().__init__()
        self.space_filter = HOME
        self._described: set[str] = set()
        self._room_routes = (
            UpdateRoutes()
            .on(SpacesChanged, self._on_spaces)
            .on(RoomListChanged, lambda _update: self.refresh_spaces())
            .on(JoinProgress, self._on_join_progress)
            .on(Reminder, self._on_reminder)
        )

    # Provided by the chat screen.
    def open_room(self, room_id: str) -> None:
        """Show a room."""
        raise NotImplementedError

    def _refresh_rooms(self) -> None:
        raise NotImplementedError

    # -- the space sidebar and the room list's filter -------------------------------------

    def mount_spaces(self) -> None:
        """Start keeping the space graph (the sidebar fills in when it is built)."""
        self.client.spaces.start()
        self.refresh_spaces()

    def handle_room_update(self, update: Update) -> None:
        """The updates this part of the screen cares about."""
        self._room_routes.dispatch(update)

    def _on_spaces(self, update: SpacesChanged) -> None:
        self.refresh_spaces()
        if self.space_filter not in (HOME, PEOPLE):  # (all rooms and People are not by space)
            self._refresh_rooms()

    def _on_join_progress(self, update: JoinProgress) -> None:
        self.query_one(StatusBar).message = update.describe(time.time())

    def _on_reminder(self, update: Reminder) -> None:
        # Said as a pop-up on an earlier start; F7 has the whole story (the key first:
        # a narrow status line cuts the end).
        self.query_one(StatusBar).message = "F7: " + clean_line(update.text, 80)

    def refresh_spaces(self) -> None:
        """Rebuild the sidebar (nothing is redrawn when nothing changed)."""
        spaces = self.client.spaces
        rooms = self.client.rooms
        nodes = spaces.sidebar()
        if self.space_filter not in (HOME, PEOPLE) and self.space_filter not in {
            n.room_id for n in nodes
        }:
            # The selected space was left: back to all rooms.
            self.space_filter = HOME
            self._refresh_rooms()
        names = {n.room_id: rooms[n.room_id].display_name for n in nodes if n.room_id in rooms}
        badges: dict[str, int] = {}
        for node in nodes:
            inside = spaces.rooms_in(node.room_id)
            badges[node.room_id] = sum(
                rooms[r].notification_count
                for r in inside
                if r in rooms and rooms[r].membership == "join"
            )
        badges[PEOPLE] = sum(
            r.notification_count for r in rooms.values() if r.is_dm and r.membership == "join"
        )
        self.query_one(SpaceBar).show(nodes, names, badges, self.space_filter)

    def filtered_rooms(self) -> list[RoomSummary]:
        """The rooms the room list shows under the selected sidebar entry."""
        rooms = visible_rooms(
            self.client.rooms.values(), hidden=self.client.notifications.hides_room
        )
        if self.space_filter == HOME:
            return rooms
        if self.space_filter == PEOPLE:
            return [r for r in rooms if r.is_dm]
        inside = self.client.spaces.rooms_in(self.space_filter)
        return [r for r in rooms if r.room_id in inside]

    def shows_room(self, room: RoomSummary) -> bool:
        """Whether the room list shows ``room`` under all rooms or People (as
        :meth:`filtered_rooms` would)."""
        hides = self.client.notifications.hides_room
        return bool(visible_rooms((room,), hidden=hides)) and (
            self.space_filter != PEOPLE or room.is_dm
        )

    def unjoined_rows(self) -> list[tuple[str, str]]:
        """Rooms of the selected space the user has not joined: ``(room ID, name)``."""
        if self.space_filter in (HOME, PEOPLE):
            return []
        spaces = self.client.spaces
        rows = []
        for link in spaces.unjoined_in(self.space_filter):
            described = spaces.describe(link.room_id)
            name = described.display_name if described is not None else clean_line(link.room_id)
            if (described is not None and described.is_space) or spaces.graph.is_space(
                link.room_id
            ):
                name = "◆ " + name
            rows.append((link.room_id, name))
        return rows

    @on(SpaceBar.SpaceChosen)
    def _space_chosen(self, event: SpaceBar.SpaceChosen) -> None:
        self.space_filter = event.key
        self.refresh_spaces()
        self._refresh_rooms()
        if event.key not in (HOME, PEOPLE) and event.key not in self._described:
            self._described.add(event.key)
            self._learn(event.key)

    @work(group="learn-space", exit_on_error=False)
    async def _learn(self, space_id: str) -> None:
        await self.client.spaces.learn_children(space_id)

    @on(RoomList.UnjoinedChosen)
    def _unjoined_chosen(self, event: RoomList.UnjoinedChosen) -> None:
        spaces = self.client.spaces
        via = spaces.via_for(event.room_id)
        described = spaces.describe(event.room_id)
        if (described is not None and described.is_space) or spaces.graph.is_space(event.room_id):
            client_app(self).show_space(event.room_id, via=via)
        else:
            client_app(self).preview_room(event.room_id, via=via, known=described)

    # -- the directory and the space view -------------------------------------------------

    def action_directory(self, servers: str = "") -> None:
        """Explore public rooms (F3)."""
        client_app(self).open_directory(servers)

    def action_space_view(self) -> None:
        """The selected space's hierarchy, or that of the current room's space (F4)."""
        space = self.space_filter if self.space_filter not in (HOME, PEOPLE) else None
        if space is None and self.current_room is not None:
            summary = self.client.rooms.get(self.current_room)
            if summary is not None and summary.is_space:
                space = summary.room_id
            else:
                parents = sorted(self.client.spaces.graph.parents_of(self.current_room))
                canonical = self.client.spaces.graph.canonical_parent(self.current_room)
                space = canonical or (parents[0] if parents else None)
        if space is None:
            self.notify(
                "Choose a space in the sidebar first (or explore the directory with F3).",
                markup=False,
            )
            return
        client_app(self).show_space(space)

    # -- joining ------------------------------------------------------------------------

    def intercept_command(self, text: str) -> bool:
        """Handle the composer commands that belong to this part of the UI.

        ``/join`` goes through the join queue and opens the room once joined (or
        explains a refusal); ``/directory`` opens the directory. True if handled.
        """
        try:
            command = parse_command(text)
        except CommandError:
            return False
        if command is None:
            return False
        if command.name == "join":
            client_app(self).join_flow.join(command.argument, open_after=True)
            return True
        if command.name == "directory":
            self.action_directory(command.argument)
            return True
        return False

    def open_link(self, item: TimelineItem) -> None:
        """Open what a message points at: its file (in the system's handler, through a
        private temporary file), its web links (in the handler), the rooms it links to (or
        offer to join them), the users it mentions (their actions). A choice when several."""
        from ...protocol.links import document_links, find_room_links, has_spoiler
        from ...protocol.web_links import web_links
        from .dialogs import ChoiceDialog

        revealed = self._spoilers_shown(item)
        links = (
            document_links(item.formatted, spoilers=revealed) if item.formatted is not None else []
        )
        # The plain body holds a spoiler's text too: read it only when nothing is hidden.
        shows_all = item.formatted is None or revealed or not has_spoiler(item.formatted)
        if shows_all:
            seen = {(link.kind, link.identifier) for link in links}
            links += [
                link
                for link in find_room_links(item.body)
                if (link.kind, link.identifier) not in seen
            ]
        urls = (
            web_links(item.body, item.formatted, spoilers=shows_all) if item.kind != "media" else []
        )
        has_file = item.kind == "media" and bool(item.event_id) and not item.is_local_echo
        targets: list[tuple[str, object]] = []
        if has_file:
            targets.append(("Open the file in the system's viewer", item))
        targets += [(f"Open {clean_line(url, 80)}", url) for url in urls]
        targets += [(self._link_label(link), link) for link in links]
        if not targets:
            self.notify(
                "This message links to no room or person, and has no file or web link to open.",
                markup=False,
            )
            return
        if len(targets) == 1:
            self._open_target(targets[0][1])
            return
        choices = [(str(n), label) for n, (label, _) in enumerate(targets)]

        def chosen(key: str | None) -> None:
            if key is not None:
                self._open_target(targets[int(key)][1])

        self.app.push_screen(ChoiceDialog("Open which?", choices), chosen)

    def _open_target(self, target: object) -> None:
        if isinstance(target, MatrixLink):
            self._follow_link(target)
        elif isinstance(target, str):
            self._open_externally(target, None)
        elif isinstance(target, TimelineItem) and target.event_id:
            self._open_externally(None, target.event_id)

    @work(group="open-external", exit_on_error=False)
    async def _open_externally(self, url: str | None, event_id: str | None) -> None:
        from ...crypto.attachments import AttachmentError
        from ...engine.opener import fetch_to_private_file, open_with_handler

        try:
            if event_id is not None:
                self.notify("Downloading…", markup=False, timeout=3)
                path = await fetch_to_private_file(self.client, event_id)
                await open_with_handler(str(path))
            elif url is not None:
                await open_with_handler(url)
        except (MediaError, AttachmentError, MatrixError, NetworkError, OSError) as error:
            self.notify(
                f"Could not open it: {clean_line(str(error), 300)}", severity="error", markup=False
            )

    def copy_link(self, item: TimelineItem) -> None:
        """Copy a message's web link to the clipboard (OSC 52), choosing when several."""
        from .dialogs import ChoiceDialog

        if not self.client_copy_allowed():
            self.notify(
                "Copying to the clipboard is turned off (see the palette).",
                severity="warning",
                markup=False,
            )
            return
        from ...protocol.links import has_spoiler
        from ...protocol.web_links import web_links

        shows_all = (
            item.formatted is None or self._spoilers_shown(item) or not has_spoiler(item.formatted)
        )
        urls = web_links(item.body, item.formatted, spoilers=shows_all)
        if not urls:
            self.notify("This message has no link to copy.", markup=False)
            return

        def copy(url: str) -> None:
            self.app.copy_to_clipboard(url)
            self.notify(f"Copied {clean_line(url, 120)}", markup=False, timeout=4)

        if len(urls) == 1:
            copy(urls[0])
            return
        choices = [(str(n), clean_line(url, 100)) for n, url in enumerate(urls)]
        self.app.push_screen(
            ChoiceDialog("Copy which?", choices),
            lambda key: copy(urls[int(key)]) if key is not None else None,
        )

    def client_copy_allowed(self) -> bool:
        """Whether ``O`` may write to the terminal's clipboard (the user's setting)."""
        return image_service(self.client).copy_links

    def _spoilers_shown(self, item: TimelineItem) -> bool:
        """Whether the reader revealed this message's spoilers in the timeline."""
        return item.key in self.query_one(TimelineView).revealed

    def _link_label(self, link: MatrixLink) -> str:
        if link.kind == "user":
            name = (
                self.view.display_name(link.identifier)
                if self.view is not None
                else link.identifier
            )
            return clean_line(
                name if name == link.identifier else f"{name} ({link.identifier})", 80
            )
        for summary in self.client.rooms.values():
            if (
                link.identifier in (summary.room_id, summary.canonical_alias)
                and summary.display_name
            ):
                return clean_line(f"{summary.display_name} ({link.identifier})", 80)
        return clean_line(link.identifier, 80)

    def _follow_link(self, link: MatrixLink) -> None:
        if link.kind == "user":
            self.show_member(link.identifier)
            return
        identifier = link.identifier
        for summary in self.client.rooms.values():
            if summary.membership == "join" and identifier in (
                summary.room_id,
                summary.canonical_alias,
            ):
                if summary.is_space:
                    client_app(self).show_space(summary.room_id)
                else:
                    self.open_room(summary.room_id)
                return
        client_app(self).preview_room(identifier, via=link.via)

    # -- creating -------------------------------------------------------------------------

    def _parent_choice(self) -> tuple[str, str] | None:
        if self.space_filter in (HOME, PEOPLE):
            return None
        summary = self.client.rooms.get(self.space_filter)
        return (self.space_filter, summary.display_name if summary else self.space_filter)

    def action_create_room(self) -> None:
        """Create a room (Ctrl+N); in the selected space if the user wants."""
        self._create(space=False)

    def action_create_space(self) -> None:
        """Create a space."""
        self._create(space=True)

    def _create(self, *, space: bool) -> None:
        from .create_room import CreateRoomDialog

        dialog = CreateRoomDialog(
            server_name=server_name_of(self.client.user_id),
            space=space,
            parent=self._parent_choice(),
        )
        self.app.push_screen(dialog, self._create_chosen)

    def _create_chosen(self, options: RoomCreateOptions | None) -> None:
        if options is not None:
            self._run_create(options)

    @work(group="create-room", exit_on_error=False)
    async def _run_create(self, options: RoomCreateOptions) -> None:
        try:
            room_id = await self.client.admin.create_room(options)
        except (MatrixError, NetworkError, CommandError) as error:
            self.post_message(ActionFailed(f"Could not create it: {error}"))
            return
        self.notify(f"Created {clean_line(options.name)}", markup=False)
        if await self.client.joins.wait_for_room(room_id, timeout=20):
            if options.space:
                client_app(self).show_space(room_id)
            else:
                self.open_room(room_id)

    def action_create_dm(self) -> None:
        """Start a direct chat (the existing one with that person, if any)."""
        from .dialogs import PromptDialog

        self.app.push_screen(
            PromptDialog("Start a direct chat with", "@name:server or email"), self._dm_chosen
        )

    def _dm_chosen(self, user_id: str | None) -> None:
        if user_id and identity_flow.is_email(user_id):
            self._dm_by_email(user_id.strip())
        elif user_id:
            self._run_dm(user_id.strip())

    @work(group="identity", exit_on_error=False)
    async def _dm_by_email(self, address: str) -> None:
        user_id = await identity_flow.find_by_email(self, self.client.identity, address)
        if user_id is not None:
            self._run_dm(user_id)

    def action_link_email(self) -> None:
        """Link an email address to this account on the identity server (a mailed link confirms it)."""

        from .dialogs import PromptDialog

        def chosen(address: str | None) -> None:
            if address:
                self._link_email(address.strip())

        self.app.push_screen(PromptDialog("Link an email address", "you@example.org"), chosen)

    @work(group="identity", exit_on_error=False)
    async def _link_email(self, address: str) -> None:
        await identity_flow.bind_email(self, self.client.identity, address)

    def action_unlink_email(self) -> None:
        """Remove an email address's link to this account from the identity server."""

        from .dialogs import PromptDialog

        def chosen(address: str | None) -> None:
            if address:
                self._unlink_email(address.strip())

        self.app.push_screen(PromptDialog("Unlink an email address", "you@example.org"), chosen)

    @work(group="identity", exit_on_error=False)
    async def _unlink_email(self, address: str) -> None:
        try:
            await self.client.identity.unbind_email(address)
        except (IdentityError, MatrixError, NetworkError) as error:
            self.post_message(ActionFailed(f"Could not unlink {clean_line(address, 80)}: {error}"))
            return
        self.notify(f"{clean_line(address, 80)} is no longer linked to your account.", markup=False)

    @work(group="create-room", exit_on_error=False)
    async def action_create_bridged_dm(self) -> None:
        """Start a direct chat with a bridged network's user, found by the fields its
        bridge asks for (``/thirdparty/user``: network and nickname, say)."""
        from ...engine.directory import bridged_protocols
        from .bridge_join import BridgeJoinDialog
        from .dialogs import ChoiceDialog

        try:
            protocols = [p for p in await bridged_protocols(self.client) if p.user_fields]
        except (MatrixError, NetworkError, TimeoutError) as error:
            self.post_message(ActionFailed(f"Could not ask for bridged networks: {error}"))
            return
        if not protocols:
            self.notify("This server offers no bridged networks.", markup=False)
            return

        def found(user_id: ThirdPartyLocation | str | None) -> None:
            if isinstance(user_id, str):
                self._run_dm(user_id)

        def ask(protocol: ThirdPartyProtocol) -> None:
            instance = protocol.instances[0] if len(protocol.instances) == 1 else None
            self.app.push_screen(
                BridgeJoinDialog(self.client, protocol, instance, users=True), found
            )

        if len(protocols) == 1:
            ask(protocols[0])
            return
        by_name = {p.name: p for p in protocols}

        def chosen(name: str | None) -> None:
            if name in by_name:
                ask(by_name[name])

        self.app.push_screen(
            ChoiceDialog("Which network?", [(p.name, clean_line(p.name, 40)) for p in protocols]),
            chosen,
        )

    @work(group="create-room", exit_on_error=False)
    async def _run_dm(self, user_id: str) -> None:
        try:
            room_id = await self.client.admin.create_dm(user_id)
        except (MatrixError, NetworkError, CommandError) as error:
            self.post_message(ActionFailed(f"Could not start the chat: {error}"))
            return
        if await self.client.joins.wait_for_room(room_id, timeout=20):
            self.open_room(room_id)

    # -- room settings and moderation (offered where power levels allow) -------------------

    def may(self, action: str) -> bool:
        """Whether the user may do ``action`` in the open room: ``invite``, ``kick``,
        ``ban``, ``topic``, ``name``."""
        view = self.view
        if view is None or self.current_room is None:
            return False
        summary = self.client.rooms.get(self.current_room)
        if summary is None or summary.membership != "join":
            return False
        if action in ("topic", "name"):
            return view.can_send_state(f"m.room.{action}")
        return view.can(action)

    def action_set_topic(self) -> None:
        """Change the topic of the open room."""
        from .dialogs import PromptDialog

        room = self.current_room
        if room is None or not self.may("topic"):
            return
        summary = self.client.rooms.get(room)
        self.app.push_screen(
            PromptDialog("Room topic", "", summary.topic or "" if summary else ""),
            lambda topic: (
                self._guard(self.client.set_topic(room, topic)) if topic is not None else None
            ),
        )

    def action_rename_room(self) -> None:
        """Rename the open room."""
        from .dialogs import PromptDialog

        room = self.current_room
        if room is None or not self.may("name"):
            return
        summary = self.client.rooms.get(room)
        self.app.push_screen(
            PromptDialog("Room name", "", summary.name or "" if summary else ""),
            lambda name: self._guard(self.client.set_room_name(room, name)) if name else None,
        )

    def action_invite(self) -> None:
        """Invite someone to the open room."""
        from .dialogs import PromptDialog

        room = self.current_room
        if room is None or not self.may("invite"):
            return
        self.app.push_screen(
            PromptDialog("Invite to this room", "@name:server or email"),
            lambda user: self._invite_chosen(room, user.strip()) if user else None,
        )

    def _invite_chosen(self, room: str, user: str) -> None:
        if identity_flow.is_email(user):
            self._invite_by_email(room, user)
        else:
            self._guard(self.client.invite(room, user))

    @work(group="identity", exit_on_error=False)
    async def _invite_by_email(self, room: str, address: str) -> None:
        await identity_flow.invite_by_email(self, self.client.identity, room, address)

    def action_leave_and_forget(self) -> None:
        """Leave the open room and forget it (its history leaves this device too)."""
        from .dialogs import ConfirmDialog

        room = self.current_room
        if room is None:
            return
        name = self.client.rooms[room].display_name if room in self.client.rooms else room
        self.app.push_screen(
            ConfirmDialog(
                f"Leave {clean_line(name)} and forget it?", "Leave and forget", danger=True
            ),
            lambda yes: self._guard(self.client.admin.leave_and_forget(room)) if yes else None,
        )

    @on(OptionList.OptionSelected, "#members")
    def _member_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        user_id = (event.option.id or "").removeprefix("invite:")
        if user_id:
            self.show_member(user_id)

    def show_member(self, user_id: str) -> None:
        """What can be done with a member of the open room, or a user a message names:
        a direct message, moderation where our power allows, verification, devices."""
        from .dialogs import ChoiceDialog

        room, view = self.current_room, self.view
        if room is None or view is None:
            return
        me = self.client.user_id
        power = view.power_levels
        member = view.members.get(user_id)
        choices: list[tuple[str, str]] = []
        if user_id != me:
            choices.append(("dm", "Direct message"))
            if (
                power.can_act_on(me, user_id, "kick")
                and member is not None
                and member.membership in ("join", "invite")
            ):
                choices.append(("kick", "Remove from the room…"))
            if power.can_act_on(me, user_id, "ban") and (
                member is None or member.membership != "ban"
            ):
                choices.append(("ban", "Ban…"))
            choices.append(("verify", "Verify (compare emoji in your DM)"))
            if self.client.notifications.is_ignored(user_id):
                choices.append(("unignore", "Stop ignoring"))
            else:
                choices.append(("ignore", "Ignore (hide their messages and invites)…"))
        choices.append(("devices", "Devices and trust" if user_id != me else "Your sessions"))
        name = view.display_name(user_id)

        def chosen(action: str | None) -> None:
            from .dialogs import ConfirmDialog, PromptDialog

            if action == "dm":
                self._run_dm(user_id)
            elif action == "verify":
                client_app(self).security.verify_user(user_id)
            elif action == "devices":
                client_app(self).security.show_devices(user_id)
            elif action == "ignore":
                self.app.push_screen(
                    ConfirmDialog(
                        f"Ignore {name}? Their messages and invites will be hidden everywhere.",
                        "Ignore",
                    ),
                    lambda yes: self._set_ignored(user_id, True) if yes else None,
                )
            elif action == "unignore":
                self._set_ignored(user_id, False)
            elif action in ("kick", "ban"):
                verb = "Remove" if action == "kick" else "Ban"
                self.app.push_screen(
                    PromptDialog(f"{verb} {name}? Reason (optional):"),
                    lambda reason: (
                        self._moderate(action, room, user_id, reason)
                        if reason is not None
                        else None
                    ),
                )

        self.app.push_screen(ChoiceDialog(f"{name} ({clean_line(user_id)})", choices), chosen)

    def _set_ignored(self, user_id: str, ignore: bool) -> None:
        service = self.client.notifications

        async def run() -> None:
            try:
                await (service.ignore(user_id) if ignore else service.unignore(user_id))
            except (MatrixError, NetworkError) as error:
                self.post_message(ActionFailed(f"Failed: {error}"))
                return
            said = "Ignoring" if ignore else "No longer ignoring"
            self.notify(f"{said} {clean_line(user_id, 80)}", markup=False)

        self.run_worker(run(), exit_on_error=False)

    def _moderate(self, action: str, room: str, user_id: str, reason: str) -> None:
        if action == "kick":
            self._guard(self.client.admin.kick(room, user_id, reason or None))
        else:
            self._guard(self.client.admin.ban(room, user_id, reason or None))

    def _guard(self, coroutine: object) -> None:
        async def run() -> None:
            try:
                await coroutine  # type: ignore[misc]
            except (MatrixError, NetworkError, CommandError) as error:
                self.post_message(ActionFailed(f"Failed: {error}"))

        self.run_worker(run(), exit_on_error=False)
