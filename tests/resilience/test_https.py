"""The client against a homeserver that speaks only HTTPS, as real ones do.

Synapse sits behind a TLS endpoint (tests/resilience/conftest.py) whose certificate comes
from a test CA that the system does not trust; ``SSL_CERT_FILE`` naming the CA makes it
trusted (the system trust store, through truststore, honours it). Discovery from a user
ID, login, sync, a file and an encrypted conversation all go over TLS; an HTTPS proxy
named by ``HTTPS_PROXY`` is used. Bad certificates on the login screen and in the status
line: tests/resilience/test_https_ui.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import truststore
from PIL import Image

from tui_client.engine.client import LoginError, MatrixClient
from tui_client.net.http import trust_context

from ..integration.e2ee_support import encrypted_room, join, shown
from ..integration.test_attachments import media_item
from .conftest import TlsWorld, fresh_trust_store
from .tls_support import ConnectProxy


async def _logged_in(user_id: str, password: str, folder: Path) -> MatrixClient:
    # No homeserver given: found from the user ID's server name (.well-known over HTTPS).
    client = await MatrixClient.login(user_id, password, base_dir=folder, long_poll_ms=500)
    await client.open()
    client.start()
    await client.wait_synced()
    return client


async def test_discovery_login_sync_files_and_e2ee_over_tls(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path
) -> None:
    synapse = tls_world.synapse
    alice_user = synapse.register_user("alice", "pw-alice")
    bob_user = synapse.register_user("bob", "pw-bob")
    assert alice_user.user_id == f"@alice:localhost:{tls_world.proxy.port}"
    before = len(tls_world.proxy.history())
    alice = await _logged_in(alice_user.user_id, "pw-alice", tmp_path / "alice")
    bob = await _logged_in(bob_user.user_id, "pw-bob", tmp_path / "bob")
    try:
        # Discovered through .well-known, which names the HTTPS endpoint.
        assert alice.info.homeserver == bob.info.homeserver == tls_world.url
        secret = await encrypted_room(alice, "over TLS", [bob_user.user_id])
        await join(bob, secret)
        await alice.send_message(secret, "hello over TLS")
        await shown(await bob.open_room(secret), "hello over TLS")
        photo = tmp_path / "photo.png"
        Image.new("RGB", (8, 6), (200, 10, 30)).save(photo, "PNG")
        await alice.submit(secret, f"/upload {photo}")
        event_id = await media_item(bob, secret, "photo.png")
        saved = await bob.save_attachment(event_id, tmp_path / "downloads")
        assert saved.read_bytes() == photo.read_bytes()
    finally:
        await alice.close()
        await bob.close()
    # Every one of those requests went through the TLS endpoint, over HTTP/2 (offered by it).
    exchanges = tls_world.proxy.history()[before:]
    assert {e.protocol for e in exchanges} == {"h2"}
    paths = [e.path.split("?", 1)[0] for e in exchanges]
    for wanted in (
        "/.well-known/matrix/client",
        "/login",
        "/sync",
        "/keys/upload",
        "/keys/claim",
        "/upload",
        "/download/",
    ):
        assert any(wanted in path for path in paths), (wanted, sorted(set(paths))[:40])


async def test_a_private_ca_is_not_trusted_without_ssl_cert_file(
    tls_world: TlsWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    fresh_trust_store(monkeypatch)
    # The system's trust store (truststore), which does not know the test CA.
    assert isinstance(trust_context(), truststore.SSLContext)
    user = tls_world.synapse.register_user("carol", "pw-carol")
    with pytest.raises(LoginError, match=r"unknown authority|not trusted"):
        await MatrixClient.login(user.user_id, "pw-carol", base_dir=tmp_path)


async def test_https_proxy_variable_is_honoured(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tls_world.synapse.register_user("dave", "pw-dave")
    with ConnectProxy() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        client = await _logged_in(user.user_id, "pw-dave", tmp_path / "dave")
        await client.close()
    # Discovery, login and sync were all tunnelled through the proxy to the homeserver.
    assert proxy.tunnels and set(proxy.tunnels) == {f"localhost:{tls_world.proxy.port}"}
