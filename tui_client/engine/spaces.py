"""Spaces: the graph of the spaces the user is in, and browsing any space's hierarchy.

:class:`SpaceService` keeps a :class:`~tui_client.protocol.spaces.SpaceGraph` built
from the cache (the ``m.space.child`` state of the spaces the user is in, and the
``m.space.parent`` claims of their rooms, validated as the spec says) and rebuilds
it when a sync batch touches a space, a link or a membership; each rebuild is
published as :class:`~tui_client.engine.updates.SpacesChanged`. It also remembers
every room a hierarchy, room summary or directory described in this session, so
that a space's children the user has not joined can be shown by name.

:class:`HierarchyBrowser` pages through ``/hierarchy`` for one space (joined or not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..protocol import requests as api
from ..protocol.directory import PublicRoom
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.room_state import PowerLevels, RoomSummary
from ..protocol.room_versions import rules_for
from ..protocol.spaces import (
    Hierarchy,
    HierarchyRoom,
    SpaceChild,
    SpaceGraph,
    SpaceParent,
    TreeNode,
    parse_hierarchy,
    parse_space_child,
    parse_space_parent,
)
from .updates import BatchCommitted, RoomListChanged, SpacesChanged, Update

if TYPE_CHECKING:
    from .core import Core

__all__ = ["HierarchyBrowser", "HierarchyError", "SpaceService"]

log = logging.getLogger(__name__)

HIERARCHY_TIMEOUT = 20.0
HIERARCHY_PAGE = 50
LINK_TYPES = ("m.space.child", "m.space.parent")
# Rebuilds triggered within this many seconds of each other are done once.
COALESCE_SECONDS = 0.05


class HierarchyError(Exception):
    """A space's hierarchy could not be loaded; the message is meant for the user."""


