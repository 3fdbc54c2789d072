"""Search, without I/O: the query syntax, ``/search`` and ``/context`` requests and their
answers, and where the matched words sit in a text (for highlighting).

Query syntax: bare words (all required; ``word*`` is a prefix), ``"quoted phrases"``,
``from:@user:server``, ``in:#alias:server`` or ``in:!roomid:server``, and
``after:YYYY-MM-DD`` (from the start of that day) / ``before:YYYY-MM-DD`` (up to the
start of that day), in the user's local time unless told otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import quote

from .requests import CLIENT_V3, Request

__all__ = [
    "ContextPage",
    "SearchQuery",
    "ServerHit",
    "ServerPage",
    "context_request",
    "highlight_spans",
    "parse_context",
    "parse_query",
    "parse_search_response",
    "search_request",
]

_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query. ``problems`` says what was not understood (shown to the user)."""

    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    after_ts: int | None = None
    before_ts: int | None = None
    problems: tuple[str, ...] = ()

    @property
    def has_text(self) -> bool:
        """Whether there is anything to look for in message text."""
        return bool(self.words or self.phrases)

    def search_term(self) -> str:
        """The text part as a server ``search_term`` (phrases kept in quotes)."""
        parts = [w.rstrip("*") for w in self.words if w.rstrip("*")]
        parts += [f'"{p}"' for p in self.phrases]
        return " ".join(parts)

    def terms(self) -> tuple[str, ...]:
        """What to highlight: the words (a trailing ``*`` kept) and the phrases."""
        return self.words + self.phrases


def _day_start(text: str, tz: tzinfo | None) -> int | None:
    match = _DATE.match(text)
    if not match:
        return None
    try:
        day = datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=tz)
    except ValueError:
        return None
    if tz is None:
        day = day.astimezone()
    return int(day.timestamp() * 1000)


def parse_query(text: str, *, tz: tzinfo | None = None) -> SearchQuery:
    """Parse what the user typed; never raises (unknown pieces become ``problems``)."""
    words: list[str] = []
    phrases: list[str] = []
    senders: list[str] = []
    rooms: list[str] = []
    problems: list[str] = []
    after_ts: int | None = None
    before_ts: int | None = None
    for match in _TOKEN.finditer(text):
        phrase, token = match.group(1), match.group(2)
        if phrase is not None:
            cleaned = " ".join(phrase.split())
            if cleaned:
                phrases.append(cleaned)
            continue
        key, sep, value = token.partition(":")
        key = key.lower()
        if sep and key == "from":
            if value.startswith("@") and ":" in value[1:]:
                senders.append(value)
            else:
                problems.append(f"from: needs a user ID like @name:server, not {value!r}")
        elif sep and key == "in":
            if value[:1] in ("#", "!") and ":" in value[1:]:
                rooms.append(value)
            else:
                problems.append(f"in: needs #alias:server or !room:server, not {value!r}")
        elif sep and key in ("before", "after"):
            ts = _day_start(value, tz)
            if ts is None:
                problems.append(f"{key}: needs a date like 2024-05-31, not {value!r}")
            elif key == "before":
                before_ts = ts if before_ts is None else min(before_ts, ts)
            else:
                after_ts = ts if after_ts is None else max(after_ts, ts)
        else:
            words.append(token)
    return SearchQuery(
        tuple(words),
        tuple(phrases),
        tuple(senders),
        tuple(rooms),
        after_ts,
        before_ts,
        tuple(problems),
    )


def _fold(text: str) -> str:
    # Case and diacritics folded per character, so positions map back one to one.
    out = []
    for char in text:
        base = unicodedata.normalize("NFD", char)[:1] or char
        folded = base.lower()
        out.append(folded if len(folded) == 1 else base)
    return "".join(out)


