"""HTTP/1.1 against HTTP/2 to a homeserver behind a TLS front, through the same front.

A real Synapse sits behind :class:`~tui_client.devtools.fault_proxy.FaultProxy` with
``http2=True``: TLS with a test CA, HTTP/2 offered by ALPN (as nginx, Caddy and Cloudflare
do), HTTP/1.1 to Synapse. The client's own :class:`~tui_client.net.http.HomeserverConnection`
talks to it twice per case, once not offering ``h2`` (baseline: HTTP/1.1) and once offering
it (HTTP/2), in rotating order, in this one process. Every case starts on a new
connection pool, so TLS handshakes are counted where the client would pay them.

Loopback has no latency, and HTTP/2's gains are round trips saved; so every case also runs
through :class:`LatencyRelay`, a TCP relay that holds every chunk for half of a round-trip
time in each direction (:data:`RTTS_MS`), as a homeserver across a network would be.

Cases, each what the client does:

- ``cold start``: six requests at once on a new connection (versions, whoami, push rules,
  an initial sync, a key query, a profile): one handshake (h2) or up to six (HTTP/1.1);
- ``N thumbnails, 4 at a time``: a room's pictures as the image service loads them (at most
  four fetches at once) while the sync long-poll holds a connection;
- ``N thumbnails at once``: the same without the limit (what HTTP/2 would allow);
- ``E2EE burst``: ``/keys/query``, ``/keys/claim`` and ``/sendToDevice`` at once, long-poll pending;
- ``M sends during the long-poll``: messages sent one after another while ``/sync`` waits.

Wall time is what the user waits for; CPU time is this thread's (the client's event loop;
the front and the relay run in threads of their own, Synapse in its own process).
Run: ``python -m bench.http2`` (``--rounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_client.devtools.loop_server import LoopbackServer

from ._harness import quick, sized

THUMBNAILS = sized(50, 6)
SENDS = sized(10, 2)
ROUNDS = sized(3, 1)
#: Round-trip times simulated by the relay, in milliseconds (0: plain loopback).
RTTS_MS = (0, 20) if quick() else (0, 40)
H1, H2 = "HTTP/1.1", "HTTP/2"
_SILENT_FILTER = json.dumps(
    {
        "room": {"rooms": []},
        "presence": {"types": []},
        "account_data": {"types": []},
    }
)


class LatencyRelay(LoopbackServer):
    """A loopback TCP relay to ``127.0.0.1:target`` that delivers every chunk ``one_way``
    seconds after it arrived, in order, in both directions (a network's latency)."""

    def __init__(self, target: int, one_way: float) -> None:
        super().__init__()
        self.target = target
        self.one_way = one_way

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.track(up_writer)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.untrack(up_writer)
            up_writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    dst.close()
                    return
                dst.write(data)
                with contextlib.suppress(ConnectionError, OSError):
                    await dst.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while data := await src.read(65536):
                queue.put_nowait((loop.time() + self.one_way, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((loop.time() + self.one_way, b""))
        with contextlib.suppress(ConnectionError, OSError):
            await delivering


@dataclass
class World:
    """The accounts and content the cases use."""

    url: str
    token: str
    bob: str
    bob_device: str
    room: str
    media: list[str] = field(default_factory=list)


Case = Callable[[Any, World], Awaitable[None]]


def _keys_query(world: World) -> Any:
    from tui_client.crypto.requests import KeysQueryRequest

    return KeysQueryRequest("q", (world.bob,), {"device_keys": {world.bob: []}}).to_http()


async def _long_poll(conn: Any) -> None:
    """``/sync`` long-polls one after another (none of them woken by the cases' traffic)."""
    from tui_client.protocol.requests import sync

    since = (await conn.send(sync(since=None, timeout_ms=0, filter_json=_SILENT_FILTER)))[
        "next_batch"
    ]
    while True:
        answer = await conn.send(sync(since=since, timeout_ms=30000, filter_json=_SILENT_FILTER))
        since = answer["next_batch"]


async def _cold_start(conn: Any, world: World) -> None:
    from tui_client.protocol import requests as r

    await asyncio.gather(
        conn.send(r.versions()),
        conn.send(r.whoami()),
        conn.send(r.push_rules()),
        conn.send(r.sync(since=None, timeout_ms=0, filter_json=_SILENT_FILTER)),
        conn.send(_keys_query(world)),
        conn.send(r.get_profile(world.bob)),
    )


def _thumbnails(limit: int | None) -> Case:
    async def fetch_all(conn: Any, world: World) -> None:
        from tui_client.protocol.requests import thumbnail_media

        slots = asyncio.Semaphore(limit or len(world.media))

        async def one(mxc: str) -> None:
            server, media_id = mxc.removeprefix("mxc://").split("/", 1)
            async with slots:
                await conn.send_raw(thumbnail_media(server, media_id, 32, 32))

        await asyncio.gather(*(one(mxc) for mxc in world.media))

    return fetch_all


async def _e2ee_burst(conn: Any, world: World) -> None:
    from tui_client.crypto.requests import KeysClaimRequest, ToDeviceKind, ToDeviceRequest

    txn = f"b{time.monotonic_ns()}"
    claim = {world.bob: {world.bob_device: "signed_curve25519"}}
    await asyncio.gather(
        conn.send(_keys_query(world)),
        conn.send(KeysClaimRequest("c", claim, {"one_time_keys": claim}).to_http()),
        conn.send(
            ToDeviceRequest(
                txn, "m.bench.ping", ToDeviceKind.DUMMY, {world.bob: {world.bob_device: {"n": 1}}}
            ).to_http()
        ),
    )


async def _sends(conn: Any, world: World) -> None:
    from tui_client.protocol.requests import send_event

    for n in range(SENDS):
        txn = f"s{time.monotonic_ns()}"
        await conn.send(
            send_event(world.room, "m.room.message", txn, {"msgtype": "m.text", "body": f"m{n}"})
        )


#: name -> (case, whether the sync long-poll runs meanwhile, as it does in a session)
CASES: dict[str, tuple[Case, bool]] = {
    "cold start: 6 requests at once": (_cold_start, False),
    f"{THUMBNAILS} thumbnails, 4 at a time": (_thumbnails(4), True),
    f"{THUMBNAILS} thumbnails at once": (_thumbnails(None), True),
    "E2EE burst: query + claim + to-device": (_e2ee_burst, True),
    f"{SENDS} sends during the long-poll": (_sends, True),
}


async def _measure(
    url: str, world: World, case: Case, with_poll: bool, http2: bool
) -> tuple[float, float]:
    """One run of ``case`` on a new connection: wall seconds, CPU seconds."""
    from tui_client.net.http import HomeserverConnection

    conn = HomeserverConnection(url, world.token, http2=http2)
    poll: asyncio.Future[None] | None = None
    try:
        if with_poll:
            # A session's steady state: the long-poll holds a connection the case cannot use
            # under HTTP/1.1 (and shares under HTTP/2).
            poll = asyncio.ensure_future(_long_poll(conn))
            await asyncio.sleep(0.3)
        wall, cpu = time.perf_counter(), time.thread_time()
        await case(conn, world)
        return time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        if poll is not None:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poll
        await conn.aclose()


@dataclass
class Figures:
    """Per case and RTT: wall and CPU seconds of each protocol, one per round."""

    wall: dict[tuple[str, int, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, int, str], list[float]] = field(default_factory=dict)
    #: What the front saw when the client offered h2 and when it did not.
    protocols: dict[str, set[str]] = field(default_factory=dict)

    def add(self, key: tuple[str, int, str], wall: float, cpu: float) -> None:
        self.wall.setdefault(key, []).append(wall)
        self.cpu.setdefault(key, []).append(cpu)


def _seed(server: Any, front_url: str) -> World:
    from PIL import Image

    alice = server.register_user("alice", "bench-alice")
    bob = server.register_user("bob", "bench-bob")
    status, answer = server.request_json(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "name": "h2 bench"},
        token=alice.access_token,
    )
    if status != 200:
        raise RuntimeError(f"createRoom: {status} {answer}")
    world = World(front_url, alice.access_token, bob.user_id, bob.device_id, answer["room_id"])

    async def upload() -> None:
        from tui_client.net.http import HomeserverConnection
        from tui_client.protocol.requests import thumbnail_media, upload_media

        async with HomeserverConnection(front_url, alice.access_token) as conn:
            for n in range(THUMBNAILS):
                buffer = io.BytesIO()
                Image.new("RGB", (96, 64), (n * 5 % 256, 90, 200 - n)).save(buffer, "PNG")
                uri = (await conn.send(upload_media(buffer.getvalue(), f"p{n}.png", "image/png")))[
                    "content_uri"
                ]
                world.media.append(uri)
                server_name, media_id = uri.removeprefix("mxc://").split("/", 1)
                # Made once here, so no case pays for Synapse making it.
                await conn.send_raw(thumbnail_media(server_name, media_id, 32, 32))

    asyncio.run(upload())
    return world


def run(rounds: int = ROUNDS) -> Figures:
    """Start Synapse and the front, run every case ``rounds`` times per RTT and protocol."""
    from tui_client.devtools.fault_proxy import FaultProxy
    from tui_client.devtools.synapse import SynapseServer
    from tui_client.devtools.tls_ca import TestCA, server_context
    from tui_client.net import http as net_http

    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="tui-bench-h2-") as tmp:
        base = Path(tmp)
        ca = TestCA(base / "ca")
        os.environ["SSL_CERT_FILE"] = str(ca.ca_file)
        net_http._trust.clear()  # built again, with the test CA
        with (
            SynapseServer(base / "synapse") as server,
            FaultProxy(
                server.base_url, ssl_context=server_context(ca.leaf("front")), http2=True
            ) as front,
        ):
            world = _seed(server, f"https://127.0.0.1:{front.port}")
            for rtt in RTTS_MS:
                with LatencyRelay(front.port, rtt / 2000) as relay:
                    url = f"https://127.0.0.1:{relay.port}" if rtt else world.url
                    for round_no in range(rounds):
                        for name, (case, with_poll) in CASES.items():
                            order = (False, True) if round_no % 2 == 0 else (True, False)
                            for http2 in order:
                                seen = len(front.history())
                                wall, cpu = asyncio.run(
                                    _measure(url, world, case, with_poll, http2)
                                )
                                label = H2 if http2 else H1
                                figures.protocols.setdefault(label, set()).update(
                                    e.protocol for e in front.history()[seen:]
                                )
                                figures.add((name, rtt, label), wall, cpu)
    if figures.protocols != {H1: {"HTTP/1.1"}, H2: {"h2"}}:
        raise RuntimeError(f"the protocols are not the ones compared: {figures.protocols}")
    return figures


def report(figures: Figures, rounds: int) -> str:
    """The table: medians per protocol and the median per-round ratio HTTP/2 / HTTP/1.1."""
    lines = [
        f"http2: HTTP/2 vs HTTP/1.1 through one TLS front to Synapse ({rounds} rounds; "
        f"x = median per-round HTTP/2 / HTTP/1.1, lower is better for HTTP/2; "
        "the front saw: "
        + "; ".join(
            f"{label} offered -> {', '.join(sorted(seen))}"
            for label, seen in sorted(figures.protocols.items())
        )
        + ")"
    ]
    lines.append(
        f"  {'case':<42} {'RTT':>6} {'h1.1 wall':>10} {'h2 wall':>9} {'x wall':>7} "
        f"{'h1.1 cpu':>9} {'h2 cpu':>8} {'x cpu':>6}"
    )
    for rtt in RTTS_MS:
        for name in CASES:
            h1w, h2w = figures.wall[(name, rtt, H1)], figures.wall[(name, rtt, H2)]
            h1c, h2c = figures.cpu[(name, rtt, H1)], figures.cpu[(name, rtt, H2)]
            xw = statistics.median(b / a for a, b in zip(h1w, h2w, strict=True))
            xc = statistics.median(b / max(a, 1e-9) for a, b in zip(h1c, h2c, strict=True))
            lines.append(
                f"  {name:<42} {rtt:>4}ms {statistics.median(h1w) * 1000:>8.1f}ms "
                f"{statistics.median(h2w) * 1000:>7.1f}ms {xw:>7.2f} "
                f"{statistics.median(h1c) * 1000:>7.1f}ms {statistics.median(h2c) * 1000:>6.1f}ms {xc:>6.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run and print the HTTP/2 benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    figures = run(args.rounds)
    print(report(figures, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
