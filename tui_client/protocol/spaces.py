"""The space graph: ``m.space.child`` / ``m.space.parent`` links, and ``/hierarchy`` pages.

Spaces are rooms whose state lists other rooms. The links come from other people
and may be anything: a child event without ``via`` (the spec's way to remove a
child), a ``via`` that is not a list, a state key that is not a room ID, a space
that contains itself or its own ancestor, a space with thousands of children.
Parsing drops what is unusable instead of raising, and every walk over the graph
keeps a visited set (or the current path) and a node budget, so a loop or an
enormous tree can never hang the client.

Children are ordered as the spec says ("Ordering of children within a space"):
those with a valid ``order`` first, by ``order`` compared code point by code point,
then the others; ties by the ``origin_server_ts`` of the child event, then by room ID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .directory import PublicRoom, parse_room_chunk
from .ids import InvalidIdentifier, is_room_id, parse_server_name

__all__ = [
    "MAX_ORDER_LENGTH",
    "MAX_WALK",
    "Hierarchy",
    "HierarchyPage",
    "HierarchyRoom",
    "HierarchyRow",
    "SpaceChild",
    "SpaceGraph",
    "SpaceParent",
    "TreeNode",
    "order_children",
    "parse_hierarchy",
    "parse_space_child",
    "parse_space_parent",
    "restricted_allow_rooms",
    "valid_order",
]

MAX_ORDER_LENGTH = 50
# How many nodes one walk visits at most: a tree bigger than this is cut, not walked.
MAX_WALK = 50_000


def valid_order(value: object) -> str | None:
    """``value`` if it is a valid ``order``: at most 50 characters in ``\\x20``-``\\x7E``."""
    if not isinstance(value, str) or len(value) > MAX_ORDER_LENGTH:
        return None
    if not all("\x20" <= char <= "\x7e" for char in value):
        return None
    return value


def _via(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    servers: list[str] = []
    for item in value:
        if not isinstance(item, str):
            continue
        try:
            servers.append(parse_server_name(item))
        except InvalidIdentifier:
            continue
    return tuple(dict.fromkeys(servers))


def _ts(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class SpaceChild:
    """A valid ``m.space.child`` link: ``room_id`` is in ``space_id``, reachable ``via``."""

    space_id: str
    room_id: str
    via: tuple[str, ...]
    order: str | None = None
    suggested: bool = False
    origin_server_ts: int = 0
    sender: str = ""

    @property
    def sort_key(self) -> tuple[int, str, int, str]:
        """The spec's ordering key."""
        if self.order is not None:
            return (0, self.order, self.origin_server_ts, self.room_id)
        return (1, "", self.origin_server_ts, self.room_id)


@dataclass(frozen=True, slots=True)
class SpaceParent:
    """A valid ``m.space.parent`` claim: ``room_id`` says it is in ``space_id``."""

    room_id: str
    space_id: str
    via: tuple[str, ...]
    canonical: bool = False
    sender: str = ""


def parse_space_child(space_id: str, event: object) -> SpaceChild | None:
    """Parse an ``m.space.child`` state event of ``space_id``; ``None`` if it links nothing.

    A child needs a room ID as state key and at least one valid server in ``via``;
    anything else (including the empty content left by a redaction) removes it.
    """
    if not isinstance(event, Mapping):
        return None
    if event.get("type", "m.space.child") != "m.space.child":
        return None
    room_id = event.get("state_key")
    content = event.get("content")
    if not is_room_id(room_id) or not isinstance(content, Mapping):
        return None
    assert isinstance(room_id, str)
    via = _via(content.get("via"))
    if not via:
        return None
    sender = event.get("sender")
    return SpaceChild(
        space_id=space_id,
        room_id=room_id,
        via=via,
        order=valid_order(content.get("order")),
        suggested=content.get("suggested") is True,
        origin_server_ts=_ts(event.get("origin_server_ts")),
        sender=sender if isinstance(sender, str) else "",
    )


