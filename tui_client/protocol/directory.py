"""Published room directory and room summaries: parsing that never raises, and merging.

``/publicRooms`` chunks, ``/room_summary`` answers and ``/hierarchy`` rooms share one
shape (the spec's ``PublishedRoomsChunk``, extended by ``RoomSummary``): each becomes
a :class:`PublicRoom`. Everything in it comes from other people's servers, so it is
kept as the plain strings the server sent and is cleaned only where it is shown
(:attr:`PublicRoom.display_name` and friends return terminal-safe text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .ids import is_room_alias, is_room_id
from .sanitize import clean_line

__all__ = [
    "KNOCK_JOIN_RULES",
    "RESTRICTED_JOIN_RULES",
    "DirectoryPage",
    "PublicRoom",
    "join_rule_label",
    "merge_rooms",
    "parse_public_rooms",
    "parse_room_chunk",
]

RESTRICTED_JOIN_RULES = frozenset({"restricted", "knock_restricted"})
KNOCK_JOIN_RULES = frozenset({"knock", "knock_restricted"})


@dataclass(frozen=True, slots=True)
class PublicRoom:
    """One room as a directory, a room summary or a space hierarchy describes it.

    ``join_rule`` is ``public`` when the server leaves it out (the spec's default for
    the directory). ``servers`` lists the directories it was found in, once merged.
    ``membership`` is the user's own (room summaries only), ``None`` when unknown.
    """

    room_id: str
    name: str | None = None
    topic: str | None = None
    canonical_alias: str | None = None
    avatar_url: str | None = None
    num_joined_members: int = 0
    world_readable: bool = False
    guest_can_join: bool = False
    join_rule: str = "public"
    room_type: str | None = None
    allowed_room_ids: tuple[str, ...] = ()
    encryption: str | None = None
    room_version: str | None = None
    membership: str | None = None
    servers: tuple[str, ...] = ()

    @property
    def is_space(self) -> bool:
        """True for spaces (``room_type`` ``m.space``)."""
        return self.room_type == "m.space"

    @property
    def is_restricted(self) -> bool:
        """True when joining needs membership of another room (``restricted`` rules)."""
        return self.join_rule in RESTRICTED_JOIN_RULES

    @property
    def can_knock(self) -> bool:
        """True when the join rule lets anyone ask to join (``knock`` rules)."""
        return self.join_rule in KNOCK_JOIN_RULES

    @property
    def display_name(self) -> str:
        """The name to show: name, else canonical alias, else room ID (terminal-safe)."""
        if self.name and clean_line(self.name).strip():
            return clean_line(self.name)
        if self.canonical_alias:
            return clean_line(self.canonical_alias)
        return clean_line(self.room_id)

    @property
    def topic_line(self) -> str:
        """The topic on one line, terminal-safe ("" when there is none)."""
        return clean_line(self.topic or "").strip()

    def with_servers(self, servers: Iterable[str]) -> PublicRoom:
        """A copy that records the directories it was found in."""
        return replace(self, servers=tuple(servers))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, value)


def parse_room_chunk(raw: object) -> PublicRoom | None:
    """Parse one directory chunk, room summary or hierarchy room; ``None`` if unusable.

    Only ``room_id`` is required; any other field of the wrong type is treated as
    absent, as the spec's optional fields are.
    """
    if not isinstance(raw, Mapping):
        return None
    room_id = raw.get("room_id")
    if not is_room_id(room_id):
        return None
    assert isinstance(room_id, str)
    alias = raw.get("canonical_alias")
    join_rule = raw.get("join_rule")
    allowed = raw.get("allowed_room_ids")
    encryption = _text(raw.get("encryption")) or _text(raw.get("im.nheko.summary.encryption"))
    version = _text(raw.get("room_version")) or _text(raw.get("im.nheko.summary.room_version"))
    membership = raw.get("membership")
    return PublicRoom(
        room_id=room_id,
        name=_text(raw.get("name")),
        topic=_text(raw.get("topic")),
        canonical_alias=alias if is_room_alias(alias) else None,
        avatar_url=_text(raw.get("avatar_url")),
        num_joined_members=_count(raw.get("num_joined_members")),
        world_readable=raw.get("world_readable") is True,
        guest_can_join=raw.get("guest_can_join") is True,
        join_rule=join_rule if isinstance(join_rule, str) and join_rule else "public",
        room_type=_text(raw.get("room_type")),
        allowed_room_ids=tuple(r for r in allowed if is_room_id(r))
        if isinstance(allowed, list)
        else (),
        encryption=encryption,
        room_version=version,
        membership=membership if isinstance(membership, str) and membership else None,
    )


@dataclass(frozen=True, slots=True)
class DirectoryPage:
    """One page of a server's published room directory.

    ``next_batch`` is ``None`` at the end of the list. ``skipped`` counts chunks that
    were not usable rooms (they are left out rather than failing the page).
    """

    rooms: tuple[PublicRoom, ...]
    next_batch: str | None = None
    prev_batch: str | None = None
    total_estimate: int | None = None
    skipped: int = 0


def parse_public_rooms(data: object) -> DirectoryPage:
    """Parse a ``/publicRooms`` answer. Never raises: an unusable answer is an empty page."""
    if not isinstance(data, Mapping):
        return DirectoryPage(())
    chunk = data.get("chunk")
    rooms: list[PublicRoom] = []
    skipped = 0
    seen: set[str] = set()
    for raw in chunk if isinstance(chunk, list) else []:
        room = parse_room_chunk(raw)
        if room is None or room.room_id in seen:
            skipped += 1
            continue
        seen.add(room.room_id)
        rooms.append(room)
    estimate = data.get("total_room_count_estimate")
    return DirectoryPage(
        tuple(rooms),
        next_batch=_text(data.get("next_batch")),
        prev_batch=_text(data.get("prev_batch")),
        total_estimate=estimate
        if isinstance(estimate, int) and not isinstance(estimate, bool)
        else None,
        skipped=skipped,
    )


def merge_rooms(
    known: dict[str, PublicRoom], rooms: Iterable[PublicRoom], server: str
) -> list[PublicRoom]:
    """Merge a page from ``server`` into ``known`` (room ID to room), in place.

    Returns the rooms seen for the first time, in page order; a room already known
    from another directory only gains ``server`` in its ``servers`` (the first
    description wins, so entries do not jump around as more pages arrive).
    """
    added: list[PublicRoom] = []
    for room in rooms:
        existing = known.get(room.room_id)
        if existing is None:
            fresh = room.with_servers((server,))
            known[room.room_id] = fresh
            added.append(fresh)
        elif server not in existing.servers:
            known[room.room_id] = existing.with_servers((*existing.servers, server))
    return added


_JOIN_RULE_LABELS = {
    "public": "public",
    "invite": "invite only",
    "knock": "ask to join",
    "restricted": "space members",
    "knock_restricted": "space members, or ask",
    "private": "private",
}


def join_rule_label(join_rule: str) -> str:
    """A short human label for a join rule (unknown rules are shown cleaned, as is)."""
    return _JOIN_RULE_LABELS.get(join_rule, clean_line(join_rule, 20))
