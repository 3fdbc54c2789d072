"""TLS helpers of the real-world tests: the test CA (:mod:`tui_client.devtools.tls_ca`, shared
with the HTTP/2 benchmark) and an HTTPS proxy that only tunnels.
"""

from __future__ import annotations

import asyncio

from tui_client.devtools.loop_server import LoopbackServer
from tui_client.devtools.tls_ca import Leaf, TestCA, server_context

__all__ = ["ConnectProxy", "Leaf", "TestCA", "server_context"]


class ConnectProxy(LoopbackServer):
    """An HTTP proxy that only tunnels (``CONNECT host:port``), as ``HTTPS_PROXY`` names;
    ``tunnels`` lists the targets asked for. Its own thread and event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.tunnels: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.track(up_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
