"""Crypto test fixtures: every machine test runs on both backends, and mixed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tui_client.crypto import BACKENDS, CryptoBackend, load_backend

from .harness import FakeClock, FakeHomeserver, Peer

MakePeer = Callable[..., Peer]


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """``olm`` or ``vodozemac``."""
    return str(request.param)


@pytest.fixture
def backend(backend_name: str) -> CryptoBackend:
    """The backend under test."""
    return load_backend(backend_name)


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves."""
    return FakeClock()


@pytest.fixture
def server() -> FakeHomeserver:
    """A homeserver in memory."""
    return FakeHomeserver()


@pytest.fixture
def make_peer(server: FakeHomeserver, clock: FakeClock, backend_name: str) -> MakePeer:
    """``make_peer(user_id, device_id, backend=None, **kwargs)``: a logged-in device."""

    def make(user_id: str, device_id: str, backend: str | None = None, **kwargs: object) -> Peer:
        peer = Peer(server, user_id, device_id, backend or backend_name, clock, **kwargs)  # type: ignore[arg-type]
        peer.login()
        return peer

    return make
