"""A loopback TCP server with an event loop of its own in a thread (a context manager), for
the small network stand-ins of tests and benchmarks: an HTTPS proxy that tunnels
(tests/resilience/tls_support.py), a relay that adds latency (bench/http2.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Self

__all__ = ["LoopbackServer", "close_connections", "stop_loop_thread", "wait_os_thread_gone"]


async def close_connections(writers: Iterable[asyncio.StreamWriter]) -> None:
    """Abort ``writers``' connections, which ends their handlers; then wait up to 5 s for
    every other task of the running loop, and cancel what is still stuck."""
    for writer in list(writers):
        writer.transport.abort()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=5)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=1)


def stop_loop_thread(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop ``loop`` (run by ``thread``), wait for the thread to end, then close the loop.

    Called from any other thread. Only the loop's own thread may touch its transports
    (their SSL objects are not thread-safe); so the loop is closed, and its transports
    released, only once that thread has ended; a thread still running after the wait is
    an error, never a loop closed under it."""
    if loop.is_closed():
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    if thread.is_alive():
        raise RuntimeError(f"{thread.name}: its event loop did not stop in 30 s")
    loop.close()
    wait_os_thread_gone(thread)


def wait_os_thread_gone(thread: threading.Thread, timeout: float = 10.0) -> None:
    """Wait until ``thread`` (joined) has really ended in the OS (Linux; elsewhere: return).

    ``Thread.join`` returns before the OS thread runs its thread-local destructors, and
    OpenSSL frees its per-thread state in one. A process that exits meanwhile runs
    OpenSSL's atexit clean-up in the main thread at the same moment: a double free
    (glibc's ``double free or corruption``), seen on a busy machine at the end of
    ``bench.http2`` (openssl/openssl#6214, pyca/cryptography#10368)."""
    if thread.native_id is None or not Path("/proc/self/task").is_dir():
        return
    task = Path(f"/proc/self/task/{thread.native_id}")
    deadline = time.monotonic() + timeout
    while task.exists() and time.monotonic() < deadline:
        time.sleep(0.002)


class LoopbackServer:
    """Listens on ``127.0.0.1:port`` (a free port) while entered; :meth:`serve` handles one
    connection. Leaving closes every connection it tracked (its clients', and any opened
    with :meth:`track`) and waits for their handlers to end."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def track(self, writer: asyncio.StreamWriter) -> None:
        """Close ``writer``'s connection too when the server stops."""
        self._writers.add(writer)

    def untrack(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.track(writer)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            await close_connections(self._writers)

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(15)
        finally:
            stop_loop_thread(self._loop, self._thread)
