"""The background sync loop: fetch a batch, commit it, publish what changed, repeat.

The request side is a :class:`SyncSource`: ``/sync`` v2 (:class:`SyncV2Source`) or
simplified sliding sync (MSC4186, engine/sliding_sync.py), both producing the same
:class:`~tui_client.protocol.sync.SyncBatch`. The loop owns the
status the user sees (``syncing``, ``connected``, ``retrying in Ns``, ``offline``,
``logged out``) and the error policy: capped exponential backoff, 429 honouring
``Retry-After``/``retry_after_ms``, and ``M_UNKNOWN_TOKEN`` ending the session
(softly when the server says ``soft_logout``) without touching the cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Protocol

from ..net.http import HomeserverConnection, backoff_delay
from ..net.sync_stream import SLICE_EVENTS, sync_slices
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.sync import MalformedResponse, SyncBatch, parse_sync
from .storage import StorageHealth, StorageUnavailable
from .updates import SyncState, SyncStatus

__all__ = ["SyncLoop", "SyncSource", "SyncV2Source"]

log = logging.getLogger(__name__)

LONG_POLL_MS = 30_000
MAX_BACKOFF = 30.0
MAX_RATE_LIMIT_WAIT = 300.0
SLICE_BYTES = 2 * 1024 * 1024


class SyncSource(Protocol):
    """Where sync batches come from."""

    #: Shown in the status line (``sync v2``, ``sliding sync``).
    mode: str

    def load_token(self, get_meta: Callable[[str], str | None]) -> str | None:
        """The committed position, read from the cache's meta (on the database thread)."""
        ...

    async def fetch(self, since: str | None, timeout_ms: int) -> bytes:
        """Fetch the next raw response after ``since`` (long-polling up to ``timeout_ms``)."""
        ...

    def parse(self, raw: bytes) -> SyncBatch:
        """Decode a raw response (runs on the database thread, off the UI loop)."""
        ...

    def parse_slices(self, raw: bytes) -> Iterator[SyncBatch] | None:
        """A large response as slices of rooms (stored in one transaction,
        engine/sync_ingest.py); ``None``: decode it whole with :meth:`parse`."""
        ...


