"""The header of the open room: name, padlock, and the topic on one line; in a direct
message, the other person's avatar first (while avatars are on)."""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...engine.devices import IdentityState, UserTrust
from ...protocol.bridges import bridge_label
from ...protocol.room_state import RoomSummary
from ...protocol.sanitize import clean_line
from ..pictures import avatar_text, image_service


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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: The other person's trust in an encrypted DM, when known.
        self.trust_of: Callable[[str], UserTrust | None] = lambda user_id: None
        #: The other person's presence in a DM, in a word, when the server says it.
        self.presence_of: Callable[[str], str | None] = lambda user_id: None
        #: A member's avatar (an mxc URI) in the open room, when known.
        self.avatar_of: Callable[[str], str | None] = lambda user_id: None
        self._listening = False

    def render(self) -> Text:
        """One line."""
        room = self.room
        if room is None:
            return Text(" tui_client — pick a room (Ctrl+K)", style=Style(dim=True))
        text = Text(" ")
        if room.is_dm:
            text.append_text(self._avatar(room))
        if room.encrypted:
            text.append("🔒 ")
        text.append(clean_line(room.display_name), style=Style(bold=True))
        if room.is_dm:
            text.append("  (direct message)", style=Style(dim=True))
            presence = self.presence_of(room.dm_user) if room.dm_user else None
            if presence is not None:
                text.append(
                    f"  {presence}",
                    style=Style(color="green") if presence == "online" else Style(dim=True),
                )
            trust = self.trust_of(room.dm_user) if room.encrypted and room.dm_user else None
            if trust is not None:
                text.append_text(_trust_text(trust))
        if room.membership == "invite":
            text.append("  (invited)", style=Style(italic=True))
        for bridge in room.bridge_list:
            # Bridged: which network and channel (each bridge), and the channel's URL.
            text.append("  " + bridge_label(bridge), style=Style(color="#56b6c2"))
            if bridge.external_url:
                text.append(f" <{bridge.external_url}>", style=Style(dim=True))
        count = self.member_count or room.joined_count
        if count:
            text.append(f"  · {count} member{'s' if count != 1 else ''}", style=Style(dim=True))
        if room.topic:
            text.append("  │  ", style=Style(dim=True))
            text.append(clean_line(room.topic), style=Style(dim=True, italic=True))
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text

    def _avatar(self, room: RoomSummary) -> Text:
        """The other person's avatar (else the room's) as 2 cells of half-blocks and a
        space; nothing while avatars are off or there is none, blank while it loads."""
        client = getattr(self.app, "client", None)
        mxc = (self.avatar_of(room.dm_user) if room.dm_user else None) or room.avatar_url
        if client is None or not mxc:
            return Text()
        service = image_service(client)
        if not self._listening:
            self._listening = True
            service.listen(self.refresh_avatar)
        return avatar_text(service, mxc, lambda _mxc: self.refresh_avatar())

    def refresh_avatar(self) -> None:
        """An avatar loaded, or the avatar setting changed."""
        if self.is_attached:
            self.refresh()


def _trust_text(trust: UserTrust) -> Text:
    """The DM partner's identity, in a few words."""
    if trust.needs_attention:
        return Text("  ⚠ identity changed", style=Style(color="yellow", bold=True))
    if trust.verified:
        return Text("  ✓ verified", style=Style(color="green", bold=True))
    if trust.state is IdentityState.NONE:
        return Text("  no cross-signing", style=Style(dim=True))
    return Text("  not verified", style=Style(dim=True))
