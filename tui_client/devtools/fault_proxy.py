"""A loopback HTTP/1.1 proxy that misbehaves on purpose: faults between client and homeserver.

It sits in front of a real homeserver (a reverse proxy: the client is pointed at the
proxy's URL) and forwards each request and its answer byte for byte, unless its policy
says otherwise. The policy is asked twice per exchange: before the request is forwarded
(``phase="request"``: the server never sees it if the fault is a drop or a reset) and
once the server's whole answer is in hand (``phase="response"``: the server has done
the work, the client does not learn it; :attr:`Exchange.client_gone` says whether the
client is still there to meet the fault). Faults:

- ``PASS``: forward as is; ``Fault.delay(s)``: forward after ``s`` seconds;
- ``HOLD``: never answer (the connection stays open until the client gives up or dies);
- ``DROP``: close the connection without a word; ``RESET``: close it with a TCP reset;
- ``TRUNCATE``: send the head and half of the body, then close.

With ``ssl_context`` the proxy speaks TLS to the client (a small TLS endpoint in front of
a plain-HTTP homeserver); with ``http2`` as well it offers HTTP/2 by ALPN, as the
reverse proxies of real homeservers do, and speaks HTTP/1.1 to the server behind it
(:mod:`.h2_front`); a client that does not ask for ``h2`` gets HTTP/1.1. It runs its own
event loop in a thread, so synchronous tests, asyncio tests and subprocesses can all use
it. Standard library only (and the ``h2`` library for HTTP/2).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from .loop_server import close_connections, stop_loop_thread

__all__ = ["DROP", "HOLD", "PASS", "RESET", "TRUNCATE", "Exchange", "Fault", "FaultProxy", "Policy"]


@dataclass(frozen=True)
class Fault:
    """What the proxy does to one exchange at one phase."""

    kind: str  # pass, delay, hold, drop, reset, truncate
    seconds: float = 0.0

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds)

    def __str__(self) -> str:
        return f"delay {self.seconds:.1f}s" if self.kind == "delay" else self.kind


PASS = Fault("pass")
HOLD = Fault("hold")
DROP = Fault("drop")
RESET = Fault("reset")
TRUNCATE = Fault("truncate")


@dataclass
class Exchange:
    """One request through the proxy (and, once known, the server's answer)."""

    method: str
    path: str
    request_body: bytes
    #: The request's headers (names in lower case).
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response_body: bytes = b""
    faults: list[str] = field(default_factory=list)
    #: ``"HTTP/1.1"``, or ``"h2"`` for a stream of an HTTP/2 connection.
    protocol: str = "HTTP/1.1"
    #: Set before the response phase: the client had closed its end (it gave up on the
    #: request: a timeout, or a long-poll it cancelled), so no fault reaches it.
    client_gone: bool = False

    @property
    def is_send(self) -> bool:
        return self.method == "PUT" and "/send/" in self.path

    @property
    def is_sync(self) -> bool:
        return self.method == "GET" and self.path.split("?", 1)[0].endswith("/sync")

    @property
    def is_sync_request(self) -> bool:
        """``/sync`` v2 or sliding sync (``POST .../simplified_msc3575/sync``)."""
        return self.path.split("?", 1)[0].endswith("/sync")

    @property
    def txn_id(self) -> str | None:
        """The transaction ID of a send (the last path segment)."""
        return self.path.split("?", 1)[0].rsplit("/", 1)[-1] if self.is_send else None


# (exchange, phase) -> fault; called on the proxy's thread.
Policy = Callable[[Exchange, str], Fault]
#: A plain-HTTP connection to the server behind the proxy.
Upstream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _pass(exchange: Exchange, phase: str) -> Fault:
    return PASS


class Closed(Exception):
    """The peer closed the connection before a whole message."""


class FaultProxy:
    """A reverse proxy from ``127.0.0.1:<port>`` to ``upstream`` (``host:port``, plain HTTP)."""

    def __init__(
        self,
        upstream: str,
        policy: Policy | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
        http2: bool = False,
        h2_max_requests: int | None = None,
    ) -> None:
        if http2:
            if ssl_context is None:
                raise ValueError("HTTP/2 is offered by ALPN, over TLS only (no h2c)")
            ssl_context.set_alpn_protocols(["h2", "http/1.1"])
        host, _, port_text = upstream.rpartition(":")
        self._upstream = (host.removeprefix("http://") or "127.0.0.1", int(port_text.rstrip("/")))
        self.policy: Policy = policy or _pass
        #: HTTP/2: after this many requests on one connection, a graceful GOAWAY (nginx's
        #: ``keepalive_requests``); ``None``: never.
        self.h2_max_requests = h2_max_requests
        #: Client connections accepted so far.
        self.connections = 0
        self._ssl = ssl_context
        self._wanted_port = port
        self.port = 0
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._upstreams: weakref.WeakSet[asyncio.StreamWriter] = weakref.WeakSet()
        #: Set by :meth:`stop`: no request is sent again on a new upstream connection.
        self.closing = False

    @property
    def base_url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    async def open_upstream(self) -> Upstream:
        """A new plain-HTTP connection to the server behind the proxy."""
        connection = await asyncio.open_connection(*self._upstream, limit=1 << 20)
        self._upstreams.add(connection[1])
        return connection

    async def forward(
        self, message: bytes, method: str, upstream: Upstream | None
    ) -> tuple[Upstream | None, bytes, bytes]:
        """Send one HTTP/1.1 request (head and body) to the server behind the proxy on
        ``upstream`` (``None``: a new connection) and read its answer; once more on a new
        connection if a kept-alive one turns out closed (not while the proxy stops).
        Returns the connection to keep for the next request (``None``: the server closes
        it), the answer's head and its raw body; raises :class:`Closed`,
        ``ConnectionError`` or ``IncompleteReadError`` when there is no answer."""
        for attempt in range(2):
            if upstream is None:
                upstream = await self.open_upstream()
            try:
                upstream[1].write(message)
                await upstream[1].drain()
                head, body = await read_message(upstream[0], request=False, method=method)
            except (Closed, ConnectionError, asyncio.IncompleteReadError):
                upstream[1].close()  # a kept-alive connection the server had closed
                upstream = None
                if attempt or self.closing:
                    raise
                continue
            except BaseException:
                upstream[1].close()  # cancelled mid-request: the connection is spent
                raise
            if b"connection: close" in head.lower():
                upstream[1].close()
                upstream = None
            return upstream, head, body
        raise AssertionError("unreachable")

    def history(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(
                    self._serve, "127.0.0.1", self._wanted_port, ssl=self._ssl, limit=1 << 20
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            # Closing the connections ends their tasks (cancelling them would leave a
            # request still waiting on the server, a long-poll, to be reported at exit).
            self.closing = True
            await close_connections([*self._writers, *self._upstreams])

        try:
            asyncio.run_coroutine_threadsafe(shut(), loop).result(15)
        finally:
            stop_loop_thread(loop, thread)
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one client connection -------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        upstream: Upstream | None = None
        try:
            tls = writer.get_extra_info("ssl_object")
            if tls is not None and tls.selected_alpn_protocol() == "h2":
                from .h2_front import serve_h2  # the h2 library, only where HTTP/2 is offered

                await serve_h2(self, reader, writer)
                return
            while True:
                try:
                    head, body = await read_message(reader, request=True)
                except (Closed, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                    return
                method, target = _request_line(head)
                exchange = Exchange(method, target, body, _headers(head))
                self.record(exchange)
                fault = self.decide(exchange, "request")
                if not await self._apply_early(fault, writer, reader):
                    return
                try:
                    upstream, answer_head, answer_body = await self.forward(
                        head + body, method, upstream
                    )
                except (Closed, ConnectionError, asyncio.IncompleteReadError):
                    return
                exchange.status = _status(answer_head)
                exchange.response_body = answer_body
                exchange.client_gone = reader.at_eof()
                fault = self.decide(exchange, "response")
                if fault.kind == "delay":
                    await asyncio.sleep(fault.seconds)
                elif fault.kind == "hold":
                    await _wait_closed(reader)
                    return
                elif fault.kind == "drop":
                    return
                elif fault.kind == "reset":
                    reset_connection(writer)
                    return
                elif fault.kind == "truncate":
                    writer.write(
                        head_with_close(answer_head) + answer_body[: len(answer_body) // 2]
                    )
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    return
                writer.write(answer_head + answer_body)
                await writer.drain()
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            if upstream is not None:
                upstream[1].close()
            with contextlib.suppress(Exception):
                writer.close()

    def decide(self, exchange: Exchange, phase: str) -> Fault:
        try:
            fault = self.policy(exchange, phase)
        except Exception:  # a broken policy must not wedge the proxy
            fault = PASS
        if fault.kind != "pass":
            exchange.faults.append(f"{phase}:{fault}")
        return fault

    async def _apply_early(
        self, fault: Fault, writer: asyncio.StreamWriter, reader: asyncio.StreamReader
    ) -> bool:
        """A request-phase fault; False when the connection is done."""
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault.kind == "hold":
            await _wait_closed(reader)
            return False
        elif fault.kind in ("drop", "truncate"):
            return False
        elif fault.kind == "reset":
            reset_connection(writer)
            return False
        return True


def head_with_close(head: bytes) -> bytes:
    """The head with ``Connection: close`` (so a truncated body is not read as complete)."""
    return head[:-2].replace(b"\r\nConnection: keep-alive", b"") + b"Connection: close\r\n\r\n"


def reset_connection(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    transport.abort()


async def _wait_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


def _request_line(head: bytes) -> tuple[str, str]:
    method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return method, target


def _status(head: bytes) -> int:
    return int(head.split(b"\r\n", 1)[0].split(b" ", 2)[1])


def _headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


async def read_message(
    reader: asyncio.StreamReader, *, request: bool, method: str = "GET"
) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message: its head (with the blank line) and its raw body."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise Closed from error
    headers = _headers(head)
    if "content-length" in headers:
        return head, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raw = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers (none expected) end with a blank line.
                while True:
                    line = await reader.readuntil(b"\r\n")
                    raw += line
                    if line == b"\r\n":
                        return head, bytes(raw)
            raw += await reader.readexactly(size + 2)
    if request or method == "HEAD" or _status(head) in (204, 304) or 100 <= _status(head) < 200:
        return head, b""
    return head, await reader.read()  # until the server closes
