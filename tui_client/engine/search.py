"""Search: the local full-text index (every room, encrypted ones included) and the
server's ``/search`` (unencrypted rooms only), merged into one list of results.

Encrypted rooms are never asked of the server: their content there is ciphertext, and
the words searched for are themselves private. The local index lives in the cache
(schema 6) and follows the events by itself; :meth:`SearchService.index_older` pages a
room's history back from the server so older messages get indexed too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.render import strip_reply_fallback
from ..protocol.room_state import RoomSummary
from ..protocol.search import (
    ContextPage,
    SearchQuery,
    context_request,
    highlight_spans,
    parse_context,
    parse_query,
    parse_search_response,
    search_request,
)
from ..store.cache import Cache, SearchHit
from .dbthread import DatabaseThread
from .decryption_forms import Decrypt, Ready, at_once, fetched_forms

__all__ = ["IndexProgress", "ResultContext", "SearchResult", "SearchResults", "SearchService"]

log = logging.getLogger(__name__)

Event = dict[str, Any]


class Connection(Protocol):
    """What search needs of the homeserver connection."""

    async def send(self, request: api.Request, *, wait_on_rate_limit: bool = True) -> Any:
        """Run a request; decoded JSON answer."""
        ...


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One message found, with what the screen shows of it."""

    event_id: str
    room_id: str
    sender: str
    ts: int
    body: str
    #: ``local`` (the index) or ``server`` (``/search``).
    source: str


@dataclass(frozen=True, slots=True)
class SearchResults:
    """A page of results (newest first), what to highlight, and whether more exist."""

    query: SearchQuery
    results: tuple[SearchResult, ...]
    highlights: tuple[str, ...]
    #: Rooms whose messages the server searched (unencrypted, joined).
    server_rooms: tuple[str, ...] = ()
    server_next_batch: str | None = None
    local_more: bool = False
    #: Why the server part is missing, if it failed (the local part still counts).
    server_error: str | None = None
    #: Filters that named no room we know.
    unknown_rooms: tuple[str, ...] = ()
    #: The rooms searched locally (empty: every room).
    scope: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResultContext:
    """The messages just before and after a result in its room (``None``: none known)."""

    before: SearchResult | None
    after: SearchResult | None


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """How far "index older messages" has gone in a room."""

    room_id: str
    fetched: int
    indexed: int
    done: bool
    error: str | None = None


LOCAL_PAGE = 100
SERVER_PAGE = 20


