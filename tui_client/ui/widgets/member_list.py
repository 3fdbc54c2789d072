"""The member list of the open room (joined, then invited), with power badges."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...engine.devices import UserTrust
from ...protocol.room_state import PowerLevels, RoomMembers
from ..pictures import avatar_text, image_service
from ..render import sender_colour


def _badge(level: float) -> str:
    if level == math.inf:
        return "★"
    if level >= 100:
        return "@"
    if level >= 50:
        return "+"
    return " "


class MemberList(OptionList):
    """Members of the current room."""

    DEFAULT_CSS = """
    MemberList {
        width: 28;
        height: 1fr;
        border-left: solid $panel;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(markup=False, id=id)
        #: A member's trust, when known: ✓ for a verified user, ⚠ for a changed identity.
        self.trust_of: Callable[[str], UserTrust | None] = lambda user_id: None
        self.own_user: str | None = None
        #: A member's presence in a word ("online", "away", "offline"), when the server says it.
        self.presence_of: Callable[[str], str | None] = lambda user_id: None
        #: Whether a member is a bridged (puppeted) user of one of the room's bridges.
        self.is_bridged: Callable[[str], bool] = lambda user_id: False
        self._shown: tuple[RoomMembers, PowerLevels] | None = None
        self._redraw_pending = False
        self._listening = False

    def show_members(self, members: RoomMembers, power: PowerLevels) -> None:
        """Rebuild from the room's members."""
        self._shown = members, power
        options: list[Option] = []
        joined, invited = members.joined(), members.invited()
        options.append(
            Option(Text(f"JOINED — {len(joined)}", style=Style(dim=True, bold=True)), disabled=True)
        )
        for member in joined:
            options.append(
                Option(
                    self._avatar(member.avatar_url) + self._line(members, power, member.user_id),
                    id=member.user_id,
                )
            )
        if invited:
            options.append(
                Option(
                    Text(f"INVITED — {len(invited)}", style=Style(dim=True, bold=True)),
                    disabled=True,
                )
            )
            for member in invited:
                options.append(
                    Option(
                        self._line(members, power, member.user_id), id="invite:" + member.user_id
                    )
                )
        pending = members.third_party_pending()
        if pending:
            options.append(
                Option(
                    Text(f"INVITED BY EMAIL — {len(pending)}", style=Style(dim=True, bold=True)),
                    disabled=True,
                )
            )
            for name in pending:
                options.append(
                    Option(Text(f"✉ {name} (pending)", style=Style(dim=True)), disabled=True)
                )
        self.set_options(options)

    def _avatar(self, mxc: str | None) -> Text:
        """A joined member's avatar: 2 cells of half-blocks and a space, while avatars are
        on (blank until it loads; nothing for a member without one)."""
        client = getattr(self.app, "client", None) if self.is_attached else None
        if client is None or not mxc:
            return Text()
        service = image_service(client)
        if not self._listening:
            self._listening = True
            service.listen(self._settings_changed)
        return avatar_text(service, mxc, self._avatar_loaded)

    def _settings_changed(self) -> None:
        self._avatar_loaded("")

    def _avatar_loaded(self, _mxc: str) -> None:
        if not self._redraw_pending:
            self._redraw_pending = True
            self.call_later(self._redraw)

    def _redraw(self) -> None:
        self._redraw_pending = False
        if self._shown is not None:
            highlighted = self.highlighted
            self.show_members(*self._shown)
            self.highlighted = highlighted

    def _line(self, members: RoomMembers, power: PowerLevels, user_id: str) -> Text:
        text = Text(_badge(power.user_level(user_id)) + " ", style=Style(bold=True))
        text.append(members.display_name(user_id), style=Style(color=sender_colour(user_id)))
        if self.is_bridged(user_id):
            text.append(" ⇄", style=Style(color="#56b6c2", bold=True))
        # Other people's trust (ours is the devices screen's business).
        trust = self.trust_of(user_id) if user_id != self.own_user else None
        if trust is not None and trust.needs_attention:
            text.append(" ⚠", style=Style(color="yellow", bold=True))
        elif trust is not None and trust.verified:
            text.append(" ✓", style=Style(color="green", bold=True))
        presence = self.presence_of(user_id)
        if presence is not None:
            text.append(
                " " + _PRESENCE_MARK.get(presence, "·") + " " + presence,
                style=_PRESENCE_STYLE.get(presence, Style(dim=True)),
            )
        return text


_PRESENCE_MARK = {"online": "●", "away": "◐", "offline": "○"}
_PRESENCE_STYLE = {
    "online": Style(color="green"),
    "away": Style(color="yellow"),
    "offline": Style(dim=True),
}
