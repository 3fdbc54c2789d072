"""One thread that owns the cache: every database call runs there, in order.

The UI's event loop never waits on SQLite or on decoding a large sync response;
it awaits the result instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from .storage import StorageUnavailable, storage_problem

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

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``function(*args, **kwargs)`` on the database thread and await its result.

        A failure to write (a full disk, a read-only folder) is raised as
        :class:`~.storage.StorageUnavailable` and reported to :attr:`on_storage_problem`.
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))
        except StorageUnavailable as error:
            self._report(error.problem)
            raise
        except Exception as error:
            problem = storage_problem(error)
            if problem is None:
                raise
            self._report(problem)
            raise StorageUnavailable(problem) from error

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
