"""Cancelled requests give their connection back (tui_client/net/cancel.py).

A loopback HTTP/1.1 server that answers after a random delay and counts the client
connections it still has open. Requests are cancelled at random moments, once or twice
in a row (a room switch cancels the sliding-sync long poll; the loop around it may be
cancelled at the same time). With httpcore 1.0.9 alone about one in five such requests
left its connection open for ever (the soak's descriptor leak).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import httpx

from tui_client.net.cancel import reclaim_orphans
from tui_client.net.http import HomeserverConnection
from tui_client.protocol.requests import Request

BODY = b'{"ok": true}'


class SlowServer:
    """Answers every request with ``BODY`` after 0-``delay`` s; tracks open connections."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.open = 0
        self.rng = random.Random(5)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                await asyncio.sleep(self.delay * self.rng.random())
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def cancel_at_random(send: Callable[[], Awaitable[object]], rounds: int) -> None:
    """Start ``send()`` ``rounds`` times, each cancelled once or twice at a random moment."""
    rng = random.Random(19)
    for round_no in range(rounds):
        sending = asyncio.ensure_future(send())
        # Half the rounds cancel early (around the connect), half while waiting.
        await asyncio.sleep(rng.random() * (0.01 if round_no % 2 else 0.2))
        sending.cancel()
        if round_no % 4 < 2:  # and a second cancellation, as a cancelled loop adds
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending


async def test_cancelled_requests_leave_no_connection_open() -> None:
    server = SlowServer(delay=0.2)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    connection = HomeserverConnection(f"http://127.0.0.1:{port}", "token")
    request = Request("POST", "/_matrix/client/v3/x", body={"n": 1}, timeout=30.0)
    try:
        await cancel_at_random(lambda: connection.send_raw(request), 80)
        # The pool still works, and what it keeps is the one idle connection of that request.
        assert await connection.send_raw(request) == BODY
        await asyncio.sleep(0.3)  # the server notices the closed sockets
        assert server.open <= 1, f"{server.open} connections left open by cancelled requests"
    finally:
        await connection.aclose()
        listener.close()
        await listener.wait_closed()


async def test_reclaim_closes_the_connections_a_bare_httpx_cancel_orphans() -> None:
    """Without the guard (httpx called directly) cancellations orphan connections;
    ``reclaim_orphans`` finds and closes them and leaves the pool usable."""
    server = SlowServer(delay=0.2)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
    try:
        await cancel_at_random(lambda: client.post("/x", content=b"{}"), 40)
        await asyncio.sleep(0.3)
        orphaned = server.open
        assert orphaned > 1, "no connection orphaned: the scenario no longer shows the bug"
        assert await reclaim_orphans(client) >= orphaned - 1
        await asyncio.sleep(0.3)
        assert server.open <= 1
        assert (await client.post("/x", content=b"{}")).content == BODY
    finally:
        await client.aclose()
        listener.close()
        await listener.wait_closed()
