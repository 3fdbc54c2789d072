"""The rows of the cache as the engine sees them, and the helpers every part of the store shares.

:mod:`.cache` (the connection, rooms, meta, outbox, search), :mod:`.timeline` (windows,
relations, state, back-fill) and :mod:`.ingest` (one sync batch) all build on these.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Generic, TypeVar

from ..protocol.room_state import RoomSummary
from ..protocol.sync import SyncBatch
from . import json_text

# Room between the last cached event and the first event after a `limited` sync:
# back-filled events of the gap take the positions just below the later event.
GAP_SPACE = 1 << 32
# Compact JSON text of what is stored (orjson when installed: see store.json_text).
_dumps = json_text.dumps
# Every writer of an event row (a sync batch's rows, single back-filled or fetched events).
INSERT_EVENT = (
    "INSERT INTO events (event_id, room_id, pos, type, sender, ts, state_key, rel_type, relates_to, "
    "rel_key, txn_id, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(event_id) DO UPDATE SET pos = excluded.pos "
    "WHERE events.pos IS NULL AND excluded.pos IS NOT NULL"
)
# What valid JSON can carry but SQLite cannot store: a string with a lone surrogate
# (from a ``\ud800`` escape) is not UTF-8, an integer beyond 64 bits does not fit.
_UNSTORABLE = (UnicodeEncodeError, OverflowError)
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = 1 << 63


Event = dict[str, Any]
#: What the ingest hook returns (the engine's crypto step: its decryptions, for example).
H = TypeVar("H")
# Hook run inside the ingest transaction, after events and before the token (tests
# use it to kill the writer there; the crypto layer writes its state there, through its
# own store on the same connection).
IngestHook = Callable[[SyncBatch], H]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as cached: its position in the room's timeline and the event itself."""

    pos: int
    event: Event


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing history just below position ``pos_above``, fetchable from ``token``."""

    room_id: str
    pos_above: int
    token: str


@dataclass(slots=True)
class IngestResult(Generic[H]):
    """What a committed sync batch changed, for the engine to publish."""

    next_batch: str
    changed_rooms: dict[str, RoomSummary] = field(default_factory=dict)
    new_events: dict[str, list[StoredEvent]] = field(default_factory=dict)
    limited_rooms: set[str] = field(default_factory=set)
    removed_rooms: set[str] = field(default_factory=set)
    typing: dict[str, list[str]] = field(default_factory=dict)
    receipts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    echoed_txn_ids: set[str] = field(default_factory=set)
    state_changed_rooms: set[str] = field(default_factory=set)
    # Rooms whose batch had a ``state`` block (members an open view does not know yet).
    state_rooms: set[str] = field(default_factory=set)
    skipped_events: int = 0
    # What the ingest hook returned (the crypto layer's decryptions, for example).
    hook_result: H | None = None
    # Unread counts per thread of the joined rooms in the batch: room -> root -> counts.
    thread_counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    # Rooms of a first sync stored in slices whose events were not kept in ``new_events``
    # (only their state events): read them from the cache (engine/sync_ingest.py).
    trimmed_rooms: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message found by the local full-text index, with its current text."""

    event_id: str
    room_id: str
    sender: str
    ts: int
    body: str
    seq: int


@dataclass(frozen=True, slots=True)
class PendingJoin:
    """A join asked for and not made yet (kept across restarts)."""

    key: str
    target: str
    via: tuple[str, ...]
    label: str
    reason: str | None
    after_key: str | None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message waiting for (or refused by) the server."""

    seq: int
    txn_id: str
    room_id: str
    event_type: str
    content: dict[str, Any]
    state: str
    event_id: str | None
    error: str | None
    attempts: int
    created_ts: int


def _storable(value: Any) -> Any:
    """A copy SQLite can store: lone surrogates become U+FFFD, integers beyond 64 bits 0.

    Only used after a write failed, so the common path never pays for the walk.
    """
    kind = type(value)
    if kind is str:
        return _SURROGATE.sub("\ufffd", value)
    if kind is int:
        return value if -_INT64 <= value < _INT64 else 0
    if kind is dict:
        return {_storable(k): _storable(v) for k, v in value.items()}
    if kind is list:
        return [_storable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _storable(getattr(value, f.name)) for f in fields(value)})
    return value


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _summary_from_json(room_id: str, data: str) -> RoomSummary:
    fields = json.loads(data)
    known = RoomSummary.__dataclass_fields__
    summary = RoomSummary(**{k: v for k, v in fields.items() if k in known})
    summary.room_id = room_id
    return summary


def write_summaries(db: sqlite3.Connection, summaries: Iterable[RoomSummary]) -> None:
    """Upsert room summaries (inside the caller's transaction)."""
    db.executemany(
        "INSERT INTO rooms (room_id, summary, last_ts) VALUES (?, ?, ?) "
        "ON CONFLICT(room_id) DO UPDATE SET summary = excluded.summary, last_ts = excluded.last_ts",
        [(s.room_id, json_text.dumps_fields(s), s.last_ts) for s in summaries],
    )
