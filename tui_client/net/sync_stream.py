"""A large ``/sync`` response decoded in slices of rooms, never as one dict.

``json.loads`` of a first sync of 1,000 rooms (19.6 MB) holds about 160 MB of Python
objects at once. :func:`sync_slices` reads the same bytes ONCE, a window of text at a
time (an incremental UTF-8 decoder, ~1 MiB ahead), with the standard library's own C
scanner (``json.scanner``, what ``json.loads`` runs): the top-level object and ``rooms``
key by key, each section decoded whole except ``rooms.join``, whose rooms are decoded
one at a time and handed out in slices of about :data:`SLICE_EVENTS` events. It is
``json.loads``'s scanner, so a room decodes here exactly as in the whole response (NaN,
integers beyond 64 bits, control characters: the same taken, the same refused).

The batches: first the head (the sections before ``rooms.join``: ``next_batch``, account
data, presence, to-device events, device lists, key counts), then the joined rooms, a
slice at a time, with the same ``next_batch``; then, when something followed
``rooms.join`` (Synapse writes ``invite``, ``knock`` and ``leave`` there), a last batch
with it. The caller stores them all in one transaction (``Cache.ingest_slices``).

What the crypto machine must see before the rooms' events are decrypted, and the token
(:data:`HEAD_ONLY`), must be in the head. Synapse writes it all before ``rooms``; a
server that writes one of those names after ``rooms.join`` (a search of the bytes after
it says so) gets two passes: the rooms are decoded and dropped to reach the rest, the
head handed out, then the rooms decoded again from where they start.

Each call into C code (the scanner, the UTF-8 decoder, a search) handles one value (a
room, ~20 KB) or a bounded piece of the bytes, a fraction of a millisecond: between them
the interpreter runs, where another thread (the UI's) can take the GIL. (ijson's skip of
``rooms.join`` was one C call holding it for 0.3-0.6 s: the worst frame of a first sync.)

A response that breaks part way raises :class:`MalformedResponse` at the slice where it
breaks; the caller's transaction then stores none of it. Whatever is not UTF-8 JSON
text with an object at the top (UTF-16, a list) is decoded whole, as one batch.
"""

from __future__ import annotations

import codecs
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Iterator
from typing import Any

from ..protocol.sync import JoinedRoom, MalformedResponse, SyncBatch, joined_room, parse_sync

__all__ = ["HEAD_ONLY", "SEARCH_SIZE", "SLICE_EVENTS", "sync_slices"]

#: About this many state and timeline events a slice (a few hundred KB of JSON).
SLICE_EVENTS = 2_000
#: Top-level sections the first batch must hold (the token; what the machine reads first).
HEAD_ONLY = (
    "next_batch",
    "to_device",
    "device_lists",
    "device_one_time_keys_count",
    "device_unused_fallback_key_types",
)
#: Text kept decoded ahead of the cursor before each value: a room larger than this (one
#: is ~20 KB) is scanned again once more text is decoded.
_AHEAD = 1 << 16
#: Bytes decoded to text at a time.
_CHUNK = 1 << 17
#: Bytes searched a call for a head-only name after ``rooms.join`` (~0.3 ms).
SEARCH_SIZE = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")
#: What json.loads runs: ``(text, index) -> (value, end)`` (the C scanner) and, for keys,
#: ``(text, index after the quote) -> (string, end)``.
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_END = object()


def _not_json(detail: object) -> MalformedResponse:
    return MalformedResponse(f"sync response is not JSON ({detail})")


class _Text:
    """The response's text from byte ``start``, decoded a window at a time, and a cursor."""

    def __init__(self, raw: bytes, start: int = 0) -> None:
        self._raw = raw
        self._fed = start
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        self.text = ""
        self.pos = 0

    def more(self, size: int = 0) -> bool:
        """Decode ``size`` (at least :data:`_CHUNK`) more bytes onto the window (what
        is behind the cursor dropped); False at the end of the response."""
        raw = self._raw
        if self._fed >= len(raw):
            return False
        end = min(self._fed + max(size, _CHUNK), len(raw))
        try:
            piece = self._decoder.decode(raw[self._fed : end], end == len(raw))
        except UnicodeDecodeError as error:
            raise MalformedResponse("sync response is not UTF-8") from error
        self._fed = end
        self.text = self.text[self.pos :] + piece
        self.pos = 0
        return True

    def offset(self) -> int:
        """The cursor's byte offset in the response."""
        pending = self._decoder.getstate()[0]
        ahead = len(self.text[self.pos :].encode("utf-8", "surrogatepass"))
        return self._fed - len(pending) - ahead

    def peek(self) -> str:
        """The next character after blanks ('' at the end)."""
        while True:
            while len(self.text) - self.pos < _AHEAD and self.more():
                pass
            self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos : self.pos + 1]

    def take(self, expected: str, what: str) -> None:
        if self.peek() != expected:
            raise _not_json(f"expected {what} at byte {self.offset()}")
        self.pos += 1

    def key(self) -> str:
        self.take('"', "a key")
        key: str = self._scanned(_scanstring, self.pos)
        self.take(":", "':'")
        return key

    def value(self) -> Any:
        self.peek()
        return self._scanned(_scan, self.pos)

    def _scanned(self, scan: Callable[[str, int], tuple[Any, int]], start: int) -> Any:
        """``scan(text, start)``, scanned again with more text when the window cut it."""
        while True:
            try:
                value, end = scan(self.text, start)
            except (StopIteration, ValueError, RecursionError) as error:
                # RecursionError: nested too deep; a bare ValueError: an integer over
                # Python's 4,300 digits (json.loads refuses both as well).
                at = 0
                if isinstance(error, json.JSONDecodeError):
                    at = error.pos
                elif isinstance(error, StopIteration):  # no value starts here (maybe nested)
                    at = error.value
                cut = at >= len(self.text) - _AHEAD or str(error).startswith("Unterminated")
                if cut and self._grow(start):
                    start = self.pos
                    continue
                what = "nested too deep" if isinstance(error, RecursionError) else "number too long"
                if isinstance(error, json.JSONDecodeError):  # json's words, shorter
                    what = error.msg.removesuffix(" at").replace("Expecting", "expected")
                    what = what.replace("property name enclosed in double quotes", "a key")
                if isinstance(error, StopIteration):
                    what = "expected a value"
                self.pos = max(at, self.pos)
                raise _not_json(f"{what} at byte {self.offset()}") from error
            # A number cut short: '12' of '123', or '1' of '1.5', '1e5', '1e+5' (cut after
            # its '.', 'e' or sign, the scanner ends the number before them).
            if end >= len(self.text) - 2 and self._grow(start):
                start = self.pos
                continue
            self.pos = end
            return value

    def _grow(self, start: int) -> bool:
        """Twice the window from ``start`` on (False at the end of the response)."""
        self.pos = start
        return self.more(2 * (len(self.text) - start))

    def finish(self) -> None:
        if self.peek():
            raise _not_json(f"extra data at byte {self.offset()}")