class SearchService:
    """Local and server search; built with only what it uses (see engine/client.py)."""

    def __init__(
        self,
        cache: Cache,
        db: DatabaseThread,
        connection: Connection,
        *,
        rooms: Callable[[], Mapping[str, RoomSummary]],
        decrypt: Decrypt | None = None,
        ignored: Callable[[], Collection[str]] = frozenset,
        ready: Ready = at_once,
    ) -> None:
        self._cache = cache
        self._db = db
        self._connection = connection
        self._rooms = rooms
        self._decrypt = decrypt
        #: Waits until the crypto machine is open (it opens after the first paint).
        self._ready = ready
        #: The users we ignore (``m.ignored_user_list``): never found, never shown around a result.
        self._ignored = ignored

    # -- rooms named by in: --------------------------------------------------------

    def _resolve_rooms(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        rooms = self._rooms()
        found: list[str] = []
        unknown: list[str] = []
        for name in names:
            if name.startswith("!"):
                (found if name in rooms else unknown).append(name)
                continue
            match = [r for r, s in rooms.items() if s.canonical_alias == name]
            if match:
                found.extend(match)
            else:
                unknown.append(name)
        return found, unknown

    # -- searching ------------------------------------------------------------------

    async def search(
        self,
        text: str | SearchQuery,
        *,
        room_id: str | None = None,
        server: bool = True,
        limit: int = LOCAL_PAGE,
    ) -> SearchResults:
        """Search the local index and (for unencrypted rooms) the server, merged newest first.

        ``room_id`` limits the search to one room (the in-room search); ``in:`` filters
        in the query do the same for the rooms they name.
        """
        query = parse_query(text) if isinstance(text, str) else text
        rooms, unknown = self._resolve_rooms(query.rooms)
        if room_id is not None:
            rooms = [room_id] if not query.rooms or room_id in rooms else []
            scope_empty = not rooms
        else:
            scope_empty = bool(query.rooms) and not rooms
        if not query.has_text or scope_empty:
            return SearchResults(query, (), query.terms(), unknown_rooms=tuple(unknown))
        hits = await self._db.run(self._local, query, rooms, limit + 1, None)
        local_more = len(hits) > limit
        results = _found(hits[:limit], query)
        server_rooms = self.server_rooms(rooms) if server else []
        next_batch: str | None = None
        error: str | None = None
        highlights = list(query.terms())
        if server_rooms:
            try:
                page = await self._server_page(query, server_rooms, None)
            except (MatrixError, NetworkError) as failure:
                error = str(failure)
            else:
                results = _merge(results, page[0])
                next_batch = page[1]
                highlights += [h for h in page[2] if h not in highlights]
        return SearchResults(
            query,
            tuple(results),
            tuple(highlights),
            tuple(server_rooms),
            next_batch,
            local_more,
            error,
            tuple(unknown),
            tuple(rooms),
        )

    async def more(self, previous: SearchResults, *, limit: int = LOCAL_PAGE) -> SearchResults:
        """The next page after ``previous`` (older local hits, the server's next batch)."""
        query = previous.query
        local = [r for r in previous.results if r.source == "local"]
        results: list[SearchResult] = []
        local_more = False
        if previous.local_more and local:
            last = local[-1]
            seq = await self._db.run(self._seq_of, last.event_id)
            hits = await self._db.run(
                self._local, query, list(previous.scope), limit + 1, (last.ts, seq)
            )
            local_more = len(hits) > limit
            results = _found(hits[:limit], query)
        next_batch: str | None = None
        error: str | None = None
        if previous.server_next_batch and previous.server_rooms:
            try:
                server_hits, next_batch, _highlights = await self._server_page(
                    query, list(previous.server_rooms), previous.server_next_batch
                )
            except (MatrixError, NetworkError) as failure:
                error = str(failure)
                next_batch = previous.server_next_batch
            else:
                seen = {r.event_id for r in previous.results}
                results = _merge(results, [h for h in server_hits if h.event_id not in seen])
        return SearchResults(
            query,
            tuple(results),
            previous.highlights,
            previous.server_rooms,
            next_batch,
            local_more,
            error,
            previous.unknown_rooms,
            previous.scope,
        )

    def server_rooms(self, rooms: Sequence[str]) -> list[str]:
        """The rooms of a search the server may be asked about: joined and unencrypted."""
        summaries = self._rooms()
        candidates = rooms or list(summaries)
        return [
            r
            for r in candidates
            if (s := summaries.get(r)) is not None
            and s.membership == "join"
            and not s.encrypted
            and not s.is_space
        ]

    def _local(
        self, query: SearchQuery, rooms: list[str], limit: int, older_than: tuple[int, int] | None
    ) -> list[SearchHit]:
        return self._cache.search_messages(
            query.words,
            query.phrases,
            room_ids=rooms,
            senders=query.senders,
            after_ts=query.after_ts,
            before_ts=query.before_ts,
            older_than=older_than,
            limit=limit,
            exclude_senders=sorted(self._ignored()),
        )

    def _seq_of(self, event_id: str) -> int:
        return self._cache.event_seq(event_id)

    async def _server_page(
        self, query: SearchQuery, rooms: list[str], next_batch: str | None
    ) -> tuple[list[SearchResult], str | None, tuple[str, ...]]:
        data = await self._connection.send(
            search_request(query, rooms, next_batch=next_batch, limit=SERVER_PAGE)
        )
        page = parse_search_response(data)
        allowed = set(rooms)
        ignored = self._ignored()
        found: list[SearchResult] = []
        for hit in page.hits:
            event = hit.event
            if hit.room_id not in allowed:
                continue  # never show what we did not ask for
            ts = event.get("origin_server_ts")
            ts = ts if isinstance(ts, int) else 0
            if query.after_ts is not None and ts < query.after_ts:
                continue
            if query.before_ts is not None and ts >= query.before_ts:
                continue
            content = event.get("content")
            body = content.get("body") if isinstance(content, dict) else None
            if not isinstance(body, str) or not body:
                continue  # redacted since it was indexed by the server
            sender = event.get("sender")
            if sender in ignored:
                continue
            result = _shown(
                SearchResult(
                    hit.event_id,
                    hit.room_id,
                    sender if isinstance(sender, str) else "",
                    ts,
                    body,
                    "server",
                ),
                query.terms() + page.highlights,
            )
            if result is not None:
                found.append(result)
        return found, page.next_batch, page.highlights

    # -- context and older history ----------------------------------------------------

    async def around(self, result: SearchResult) -> ResultContext:
        """The messages before and after a result: from the cache (the clear text of
        encrypted ones, latest edits), else from the server's ``/context``. Ignored
        users' messages are skipped."""
        ignored = sorted(self._ignored())
        pair = await self._db.run(
            self._cache.message_neighbours, result.room_id, result.event_id, ignored
        )
        if pair is not None:
            before, after = pair
            return ResultContext(
                _neighbour(before) if before is not None else None,
                _neighbour(after) if after is not None else None,
            )
        if result.source != "server":
            return ResultContext(None, None)
        page = await self.context(result.room_id, result.event_id, limit=6)
        skip = set(ignored)
        earlier = [r for r in (_from_event(e, result.room_id, skip) for e in page.before) if r]
        later = [r for r in (_from_event(e, result.room_id, skip) for e in page.after) if r]
        return ResultContext(earlier[-1] if earlier else None, later[0] if later else None)

    async def context(self, room_id: str, event_id: str, limit: int = 10) -> ContextPage:
        """Events around one event, from the server (``/context``)."""
        return parse_context(await self._connection.send(context_request(room_id, event_id, limit)))

    async def index_older(
        self,
        room_id: str,
        *,
        max_pages: int = 50,
        page_size: int = 100,
        progress: Callable[[IndexProgress], Any] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> IndexProgress:
        """Page a room's history back from the server into the cache (and so the index).

        Follows the room's gaps from the newest; encrypted messages are decrypted as they
        are stored. Reports progress after each page; ends at the start of the room, after
        ``max_pages``, on ``stop()``, or on an error (reported, what was fetched stays).
        """
        cache = self._cache
        fetched = 0
        before = await self._db.run(cache.indexed_count, room_id)

        async def report(done: bool, error: str | None = None) -> IndexProgress:
            indexed = await self._db.run(cache.indexed_count, room_id)
            state = IndexProgress(room_id, fetched, indexed - before, done, error)
            if progress is not None:
                result = progress(state)
                if isinstance(result, Awaitable):
                    await result
            return state

        summary = self._rooms().get(room_id)
        version = summary.room_version if summary is not None else None
        for _ in range(max_pages):
            if stop is not None and stop():
                return await report(True)
            gap = await self._db.run(cache.gap_below, room_id, None)
            if gap is None:
                return await report(True)
            try:
                data = await self._connection.send(
                    api.messages(room_id, from_token=gap.token, direction="b", limit=page_size)
                )
            except (MatrixError, NetworkError) as failure:
                return await report(True, str(failure))
            chunk = data.get("chunk") if isinstance(data, dict) else None
            end = data.get("end") if isinstance(data, dict) else None
            events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
            stored = await self._db.run(
                cache.fill_gap, gap, events, end if isinstance(end, str) else None, version
            )
            fetched += len(stored)
            if self._decrypt is not None:
                encrypted = [s.event for s in stored if s.event.get("type") == "m.room.encrypted"]
                await fetched_forms(self._db, self._decrypt, self._ready, room_id, encrypted)
            await report(False)
        return await report(True)


def _from_hit(hit: SearchHit) -> SearchResult:
    return SearchResult(hit.event_id, hit.room_id, hit.sender, hit.ts, hit.body, "local")


def _found(hits: Sequence[SearchHit], query: SearchQuery) -> list[SearchResult]:
    terms = query.terms()
    return [r for r in (_shown(_from_hit(h), terms) for h in hits) if r is not None]


def _shown(result: SearchResult, terms: Sequence[str]) -> SearchResult | None:
    """A result as shown: a reply without the quote of its parent that older clients put
    in the body (the parent may be an ignored user's), and not found at all when the
    words matched only in that quote."""
    body = strip_reply_fallback(result.body)
    if body == result.body:
        return result
    if highlight_spans(result.body, terms) and not highlight_spans(body, terms):
        return None
    return SearchResult(
        result.event_id, result.room_id, result.sender, result.ts, body, result.source
    )


def _neighbour(hit: SearchHit) -> SearchResult:
    return SearchResult(
        hit.event_id, hit.room_id, hit.sender, hit.ts, strip_reply_fallback(hit.body), "local"
    )


def _from_event(event: Event, room_id: str, ignored: Collection[str]) -> SearchResult | None:
    """A message of a ``/context`` answer as a context line (None: not a message, or hidden)."""
    content = event.get("content")
    body = content.get("body") if isinstance(content, dict) else None
    sender = event.get("sender")
    event_id = event.get("event_id")
    ts = event.get("origin_server_ts")
    if not isinstance(body, str) or not body or not isinstance(event_id, str):
        return None
    if not isinstance(sender, str) or sender in ignored or "state_key" in event:
        return None
    return SearchResult(
        event_id,
        room_id,
        sender,
        ts if isinstance(ts, int) else 0,
        strip_reply_fallback(body),
        "server",
    )


def _merge(local: list[SearchResult], server: list[SearchResult]) -> list[SearchResult]:
    # The same event from both: the local copy (it has the latest edit) wins.
    seen = {r.event_id for r in local}
    merged = local + [r for r in server if r.event_id not in seen]
    merged.sort(key=lambda r: r.ts, reverse=True)
    return merged
