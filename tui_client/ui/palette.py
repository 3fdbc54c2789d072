"""The command palette's rooms and the commands of the room in front.

Room names are untrusted: hits are built as :class:`Content`, never read as markup.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from textual.app import SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from ..protocol.sanitize import clean_line
from .app_interface import ClientApp
from .screens.chat import ChatScreen
from .widgets.room_list import visible_rooms

__all__ = ["RoomsProvider", "plain_highlight", "room_commands"]


class RoomsProvider(Provider):
    """Command palette: jump to any room by name."""

    async def search(self, query: str) -> Hits:
        app = self.app
        if not isinstance(app, ClientApp) or app.client is None:
            return
        matcher = self.matcher(query)
        for room in visible_rooms(
            app.client.rooms.values(), hidden=app.client.notifications.hides_room
        ):
            name = clean_line(room.display_name, 200)
            score = matcher.match(name)
            if score > 0:
                yield Hit(
                    score,
                    plain_highlight(matcher, name),
                    partial(app.open_room, room.room_id),
                    help="Open room",
                )

    async def discover(self) -> Hits:
        app = self.app
        if not isinstance(app, ClientApp) or app.client is None:
            return
        rooms = visible_rooms(app.client.rooms.values(), hidden=app.client.notifications.hides_room)
        for room in sorted(rooms, key=lambda r: -r.last_ts)[:10]:
            yield DiscoveryHit(
                Content(clean_line(room.display_name, 200)),
                partial(app.open_room, room.room_id),
                help="Open room",
            )


def plain_highlight(matcher: Matcher, text: str) -> Content:
    """``matcher.highlight`` without reading ``text`` as markup (room names are untrusted)."""
    content = Content(text)
    score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    if score:
        for offset in offsets:
            if not text[offset].isspace():
                content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def room_commands(chat: ChatScreen) -> Iterator[SystemCommand]:
    """Rooms, search, creation and the room in front's commands, as the palette lists them."""
    from .screens import security

    yield SystemCommand("Switch room", "Fuzzy-find a room (Ctrl+K)", chat.action_switch_room)
    yield SystemCommand(
        "Join room", "Join by alias, ID, matrix.to link or matrix: URI", chat.action_join_dialog
    )
    yield SystemCommand(
        "Search messages",
        "In every room, encrypted ones included (Ctrl+F; / in a room)",
        chat.action_search,
    )
    if chat.current_room is not None:
        room = chat.current_room
        yield SystemCommand(
            "Search this room",
            "Only the current room's messages (/ in its timeline)",
            partial(chat.action_search, room),
        )
        yield SystemCommand(
            "Index older messages of this room",
            "Fetch its history from the server so search finds it",
            partial(chat.action_search, room, True),
        )
    yield SystemCommand(
        "Explore public rooms",
        "The room directory: search, preview, join (F3)",
        chat.action_directory,
    )
    yield SystemCommand(
        "Space view",
        "All rooms of the selected space, joined or not (F4)",
        chat.action_space_view,
    )
    yield SystemCommand(
        "Create room", "A new room, public or private (Ctrl+N)", chat.action_create_room
    )
    yield SystemCommand("Create space", "A new space to group rooms", chat.action_create_space)
    yield SystemCommand(
        "Start direct chat",
        "A private, encrypted chat with one person (user ID or email)",
        chat.action_create_dm,
    )
    yield SystemCommand(
        "Link my email address",
        "So people who know it find you (identity server)",
        chat.action_link_email,
    )
    yield SystemCommand(
        "Unlink my email address",
        "Remove it from the identity server",
        chat.action_unlink_email,
    )
    yield SystemCommand(
        "Start direct chat with a bridged user",
        "Someone on a network the server bridges (IRC…)",
        chat.action_create_bridged_dm,
    )
    if chat.may("invite"):
        yield SystemCommand(
            "Invite to room",
            "Invite someone to the current room (user ID or email)",
            chat.action_invite,
        )
    if chat.may("topic"):
        yield SystemCommand(
            "Set room topic", "Change the current room's topic", chat.action_set_topic
        )
    if chat.may("name"):
        yield SystemCommand(
            "Rename room", "Change the current room's name", chat.action_rename_room
        )
    yield SystemCommand("Leave room", "Leave the current room", chat.action_leave_room)
    yield SystemCommand(
        "Leave and forget room",
        "Leave the current room and remove it from this device",
        chat.action_leave_and_forget,
    )
    if security.can_enable_encryption(chat):
        yield SystemCommand(
            "Enable encryption",
            "Turn on end-to-end encryption in this room (cannot be undone)",
            partial(security.enable_encryption, chat),
        )
    yield SystemCommand(
        "Export room keys",
        "Save your room keys to a passphrase-protected file",
        partial(security.export_keys, chat),
    )
    yield SystemCommand(
        "Import room keys",
        "Read room keys from an export file (e.g. from Element)",
        partial(security.import_keys, chat),
    )
