"""Creating rooms, spaces and DMs; what the user may do in a room; kick, ban, forget.

Permissions come from the room's cached ``m.room.power_levels`` (and, for room
versions 12 and later, its creators), so the UI can hide what the user may not do
and the engine refuses it with a clear message before asking the server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol import requests as api
from ..protocol.commands import CommandError
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.ids import InvalidIdentifier, is_user_id, parse_link, server_name_of
from ..protocol.room_create import RoomCreateOptions, create_room_body
from ..protocol.room_state import PowerLevels
from ..protocol.room_versions import rules_for

if TYPE_CHECKING:
    from .core import Core


class RoomActions(Protocol):
    """What the administration asks of the client: room-level calls and the open views' power levels."""

    async def create_room(self, body: dict[str, Any]) -> str: ...

    async def leave(self, room_id: str, reason: str | None = None) -> None: ...

    async def forget(self, room_id: str) -> None: ...

    def open_power_levels(self, room_id: str) -> PowerLevels | None: ...


__all__ = ["RoomAdmin", "RoomPermissions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoomPermissions:
    """What the user may do in a room, by its power levels."""

    invite: bool = False
    kick: bool = False
    ban: bool = False
    redact: bool = False
    set_name: bool = False
    set_topic: bool = False
    add_child: bool = False
    level: float = 0


class RoomAdmin:
    """Room management on behalf of a client."""

    def __init__(self, core: Core, actions: RoomActions) -> None:
        self._core = core
        self._actions = actions

    @property
    def own_server(self) -> str:
        """The user's server name."""
        return server_name_of(self._core.user_id)

    # -- creating -------------------------------------------------------------------

    async def create_room(self, options: RoomCreateOptions) -> str:
        """Create a room, space or DM; returns its ID.

        With ``parent_space`` the new room also becomes a child of that space (if the
        user may add children there; otherwise only the room's parent link is set
        and the user is told). Raises :class:`CommandError` for bad input.
        """
        if options.parent_space and not options.parent_via:
            options = replace(options, parent_via=(self.own_server,))
        try:
            body = create_room_body(options)
        except InvalidIdentifier as error:
            raise CommandError(str(error)) from error
        room_id = await self._actions.create_room(body)
        if options.parent_space:
            try:
                await self._core.connection.send(
                    api.send_state(
                        options.parent_space, "m.space.child", room_id, {"via": [self.own_server]}
                    )
                )
            except (MatrixError, NetworkError) as error:
                self._core.notify(
                    "warning", f"The room was created but could not be added to the space: {error}"
                )
        return room_id

    async def create_dm(self, user_id: str, *, encrypted: bool = True) -> str:
        """Open a direct chat with ``user_id``: the existing one, or a new one.

        A new DM is created as the spec says (``is_direct`` invite, trusted private
        preset) and recorded in our ``m.direct`` account data.
        """
        user_id = user_id.strip()
        if not is_user_id(user_id):
            raise CommandError(f"{user_id!r} is not a user ID (@name:server)")
        if user_id == self._core.user_id:
            raise CommandError("that is you")
        for summary in self._core.rooms.values():
            if summary.is_dm and summary.dm_user == user_id and summary.membership == "join":
                return summary.room_id
        room_id = await self.create_room(
            RoomCreateOptions(invite=(user_id,), is_direct=True, encrypted=encrypted)
        )
        direct = await self._core.db.run(self._core.cache.account_data, "m.direct") or {}
        updated: dict[str, Any] = {k: list(v) for k, v in direct.items() if isinstance(v, list)}
        updated.setdefault(user_id, [])
        if room_id not in updated[user_id]:
            updated[user_id].append(room_id)
        try:
            await self._core.connection.send(
                api.set_account_data(self._core.user_id, "m.direct", updated)
            )
        except (MatrixError, NetworkError) as error:
            log.warning("could not record the DM in m.direct: %s", error)
        return room_id

    # -- permissions ------------------------------------------------------------------

    async def power_levels(self, room_id: str) -> PowerLevels:
        """The room's power levels: the open view's, or read from the cache."""
        shown = self._actions.open_power_levels(room_id)
        if shown is not None:
            return shown
        events = await self._core.db.run(
            self._core.cache.load_state, room_id, "m.room.power_levels"
        )
        content = events[0].get("content") if events else None
        summary = self._core.rooms.get(room_id)
        return PowerLevels(
            content if isinstance(content, dict) else None,
            creators=summary.creators if summary else (),
            creators_have_infinite_power=rules_for(
                summary.room_version if summary else None
            ).creators_have_infinite_power,
        )

    async def permissions(self, room_id: str) -> RoomPermissions:
        """What the user may do in the room."""
        power = await self.power_levels(room_id)
        me = self._core.user_id
        return RoomPermissions(
            invite=power.can(me, "invite"),
            kick=power.can(me, "kick"),
            ban=power.can(me, "ban"),
            redact=power.can(me, "redact"),
            set_name=power.can_send(me, "m.room.name", is_state=True),
            set_topic=power.can_send(me, "m.room.topic", is_state=True),
            add_child=power.can_send(me, "m.space.child", is_state=True),
            level=power.user_level(me),
        )

    # -- moderation -------------------------------------------------------------------

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        """Remove a member (needs the kick level and a higher level than theirs)."""
        await self._check_target(room_id, user_id, "kick")
        await self._core.connection.send(api.kick(room_id, user_id, reason or None))

    async def ban(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        """Ban a user (needs the ban level and a higher level than theirs)."""
        await self._check_target(room_id, user_id, "ban")
        await self._core.connection.send(api.ban(room_id, user_id, reason or None))

    async def unban(self, room_id: str, user_id: str) -> None:
        """Lift a ban (needs the ban level)."""
        if not is_user_id(user_id):
            raise CommandError(f"{user_id!r} is not a user ID (@name:server)")
        power = await self.power_levels(room_id)
        if not power.can(self._core.user_id, "ban"):
            raise CommandError("you are not allowed to unban people here")
        await self._core.connection.send(api.unban(room_id, user_id))

    async def _check_target(self, room_id: str, user_id: str, action: str) -> None:
        if not is_user_id(user_id):
            raise CommandError(f"{user_id!r} is not a user ID (@name:server)")
        power = await self.power_levels(room_id)
        me = self._core.user_id
        if not power.can(me, action):
            raise CommandError(f"you are not allowed to {action} people here")
        if not power.can_act_on(me, user_id, action):
            raise CommandError(f"you cannot {action} someone whose power level is not below yours")

    async def knock(self, target: str, via: tuple[str, ...] = (), reason: str | None = None) -> str:
        """Ask to be let into a room (``knock`` join rules); returns its room ID."""
        try:
            link = parse_link(target)
        except InvalidIdentifier as error:
            raise CommandError(str(error)) from error
        data = await self._core.connection.send(
            api.knock(link.identifier, (*link.via, *via), reason)
        )
        room_id = data.get("room_id") if isinstance(data, dict) else None
        return room_id if isinstance(room_id, str) else link.identifier

    async def leave_and_forget(self, room_id: str) -> None:
        """Leave the room (if still in it), then forget it."""
        summary = self._core.rooms.get(room_id)
        if summary is not None and summary.membership in ("join", "invite", "knock"):
            await self._actions.leave(room_id)
        await self._actions.forget(room_id)


def split_user_and_reason(argument: str) -> tuple[str, str | None]:
    """``"@bob:example.org spamming"`` -> ``("@bob:example.org", "spamming")``."""
    user, _, reason = argument.strip().partition(" ")
    return user, reason.strip() or None
