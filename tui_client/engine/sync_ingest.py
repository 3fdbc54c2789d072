"""Storing one sync response (database thread): whole, or in slices of rooms.

A small response is decoded whole and stored by ``Cache.ingest_sync``. A large one (a
first ``/sync`` v2 of a big account: 19.6 MB for 1,000 rooms) comes from its source as
slices (``SyncSource.parse_slices``, ``net.sync_stream``) that
``Cache.ingest_slices`` stores, decrypts and commits in ONE transaction with the new
token, so a kill at any moment leaves the cache as it was before the response.

Holding every slice's events until the commit would keep the whole response decoded
after all. For the first sync of an account (no token yet: no view is open, no
notification is due for old messages) the events of each slice's rooms are dropped from
the result once stored (``IngestResult.trimmed_rooms``): room views and unread counts read
them back from the cache. The state events among them stay (spaces look for their links).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from ..protocol.sync import SyncBatch
from ..store.cache import IngestResult
from .core import Core
from .encryption import CryptoResult, Encryption
from .server_clock import ServerClock
from .sync import SyncSource

__all__ = ["ingest_response"]


class _Sliced:
    """One large response being stored slice by slice (again from the start on a retry)."""

    def __init__(self, source: SyncSource, raw: bytes, clock: ServerClock, *, trim: bool) -> None:
        self._source = source
        self._raw = raw
        self._clock = clock
        self._trim = trim
        self.head: SyncBatch | None = None

    def slices(self) -> Iterator[SyncBatch]:
        self.head = None
        for batch in self._source.parse_slices(self._raw) or ():
            if self.head is None:
                self.head = batch
            elif batch.account_data or batch.presence:
                # Written after the joined rooms (net.sync_stream's last batch): what the
                # engine reads of the head once the response is stored.
                self.head = replace(
                    self.head,
                    account_data=[*self.head.account_data, *batch.account_data],
                    presence=[*self.head.presence, *batch.presence],
                )
            self._clock.observe(event for room in batch.joined for event in room.timeline)
            yield batch

    def on_slice(self, result: IngestResult[CryptoResult], batch: SyncBatch) -> None:
        if not self._trim:
            return
        clear = result.hook_result.clear if result.hook_result is not None else {}
        for room in batch.joined:
            room_id = room.room_id
            result.trimmed_rooms.add(room_id)
            clear.pop(room_id, None)
            stored = result.new_events.pop(room_id, None)
            state = [s for s in stored or () if "state_key" in s.event]
            if state:
                result.new_events[room_id] = state


def _slice_hook(encryption: Encryption) -> Callable[[SyncBatch], CryptoResult]:
    """The crypto hook of one response ingested in slices: the first slice (everything
    but the joined rooms) feeds the machine, each slice decrypts its rooms, one result
    gathers it all."""
    gathered = CryptoResult()
    first = True

    def hook(batch: SyncBatch) -> CryptoResult:
        nonlocal first
        encryption.ingest_hook(batch, gathered, head=first)
        first = False
        return gathered

    return hook


def ingest_response(
    source: SyncSource,
    raw: bytes,
    core: Core,
    encryption: Encryption,
    clock: ServerClock,
    initial: bool,
) -> tuple[IngestResult[CryptoResult], SyncBatch]:
    """Store one response in one transaction (the cache's, the engine's room list only
    read); return what changed and its first batch (the one with the to-device events,
    and the account data and presence of the whole response, ``_Sliced.slices``).
    ``initial``: the account's first sync."""
    cache, rooms = core.cache, core.rooms
    if source.parse_slices(raw) is None:
        batch = source.parse(raw)
        clock.observe(event for room in batch.joined for event in room.timeline)
        return cache.ingest_sync(batch, rooms, hook=encryption.ingest_hook), batch
    sliced = _Sliced(source, raw, clock, trim=initial)
    result = cache.ingest_slices(
        sliced.slices, rooms, hook=lambda: _slice_hook(encryption), on_slice=sliced.on_slice
    )
    assert sliced.head is not None  # ingest_slices refuses a response without a batch
    return result, sliced.head