def parse_space_parent(room_id: str, event: object) -> SpaceParent | None:
    """Parse an ``m.space.parent`` state event of ``room_id``; ``None`` if it claims nothing."""
    if not isinstance(event, Mapping):
        return None
    if event.get("type", "m.space.parent") != "m.space.parent":
        return None
    space_id = event.get("state_key")
    content = event.get("content")
    if not is_room_id(space_id) or not isinstance(content, Mapping):
        return None
    assert isinstance(space_id, str)
    via = _via(content.get("via"))
    if not via:
        return None
    sender = event.get("sender")
    return SpaceParent(
        room_id=room_id,
        space_id=space_id,
        via=via,
        canonical=content.get("canonical") is True,
        sender=sender if isinstance(sender, str) else "",
    )


def order_children(children: Iterable[SpaceChild]) -> list[SpaceChild]:
    """Children in the spec's order (``order``, then timestamp, then room ID)."""
    return sorted(children, key=lambda child: child.sort_key)


def restricted_allow_rooms(content: object) -> tuple[str, ...]:
    """The rooms whose members may join, from ``m.room.join_rules`` content.

    Only ``m.room_membership`` conditions name a room; others are ignored. Empty for
    join rules that are not ``restricted``/``knock_restricted``.
    """
    if not isinstance(content, Mapping) or content.get("join_rule") not in (
        "restricted",
        "knock_restricted",
    ):
        return ()
    allow = content.get("allow")
    rooms: list[str] = []
    for condition in allow if isinstance(allow, list) else []:
        if not isinstance(condition, Mapping) or condition.get("type") != "m.room_membership":
            continue
        room_id = condition.get("room_id")
        if is_room_id(room_id):
            assert isinstance(room_id, str)
            rooms.append(room_id)
    return tuple(dict.fromkeys(rooms))


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One row of a space tree: a room, how deep it is, and the space it is under."""

    room_id: str
    depth: int
    parent: str | None


class SpaceGraph:
    """Which rooms are in which spaces, from the links the client knows.

    ``children`` are the spaces' valid ``m.space.child`` links. ``parents`` are the
    rooms' ``m.space.parent`` claims; a claim counts only if the space lists the room
    too, or ``trust_parent`` vouches for it (the spec: the sender may send
    ``m.space.child`` events in that space). ``spaces`` are the rooms known to be
    spaces (their type comes from their create event, which a child link does not
    carry).
    """

    def __init__(
        self,
        children: Iterable[SpaceChild] = (),
        parents: Iterable[SpaceParent] = (),
        *,
        spaces: Iterable[str] = (),
        trust_parent: Callable[[SpaceParent], bool] | None = None,
    ) -> None:
        parents = list(parents)
        latest: dict[tuple[str, str], SpaceChild] = {}
        for child in children:
            key = (child.space_id, child.room_id)
            known = latest.get(key)
            if known is None or child.origin_server_ts >= known.origin_server_ts:
                latest[key] = child
        self.spaces = frozenset(spaces)
        by_space: dict[str, list[SpaceChild]] = {}
        self._parents: dict[str, set[str]] = {}
        for (space_id, room_id), child in latest.items():
            by_space.setdefault(space_id, []).append(child)
            self._parents.setdefault(room_id, set()).add(space_id)
        for parent in parents:
            if parent.room_id == parent.space_id or (parent.space_id, parent.room_id) in latest:
                continue
            if trust_parent is not None and trust_parent(parent):
                # A trusted claim adds the link as if the space listed the room.
                link = SpaceChild(parent.space_id, parent.room_id, parent.via, sender=parent.sender)
                by_space.setdefault(parent.space_id, []).append(link)
                self._parents.setdefault(parent.room_id, set()).add(parent.space_id)
        self._children = {space: order_children(kids) for space, kids in by_space.items()}
        self._canonical: dict[str, str] = {}
        for parent in sorted(parents, key=lambda p: p.space_id):
            if parent.canonical and parent.space_id in self._parents.get(parent.room_id, ()):
                self._canonical.setdefault(parent.room_id, parent.space_id)

    def is_space(self, room_id: str) -> bool:
        """True if the room is known to be a space (or lists children, which only spaces do)."""
        return room_id in self.spaces or room_id in self._children

    def children_of(self, space_id: str) -> list[SpaceChild]:
        """The space's children, in the spec's order."""
        return list(self._children.get(space_id, ()))

    def parents_of(self, room_id: str) -> frozenset[str]:
        """The spaces a room is in (validated links only)."""
        return frozenset(self._parents.get(room_id, ()))

    def canonical_parent(self, room_id: str) -> str | None:
        """The room's canonical space: among valid ``canonical`` claims, the lowest room ID."""
        return self._canonical.get(room_id)

    def descendants(
        self, space_id: str, *, max_depth: int | None = None, limit: int = MAX_WALK
    ) -> list[str]:
        """Every room under a space, nested spaces included, breadth first, each once.

        Loops end the walk where they close; ``limit`` caps the number of rooms.
        """
        found: list[str] = []
        seen = {space_id}
        frontier = [space_id]
        depth = 0
        while frontier and (max_depth is None or depth < max_depth):
            depth += 1
            next_frontier: list[str] = []
            for space in frontier:
                for child in self._children.get(space, ()):
                    if child.room_id in seen:
                        continue
                    seen.add(child.room_id)
                    found.append(child.room_id)
                    if len(found) >= limit:
                        return found
                    if child.room_id in self._children:
                        next_frontier.append(child.room_id)
            frontier = next_frontier
        return found

    def contains(self, space_id: str, room_id: str) -> bool:
        """True if the room is somewhere under the space."""
        return room_id in set(self.descendants(space_id))

    def top_level(
        self, spaces: Iterable[str], sort_key: Callable[[str], str] | None = None
    ) -> list[str]:
        """The spaces of ``spaces`` that no other space of ``spaces`` contains.

        A group of spaces that only contain each other (a loop) would have no top; the
        lowest room ID of each such group is promoted, so every space stays reachable.
        """
        candidates = list(dict.fromkeys(spaces))
        members = set(candidates)
        roots = [s for s in candidates if not (self._parents.get(s, set()) & members) - {s}]
        reached = set(roots)
        for root in roots:
            reached.update(r for r in self.descendants(root) if r in members)
        for space in sorted(members - reached):
            if space in reached:
                continue
            roots.append(space)
            reached.add(space)
            reached.update(r for r in self.descendants(space) if r in members)
        if sort_key is not None:
            roots.sort(key=sort_key)
        return roots

    def tree(
        self,
        roots: Iterable[str],
        *,
        include: Callable[[str], bool] = lambda _room: True,
        max_depth: int = 32,
        limit: int = MAX_WALK,
    ) -> list[TreeNode]:
        """Depth-first rows under ``roots``: each root, then its included children.

        A room under two spaces appears under both; a space is never entered again
        inside itself (the walk keeps its current path), and the walk stops after
        ``limit`` rows or ``max_depth`` levels.
        """
        rows: list[TreeNode] = []

        def walk(room_id: str, depth: int, parent: str | None, path: frozenset[str]) -> None:
            if len(rows) >= limit:
                return
            rows.append(TreeNode(room_id, depth, parent))
            if depth >= max_depth:
                return
            inner = path | {room_id}
            for child in self._children.get(room_id, ()):
                if child.room_id in inner or not include(child.room_id):
                    continue
                walk(child.room_id, depth + 1, room_id, inner)

        for root in roots:
            walk(root, 0, None, frozenset())
        return rows


