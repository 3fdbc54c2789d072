"""The HTTP/2 side of :class:`~tui_client.devtools.fault_proxy.FaultProxy`: a TLS front that
speaks HTTP/2 to the client (chosen by ALPN, as nginx, Caddy and Cloudflare offer it) and
HTTP/1.1 to the homeserver behind it.

Each HTTP/2 stream is one :class:`~tui_client.devtools.fault_proxy.Exchange` (``protocol``
``"h2"``), forwarded on an upstream HTTP/1.1 connection of its own (kept for the next
stream), with the proxy's fault policy applied as for HTTP/1.1: a ``RESET`` or ``DROP``
ends the whole connection (every stream on it, as a real network fault would), ``HOLD``
leaves the stream unanswered, ``TRUNCATE`` sends half the body and then closes the
connection. A stream the client cancels (``RST_STREAM``) stops its upstream request.
Uses the ``h2`` library (the one httpx speaks HTTP/2 with).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

if TYPE_CHECKING:
    from .fault_proxy import Exchange, Fault, FaultProxy, Upstream

__all__ = ["serve_h2"]

# Headers of one hop that HTTP/2 forbids (RFC 9113 8.2.2) or that the upstream hop sets.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "host",
    "content-length",
}


class _Abort(Exception):
    """The fault policy ended the whole connection."""


async def serve_h2(
    proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one client connection whose ALPN chose ``h2`` until it closes."""
    await _H2Connection(proxy, reader, writer).run()


class _H2Connection:
    def __init__(
        self, proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.requests: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        self.tasks: dict[int, asyncio.Future[None]] = {}
        self.idle: list[Upstream] = []
        self.window = asyncio.Event()
        self.closed = False
        self.streams = 0
        #: The last stream a GOAWAY promised to answer (``None``: none sent).
        self.going_away: int | None = None

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.writer.write(data)

    async def run(self) -> None:
        self.conn.initiate_connection()
        self.flush()
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for event in events:
                    self.on_event(event)
                self.flush()
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            for task in self.tasks.values():
                task.cancel()
            for _, up_writer in self.idle:
                up_writer.close()

    def on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            if self.going_away is not None and event.stream_id > self.going_away:
                # Sent after our GOAWAY: refused, never processed (the client may retry it).
                self.conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            headers = [(str(k), str(v)) for k, v in event.headers or []]
            self.requests[event.stream_id] = (headers, bytearray())
            self.streams += 1
            limit = self.proxy.h2_max_requests
            if limit is not None and self.going_away is None and self.streams >= limit:
                self.go_away(event.stream_id)
        elif isinstance(event, h2.events.DataReceived):
            if event.stream_id not in self.requests:  # a refused stream
                return
            self.requests[event.stream_id][1].extend(event.data or b"")
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id not in self.requests:  # a refused stream
                return
            headers, body = self.requests.pop(event.stream_id)
            stream_id = event.stream_id
            task = asyncio.ensure_future(self.stream(stream_id, headers, bytes(body)))
            self.tasks[stream_id] = task
            task.add_done_callback(lambda _: self.stream_done(stream_id))
        elif isinstance(event, h2.events.StreamReset):
            self.requests.pop(event.stream_id, None)
            cancelled = self.tasks.pop(event.stream_id, None)
            if cancelled is not None:
                cancelled.cancel()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window.set()
            self.window = asyncio.Event()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    def go_away(self, last_stream_id: int) -> None:
        """A graceful GOAWAY, as nginx sends after ``keepalive_requests`` (1,000) requests on
        one connection: the streams up to ``last_stream_id`` are still answered, later ones
        refused, and the connection closed once they are done. (Written as a raw frame: the
        h2 library closes its side at once on a GOAWAY it sends.)"""
        from hyperframe.frame import GoAwayFrame

        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        frame.error_code = 0
        self.going_away = last_stream_id
        self.flush()
        self.writer.write(frame.serialize())

    def stream_done(self, stream_id: int) -> None:
        self.tasks.pop(stream_id, None)
        if self.going_away is not None and not self.tasks and not self.requests:
            self.closed = True
            self.writer.close()

    def abort(self, fault: Fault) -> None:
        from .fault_proxy import reset_connection

        self.closed = True
        if fault.kind == "reset":
            reset_connection(self.writer)
        else:
            self.writer.close()

    async def stream(self, stream_id: int, headers: list[tuple[str, str]], body: bytes) -> None:
        from .fault_proxy import Exchange

        pseudo = {k: v for k, v in headers if k.startswith(":")}
        method, path = pseudo.get(":method", "GET"), pseudo.get(":path", "/")
        plain = {k: v for k, v in headers if not k.startswith(":")}
        exchange = Exchange(method, path, body, plain, protocol="h2")
        self.proxy.record(exchange)
        try:
            fault = self.proxy.decide(exchange, "request")
            if fault.kind in ("reset", "drop", "truncate"):
                raise _Abort(fault.kind)
            if fault.kind == "hold":
                return
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            status, answer_headers, answer = await self.forward(
                exchange, pseudo.get(":authority", ""), plain
            )
            exchange.status, exchange.response_body = status, answer
            fault = self.proxy.decide(exchange, "response")
            if fault.kind in ("reset", "drop"):
                raise _Abort(fault.kind)
            if fault.kind == "hold":
                return
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            self.conn.send_headers(
                stream_id,
                [(":status", str(status)), *answer_headers, ("content-length", str(len(answer)))],
                end_stream=not answer,
            )
            self.flush()
            if fault.kind == "truncate":
                await self.send_body(stream_id, answer[: len(answer) // 2], end=False)
                self.abort(fault)
                return
            if answer:
                await self.send_body(stream_id, answer, end=True)
        except _Abort as abort:
            from .fault_proxy import Fault

            self.abort(Fault(str(abort)))
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            return

    async def forward(
        self, exchange: Exchange, authority: str, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request on an upstream HTTP/1.1 connection; the answer's status, headers, body."""
        lines = [f"{exchange.method} {exchange.path} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k not in _HOP_BY_HOP]
        if exchange.request_body or exchange.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(exchange.request_body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + exchange.request_body
        upstream, answer_head, answer = await self.proxy.forward(
            head, exchange.method, self.idle.pop() if self.idle else None
        )
        if upstream is not None:
            self.idle.append(upstream)
        status_line, *header_lines = answer_head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        answer_headers: list[tuple[str, str]] = []
        chunked = False
        for line in header_lines:
            name, sep, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if not sep:
                continue
            if name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            if name not in _HOP_BY_HOP:
                answer_headers.append((name, value))
        return status, answer_headers, _dechunk(answer) if chunked else answer

    async def send_body(self, stream_id: int, body: bytes, *, end: bool) -> None:
        view = memoryview(body)
        while view:
            window = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                await self.window.wait()
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
            self.flush()
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
        if end:
            self.conn.end_stream(stream_id)
            self.flush()


def _dechunk(raw: bytes) -> bytes:
    """The body of a ``Transfer-Encoding: chunked`` message."""
    out = bytearray()
    position = 0
    while True:
        end = raw.index(b"\r\n", position)
        size = int(raw[position:end].split(b";", 1)[0].strip(), 16)
        if size == 0:
            return bytes(out)
        out += raw[end + 2 : end + 2 + size]
        position = end + 2 + size + 2
