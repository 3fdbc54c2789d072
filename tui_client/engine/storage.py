"""A full disk or a read-only data folder: said, waited out, and left behind by itself.

Every database call runs on the database thread (:mod:`.dbthread`); an error that means
the cache cannot be written (SQLite's "database or disk is full", "attempt to write a
readonly database", a disk I/O error, or ``ENOSPC``/``EROFS``/``EDQUOT``/``EFBIG`` from
the OS) comes back to the caller as :class:`StorageUnavailable`, an ``OSError`` whose
text is meant for the user, and is reported here. While the problem lasts:

- the status line says it (a :class:`~.updates.StorageChanged` update);
- sync stops fetching (a batch is stored whole or not at all, so nothing committed is
  lost and the token does not move) and waits for :attr:`StorageHealth.writable`;
- the send queue keeps its messages (they are in the outbox already) and waits too; a
  message that could not even be queued is refused with the reason, and the composer
  keeps its text;
- reading what is cached works as before.

A probe writes (and deletes) a quarter of a megabyte every few seconds; when it
succeeds, the problem is over: the update says so and everything waiting carries on.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .updates import StorageChanged, Update

__all__ = ["DAMAGED", "CacheDamagedError", "StorageHealth", "StorageUnavailable", "storage_problem"]

log = logging.getLogger(__name__)

# SQLite's primary result codes.
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13

FULL = "the disk is full"
READ_ONLY = "the data folder is read-only"
IO_ERROR = "the data folder cannot be written (disk error)"
#: The cache file itself is damaged (engine/cache_damage.py): it lasts until a rebuild.
DAMAGED = "the cache is damaged"


class StorageUnavailable(OSError):
    """The cache cannot be written now; ``str()`` says why, for the user."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return self.problem


class CacheDamagedError(StorageUnavailable):
    """A store operation found the cache damaged (or was refused because it is)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(DAMAGED)
        #: What SQLite said.
        self.reason = reason


def storage_problem(error: BaseException) -> str | None:
    """What ``error`` says about the data folder (``FULL``, ...), or None if it is not that."""
    if isinstance(error, StorageUnavailable):
        return error.problem
    if isinstance(error, OSError) and error.errno is not None:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return FULL
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return READ_ONLY
        return None
    # sqlite3 and sqlcipher3 errors alike (their classes differ; both name the code).
    if type(error).__name__ not in ("OperationalError", "DatabaseError"):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary == _SQLITE_FULL:
            return FULL
        if primary == _SQLITE_READONLY:
            return READ_ONLY
        if primary == _SQLITE_IOERR:
            return IO_ERROR
    text = str(error).lower()
    if "database or disk is full" in text:
        return FULL
    if "readonly database" in text or "read-only" in text:
        return READ_ONLY
    if "disk i/o error" in text:
        return IO_ERROR
    return None


class StorageHealth:
    """Whether the cache can be written; built with the database runner, a probe that
    writes, and the client's publish function."""

    def __init__(
        self,
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        probe: Callable[[], None],
        publish: Callable[[Update], None],
        *,
        interval: float = 3.0,
    ) -> None:
        self._run = run
        self._probe = probe
        self._publish = publish
        self.interval = interval
        self.problem: str | None = None
        #: Set while the cache can be written.
        self.writable = asyncio.Event()
        self.writable.set()
        self._prober: asyncio.Task[None] | None = None

    def report(self, problem: str) -> None:
        """A write failed for ``problem`` (called on the event loop)."""
        if self.problem in (problem, DAMAGED):
            return
        first = self.problem is None
        self.problem = problem
        self.writable.clear()
        log.warning("the cache cannot be written: %s", problem)
        self._publish(StorageChanged(problem))
        if first and (self._prober is None or self._prober.done()):
            self._prober = asyncio.ensure_future(self._probe_until_writable())

    def damaged(self) -> None:
        """The cache file is damaged: nothing is written to it again (no probe ends this;
        a rebuild opens a new cache and a new client)."""
        if self.problem == DAMAGED:
            return
        self.problem = DAMAGED
        self.writable.clear()
        self.stop()
        self._publish(StorageChanged(DAMAGED))

    async def wait_writable(self, wake: asyncio.Event | None = None) -> None:
        """Until the cache can be written again (or ``wake`` is set, cleared first)."""
        if wake is None:
            await self.writable.wait()
            return
        wake.clear()
        waits = [asyncio.ensure_future(self.writable.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _probe_until_writable(self) -> None:
        while self.problem is not None and self.problem != DAMAGED:
            await asyncio.sleep(self.interval)
            try:
                await self._run(self._probe)
            except StorageUnavailable:
                continue
            except Exception:
                log.exception("the storage probe failed")
                continue
            if self.problem == DAMAGED:
                return
            log.info("the cache can be written again")
            self.problem = None
            self.writable.set()
            self._publish(StorageChanged(None))

    def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