class SpaceService:
    """The spaces the user is in, as a graph, kept current from sync."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self.graph = SpaceGraph()
        self.described: dict[str, PublicRoom] = {}
        self._hierarchies: dict[str, Hierarchy] = {}
        self._memberships: dict[str, str] = {}
        self._inside: dict[str, frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._started = False
        self._unsubscribe = core.subscribe(self._on_update)

    # -- keeping the graph current ----------------------------------------------------

    def start(self) -> None:
        """Build the graph now (from the cache) and keep it current from then on."""
        self._started = True
        self._schedule()

    def stop(self) -> None:
        """Stop listening to the client and cancel a pending rebuild."""
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()

    def _on_update(self, update: Update) -> None:
        if not self._started:
            return
        if (isinstance(update, RoomListChanged) and self._links_may_have_changed(update)) or (
            isinstance(update, BatchCommitted)
            and any(
                e.get("type") in LINK_TYPES for events in update.events.values() for e in events
            )
        ):
            self._schedule()

    def _links_may_have_changed(self, update: RoomListChanged) -> bool:
        rooms = self._core.rooms
        trigger = False
        for room_id in update.changed:
            summary = rooms.get(room_id)
            membership = summary.membership if summary is not None else "gone"
            if self._memberships.get(room_id) != membership:
                self._memberships[room_id] = membership
                trigger = True
            elif summary is not None and summary.is_space:
                trigger = True
        return trigger

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.ensure_future(self._rebuild_loop())

    async def _rebuild_loop(self) -> None:
        while True:
            self._again = False
            await asyncio.sleep(COALESCE_SECONDS)
            try:
                await self.refresh()
            except Exception:
                log.exception("could not rebuild the space graph")
            if not self._again:
                return

    async def refresh(self) -> SpaceGraph:
        """Rebuild the graph from the cache now, publish it, and return it."""
        core = self._core
        links = await core.db.run(core.cache.load_state_of_types, LINK_TYPES)
        active = {
            room_id for room_id, s in core.rooms.items() if s.membership in ("join", "invite")
        }
        for room_id in active:
            self._memberships.setdefault(room_id, core.rooms[room_id].membership)
        children: list[SpaceChild] = []
        parents: list[SpaceParent] = []
        for room_id, event in links:
            # Only rooms the user is in speak for their links: the state of a room
            # they left is frozen at the moment they left.
            if room_id not in active:
                continue
            if event.get("type") == "m.space.child":
                child = parse_space_child(room_id, event)
                if child is not None and child.room_id != room_id:
                    children.append(child)
            else:
                parent = parse_space_parent(room_id, event)
                if parent is not None:
                    parents.append(parent)
        listed = {(c.space_id, c.room_id) for c in children}
        unverified = {
            p.space_id
            for p in parents
            if (p.space_id, p.room_id) not in listed and p.space_id in active
        }
        levels: dict[str, PowerLevels] = {}
        for space_id in unverified:
            events = await core.db.run(core.cache.load_state, space_id, "m.room.power_levels")
            summary = core.rooms.get(space_id)
            content = events[0].get("content") if events else None
            levels[space_id] = PowerLevels(
                content if isinstance(content, dict) else None,
                creators=summary.creators if summary else (),
                creators_have_infinite_power=rules_for(
                    summary.room_version if summary else None
                ).creators_have_infinite_power,
            )

        def trusted(parent: SpaceParent) -> bool:
            # The spec: a claim without a matching child counts if its sender may add
            # children to that space. A space we are not in cannot be checked: ignored.
            power = levels.get(parent.space_id)
            return power is not None and power.can_send(
                parent.sender, "m.space.child", is_state=True
            )

        spaces = {room_id for room_id, s in core.rooms.items() if s.is_space}
        spaces.update(r.room_id for r in self.described.values() if r.is_space)
        self.graph = SpaceGraph(children, parents, spaces=spaces, trust_parent=trusted)
        self._inside = {}
        core.publish(SpacesChanged(self.graph))
        return self.graph

    # -- what the UI shows ------------------------------------------------------------

    def joined_spaces(self) -> list[RoomSummary]:
        """The spaces the user is in."""
        return [s for s in self._core.rooms.values() if s.is_space and s.membership == "join"]

    def sidebar(self) -> list[TreeNode]:
        """Top-level spaces (by name) and, under each, the subspaces the user is in."""
        joined = {s.room_id: s for s in self.joined_spaces()}
        roots = self.graph.top_level(joined, sort_key=lambda r: joined[r].display_name.casefold())
        return self.graph.tree(roots, include=lambda room_id: room_id in joined)

    def rooms_in(self, space_id: str) -> frozenset[str]:
        """Every room under a space (nested spaces' rooms included); cached per graph."""
        inside = self._inside.get(space_id)
        if inside is None:
            inside = self._inside[space_id] = frozenset(self.graph.descendants(space_id))
        return inside

    def unjoined_in(self, space_id: str) -> list[SpaceChild]:
        """The rooms and subspaces under a space that the user has not joined (nor is
        invited to), each once, with the link that lists it (for its ``via``)."""
        rooms = self._core.rooms
        found: list[SpaceChild] = []
        seen: set[str] = set()
        for room_id in self.graph.descendants(space_id):
            summary = rooms.get(room_id)
            if room_id in seen or (
                summary is not None and summary.membership in ("join", "invite")
            ):
                continue
            seen.add(room_id)
            link = self._link_to(room_id, space_id)
            if link is not None:
                found.append(link)
        return found

    def _link_to(self, room_id: str, near: str) -> SpaceChild | None:
        parents = self.graph.parents_of(room_id)
        for parent in ([near] if near in parents else []) + sorted(parents):
            for child in self.graph.children_of(parent):
                if child.room_id == room_id:
                    return child
        return None

    def describe(self, room_id: str) -> PublicRoom | None:
        """What a hierarchy, summary or directory said about a room in this session."""
        return self.described.get(room_id)

    def note(self, rooms: Iterable[PublicRoom]) -> None:
        """Remember descriptions of rooms (newest wins)."""
        for room in rooms:
            self.described[room.room_id] = room

    def spaces_listing(self, room_id: str) -> list[str]:
        """Spaces known to list a room as a child: joined ones, and browsed ones."""
        spaces = set(self.graph.parents_of(room_id))
        for hierarchy in self._hierarchies.values():
            spaces.update(hierarchy.spaces_listing(room_id))
        return sorted(spaces)

    def via_for(self, room_id: str) -> tuple[str, ...]:
        """Servers to join a room through, from every link known to list it."""
        servers: list[str] = []
        for space_id in self.graph.parents_of(room_id):
            servers.extend(
                v for c in self.graph.children_of(space_id) if c.room_id == room_id for v in c.via
            )
        for hierarchy in self._hierarchies.values():
            for room in hierarchy.rooms.values():
                servers.extend(v for c in room.children if c.room_id == room_id for v in c.via)
        return tuple(dict.fromkeys(servers))

    def browse(
        self,
        space_id: str,
        *,
        max_depth: int | None = None,
        suggested_only: bool = False,
        page_size: int = HIERARCHY_PAGE,
        timeout: float = HIERARCHY_TIMEOUT,
    ) -> HierarchyBrowser:
        """A browser over ``space_id``'s hierarchy (nothing is fetched yet)."""
        return HierarchyBrowser(
            self._core,
            self,
            space_id,
            max_depth=max_depth,
            suggested_only=suggested_only,
            page_size=page_size,
            timeout=timeout,
        )

    def _remember(self, hierarchy: Hierarchy) -> None:
        self._hierarchies[hierarchy.root_id] = hierarchy

    async def learn_children(self, space_id: str, *, max_pages: int = 5) -> None:
        """Fetch a joined space's hierarchy to name the children the user has not joined.

        Failures are logged and ignored: the children stay listed by room ID.
        """
        browser = self.browse(space_id)
        try:
            await browser.load_all(max_pages=max_pages)
        except HierarchyError as error:
            log.info("could not describe the children of %s: %s", space_id, error)
            return
        self._core.publish(SpacesChanged(self.graph))


class HierarchyBrowser:
    """Pages through one space's ``/hierarchy``: call :meth:`load_more` until :attr:`done`."""

    def __init__(
        self,
        core: Core,
        service: SpaceService,
        space_id: str,
        *,
        max_depth: int | None = None,
        suggested_only: bool = False,
        page_size: int = HIERARCHY_PAGE,
        timeout: float = HIERARCHY_TIMEOUT,
    ) -> None:
        self._core = core
        self._service = service
        self.space_id = space_id
        self.max_depth = max_depth
        self.suggested_only = suggested_only
        self.page_size = page_size
        self.timeout = timeout
        self.hierarchy = Hierarchy(space_id, max_depth)
        self.pages = 0
        self._next: str | None = None
        self._seen_tokens: set[str] = set()

    @property
    def done(self) -> bool:
        """True once the last page arrived."""
        return self.hierarchy.complete

    async def load_more(self) -> list[HierarchyRoom]:
        """Fetch the next page; returns the rooms it described for the first time.

        Raises :class:`HierarchyError` with a message for the user.
        """
        if self.done:
            return []
        request = api.space_hierarchy(
            self.space_id,
            from_token=self._next,
            limit=self.page_size,
            max_depth=self.max_depth,
            suggested_only=self.suggested_only,
        )
        data = await self._fetch(request)
        page = parse_hierarchy(data)
        if page.next_batch is not None and page.next_batch in self._seen_tokens:
            # A server handing out the same token again would page forever.
            log.warning("hierarchy of %s repeats its pagination token; stopping", self.space_id)
            page = type(page)(page.rooms, None, page.skipped)
        if page.next_batch is not None:
            self._seen_tokens.add(page.next_batch)
        self._next = page.next_batch
        self.pages += 1
        fresh = self.hierarchy.add_page(page)
        self._service.note(room.info for room in page.rooms)
        self._service._remember(self.hierarchy)
        return fresh

    async def load_all(self, *, max_pages: int = 100) -> Hierarchy:
        """Fetch pages until the end (or ``max_pages``); returns the hierarchy."""
        for _ in range(max_pages):
            if self.done:
                break
            await self.load_more()
        return self.hierarchy

    async def _fetch(self, request: api.Request) -> Any:
        name = self._space_label()
        try:
            return await asyncio.wait_for(self._core.connection.send(request), self.timeout)
        except TimeoutError as error:
            raise HierarchyError(
                f"The server did not list {name} within {self.timeout:.0f} s; try again later."
            ) from error
        except MatrixError as error:
            if error.status == 403 or error.errcode == "M_FORBIDDEN":
                raise HierarchyError(
                    f"You cannot see inside {name}: {error.message or 'not allowed'}."
                ) from error
            if error.status == 404 or error.errcode == "M_NOT_FOUND":
                raise HierarchyError(f"{name} is unknown to your server.") from error
            raise HierarchyError(f"Could not list {name}: {error}") from error
        except NetworkError as error:
            raise HierarchyError(f"Could not list {name}: {error}") from error

    def _space_label(self) -> str:
        summary = self._core.rooms.get(self.space_id)
        if summary is not None and summary.display_name:
            return summary.display_name
        described = self._service.describe(self.space_id)
        return described.display_name if described is not None else self.space_id
