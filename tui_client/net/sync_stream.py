"""A large ``/sync`` response decoded in slices of rooms, never as one dict.

``json.loads`` of a first sync of 1,000 rooms (19.6 MB) holds about 160 MB of Python
objects at once. :func:`sync_slices` decodes the same bytes with ijson's C backend
(yajl2) in two passes, neither of which builds the ``rooms.join`` section whole:

1. the outline: every top-level section (``next_batch``, account data, presence,
   to-device, device lists, key counts) and the small ``rooms.invite``/``leave``/
   ``knock`` sections, skipping the joined rooms (this pass also checks the whole
   document, so a malformed one is refused before any slice is handed out);
2. the joined rooms, one at a time (``kvitems`` of ``rooms.join``), grouped into
   slices of about :data:`SLICE_EVENTS` events.

The first batch is the outline (everything but the joined rooms); each following one
holds joined rooms only and the same ``next_batch``. The caller stores them all in one
transaction (``Cache.ingest_slices``). Where ijson's C backend is missing, or ijson
refuses something ``json.loads`` accepts (``NaN``, integers beyond 64 bits, a BOM),
the response is decoded whole, as one batch.

The bytes are handed to ijson through :class:`_Chunks`, whose ``read`` is Python code: the
C decoder returns to the interpreter every :data:`READ_SIZE` bytes, where another thread
(the UI's) can take the GIL. Read from ``io.BytesIO`` (C), skipping ``rooms.join`` was one
C call that held the GIL for 0.3-0.6 s: the UI's worst frame of a first sync (issue 13).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from ..protocol.sync import JoinedRoom, MalformedResponse, SyncBatch, joined_room, parse_sync

__all__ = ["READ_SIZE", "SLICE_EVENTS", "sliced_decoding", "sync_slices"]

#: About this many state and timeline events a slice (a few hundred KB of JSON).
SLICE_EVENTS = 2_000
#: ijson's C decoder reads this much at a time (its default buffer), ~1 ms of decoding.
READ_SIZE = 64 * 1024
_JOIN = "rooms.join"
# True for an ijson token (prefix, event, value) at or under ``rooms.join`` once inside it.
_IN_JOIN = (_JOIN,).__le__


@cache
def sliced_decoding() -> bool:
    """Whether ijson's C backend is here (its pure-Python one is ~20x slower than
    json.loads). ijson is imported on first use: not at start-up (~28 ms)."""
    import ijson

    return bool(ijson.backend_name == "yajl2_c")


class _Chunks:
    """``raw`` as a file whose ``read`` runs in the interpreter (see the module's notes)."""

    __slots__ = ("_view", "position")

    def __init__(self, raw: bytes) -> None:
        self._view = memoryview(raw)
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        start = self.position
        end = len(self._view) if size < 0 else min(len(self._view), start + size)
        self.position = end
        return self._view[start:end].tobytes()


def _outline(raw: bytes) -> Any:
    """The decoded response without ``rooms.join``'s rooms (the whole document is read)."""
    import ijson
    from ijson.common import ObjectBuilder

    builder = ObjectBuilder()
    event = builder.event
    tokens = ijson.parse(_Chunks(raw), buf_size=READ_SIZE, use_float=True)
    for prefix, kind, value in tokens:
        if prefix.startswith(_JOIN):
            # ``rooms.join`` and everything under it (the second pass reads the rooms),
            # skipped in C: every token of it sorts at or after ``(_JOIN,)``, the first
            # one after it (a key of ``rooms``, or its end) before. Most of a first sync's
            # tokens are there; a Python loop over them was most of this pass.
            following = next(itertools.dropwhile(_IN_JOIN, tokens), None)
            if following is None:
                break
            prefix, kind, value = following
        event(kind, value)
    return getattr(builder, "value", None)


def _decode_whole(raw: bytes) -> SyncBatch:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise MalformedResponse("sync response is not JSON") from error
    return parse_sync(data)


def _joined_slices(raw: bytes, next_batch: str, slice_events: int) -> Iterator[SyncBatch]:
    import ijson

    rooms: list[JoinedRoom] = []
    events = 0
    for room_id, room in ijson.kvitems(_Chunks(raw), _JOIN, buf_size=READ_SIZE, use_float=True):
        if not isinstance(room, dict):
            continue
        joined = joined_room(room_id, room)
        del room
        rooms.append(joined)
        events += len(joined.state) + len(joined.timeline) + 1
        if events >= slice_events:
            yield SyncBatch(next_batch=next_batch, joined=rooms)
            rooms, events = [], 0
    if rooms:
        yield SyncBatch(next_batch=next_batch, joined=rooms)


def sync_slices(raw: bytes, *, slice_events: int = SLICE_EVENTS) -> Iterator[SyncBatch]:
    """The response as batches: first everything but the joined rooms, then slices of
    joined rooms. Raises :class:`MalformedResponse` (at the first ``next()``) when the
    response is unusable; nothing has been handed out then."""
    if not sliced_decoding():
        yield _decode_whole(raw)
        return
    import ijson

    try:
        outline = _outline(raw)
    except ijson.JSONError:
        # yajl refuses what json.loads takes (NaN, huge integers, a BOM): decode it whole.
        yield _decode_whole(raw)
        return
    head = parse_sync(outline)
    del outline
    yield head
    yield from _joined_slices(raw, head.next_batch, slice_events)
