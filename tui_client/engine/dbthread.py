"""One thread that owns the cache: every database call runs there, in order.

The UI's event loop never waits on SQLite or on decoding a large sync response;
it awaits the result instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from ..store.repair import is_corruption
from .storage import IO_ERROR, CacheDamagedError, StorageUnavailable, storage_problem

__all__ = ["DatabaseThread"]

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseThread:
    """A single worker thread; :meth:`run` awaits a function executed on it."""

    def __init__(self, name: str = "tui-client-db") -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name
        )
        #: Told (on the event loop) when a call failed because the cache cannot be written.
        self.on_storage_problem: Callable[[str], None] | None = None
        #: Told (on the event loop) when a call found the cache file damaged, with SQLite's words.
        self.on_damage: Callable[[str], None] | None = None
        #: Whether a disk I/O error is the file's damage (SQLCipher says so of a page whose
        #: HMAC fails): the full check, on a connection of its own; None if it is not.
        self.verify: Callable[[], Awaitable[str | None]] | None = None
        #: Set once the cache was found damaged: every failure to write says so from then on.
        self.damaged = False
        # The full check found a disk I/O error not to be the file's damage, and no call
        # succeeded since: the same disk's next errors (the storage probe every few
        # seconds, sync's retries) are not checked again, page by page, each time.
        self._io_checked = False

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``function(*args, **kwargs)`` on the database thread and await its result.

        A failure to write (a full disk, a read-only folder) is raised as
        :class:`~.storage.StorageUnavailable` and reported to :attr:`on_storage_problem`;
        a damaged file ("database disk image is malformed") as
        :class:`~.storage.CacheDamagedError`, reported to :attr:`on_damage`.
        """
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))
        except CacheDamagedError:
            raise
        except StorageUnavailable as error:
            if self.damaged:
                raise CacheDamagedError(str(error)) from error
            self._report(error.problem)
            raise
        except Exception as error:
            problem = storage_problem(error)
            if is_corruption(error) or (self.damaged and problem is not None):
                self._damage(str(error))
                raise CacheDamagedError(str(error)) from error
            if problem is None:
                raise
            if problem == IO_ERROR and self.verify is not None and not self._io_checked:
                found = await self.verify()
                if found is not None:
                    self._damage(found)
                    raise CacheDamagedError(found) from error
                self._io_checked = True
            self._report(problem)
            raise StorageUnavailable(problem) from error
        self._io_checked = False
        return result

    def _damage(self, reason: str) -> None:
        self.damaged = True
        if self.on_damage is not None:
            self.on_damage(reason)

    def _report(self, problem: str) -> None:
        if self.on_storage_problem is not None:
            self.on_storage_problem(problem)

    def submit(
        self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Queue ``function`` now, without waiting (it runs after everything queued before it)."""
        return self._executor.submit(function, *args, **kwargs)

    def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run synchronously on the database thread (for code outside the event loop)."""
        return self._executor.submit(function, *args, **kwargs).result()

    def shutdown(self) -> None:
        """Finish queued work and stop the thread."""
        self._executor.shutdown(wait=True)
