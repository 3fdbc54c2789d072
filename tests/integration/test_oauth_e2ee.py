"""End-to-end encryption after an OAuth login, on a real Synapse delegating to our test
authorization server: two OAuth accounts exchange encrypted messages; cross-signing is
set up, and a reset, which Synapse guards with the ``m.oauth`` stage (unstable
``org.matrix.cross_signing_reset``), goes through once the user approved it on the
account page, and not before."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from tui_client.crypto.cross_signing import CrossSigningStatus, OwnKeysNotQueried
from tui_client.devtools.oauth_server import AuthServer
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.oauth import OAuthLogin
from tui_client.engine.uia import AuthCancelled, AuthFailed, AuthUnsupported

from .e2ee_support import encrypted_room, join, shown, until
from .verification_support import cross_signing_complete

Homeserver = tuple[SynapseServer, AuthServer]


async def oauth_client(homeserver: Homeserver, folder: Path, localpart: str) -> MatrixClient:
    """A started client logged in with the device code grant, approved as ``localpart``."""
    synapse, auth = homeserver
    auth.interval = 0.2
    flow = await OAuthLogin.prepare("", synapse.base_url)
    try:
        grant = await flow.start_device_login()
        await asyncio.to_thread(auth.approve, grant.user_code, localpart)
        tokens = await flow.wait_device_login()
        client = await MatrixClient.login_oauth(flow, tokens, base_dir=folder, long_poll_ms=500)
    finally:
        await flow.aclose()
    await client.open()
    client.start()
    await client.wait_synced()
    return client


async def test_encrypted_messages_after_oauth_login(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    alice = await oauth_client(oauth_homeserver, tmp_path / "alice", f"alice-{tag}")
    bob = await oauth_client(oauth_homeserver, tmp_path / "bob", f"bob-{tag}")
    try:
        room = await encrypted_room(alice, "oauth secret", [bob.user_id])
        await join(bob, room)
        alice_view, bob_view = await alice.open_room(room), await bob.open_room(room)
        await alice.send_message(room, "hello bob, over OAuth")
        await shown(bob_view, "hello bob, over OAuth")
        await bob.send_message(room, "hello alice, likewise")
        await shown(alice_view, "hello alice, likewise")
        item = next(i for i in bob_view.model.items if i.body == "hello bob, over OAuth")
        assert item.encrypted
    finally:
        await alice.close()
        await bob.close()


async def test_cross_signing_reset_is_approved_on_the_account_page(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    _, auth = oauth_homeserver
    localpart = f"carol-{secrets.token_hex(3)}"
    carol = await oauth_client(oauth_homeserver, tmp_path / "carol", localpart)
    try:
        # The first identity needs no approval: the client sets it up on its own.
        await cross_signing_complete(carol)
        master = await _master_key(carol)

        # No way to show the page: said, with the address.
        with pytest.raises(AuthUnsupported) as raised:
            await _reset(carol)
        assert "action=org.matrix.cross_signing_reset" in str(raised.value)

        # The user gives up.
        async def refuse(url: str, purpose: str) -> bool:
            return False

        carol.approve_in_browser = refuse
        with pytest.raises(AuthCancelled):
            await _reset(carol)

        # The user says it is done but never approved it: the server still refuses.
        asked: list[str] = []

        async def without_approving(url: str, purpose: str) -> bool:
            asked.append(url)
            return True

        carol.approve_in_browser = without_approving
        with pytest.raises(AuthFailed):
            await _reset(carol)
        assert asked and asked[0].startswith(auth.url + "account/")
        assert await _master_key(carol) == master

        # Approved on the account page: the reset goes through.
        async def approve(url: str, purpose: str) -> bool:
            assert "cross_signing_reset" in url and purpose.startswith("Replace")
            await asyncio.to_thread(auth.approve_cross_signing_reset, localpart)
            return True

        carol.approve_in_browser = approve
        status = await _reset(carol)
        assert status.published and status.has_master
        assert await _master_key(carol) != master
    finally:
        await carol.close()


async def _reset(client: MatrixClient) -> CrossSigningStatus:
    """Replace the identity, once our own keys are known (a sync may have just outdated them)."""
    for _ in range(200):
        try:
            return await client.cross_signing.bootstrap(reset=True)
        except OwnKeysNotQueried:
            await asyncio.sleep(0.05)
    raise AssertionError("our own keys were never queried")


async def _master_key(client: MatrixClient) -> str:
    from tui_client.protocol.requests import Request

    answer = await client.connection.send(
        Request("POST", "/_matrix/client/v3/keys/query", body={"device_keys": {client.user_id: []}})
    )
    keys = answer["master_keys"][client.user_id]["keys"]
    return str(next(iter(keys.values())))


async def test_a_session_ended_elsewhere_ends_here(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    _, auth = oauth_homeserver
    client = await oauth_client(oauth_homeserver, tmp_path / "dave", f"dave-{secrets.token_hex(3)}")
    try:
        # The session ends once the client's start-up encryption requests are answered. A
        # key upload Synapse authenticated before the device was deleted and handled after
        # registers the device again (handlers/e2e_keys.py: check_device_registered), and
        # Synapse's token introspection cache (2 minutes) then keeps the revoked token
        # working: until it expires, the client has nothing to notice (1 run in ~20 under
        # load failed so, the client syncing happily for the test's 20 s).
        await cross_signing_complete(client)
        await until(lambda: not client.encryption._in_flight, "the key uploads answered")
        await asyncio.to_thread(auth.end_session, client.device_id)
        for _ in range(400):
            if client.ended is not None:
                break
            await asyncio.sleep(0.05)
        assert client.ended is not None and not client.ended.soft
        assert client.secrets.get("refresh_token") is None
    finally:
        await client.close()
