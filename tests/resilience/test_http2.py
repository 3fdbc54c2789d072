"""HTTP/2 where the server offers it, HTTP/1.1 where it does not.

The TLS front of tests/resilience/conftest.py offers ``h2`` by ALPN (as nginx, Caddy and
Cloudflare do) and speaks HTTP/1.1 to Synapse; the whole conversation of
test_https.py (discovery, login, sync, files, E2EE) goes over HTTP/2 there. Here: a server
without HTTP/2, the setting that turns it off, plain http never getting h2 (no h2c), the
long-poll cancelled without spoiling the shared connection, and a connection reset under
HTTP/2 leading to the same "retrying" status as under HTTP/1.1. Figures: bench/http2.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tui_client.devtools.fault_proxy import PASS, Exchange, Fault, FaultProxy
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import SyncState, SyncStatus
from tui_client.net import http as net_http
from tui_client.net.http import HomeserverConnection
from tui_client.protocol.requests import sync, whoami

from ..engine.support import wait_until
from ..integration.e2ee_support import shown
from ..integration.test_attachments import media_item
from .conftest import TlsWorld
from .support import reset_next_sync
from .tls_support import server_context


def _pass_all(exchange: Exchange, phase: str) -> Fault:
    return PASS


async def _client(user_id: str, password: str, url: str, folder: Path) -> MatrixClient:
    client = await MatrixClient.login(
        user_id, password, homeserver=url, base_dir=folder, long_poll_ms=500
    )
    await client.open()
    client.start()
    await client.wait_synced()
    return client


def _protocols(front: FaultProxy, since: int = 0) -> set[str]:
    return {exchange.protocol for exchange in front.history()[since:]}


async def _talk_and_share_a_file(client: MatrixClient, folder: Path) -> None:
    """Create a room, send a message and a picture, download it again."""
    room = await client.create_room({"name": "files", "preset": "private_chat"})
    await client.send_message(room, "hello")
    await shown(await client.open_room(room), "hello")  # the room has synced
    photo = folder / "photo.png"
    Image.new("RGB", (8, 6), (10, 200, 30)).save(photo, "PNG")
    await client.submit(room, f"/upload {photo}")
    event_id = await media_item(client, room, "photo.png")
    saved = await client.save_attachment(event_id, folder / "downloads")
    assert saved.read_bytes() == photo.read_bytes()


async def test_the_front_speaks_http2_to_the_client(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path
) -> None:
    user = tls_world.synapse.register_user("h2user", "pw-h2")
    before = len(tls_world.proxy.history())
    client = await _client(user.user_id, "pw-h2", tls_world.url, tmp_path / "c")
    try:
        assert client.connection.http2
        await _talk_and_share_a_file(client, tmp_path)
    finally:
        await client.close()
    assert _protocols(tls_world.proxy, before) == {"h2"}
    paths = {e.path.split("?", 1)[0].rsplit("/", 1)[-1] for e in tls_world.proxy.history()[before:]}
    assert {"login", "upload"} <= paths


@contextlib.contextmanager
def _front_without_http2(tls_world: TlsWorld) -> Iterator[FaultProxy]:
    """The homeserver's endpoint (its public URL, which login's ``well_known`` names) without
    HTTP/2 for a while: no ``h2`` in its ALPN, as an older reverse proxy."""
    offering = tls_world.proxy
    offering.stop()
    cert = server_context(tls_world.ca.leaf("h1-only"))
    plain = FaultProxy(tls_world.synapse.base_url, ssl_context=cert, port=offering.port)
    try:
        with plain:
            tls_world.proxy = plain
            yield plain
    finally:
        tls_world.proxy = offering.start()


async def test_a_server_without_http2_gets_http11(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path
) -> None:
    user = tls_world.synapse.register_user("h1user", "pw-h1")
    with _front_without_http2(tls_world) as front:
        client = await _client(user.user_id, "pw-h1", tls_world.url, tmp_path / "c")
        try:
            assert client.connection.http2  # offered, and not taken by the server
            await _talk_and_share_a_file(client, tmp_path)
        finally:
            await client.close()
    assert _protocols(front) == {"HTTP/1.1"}
    paths = {e.path.split("?", 1)[0].rsplit("/", 1)[-1] for e in front.history()}
    assert {"login", "upload"} <= paths


@pytest.mark.parametrize("how", ["environment", "config"])
async def test_the_setting_turns_http2_off(
    tls_world: TlsWorld,
    trust_ca: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    if how == "environment":
        monkeypatch.setenv(net_http.HTTP2_ENV, "0")
    else:
        monkeypatch.delenv(net_http.HTTP2_ENV, raising=False)
        monkeypatch.setattr(net_http, "_configured_http2", None)
        net_http.configure_http2(False)  # the config file's [network] http2 = false
    user = tls_world.synapse.register_user(f"off-{how}", "pw-off")
    before = len(tls_world.proxy.history())
    client = await _client(user.user_id, "pw-off", tls_world.url, tmp_path / "c")
    try:
        assert not client.connection.http2
        room = await client.create_room({"name": "plain", "preset": "private_chat"})
        await client.send_message(room, "over HTTP/1.1")
    finally:
        await client.close()
    assert _protocols(tls_world.proxy, before) == {"HTTP/1.1"}


async def test_plain_http_never_gets_http2(tls_world: TlsWorld) -> None:
    user = tls_world.synapse.register_user("plain", "pw-plain")
    # A plain-HTTP/1.1 front: a client speaking h2c (prior knowledge) would send it the
    # HTTP/2 preface, a "PRI * HTTP/2.0" request.
    with FaultProxy(tls_world.synapse.base_url) as front:
        async with HomeserverConnection(front.base_url, user.access_token, http2=True) as conn:
            answer = await conn.send(whoami())
    assert answer["user_id"] == user.user_id
    assert [(e.method, e.protocol) for e in front.history()] == [("GET", "HTTP/1.1")]


async def test_a_cancelled_long_poll_leaves_the_shared_connection_usable(
    tls_world: TlsWorld, trust_ca: Path
) -> None:
    user = tls_world.synapse.register_user("poller", "pw-poll")
    before = len(tls_world.proxy.history())
    async with HomeserverConnection(tls_world.url, user.access_token) as conn:
        since = (await conn.send(sync(since=None, timeout_ms=0)))["next_batch"]
        poll = asyncio.ensure_future(conn.send(sync(since=since, timeout_ms=30000)))
        await asyncio.sleep(0.5)
        assert not poll.done()
        began = time.monotonic()
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        # The same HTTP/2 connection still answers at once.
        answer = await asyncio.wait_for(conn.send(whoami()), 5)
        assert answer["user_id"] == user.user_id
        assert time.monotonic() - began < 5
    exchanges = tls_world.proxy.history()[before:]
    assert [e.protocol for e in exchanges] == ["h2", "h2", "h2"]
    assert exchanges[1].status is None  # the long-poll was never answered


async def test_closing_the_client_cancels_its_long_poll(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path
) -> None:
    user = tls_world.synapse.register_user("closer", "pw-close")
    client = await MatrixClient.login(
        user.user_id, "pw-close", homeserver=tls_world.url, base_dir=tmp_path, long_poll_ms=30000
    )
    await client.open()
    client.start()
    await client.wait_synced()
    await asyncio.sleep(1.0)  # the 30 s long-poll is pending
    began = time.monotonic()
    await asyncio.wait_for(client.close(), 10)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1.1"])
async def test_a_connection_reset_says_retrying_and_recovers(
    tls_world: TlsWorld,
    trust_ca: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    http2: bool,
) -> None:
    monkeypatch.setenv(net_http.HTTP2_ENV, "1" if http2 else "0")
    armed = threading.Event()
    user = tls_world.synapse.register_user(f"reset-{int(http2)}", "pw-reset")
    front = tls_world.proxy
    before = len(front.history())
    front.policy = reset_next_sync(armed)
    try:
        client = await _client(user.user_id, "pw-reset", tls_world.url, tmp_path / "c")
        states: list[SyncState] = []
        client.subscribe(lambda u: states.append(u) if isinstance(u, SyncState) else None)
        try:
            armed.set()
            await wait_until(
                lambda: any(s.status is SyncStatus.BACKING_OFF for s in states),
                timeout=20,
                what="backing off after the reset",
            )
            backing_off = next(s for s in states if s.status is SyncStatus.BACKING_OFF)
            assert backing_off.describe(time.time()).startswith("retrying in ")
            assert client.sync_loop is not None
            client.sync_loop.retry_now()
            await wait_until(
                lambda: states[-1].status is SyncStatus.CONNECTED,
                timeout=30,
                what="connected again",
            )
            room = await client.create_room({"name": "after the reset", "preset": "private_chat"})
            await client.send_message(room, "still here")
        finally:
            await client.close()
    finally:
        front.policy = _pass_all
    reset = [e for e in front.history()[before:] if e.faults]
    assert [(e.protocol, e.faults) for e in reset] == [
        ("h2" if http2 else "HTTP/1.1", ["request:reset"])
    ]


async def test_a_graceful_goaway_is_ridden_out(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path
) -> None:
    """nginx ends an HTTP/2 connection after ``keepalive_requests`` (1,000) requests with a
    GOAWAY and answers the streams it had taken; the client carries on on a new connection
    without a failure the user would see (here every 5 requests, the long-poll pending).
    A request cut off that way is sent again if it may be (GET, PUT, the sync POST); a
    POST that may not (``/createRoom``) fails as on any lost connection."""
    user = tls_world.synapse.register_user("goaway", "pw-goaway")
    front = tls_world.proxy
    client = await _client(user.user_id, "pw-goaway", tls_world.url, tmp_path / "c")
    states: list[SyncState] = []
    client.subscribe(lambda u: states.append(u) if isinstance(u, SyncState) else None)
    room = await client.create_room({"name": "go away", "preset": "private_chat"})
    connections, before = front.connections, len(front.history())
    front.h2_max_requests = 5
    try:
        for n in range(12):
            await client.send_message(room, f"message {n}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # long-polls come and go meanwhile

        def answered() -> set[str | None]:
            sends = [e for e in front.history()[before:] if e.is_send]
            return {e.txn_id for e in sends if e.status == 200}

        # Every message arrives once (a send whose new stream the closing connection lost
        # before it could be refused is left to the send queue, which sends it again).
        await wait_until(lambda: len(answered()) == 12, timeout=30, what="12 messages sent")
        failed = [s for s in states if s.status is not SyncStatus.CONNECTED]
        assert client.sync_state.status is SyncStatus.CONNECTED
    finally:
        front.h2_max_requests = None
        await client.close()
    assert failed == []
    assert front.connections - connections >= 3
