"""What to send to ``/createRoom`` for the rooms, spaces and DMs a user creates.

Private rooms (and DMs) are encrypted unless the user says otherwise: the
``m.room.encryption`` event is part of the creation, so there is never a moment
when the room exists unencrypted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .ids import InvalidIdentifier, is_user_id

__all__ = ["MEGOLM", "RoomCreateOptions", "create_room_body", "validate_alias_localpart"]

MEGOLM = "m.megolm.v1.aes-sha2"
_BAD_ALIAS_CHARS = re.compile(r"[\s:#\x00-\x1f\x7f]")


def validate_alias_localpart(localpart: str) -> str:
    """The alias localpart, stripped of a leading ``#``; raises for unusable ones."""
    localpart = localpart.strip().removeprefix("#")
    if ":" in localpart:
        # "#name:server" typed in full: only our own server can hold it, keep the name.
        localpart = localpart.split(":", 1)[0]
    if not localpart or _BAD_ALIAS_CHARS.search(localpart) or len(localpart.encode()) > 200:
        raise InvalidIdentifier(
            f"{localpart!r} cannot be an alias: use letters, digits, '-', '_' or '.'"
        )
    return localpart


@dataclass(frozen=True, slots=True)
class RoomCreateOptions:
    """A room the user wants: ``encrypted=None`` means the default (private rooms are).

    ``parent_space``/``parent_via`` add an ``m.space.parent`` link at creation (the
    engine then adds the space's ``m.space.child``).
    """

    name: str = ""
    topic: str = ""
    alias_localpart: str = ""
    public: bool = False
    encrypted: bool | None = None
    invite: tuple[str, ...] = ()
    is_direct: bool = False
    space: bool = False
    room_version: str | None = None
    parent_space: str | None = None
    parent_via: tuple[str, ...] = ()

    @property
    def will_encrypt(self) -> bool:
        """Whether the room is created encrypted."""
        if self.space:
            return False
        return self.encrypted if self.encrypted is not None else not self.public


def create_room_body(options: RoomCreateOptions) -> dict[str, Any]:
    """The ``/createRoom`` body for ``options``; raises :class:`InvalidIdentifier` for bad input."""
    for user_id in options.invite:
        if not is_user_id(user_id):
            raise InvalidIdentifier(f"{user_id!r} is not a user ID (@name:server)")
    if options.is_direct and len(options.invite) != 1:
        raise InvalidIdentifier("a direct chat is with exactly one person")
    if options.public:
        preset = "public_chat"
    elif options.is_direct:
        preset = "trusted_private_chat"
    else:
        preset = "private_chat"
    body: dict[str, Any] = {
        "preset": preset,
        "visibility": "public" if options.public else "private",
    }
    if options.name.strip():
        body["name"] = options.name.strip()
    if options.topic.strip():
        body["topic"] = options.topic.strip()
    if options.alias_localpart.strip():
        body["room_alias_name"] = validate_alias_localpart(options.alias_localpart)
    if options.invite:
        body["invite"] = list(dict.fromkeys(options.invite))
    if options.is_direct:
        body["is_direct"] = True
    if options.room_version:
        body["room_version"] = options.room_version
    initial_state: list[dict[str, Any]] = []
    if options.will_encrypt:
        initial_state.append(
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        )
    if options.parent_space:
        initial_state.append(
            {
                "type": "m.space.parent",
                "state_key": options.parent_space,
                "content": {"via": list(options.parent_via), "canonical": True},
            }
        )
    if initial_state:
        body["initial_state"] = initial_state
    if options.space:
        body["creation_content"] = {"type": "m.space"}
        # The spec: a space is a list of rooms, not a chat; only admins post in it.
        body["power_level_content_override"] = {"events_default": 100, "invite": 0}
    return body