def _members(text: _Text) -> Iterator[str]:
    """The keys of the object at the cursor; the caller reads each one's value."""
    text.take("{", "an object")
    if text.peek() == "}":
        text.pos += 1
        return
    while True:
        yield text.key()
        following = text.peek()
        text.pos += 1
        if following == "}":
            return
        if following != ",":
            raise _not_json(f"expected ',' or '}}' at byte {text.offset() - 1}")


def _top_level(text: _Text, sections: list[dict[str, Any]]) -> Iterator[None]:
    """Read the response into ``sections[-1]`` (the caller appends the tail's dict);
    stop at the cursor on ``rooms.join``'s object: the caller reads it, then resumes."""
    for key in _members(text):
        if key == "rooms" and text.peek() == "{":
            for name in _members(text):
                if name == "join" and text.peek() == "{":
                    yield
                else:
                    sections[-1].setdefault("rooms", {})[name] = text.value()
        elif len(sections) > 1 and key in HEAD_ONLY:
            # Only when written with escapes (the search of the bytes missed it).
            raise MalformedResponse(f"sync response: {key!r} after rooms.join")
        else:
            sections[-1][key] = text.value()
    text.finish()


def _rooms(text: _Text) -> Iterator[JoinedRoom]:
    for room_id in _members(text):
        room = text.value()
        if isinstance(room, dict):
            yield joined_room(room_id, room)


def _slices(rooms: Iterator[JoinedRoom], next_batch: str, slice_events: int) -> Iterator[SyncBatch]:
    batch: list[JoinedRoom] = []
    events = 0
    for joined in rooms:
        batch.append(joined)
        events += len(joined.state) + len(joined.timeline) + 1
        if events >= slice_events:
            yield SyncBatch(next_batch=next_batch, joined=batch)
            batch, events = [], 0
    if batch:
        yield SyncBatch(next_batch=next_batch, joined=batch)


def _decode_whole(raw: bytes) -> SyncBatch:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise MalformedResponse("sync response is not JSON") from error
    return parse_sync(data)


def _head_only_after(raw: bytes, offset: int, head: dict[str, Any]) -> bool:
    """Whether a :data:`HEAD_ONLY` name the head lacks is in the bytes from ``offset``
    (searched :data:`SEARCH_SIZE` bytes a call: see the module's notes)."""
    for name in HEAD_ONLY:
        if name in head:
            continue
        needle = b'"%s"' % name.encode()
        for start in range(offset, len(raw), SEARCH_SIZE):
            if raw.find(needle, start, start + SEARCH_SIZE + len(needle) - 1) >= 0:
                return True
    return False


def sync_slices(raw: bytes, *, slice_events: int = SLICE_EVENTS) -> Iterator[SyncBatch]:
    """The response as batches: the head, the joined rooms in slices, what followed them.
    Raises :class:`MalformedResponse` where the response turns out unusable (before
    the first batch when its head is)."""
    start = 3 if raw.startswith(codecs.BOM_UTF8) else 0
    if json.detect_encoding(raw[:4]) not in ("utf-8", "utf-8-sig"):
        yield _decode_whole(raw)
        return
    text = _Text(raw, start)
    if text.peek() != "{":
        yield _decode_whole(raw)
        return
    sections: list[dict[str, Any]] = [{}]
    reading = _top_level(text, sections)
    if next(reading, _END) is _END:
        yield parse_sync(sections[0])  # no joined rooms
        return
    join_at = text.offset()
    if _head_only_after(raw, join_at, sections[0]):
        for _room in _rooms(text):
            pass
        if next(reading, _END) is not _END:
            raise MalformedResponse("sync response has two rooms.join")
        head = parse_sync(sections[0])
        yield head
        yield from _slices(_rooms(_Text(raw, join_at)), head.next_batch, slice_events)
        return
    head = parse_sync(sections[0])
    yield head
    yield from _slices(_rooms(text), head.next_batch, slice_events)
    sections.append({"next_batch": head.next_batch})
    if next(reading, _END) is not _END:
        raise MalformedResponse("sync response has two rooms.join")
    if len(sections[1]) > 1:
        yield parse_sync(sections[1])