class SyncV2Source:
    """``GET /_matrix/client/v3/sync`` with a lazy-loading filter."""

    mode = "sync v2"
    #: Responses of this size or more are decoded and stored in slices of rooms: a
    #: first sync of 1,000 rooms (19.6 MB) decoded whole holds ~160 MB of objects.
    slice_bytes = SLICE_BYTES
    #: About this many events a slice.
    slice_events = SLICE_EVENTS

    def __init__(self, connection: HomeserverConnection, *, timeline_limit: int = 50) -> None:
        self._connection = connection
        self._filter = api.sync_filter(timeline_limit)
        #: ``set_presence`` for each request (``None``: the server's default, online).
        self.presence: Callable[[], str | None] = lambda: None

    def load_token(self, get_meta: Callable[[str], str | None]) -> str | None:
        """The ``next_batch`` of the last committed batch."""
        return get_meta("next_batch")

    async def fetch(self, since: str | None, timeout_ms: int) -> bytes:
        """One ``/sync`` request; errors raise as MatrixError/NetworkError."""
        request = api.sync(
            since=since,
            timeout_ms=timeout_ms,
            filter_json=self._filter,
            set_presence=self.presence(),
        )
        return await self._connection.send_raw(request)

    def parse(self, raw: bytes) -> SyncBatch:
        """Decode JSON and normalise; MalformedResponse when unusable."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise MalformedResponse("sync response is not JSON") from error
        return parse_sync(data)

    def parse_slices(self, raw: bytes) -> Iterator[SyncBatch] | None:
        """Slices of a response of :attr:`slice_bytes` or more (``net.sync_stream``)."""
        if len(raw) < self.slice_bytes:
            return None
        return sync_slices(raw, slice_events=self.slice_events)


# Called with a raw response; parses and commits it (on the database thread), and
# returns whatever the engine needs to publish afterwards.
CommitBatch = Callable[[bytes], Awaitable[None]]
StateListener = Callable[[SyncState], None]
UnknownTokenHandler = Callable[[MatrixError], Awaitable[None]]


class SyncLoop:
    """Runs sync until stopped or logged out, reporting its state to a listener."""

    def __init__(
        self,
        source: SyncSource,
        commit: CommitBatch,
        *,
        get_token: Callable[[], str | None],
        on_state: StateListener,
        on_unknown_token: UnknownTokenHandler,
        long_poll_ms: int = LONG_POLL_MS,
        max_backoff: float = MAX_BACKOFF,
        storage: StorageHealth | None = None,
    ) -> None:
        self._source = source
        self._storage = storage
        self._commit = commit
        self._get_token = get_token
        self._on_state = on_state
        self._on_unknown_token = on_unknown_token
        self._long_poll_ms = long_poll_ms
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._stopping = False
        self.state = SyncState(SyncStatus.STARTING)
        self.batches = 0
        self.first_batch_done = asyncio.Event()

    def _set(self, state: SyncState) -> None:
        state = replace(state, mode=getattr(self._source, "mode", ""))
        self.state = state
        self._on_state(state)

    def retry_now(self) -> None:
        """Cut a backoff wait short (the user asked, or connectivity came back)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to end after the current step."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """The loop itself. Returns when stopped or when the token is rejected."""
        failures = 0
        last_success: float | None = None
        while not self._stopping:
            since = self._get_token()
            catching_up = since is None or failures > 0 or self.batches == 0
            if catching_up:
                self._set(SyncState(SyncStatus.SYNCING, last_success=last_success))
            timeout = 0 if catching_up else self._long_poll_ms
            try:
                raw = await self._source.fetch(since, timeout)
                await self._commit(raw)
            except MatrixError as error:
                if error.is_unknown_token:
                    message = "Your session was ended by the server" + (
                        "; log in again to continue (your cache is kept)."
                        if error.soft_logout
                        else "."
                    )
                    self._set(SyncState(SyncStatus.LOGGED_OUT, message, last_success=last_success))
                    await self._on_unknown_token(error)
                    return
                failures += 1
                if error.is_rate_limit:
                    delay = min(error.retry_after or backoff_delay(failures), MAX_RATE_LIMIT_WAIT)
                    detail = "rate limited by the server"
                else:
                    delay = backoff_delay(failures, cap=self._max_backoff)
                    detail = f"server error {error.status} {error.errcode}"
                log.warning("sync failed: %s; retrying in %.1fs", error, delay)
                await self._back_off(SyncStatus.BACKING_OFF, detail, delay, last_success)
                continue
            except NetworkError as error:
                failures += 1
                delay = backoff_delay(failures, cap=self._max_backoff)
                status = (
                    SyncStatus.OFFLINE
                    if error.kind in ("connect", "dns")
                    else SyncStatus.BACKING_OFF
                )
                log.warning("sync failed: %s; retrying in %.1fs", error, delay)
                await self._back_off(status, str(error), delay, last_success)
                continue
            except MalformedResponse as error:
                failures += 1
                delay = backoff_delay(failures, cap=self._max_backoff)
                log.warning("bad sync response: %s; retrying in %.1fs", error, delay)
                await self._back_off(
                    SyncStatus.BACKING_OFF, f"bad response: {error}", delay, last_success
                )
                continue
            except StorageUnavailable as error:
                # Nothing was stored (a batch is all or nothing) and the token stays: wait
                # until the cache can be written, then fetch the batch again.
                log.warning("sync batch not stored: %s", error)
                await self._wait_for_storage(error.problem, last_success)
                continue
            except Exception as error:
                # A bug (or a batch the cache cannot take) must not end sync silently:
                # the status says so and the loop keeps trying.
                failures += 1
                delay = backoff_delay(failures, cap=self._max_backoff)
                log.exception("sync batch failed; retrying in %.1fs", delay)
                detail = f"internal error: {type(error).__name__}"
                await self._back_off(SyncStatus.BACKING_OFF, detail, delay, last_success)
                continue
            failures = 0
            self.batches += 1
            last_success = time.time()
            self.first_batch_done.set()
            if self.state.status is not SyncStatus.CONNECTED:
                self._set(SyncState(SyncStatus.CONNECTED, last_success=last_success))
        self._set(SyncState(SyncStatus.STOPPED, last_success=last_success))

    async def _wait_for_storage(self, problem: str, last_success: float | None) -> None:
        self._set(
            SyncState(SyncStatus.BACKING_OFF, f"{problem}: sync paused", last_success=last_success)
        )
        if self._storage is None:
            await self._back_off(
                SyncStatus.BACKING_OFF, f"{problem}: sync paused", 5.0, last_success
            )
            return
        await self._storage.wait_writable(self._wake)

    async def _back_off(
        self, status: SyncStatus, detail: str, delay: float, last_success: float | None
    ) -> None:
        self._set(
            SyncState(status, detail, retry_at=time.time() + delay, last_success=last_success)
        )
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
        except TimeoutError:
            pass
