"""Room state a client derives: room names, member display names, power levels.

:class:`RoomSummary` is the little a room list needs for every room and is kept for
thousands of rooms. :class:`RoomMembers` and :class:`PowerLevels` are built for the
rooms the user opens, from the full cached state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .bridges import BRIDGE_EVENT_TYPES, Bridge, bridge_from_record, parse_bridge
from .ids import is_room_alias
from .sanitize import clean_line

__all__ = [
    "Member",
    "PowerLevels",
    "RoomMembers",
    "RoomSummary",
    "redaction_applies",
    "room_display_name",
    "same_server",
]

MAX_HEROES_SHOWN = 5


@dataclass(slots=True)
class RoomSummary:
    """What the room list shows of a room, kept current by sync ingest.

    ``membership`` is ``join``, ``invite``, ``leave``, ``ban`` or ``knock``. ``hero_names``
    maps hero user IDs to their display names (``None`` when they have none).
    """

    room_id: str
    membership: str = "join"
    name: str | None = None
    canonical_alias: str | None = None
    topic: str | None = None
    avatar_url: str | None = None
    heroes: list[str] = field(default_factory=list)
    hero_names: dict[str, str | None] = field(default_factory=dict)
    joined_count: int = 0
    invited_count: int = 0
    encrypted: bool = False
    room_type: str | None = None
    room_version: str | None = None
    creators: list[str] = field(default_factory=list)
    is_dm: bool = False
    dm_user: str | None = None
    inviter: str | None = None
    last_ts: int = 0
    notification_count: int = 0
    highlight_count: int = 0
    tags: list[str] = field(default_factory=list)
    tombstone: str | None = None
    join_rule: str | None = None
    display_name: str = ""
    #: ``m.bridge`` / ``uk.half-shot.bridge`` state, by ``"type|state_key"`` (see :mod:`.bridges`).
    bridges: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def is_space(self) -> bool:
        """True for spaces (``m.room.create`` with ``type: m.space``)."""
        return self.room_type == "m.space"

    def copy(self) -> RoomSummary:
        """An independent copy (lists and dicts copied too)."""
        return replace(
            self,
            heroes=list(self.heroes),
            hero_names=dict(self.hero_names),
            creators=list(self.creators),
            tags=list(self.tags),
            bridges=dict(self.bridges),
        )

    @property
    def bridge_list(self) -> list[Bridge]:
        """The room's bridges in a stable order; a bridge sent as both ``m.bridge`` and
        ``uk.half-shot.bridge`` is listed once."""
        found: dict[tuple[str, str | None, str | None], Bridge] = {}
        for key in sorted(self.bridges):
            bridge = bridge_from_record(self.bridges[key])
            if bridge is not None:
                found.setdefault((bridge.protocol, bridge.network, bridge.channel), bridge)
        return list(found.values())

    def apply_state(
        self, event_type: str, state_key: str, content: Mapping[str, Any], sender: str
    ) -> bool:
        """Update from one current state event; True if anything the list shows changed."""
        if event_type in BRIDGE_EVENT_TYPES:
            return self._apply_bridge(event_type, state_key, content, sender)
        if state_key != "" and event_type != "m.room.member":
            return False
        if event_type == "m.room.name":
            return self._set("name", _str_or_none(content.get("name")))
        if event_type == "m.room.canonical_alias":
            return self._set("canonical_alias", _str_or_none(content.get("alias")))
        if event_type == "m.room.topic":
            return self._set("topic", _str_or_none(content.get("topic")))
        if event_type == "m.room.avatar":
            return self._set("avatar_url", _str_or_none(content.get("url")))
        if event_type == "m.room.encryption":
            # Once encrypted, always encrypted: a later empty or bogus event does not undo it.
            if isinstance(content.get("algorithm"), str) and not self.encrypted:
                self.encrypted = True
                return True
            return False
        if event_type == "m.room.join_rules":
            return self._set("join_rule", _str_or_none(content.get("join_rule")))
        if event_type == "m.room.tombstone":
            return self._set("tombstone", _str_or_none(content.get("replacement_room")))
        if event_type == "m.room.create":
            room_type = content.get("type")
            version = content.get("room_version")
            creators = [sender]
            extra = content.get("additional_creators")
            if isinstance(extra, list):
                creators.extend(u for u in extra if isinstance(u, str))
            changed = self._set("room_type", room_type if isinstance(room_type, str) else None)
            changed |= self._set("room_version", version if isinstance(version, str) else "1")
            self.creators = creators
            return changed
        if event_type == "m.room.member" and state_key in self.heroes:
            name = content.get("displayname")
            value = name if isinstance(name, str) and name else None
            if self.hero_names.get(state_key, "\x00") != value:
                self.hero_names[state_key] = value
                return True
        return False

    def _apply_bridge(
        self, event_type: str, state_key: str, content: Mapping[str, Any], sender: str
    ) -> bool:
        key = f"{event_type}|{state_key}"
        bridge = parse_bridge(event_type, content, sender)
        if bridge is None:
            return self.bridges.pop(key, None) is not None
        record = bridge.record()
        if self.bridges.get(key) == record:
            return False
        self.bridges = {**self.bridges, key: record}
        return True

    def _set(self, attribute: str, value: object) -> bool:
        if getattr(self, attribute) == value:
            return False
        setattr(self, attribute, value)
        return True

    def recompute_name(self, own_user_id: str) -> bool:
        """Recompute ``display_name``; True if it changed."""
        name = room_display_name(self, own_user_id)
        if name != self.display_name:
            self.display_name = name
            return True
        return False


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def room_display_name(summary: RoomSummary, own_user_id: str) -> str:
    """The room's name by the spec's algorithm (name, canonical alias, heroes, empty room)."""
    if summary.name and clean_line(summary.name).strip():
        return clean_line(summary.name)
    if summary.canonical_alias and is_room_alias(summary.canonical_alias):
        return clean_line(summary.canonical_alias)
    heroes = [h for h in summary.heroes if h != own_user_id]
    names = _hero_display_names(heroes, summary.hero_names)
    total = summary.joined_count + summary.invited_count
    if total <= 1:
        if not names:
            return "Empty Room"
        return f"Empty Room (was {_join_names(names, len(heroes))})"
    others = total - 1
    if not names:
        return f"{others} other member{'s' if others > 1 else ''}"
    return _join_names(names, others)


def _hero_display_names(heroes: list[str], hero_names: Mapping[str, str | None]) -> list[str]:
    shown = heroes[:MAX_HEROES_SHOWN]
    raw = [hero_names.get(h) or h for h in shown]
    counts: dict[str, int] = {}
    for name in raw:
        counts[name] = counts.get(name, 0) + 1
    return [
        clean_line(
            f"{name} ({hero})"
            if name != hero and (counts[name] > 1 or _looks_like_user_id(name))
            else name
        )
        for name, hero in zip(raw, shown, strict=True)
    ]


def _join_names(names: list[str], total_others: int) -> str:
    remaining = total_others - len(names)
    if remaining > 0:
        return f"{', '.join(names)} and {remaining} other{'s' if remaining > 1 else ''}"
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(slots=True)
class Member:
    """One member of a room, from their ``m.room.member`` state event."""

    user_id: str
    membership: str
    displayname: str | None = None
    avatar_url: str | None = None


class RoomMembers:
    """The members of one room, with display names disambiguated as the spec requires.

    Keeps a map from display name to the joined/invited users that use it, so that a
    change of one member's name renames every member it clashes with, in O(1).
    """

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}
        self._by_name: dict[str, set[str]] = {}
        #: Third-party invites not yet taken up: ``{token: display name}``
        #: (``m.room.third_party_invite``, its state key the token).
        self._third_party: dict[str, str] = {}
        #: Tokens a member event took up (state may arrive in any order).
        self._taken: set[str] = set()

    def update_third_party(self, token: str, content: Mapping[str, Any]) -> None:
        """Apply an ``m.room.third_party_invite``; empty content revokes it."""
        name = content.get("display_name")
        if isinstance(name, str) and name and token not in self._taken:
            self._third_party[token] = name
        else:
            self._third_party.pop(token, None)

    def third_party_pending(self) -> list[str]:
        """The display names (safe for the terminal) of third-party invites not yet taken up."""
        return [clean_line(name, 80) for name in self._third_party.values()]

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._members

    def get(self, user_id: str) -> Member | None:
        """The member record, or None if we have never seen their membership."""
        return self._members.get(user_id)

    def update(self, user_id: str, content: Mapping[str, Any]) -> None:
        """Apply an ``m.room.member`` state event's content."""
        invite = content.get("third_party_invite")
        signed = invite.get("signed") if isinstance(invite, Mapping) else None
        if isinstance(signed, Mapping) and isinstance(signed.get("token"), str):
            self._taken.add(signed["token"])
            self._third_party.pop(signed["token"], None)
        membership = content.get("membership")
        name = content.get("displayname")
        avatar = content.get("avatar_url")
        member = Member(
            user_id=user_id,
            membership=membership if isinstance(membership, str) else "leave",
            displayname=name if isinstance(name, str) and name else None,
            avatar_url=avatar if isinstance(avatar, str) else None,
        )
        self._unindex(user_id)
        self._members[user_id] = member
        if member.displayname and member.membership in ("join", "invite"):
            self._by_name.setdefault(member.displayname, set()).add(user_id)

    def _unindex(self, user_id: str) -> None:
        old = self._members.get(user_id)
        if old and old.displayname:
            users = self._by_name.get(old.displayname)
            if users:
                users.discard(user_id)
                if not users:
                    del self._by_name[old.displayname]

    def display_name(self, user_id: str) -> str:
        """The disambiguated, terminal-safe display name of a user in this room."""
        member = self._members.get(user_id)
        if member is None or not member.displayname:
            return clean_line(user_id)
        name = member.displayname
        clashes = self._by_name.get(name, set())
        if len(clashes - {user_id}) > 0 or _looks_like_user_id(name):
            return clean_line(f"{name} ({user_id})")
        return clean_line(name)

    def joined(self) -> list[Member]:
        """Joined members, sorted by display name."""
        return self._with_membership("join")

    def invited(self) -> list[Member]:
        """Invited members, sorted by display name."""
        return self._with_membership("invite")

    def _with_membership(self, membership: str) -> list[Member]:
        found = [m for m in self._members.values() if m.membership == membership]
        return sorted(found, key=lambda m: (m.displayname or m.user_id).casefold())

    def all(self) -> Iterable[Member]:
        """Every member record, any membership."""
        return self._members.values()


