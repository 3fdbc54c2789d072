"""Logging in and finding the homeserver, with the messages a user would read.

Discovery needs ``https://<server>/.well-known/matrix/client``: an
``httpx.MockTransport`` answers for the made-up hosts and forwards everything
else to a real transport, so the homeserver behind the answer is the real Synapse.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import LoginError, MatrixClient
from tui_client.net.discovery import DiscoveryError, discover_homeserver

from ..engine.support import ClientPool, Wire, wait_until

Answer = Callable[[httpx.Request], httpx.Response]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fake_hosts(
    wire: Wire, answers: dict[str, Answer], forwarded: list[httpx.URL] | None = None
) -> httpx.MockTransport:
    """Answer for ``https://<host>/...`` of the given hosts; forward the rest."""

    async def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.get(request.url.host)
        if answer is not None:
            return answer(request)
        if forwarded is not None:
            forwarded.append(request.url)
        return await wire.forward(request)

    return httpx.MockTransport(handle)


def _well_known(body: Any, status: int = 200) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/matrix/client":
            if isinstance(body, bytes):
                return httpx.Response(status, content=body)
            return httpx.Response(status, json=body)
        return httpx.Response(
            404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        )

    return answer


# -- logging in ------------------------------------------------------------------------


async def test_wrong_password(synapse: SynapseServer, make_user: Any, tmp_path: Path) -> None:
    user = make_user("typo")
    with pytest.raises(LoginError) as caught:
        await MatrixClient.login(
            user.user_id, "not the password", homeserver=synapse.base_url, base_dir=tmp_path
        )
    assert str(caught.value) == "Wrong user ID or password."
    assert not (tmp_path / "default" / "session.json").exists()


async def test_unknown_user_reads_the_same(synapse: SynapseServer, tmp_path: Path) -> None:
    with pytest.raises(LoginError, match=r"^Wrong user ID or password\.$"):
        await MatrixClient.login(
            "@nobody-here:localhost", "x", homeserver=synapse.base_url, base_dir=tmp_path
        )


async def test_unresolvable_server(tmp_path: Path) -> None:
    with pytest.raises(LoginError) as caught:
        await MatrixClient.login("@a:nonexistent.invalid", "pw", base_dir=tmp_path)
    message = str(caught.value)
    assert "nonexistent.invalid" in message
    assert "unknown server" in message or "could not find" in message


async def test_server_down(tmp_path: Path) -> None:
    port = _closed_port()
    with pytest.raises(LoginError) as caught:
        await MatrixClient.login(
            "@a:localhost", "pw", homeserver=f"http://127.0.0.1:{port}", base_dir=tmp_path
        )
    message = str(caught.value)
    assert f"http://127.0.0.1:{port}" in message
    assert "down or unreachable" in message


@pytest.mark.parametrize(
    ("user_id", "homeserver"),
    [
        ("alice", "http://127.0.0.1:1"),
        ("@alice", "http://127.0.0.1:1"),
        ("@a:localhost", "ftp://example.org"),
    ],
)
async def test_unusable_input_is_explained(tmp_path: Path, user_id: str, homeserver: str) -> None:
    with pytest.raises(LoginError) as caught:
        await MatrixClient.login(user_id, "pw", homeserver=homeserver, base_dir=tmp_path)
    assert "user ID" in str(caught.value) or "not a valid homeserver URL" in str(caught.value)


