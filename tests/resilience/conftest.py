"""Fixtures of the real-world tests: a homeserver spoken to over TLS only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tui_client.devtools.fault_proxy import FaultProxy
from tui_client.devtools.synapse import SynapseServer
from tui_client.net import http as net_http

from .tls_support import TestCA, server_context


@dataclass
class TlsWorld:
    """Synapse behind a TLS endpoint at ``https://localhost:<port>`` (its server name is
    ``localhost:<port>``, so discovery from a user ID finds it), certificates from ``ca``.
    The endpoint offers HTTP/2 by ALPN, as real homeservers' reverse proxies do."""

    synapse: SynapseServer
    proxy: FaultProxy
    ca: TestCA

    @property
    def url(self) -> str:
        return f"https://localhost:{self.proxy.port}"

    def endpoint(self, label: str, *, http2: bool = False, **leaf: object) -> FaultProxy:
        """Another TLS endpoint in front of the same server, with a certificate of its own
        (``expired=True``, ``hosts=(...)``, ``self_signed=True``), on a free port; HTTP/1.1
        only unless ``http2``."""
        cert = self.ca.leaf(label, **leaf)  # type: ignore[arg-type]
        return FaultProxy(self.synapse.base_url, ssl_context=server_context(cert), http2=http2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def tls_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsWorld]:
    ca = TestCA(tmp_path_factory.mktemp("test-ca"))
    port = free_port()
    server = SynapseServer(
        tmp_path_factory.mktemp("tls-synapse"),
        server_name=f"localhost:{port}",
        extra_config={
            "public_baseurl": f"https://localhost:{port}/",
            "serve_client_wellknown": True,
        },
    )
    server.start()
    proxy = FaultProxy(
        server.base_url, ssl_context=server_context(ca.leaf("good")), port=port, http2=True
    )
    try:
        proxy.start()
        yield TlsWorld(server, proxy, ca)
    finally:
        proxy.stop()
        server.stop()


@pytest.fixture
def trust_ca(tls_world: TlsWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``SSL_CERT_FILE`` names the test CA (as a user of a private CA would set it)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_world.ca.ca_file))
    fresh_trust_store(monkeypatch)
    yield tls_world.ca.ca_file


def fresh_trust_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's trust context is built once; a test that changes the environment gets
    a new one (and the next test too)."""
    monkeypatch.setattr(net_http, "_trust", {})