def _looks_like_user_id(name: str) -> bool:
    # A display name shaped like someone else's user ID would impersonate them.
    return name.startswith("@") and ":" in name


class PowerLevels:
    """``m.room.power_levels`` with the spec's defaults, and room-version creator rules."""

    def __init__(
        self,
        content: Mapping[str, Any] | None,
        *,
        creators: Iterable[str] = (),
        creators_have_infinite_power: bool = False,
    ) -> None:
        self._content = dict(content or {})
        self._has_event = content is not None
        self._creators = set(creators)
        self._infinite = creators_have_infinite_power

    def _int(self, key: str, default: int) -> int:
        return _as_int(self._content.get(key), default)

    def user_level(self, user_id: str) -> float:
        """The user's power level (``math.inf`` for creators in room versions 12+)."""
        if self._infinite and user_id in self._creators:
            return math.inf
        if not self._has_event:
            # Without a power levels event the creator has 100, everyone else 0.
            return 100 if user_id in self._creators else 0
        users = self._content.get("users")
        if isinstance(users, dict) and user_id in users:
            return _as_int(users[user_id], 0)
        return self._int("users_default", 0)

    def required(self, action: str) -> int:
        """Level needed for ``invite``, ``kick``, ``ban``, ``redact`` (spec defaults apply)."""
        defaults = {"invite": 0, "kick": 50, "ban": 50, "redact": 50}
        return self._int(action, defaults.get(action, 50))

    def event_level(self, event_type: str, is_state: bool) -> int:
        """Level needed to send an event of this type."""
        events = self._content.get("events")
        if isinstance(events, dict) and event_type in events:
            return _as_int(events[event_type], 0)
        if is_state:
            return self._int("state_default", 50 if self._has_event else 0)
        return self._int("events_default", 0)

    def can(self, user_id: str, action: str) -> bool:
        """True if the user may ``invite``, ``kick``, ``ban`` or ``redact`` (others' events)."""
        return self.user_level(user_id) >= self.required(action)

    def can_send(self, user_id: str, event_type: str, is_state: bool = False) -> bool:
        """True if the user may send this event type."""
        return self.user_level(user_id) >= self.event_level(event_type, is_state)

    def notification_level(self, key: str = "room") -> int:
        """Level needed to notify with ``key`` (``room``: an ``@room`` mention); 50 by default."""
        notifications = self._content.get("notifications")
        if isinstance(notifications, dict) and key in notifications:
            return _as_int(notifications[key], 50)
        return 50

    def can_notify(self, user_id: str, key: str = "room") -> bool:
        """True if the user may notify the whole room (``@room``)."""
        return self.user_level(user_id) >= self.notification_level(key)

    def can_act_on(self, actor: str, target: str, action: str) -> bool:
        """``kick``/``ban`` also need a strictly higher level than the target's."""
        return self.can(actor, action) and self.user_level(actor) > self.user_level(target)


def _as_int(value: object, default: int) -> int:
    # Old room versions allowed string power levels ("50"); accept them.
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def same_server(user_a: str, user_b: object) -> bool:
    """True if two user IDs belong to the same server (the part after the first colon)."""
    if not isinstance(user_b, str) or ":" not in user_a or ":" not in user_b:
        return False
    return user_a.split(":", 1)[1] == user_b.split(":", 1)[1]


def redaction_applies(redacter: str, original_sender: object, may_redact_others: bool) -> bool:
    """The spec's rule for applying a redaction (room versions 3+, "Handling redactions"):
    the redacter has the redact power level, or is on the original sender's server."""
    return may_redact_others or same_server(redacter, original_sender)