async def test_login_by_well_known_discovery(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    # Synapse's server name is "localhost": its users' IDs end in ":localhost".
    user = make_user("discovered")
    transport = _fake_hosts(
        wire, {"localhost": _well_known({"m.homeserver": {"base_url": synapse.base_url + "/"}})}
    )
    client = await MatrixClient.login(
        user.user_id, user.password, base_dir=tmp_path, transport=transport, long_poll_ms=1000
    )
    pool.add(client)
    assert client.info.homeserver == synapse.base_url
    assert client.user_id == user.user_id
    await client.open()
    client.start()
    await client.wait_synced()
    await wait_until(
        lambda: client.sync_loop is not None and client.sync_loop.batches >= 1, what="sync"
    )


# -- discovery, case by case ---------------------------------------------------------------


async def test_discovery_finds_the_real_homeserver(synapse: SynapseServer, wire: Wire) -> None:
    forwarded: list[httpx.URL] = []
    answers = {"example.test": _well_known({"m.homeserver": {"base_url": synapse.base_url}})}
    found = await discover_homeserver(
        "@user:example.test", transport=_fake_hosts(wire, answers, forwarded)
    )
    assert found.base_url == synapse.base_url
    assert found.source == "well-known"
    assert found.versions and all(v.startswith(("r0.", "v1.")) for v in found.versions)
    # The versions request went to the real server.
    assert [str(u) for u in forwarded] == [synapse.base_url + "/_matrix/client/versions"]


async def test_discovery_without_well_known_uses_the_server_name(wire: Wire) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_matrix/client/versions":
            return httpx.Response(200, json={"versions": ["v1.11"]})
        return httpx.Response(404)

    found = await discover_homeserver(
        "@user:example.test", transport=_fake_hosts(wire, {"example.test": answer})
    )
    assert (found.base_url, found.source, found.versions) == (
        "https://example.test",
        "server name",
        ("v1.11",),
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(_well_known({"errcode": "M_UNKNOWN"}, 500), "HTTP 500", id="500"),
        pytest.param(_well_known(b"{not json", 200), "not JSON", id="invalid-json"),
        pytest.param(_well_known(b"", 200), "HTTP 200", id="empty-body"),
        pytest.param(
            _well_known({"m.homeserver": {}}), "names no homeserver", id="missing-base-url"
        ),
        pytest.param(
            _well_known({"m.homeserver": "https://x"}),
            "names no homeserver",
            id="homeserver-not-an-object",
        ),
        pytest.param(_well_known(["a list"]), "names no homeserver", id="not-an-object"),
    ],
)
async def test_discovery_fail_prompt(wire: Wire, answer: Answer, expected: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        await discover_homeserver(
            "@user:example.test", transport=_fake_hosts(wire, {"example.test": answer})
        )
    assert caught.value.prompt is True
    assert expected in str(caught.value)
    assert "example.test" in str(caught.value)
    assert "enter the homeserver URL" in str(caught.value)


async def test_discovery_fail_error_when_base_url_is_not_a_homeserver(
    synapse: SynapseServer, wire: Wire
) -> None:
    # A real HTTP server (Synapse itself) under a path that serves no client API.
    not_a_homeserver = synapse.base_url + "/not/here"
    transport = _fake_hosts(
        wire, {"example.test": _well_known({"m.homeserver": {"base_url": not_a_homeserver}})}
    )
    with pytest.raises(DiscoveryError) as caught:
        await discover_homeserver("@user:example.test", transport=transport)
    assert caught.value.prompt is False
    message = str(caught.value)
    assert not_a_homeserver in message and "not a Matrix homeserver" in message


async def test_discovery_fail_error_when_base_url_is_down_or_invalid(wire: Wire) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"
    for base_url, expected in ((down, "cannot reach"), ("not a url", "not a valid homeserver URL")):
        transport = _fake_hosts(
            wire, {"example.test": _well_known({"m.homeserver": {"base_url": base_url}})}
        )
        with pytest.raises(DiscoveryError) as caught:
            await discover_homeserver("@user:example.test", transport=transport)
        assert caught.value.prompt is False
        assert expected in str(caught.value)


async def test_discovery_of_an_unknown_host() -> None:
    with pytest.raises(DiscoveryError) as caught:
        await discover_homeserver("@user:nonexistent.invalid")
    assert caught.value.prompt is False
    assert "nonexistent.invalid" in str(caught.value)
