"""The published room directory: browse, search, several servers side by side, preview.

:class:`DirectoryBrowser` pages through ``/publicRooms`` of one or more servers with
one search term, the servers asked concurrently, their results merged without
duplicates (a room published on two servers is listed once, with both). Every
request has its own deadline: a directory server that is down or slow ends in a
:class:`ServerFailure` with a message for the user, for that server only, while
the others' results are shown; nothing waits on it but the browser's own worker.

:func:`preview_room` fetches what can be seen of a room before joining it: its
summary and, when its history is world-readable, its latest messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol import requests as api
from ..protocol.directory import PublicRoom, merge_rooms, parse_public_rooms, parse_room_chunk
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.events import RoomEvent, parse_event
from ..protocol.ids import is_room_id, parse_server_name, server_name_of
from ..protocol.room_state import RoomMembers
from ..protocol.thirdparty import (
    Network,
    ThirdPartyLocation,
    ThirdPartyProtocol,
    parse_locations,
    parse_protocols,
    parse_users,
    thirdparty_location,
    thirdparty_protocols,
    thirdparty_user,
)
from ..protocol.timeline import TimelineItem, TimelineModel

if TYPE_CHECKING:
    from ..net.http import HomeserverConnection
    from .spaces import SpaceService


class DirectoryHost(Protocol):
    """What the directory uses: our connection, who we are, the space service (it notes what it learns)."""

    @property
    def connection(self) -> HomeserverConnection: ...

    @property
    def user_id(self) -> str: ...

    @property
    def spaces(self) -> SpaceService: ...


__all__ = [
    "DIRECTORY_TIMEOUT",
    "DirectoryBatch",
    "DirectoryBrowser",
    "RoomPreview",
    "ServerFailure",
    "bridged_protocols",
    "lookup_location",
    "lookup_users",
    "parse_server_list",
    "preview_room",
]

log = logging.getLogger(__name__)

DIRECTORY_TIMEOUT = 15.0
DIRECTORY_PAGE = 50
PREVIEW_MESSAGES = 30


@dataclass(frozen=True, slots=True)
class ServerFailure:
    """One directory server could not be listed; ``message`` is meant for the user."""

    server: str
    message: str


@dataclass(frozen=True, slots=True)
class DirectoryBatch:
    """What one :meth:`DirectoryBrowser.load_more` brought: rooms new to the list, and
    the servers that failed this time."""

    added: tuple[PublicRoom, ...]
    failures: tuple[ServerFailure, ...] = ()
    done: bool = False


def parse_server_list(text: str) -> list[str]:
    """Server names from ``"matrix.org, example.org"`` (commas or spaces); raises
    :class:`~tui_client.protocol.ids.InvalidIdentifier` naming the first one that is
    not a server name."""
    servers: list[str] = []
    for part in text.replace(",", " ").split():
        servers.append(parse_server_name(part.strip()))
    return list(dict.fromkeys(servers))


@dataclass
class _ServerCursor:
    server: str
    query_server: str | None
    next_batch: str | None = None
    started: bool = False
    done: bool = False
    failure: str | None = None
    total_estimate: int | None = None
    seen_tokens: set[str] = field(default_factory=set)


class DirectoryBrowser:
    """One search over one or more servers' directories; call :meth:`load_more` for pages.

    ``servers`` are server names, or ``None`` for our homeserver's own list (asked
    without ``server=``; the default). A named server is asked through our
    homeserver (``server=``, over federation when it is another server); a name
    given twice is asked once. ``search`` is sent as ``generic_search_term``.
    """

    def __init__(
        self,
        client: DirectoryHost,
        servers: Sequence[str | None] = (),
        *,
        search: str = "",
        page_size: int = DIRECTORY_PAGE,
        timeout: float = DIRECTORY_TIMEOUT,
        network: Network | None = None,
    ) -> None:
        self._client = client
        #: Which network's rooms to list (bridged networks): ``None`` or Matrix is the default.
        self.network = network
        self.own_server = server_name_of(client.user_id)
        names = list(dict.fromkeys(servers)) or [None]
        self.search = search.strip()
        self.page_size = page_size
        self.timeout = timeout
        self._cursors = [_ServerCursor(name or self.own_server, name) for name in names]
        self.rooms: list[PublicRoom] = []
        self._by_id: dict[str, PublicRoom] = {}
        self.pages = 0

    @property
    def servers(self) -> list[str]:
        """The names of the servers being listed, in the order given."""
        return [c.server for c in self._cursors]

    @property
    def done(self) -> bool:
        """True when every server has been listed to its end (or failed)."""
        return all(c.done or c.failure is not None for c in self._cursors)

    @property
    def failures(self) -> list[ServerFailure]:
        """The servers that failed, and why."""
        return [ServerFailure(c.server, c.failure) for c in self._cursors if c.failure is not None]

    @property
    def total_estimate(self) -> int | None:
        """The servers' own estimates of their list's size, added up (when all gave one)."""
        estimates = [c.total_estimate for c in self._cursors]
        if any(e is None for e in estimates):
            return None
        return sum(e for e in estimates if e is not None)

    def room(self, room_id: str) -> PublicRoom | None:
        """A listed room by ID."""
        return self._by_id.get(room_id)

    async def load_more(self) -> DirectoryBatch:
        """Fetch the next page from every server not finished, concurrently."""
        active = [c for c in self._cursors if not c.done and c.failure is None]
        if not active:
            return DirectoryBatch((), (), True)
        results = await asyncio.gather(*(self._fetch(cursor) for cursor in active))
        added: list[PublicRoom] = []
        failures: list[ServerFailure] = []
        for cursor, result in zip(active, results, strict=True):
            if isinstance(result, ServerFailure):
                cursor.failure = result.message
                failures.append(result)
                continue
            fresh = merge_rooms(self._by_id, result, cursor.server)
            added.extend(fresh)
        # Rooms found on a second server gained a server: keep the list's objects current.
        self.rooms = [self._by_id[r.room_id] for r in self.rooms]
        self.rooms.extend(added)
        self.pages += 1
        self._client.spaces.note(added)
        return DirectoryBatch(tuple(added), tuple(failures), self.done)

    async def load_until(self, count: int, *, max_pages: int = 1000) -> None:
        """Load pages until at least ``count`` rooms are listed or the lists end."""
        for _ in range(max_pages):
            if self.done or len(self.rooms) >= count:
                return
            await self.load_more()

    async def _fetch(self, cursor: _ServerCursor) -> list[PublicRoom] | ServerFailure:
        request = api.public_rooms(
            server=cursor.query_server,
            limit=self.page_size,
            since=cursor.next_batch,
            search_term=self.search or None,
            include_all_networks=self.network is not None and self.network.include_all,
            third_party_instance_id=self.network.instance_id if self.network is not None else None,
        )
        try:
            data = await asyncio.wait_for(self._client.connection.send(request), self.timeout)
        except TimeoutError:
            return ServerFailure(cursor.server, self._timeout_message(cursor))
        except MatrixError as error:
            return ServerFailure(cursor.server, self._refusal_message(cursor, error))
        except NetworkError as error:
            return ServerFailure(
                cursor.server, f"Could not reach your homeserver to list {cursor.server}: {error}"
            )
        page = parse_public_rooms(data)
        cursor.started = True
        if page.total_estimate is not None:
            cursor.total_estimate = page.total_estimate
        token = page.next_batch
        if token is None or token in cursor.seen_tokens or not page.rooms:
            # No token, a token seen before, or an empty page: the list is at its end
            # (a server that keeps handing out tokens must not make us page forever).
            cursor.done = True
        else:
            cursor.seen_tokens.add(token)
        cursor.next_batch = token
        return list(page.rooms)

    def _timeout_message(self, cursor: _ServerCursor) -> str:
        if cursor.query_server is None:
            return f"Your server ({cursor.server}) did not answer within {self.timeout:.0f} s; try again later."
        return f"The directory of {cursor.server} did not answer within {self.timeout:.0f} s: the server may be down or slow."

    def _refusal_message(self, cursor: _ServerCursor, error: MatrixError) -> str:
        said = f" (the server said: {error.message})" if error.message else ""
        if cursor.query_server is not None and error.status in (502, 503, 504):
            return f"The directory of {cursor.server} could not be reached: the server may be down{said}."
        if error.status == 400:
            return f"{cursor.server} cannot be listed{said}."
        if error.is_rate_limit:
            return f"Too many directory requests; wait a moment and search again{said}."
        return f"Listing {cursor.server} failed: {error.errcode}{said}."


@dataclass(frozen=True, slots=True)
class RoomPreview:
    """What can be seen of a room before joining it.

    ``info`` is the room summary (``None`` if the server would not describe it);
    ``history`` holds the latest messages, as timeline items, when the room's history
    is world-readable; ``history_note`` says why there is none.
    """

    room_id: str | None
    info: PublicRoom | None
    history: tuple[TimelineItem, ...] = ()
    history_note: str = ""
    error: str | None = None


async def preview_room(
    client: DirectoryHost,
    target: str,
    *,
    via: Sequence[str] = (),
    known: PublicRoom | None = None,
    timeout: float = DIRECTORY_TIMEOUT,
    messages: int = PREVIEW_MESSAGES,
) -> RoomPreview:
    """Summary and (if world-readable) recent history of a room, by ID or alias.

    ``known`` is what a directory or hierarchy already said, used when the server
    has no summary to give. Never raises for server refusals: they end up in
    ``error`` or ``history_note``.
    """
    info = known
    error: str | None = None
    try:
        data = await asyncio.wait_for(
            client.connection.send(api.room_summary(target, via)), timeout
        )
        summary = parse_room_chunk(data)
        if summary is not None:
            info = summary if known is None else _merge_preview(known, summary)
    except TimeoutError:
        error = f"The server did not describe the room within {timeout:.0f} s."
    except MatrixError as refusal:
        if info is None:
            error = (
                "This room is not visible to you: it may be private, or only for members of a space."
                if refusal.status in (403, 404)
                else f"The server would not describe the room: {refusal}"
            )
    except NetworkError as failure:
        error = f"Could not reach your homeserver: {failure}"
    room_id = info.room_id if info is not None else (target if is_room_id(target) else None)
    if info is not None:
        client.spaces.note([info])
    if room_id is None:
        return RoomPreview(None, info, (), "", error)
    if info is None or not (info.world_readable or info.membership == "join"):
        return RoomPreview(room_id, info, (), "Messages are visible to members only.", error)
    items, note = await _recent_history(client, room_id, timeout, messages)
    return RoomPreview(room_id, info, items, note, error)


def _merge_preview(known: PublicRoom, summary: PublicRoom) -> PublicRoom:
    # The summary is fresher; keep what only the directory knew (where it was found).
    return summary.with_servers(known.servers)


async def _recent_history(
    client: DirectoryHost, room_id: str, timeout: float, limit: int
) -> tuple[tuple[TimelineItem, ...], str]:
    try:
        data = await asyncio.wait_for(
            client.connection.send(
                api.messages(room_id, from_token=None, direction="b", limit=limit)
            ),
            timeout,
        )
    except TimeoutError:
        return (), "The server did not send the room's messages in time."
    except (MatrixError, NetworkError) as error:
        return (), f"The room's messages could not be loaded: {error}"
    chunk = data.get("chunk") if isinstance(data, dict) else None
    state = data.get("state") if isinstance(data, dict) else None
    raw_events: list[Any] = (
        [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
    )
    members = RoomMembers()
    for event in [*(state if isinstance(state, list) else []), *reversed(raw_events)]:
        if isinstance(event, dict) and event.get("type") == "m.room.member":
            user, content = event.get("state_key"), event.get("content")
            if isinstance(user, str) and isinstance(content, dict):
                members.update(user, content)
    events = [parse_event(e, room_id) for e in reversed(raw_events)]
    model = TimelineModel(client.user_id, members.display_name)
    model.reset([e for e in events if isinstance(e, RoomEvent)], [])
    if not model.items:
        return (), "No messages yet."
    return tuple(model.items), ""


async def bridged_protocols(
    client: DirectoryHost, timeout: float = DIRECTORY_TIMEOUT
) -> list[ThirdPartyProtocol]:
    """The networks the homeserver's bridges offer (``/thirdparty/protocols``)."""
    data = await asyncio.wait_for(client.connection.send(thirdparty_protocols()), timeout)
    return parse_protocols(data)


async def lookup_location(
    client: DirectoryHost, protocol: str, fields: dict[str, str], timeout: float = DIRECTORY_TIMEOUT
) -> list[ThirdPartyLocation]:
    """The Matrix rooms (aliases) a bridge has for a channel, by the protocol's location fields."""
    data = await asyncio.wait_for(
        client.connection.send(thirdparty_location(protocol, fields)), timeout
    )
    return parse_locations(data)


async def lookup_users(
    client: DirectoryHost, protocol: str, fields: dict[str, str], timeout: float = DIRECTORY_TIMEOUT
) -> list[str]:
    """The Matrix user IDs of a bridged user, by the protocol's user fields."""
    data = await asyncio.wait_for(
        client.connection.send(thirdparty_user(protocol, fields)), timeout
    )
    return parse_users(data)