@dataclass(frozen=True, slots=True)
class HierarchyRoom:
    """A room of a ``/hierarchy`` page, with the space's ``m.space.child`` links."""

    info: PublicRoom
    children: tuple[SpaceChild, ...] = ()

    @property
    def room_id(self) -> str:
        """The room's ID."""
        return self.info.room_id


@dataclass(frozen=True, slots=True)
class HierarchyPage:
    """One ``/hierarchy`` answer; ``next_batch`` is ``None`` on the last page."""

    rooms: tuple[HierarchyRoom, ...]
    next_batch: str | None = None
    skipped: int = 0


def parse_hierarchy(data: object) -> HierarchyPage:
    """Parse a ``/hierarchy`` answer. Never raises; unusable rooms and links are dropped."""
    if not isinstance(data, Mapping):
        return HierarchyPage(())
    raw_rooms = data.get("rooms")
    rooms: list[HierarchyRoom] = []
    skipped = 0
    for raw in raw_rooms if isinstance(raw_rooms, list) else []:
        info = parse_room_chunk(raw)
        if info is None:
            skipped += 1
            continue
        assert isinstance(raw, Mapping)
        state = raw.get("children_state")
        children = [
            parse_space_child(info.room_id, event)
            for event in (state if isinstance(state, list) else [])
        ]
        rooms.append(
            HierarchyRoom(
                info, tuple(c for c in children if c is not None and c.room_id != info.room_id)
            )
        )
    next_batch = data.get("next_batch")
    return HierarchyPage(
        tuple(rooms), next_batch if isinstance(next_batch, str) and next_batch else None, skipped
    )


