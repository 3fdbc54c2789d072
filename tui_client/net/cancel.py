"""Cancelling an HTTP request without leaking its connection.

httpcore 1.0.9 (under httpx 0.28, the last release) loses a pooled connection when an
asyncio task is cancelled in the middle of a request, in two ways:

- A second ``Task.cancel()`` (or a first one while the first is being handled) lands
  inside httpcore's clean-up, which it shields with an anyio cancel scope; asyncio's own
  cancellation does not respect that shield, so the clean-up stops half way: the
  connection stays ``ACTIVE`` and its request stays listed, for ever.
- A cancellation between the TCP connect and the moment the connection marks itself
  ``ACTIVE`` leaves it ``NEW``, owned by no request (encode/httpcore#1093, #1099).

Either way the socket stays open and the pool slot taken: in a 30-minute soak that
switched rooms twice a second (each switch cancels the sliding-sync long poll) the open
descriptors went from 14 to 99, and after 100 such connections every request would wait
for a free slot until it timed out. :func:`guarded` runs the request in a task of its
own that asyncio's cancellation never reaches: the caller's cancellation is passed on
through an anyio cancel scope, which httpcore's shields do respect, and once the
request has unwound, :func:`reclaim_orphans` closes any connection no request owns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpcore
    import httpx

__all__ = ["guarded", "reclaim_orphans"]

T = TypeVar("T")

#: The request tasks still unwinding after their caller was cancelled (kept referenced).
_unwinding: set[asyncio.Task[Any]] = set()


async def guarded(client: httpx.AsyncClient, call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call()`` (one exchange on ``client``); if the caller is cancelled, cancel
    the exchange the way httpcore expects, then close the connections it orphaned."""
    import anyio  # with httpx, when the first request is sent (issue 13: not at start-up)

    scope = anyio.CancelScope()

    async def run() -> T:
        with scope:
            return await call()
        raise asyncio.CancelledError  # only reached when ``scope`` was cancelled

    task = asyncio.ensure_future(run())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        scope.cancel()
        _unwinding.add(task)
        task.add_done_callback(_unwinding.discard)
        with contextlib.suppress(BaseException):
            # Another cancellation of ours stops this wait, never the unwinding itself.
            await asyncio.shield(task)
        await asyncio.shield(reclaim_orphans(client))
        raise


def _pools(client: httpx.AsyncClient) -> list[httpcore.AsyncConnectionPool]:
    import httpcore

    transports = [client._transport, *client._mounts.values()]
    return [
        pool
        for transport in transports
        if isinstance(pool := getattr(transport, "_pool", None), httpcore.AsyncConnectionPool)
    ]


async def reclaim_orphans(client: httpx.AsyncClient) -> int:
    """Close every pooled connection of ``client`` that is neither idle nor closed but
    belongs to no request in flight; return how many."""
    orphans: list[httpcore.AsyncConnectionInterface] = []
    for pool in _pools(client):
        owned = {id(request.connection) for request in pool._requests}
        for connection in list(pool._connections):
            if id(connection) in owned or connection.is_idle() or connection.is_closed():
                continue
            pool._connections.remove(connection)
            orphans.append(connection)
    for connection in orphans:
        with contextlib.suppress(Exception):
            await connection.aclose()
    return len(orphans)