def highlight_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` of each place a term matches ``text``, merged and in order.

    Words match whole words (a trailing ``*`` allows any ending); phrases match their
    words with any spacing between them. Case and accents are ignored, as the index does.
    """
    folded = _fold(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        prefix = term.endswith("*")
        pieces = _fold(term.rstrip("*")).split()
        if not pieces:
            continue
        pattern = r"\W+".join(re.escape(p) for p in pieces)
        tail = r"\w*" if prefix else r"(?!\w)"
        for match in re.finditer(r"(?<!\w)" + pattern + tail, folded):
            if match.end() > match.start():
                spans.append((match.start(), match.end()))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# -- server search ------------------------------------------------------------------


def search_request(
    query: SearchQuery,
    room_ids: Sequence[str],
    *,
    next_batch: str | None = None,
    limit: int = 20,
    context: int = 1,
) -> Request:
    """``POST /search`` for room events in ``room_ids`` (newest first, with context)."""
    room_filter: dict[str, Any] = {"rooms": list(room_ids), "limit": limit}
    if query.senders:
        room_filter["senders"] = list(query.senders)
    criteria: dict[str, Any] = {
        "search_term": query.search_term(),
        "keys": ["content.body"],
        "order_by": "recent",
        "filter": room_filter,
        "event_context": {"before_limit": context, "after_limit": context},
    }
    return Request(
        "POST",
        f"{CLIENT_V3}/search",
        query=(("next_batch", next_batch),) if next_batch else (),
        body={"search_categories": {"room_events": criteria}},
    )


@dataclass(frozen=True, slots=True)
class ServerHit:
    """One result of ``/search``: the event, the events around it, the server's rank."""

    event: dict[str, Any]
    rank: float
    before: tuple[dict[str, Any], ...] = ()
    after: tuple[dict[str, Any], ...] = ()

    @property
    def event_id(self) -> str:
        """The matched event's ID."""
        return str(self.event.get("event_id", ""))

    @property
    def room_id(self) -> str:
        """The room it is in."""
        return str(self.event.get("room_id", ""))


@dataclass(frozen=True, slots=True)
class ServerPage:
    """A page of ``/search``: results, the words the server matched, the next page."""

    hits: tuple[ServerHit, ...] = ()
    highlights: tuple[str, ...] = ()
    count: int | None = None
    next_batch: str | None = None


def _events(value: object) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(e for e in value if isinstance(e, dict) and isinstance(e.get("event_id"), str))


def parse_search_response(body: object) -> ServerPage:
    """Read a ``/search`` answer; malformed parts are skipped, never raised."""
    categories = body.get("search_categories") if isinstance(body, dict) else None
    events = categories.get("room_events") if isinstance(categories, dict) else None
    if not isinstance(events, dict):
        return ServerPage()
    hits: list[ServerHit] = []
    results = events.get("results")
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, dict):
            continue
        event = item.get("result")
        if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
            continue
        if not isinstance(event.get("room_id"), str):
            continue
        rank = item.get("rank")
        context = item.get("context")
        context = context if isinstance(context, dict) else {}
        hits.append(
            ServerHit(
                event,
                float(rank) if isinstance(rank, int | float) else 0.0,
                tuple(reversed(_events(context.get("events_before")))),
                _events(context.get("events_after")),
            )
        )
    highlights = events.get("highlights")
    count = events.get("count")
    next_batch = events.get("next_batch")
    return ServerPage(
        tuple(hits),
        tuple(h for h in highlights if isinstance(h, str)) if isinstance(highlights, list) else (),
        count if isinstance(count, int) else None,
        next_batch if isinstance(next_batch, str) and next_batch else None,
    )


# -- context ------------------------------------------------------------------------


def context_request(room_id: str, event_id: str, limit: int = 30) -> Request:
    """``GET /rooms/{roomId}/context/{eventId}``: events around one event."""
    return Request(
        "GET",
        f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/context/{quote(event_id, safe='')}",
        query=(("limit", str(limit)),),
    )


@dataclass(frozen=True, slots=True)
class ContextPage:
    """Events around an event, oldest first, and tokens to page further each way."""

    event: dict[str, Any] | None
    before: tuple[dict[str, Any], ...] = ()
    after: tuple[dict[str, Any], ...] = ()
    start: str | None = None
    end: str | None = None
    state: tuple[dict[str, Any], ...] = field(default=())


def parse_context(body: object) -> ContextPage:
    """Read a ``/context`` answer (``events_before`` comes newest first: reversed here)."""
    if not isinstance(body, dict):
        return ContextPage(None)
    event = body.get("event")
    start, end = body.get("start"), body.get("end")
    return ContextPage(
        event if isinstance(event, dict) and isinstance(event.get("event_id"), str) else None,
        tuple(reversed(_events(body.get("events_before")))),
        _events(body.get("events_after")),
        start if isinstance(start, str) else None,
        end if isinstance(end, str) else None,
        tuple(e for e in body.get("state", []) if isinstance(e, dict))
        if isinstance(body.get("state"), list)
        else (),
    )