@dataclass(frozen=True, slots=True)
class HierarchyRow:
    """One line of a space view.

    ``info`` is ``None`` for a child the server did not describe: one the user may
    not see yet (a room for members of a space they have not joined, say), once the
    hierarchy is complete. ``link`` is the child link that put the row there (the
    root has none); ``key`` is unique among the rows (a room may appear twice).
    """

    key: str
    room_id: str
    depth: int
    info: PublicRoom | None
    link: SpaceChild | None

    @property
    def suggested(self) -> bool:
        """The space suggests this room."""
        return self.link is not None and self.link.suggested

    @property
    def via(self) -> tuple[str, ...]:
        """Servers to join through."""
        return self.link.via if self.link is not None else ()

    @property
    def is_space(self) -> bool:
        """True for a (sub)space."""
        return self.info is not None and self.info.is_space


@dataclass
class Hierarchy:
    """A space's hierarchy as its pages arrive: rooms by ID and the tree they form."""

    root_id: str
    max_depth: int | None = None
    rooms: dict[str, HierarchyRoom] = field(default_factory=dict)
    complete: bool = False

    def add_page(self, page: HierarchyPage) -> list[HierarchyRoom]:
        """Take in a page; returns the rooms not seen before."""
        fresh = []
        for room in page.rooms:
            if room.room_id not in self.rooms:
                fresh.append(room)
            self.rooms[room.room_id] = room
        if page.next_batch is None:
            self.complete = True
        return fresh

    def child_links(self, room_id: str) -> list[SpaceChild]:
        """A described room's children (spec order)."""
        room = self.rooms.get(room_id)
        return order_children(room.children) if room is not None else []

    def rows(self, *, limit: int = MAX_WALK) -> list[HierarchyRow]:
        """The tree, depth first from the root, in the spec's child order.

        Children not described are listed only once the hierarchy is complete, and not
        below ``max_depth`` (the server stops there on purpose). A space is never
        entered again inside itself.
        """
        rows: list[HierarchyRow] = []
        counts: dict[str, int] = {}

        def key_for(room_id: str) -> str:
            counts[room_id] = counts.get(room_id, 0) + 1
            return room_id if counts[room_id] == 1 else f"{room_id}#{counts[room_id]}"

        # An explicit stack instead of recursion: a very deep (or malicious) tree must
        # not reach Python's recursion limit.
        stack: list[tuple[str, int, SpaceChild | None, frozenset[str]]] = [
            (self.root_id, 0, None, frozenset())
        ]
        while stack and len(rows) < limit:
            room_id, depth, link, path = stack.pop()
            room = self.rooms.get(room_id)
            if room is None and (link is None or not self.complete):
                continue
            rows.append(
                HierarchyRow(key_for(room_id), room_id, depth, room.info if room else None, link)
            )
            if room is None or (self.max_depth is not None and depth >= self.max_depth):
                continue
            inner = path | {room_id}
            children = [c for c in order_children(room.children) if c.room_id not in inner]
            for child in reversed(children):
                stack.append((child.room_id, depth + 1, child, inner))
        return rows

    def suggested_rooms(self) -> list[HierarchyRow]:
        """Described rooms the space suggests (each once, tree order)."""
        seen: set[str] = set()
        found = []
        for row in self.rows():
            if row.suggested and row.info is not None and row.room_id not in seen:
                seen.add(row.room_id)
                found.append(row)
        return found

    def spaces_listing(self, room_id: str) -> list[str]:
        """The described spaces that list ``room_id`` as a child."""
        return [
            r.room_id for r in self.rooms.values() if any(c.room_id == room_id for c in r.children)
        ]
