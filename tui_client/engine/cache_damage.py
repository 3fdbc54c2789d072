"""A cache found damaged while the client runs: said, no longer written, rebuilt on request.

Two ways find it:

- the full check (``PRAGMA quick_check``, store/repair.py's :func:`~..store.repair.check_file`)
  runs after start when the last run closed the cache cleanly (the open then only measured
  the file): on a connection and a thread of its own, once the first sync batch is in (or
  a few seconds have passed), so the first screen never waits for it;
- any store operation (a sync batch, a send, reading a timeline, a search) that SQLite
  answers with "database disk image is malformed" (engine/dbthread.py).

Then, once: the file is marked (the next open rebuilds it, whatever happens now), the
connection becomes read-only (``PRAGMA query_only``: nothing more is written to a damaged
file; what still reads is shown), sync and the send queue pause (engine/storage.py: the
status line says "the cache is damaged"), and a :class:`~.updates.CacheDamageFound`
update asks the UI to offer the rebuild. The rebuild is store/repair.py's: the crypto
store, the outbox (every message typed and not yet sent), unfinished uploads and joins and
the settings are copied to a new file when they read back; the rest comes from the server.
Room keys that arrive meanwhile are not lost: sync stops before storing them, so the
server keeps them for the next sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..store.cache import Cache
from ..store.repair import check_file, mark_damaged
from .dbthread import DatabaseThread
from .storage import CacheDamagedError, StorageHealth
from .updates import CacheDamageFound, Update

__all__ = ["CacheDamage"]

log = logging.getLogger(__name__)

#: The longest the full check waits for the first sync batch before it runs anyway.
CHECK_DELAY = 5.0


class CacheDamage:
    """Finds and answers damage to one client's cache; built with the database thread (whose
    failures it hears of), the cache, the storage health, the publish function, and the
    file's path and key (for the check's own connection)."""

    def __init__(
        self,
        db: DatabaseThread,
        cache: Cache,
        storage: StorageHealth,
        publish: Callable[[Update], None],
        path: Path,
        key: bytes | None,
    ) -> None:
        self._db = db
        self._cache = cache
        self._storage = storage
        self._publish = publish
        self._path = path
        self._key = key
        #: What SQLite said, once damage was found.
        self.reason: str | None = None
        #: How long the last full check took (seconds), None before one ran.
        self.check_seconds: float | None = None
        db.on_damage = self.found
        db.verify = self.check

    def found(self, reason: str) -> None:
        """The cache is damaged (called on the event loop): say it, stop writing, mark it."""
        if self.reason is not None:
            return
        self.reason = reason or "damaged"
        self._db.damaged = True
        log.error("the cache at %s is damaged: %s", self._path, reason)
        mark_damaged(self._path, self.reason)
        self._db.submit(self._cache.stop_writing)
        self._storage.damaged()
        self._publish(CacheDamageFound(self.reason))

    async def survive(self, work: Awaitable[None]) -> None:
        """Await ``work`` (reading the cache as the client opens); damage met there is
        said (the UI offers the rebuild), not raised: the client opens with what read back."""
        try:
            await work
        except CacheDamagedError as error:
            log.warning("the client opens on a damaged cache: %s", error.reason)

    async def check(self) -> str | None:
        """The full check, in a thread of its own: what is wrong, or None (a disk that
        cannot be read is not the file's damage: None too)."""
        started = time.perf_counter()
        try:
            return await asyncio.to_thread(check_file, self._path, self._key)
        except Exception as error:
            log.warning("the cache check could not run: %s", error)
            return None
        finally:
            self.check_seconds = time.perf_counter() - started

    async def check_after(self, ready: asyncio.Event, delay: float = CHECK_DELAY) -> None:
        """Once ``ready`` is set (the first sync batch is in) or after ``delay`` seconds,
        run the full check unless the open ran it already; found damage is said."""
        if self._cache.fully_checked or self.reason is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), delay)
        problem = await self.check()
        log.info("the cache check took %.3f s: %s", self.check_seconds or 0.0, problem or "ok")
        if problem is not None:
            self.found(problem)
