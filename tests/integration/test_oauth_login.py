"""OAuth 2.0 login against a real Synapse delegating authentication to our test
authorization server: device code login, refresh before expiry and on a refused token,
denial, expiry, slow_down, browser login with PKCE, revocation at logout."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from tui_client.devtools.oauth_server import AuthServer
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.oauth import OAuthLogin, OAuthLoginError
from tui_client.protocol import requests as api

Homeserver = tuple[SynapseServer, AuthServer]


def _localpart() -> str:
    return f"oauth-{secrets.token_hex(4)}"


async def _approve(auth: AuthServer, user_code: str, localpart: str, *, deny: bool = False) -> None:
    """The user, on their phone: approves (or refuses) the code the client shows."""
    if deny:
        await asyncio.to_thread(auth.deny, user_code)
    else:
        await asyncio.to_thread(auth.approve, user_code, localpart)


async def _device_login(
    homeserver: Homeserver, tmp_path: Path, localpart: str
) -> tuple[MatrixClient, OAuthLogin]:
    synapse, auth = homeserver
    flow = await OAuthLogin.prepare("", synapse.base_url)
    flow.connection  # noqa: B018 - created with the flow
    grant = await flow.start_device_login()
    assert grant.user_code in auth.pending_user_codes()
    approver = asyncio.create_task(_approve(auth, grant.user_code, localpart))
    tokens = await flow.wait_device_login()
    await approver
    client = await MatrixClient.login_oauth(flow, tokens, profile="p", base_dir=tmp_path)
    await flow.aclose()
    return client, flow


@pytest.fixture(autouse=True)
def _quick_polls(oauth_homeserver: Homeserver) -> None:
    _, auth = oauth_homeserver
    auth.interval = 0.2
    auth.access_token_lifetime = 300.0
    auth.device_code_lifetime = 600.0
    auth.slow_down_polls = 0


async def test_options_offer_oauth_not_password(oauth_homeserver: Homeserver) -> None:
    synapse, auth = oauth_homeserver
    flow = await OAuthLogin.prepare("", synapse.base_url)
    await flow.aclose()
    assert not flow.options.password
    assert flow.options.device_code
    assert flow.options.oauth is not None and flow.options.oauth.issuer == auth.url
    assert flow.options.why_none() == ""


async def test_device_code_login_refresh_and_logout(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    synapse, auth = oauth_homeserver
    localpart = _localpart()
    client, flow = await _device_login(oauth_homeserver, tmp_path, localpart)
    try:
        assert client.user_id == f"@{localpart}:localhost"
        assert client.device_id == flow.device_id
        registered = auth.registered_clients()[-1]
        assert registered["application_type"] == "native"
        assert registered["client_name"] == "tui_client"
        assert "urn:ietf:params:oauth:grant-type:device_code" in registered["grant_types"]
        [session] = [s for s in auth.sessions() if s.localpart == localpart]
        assert f"urn:matrix:client:device:{flow.device_id}" in session.scope.split()
        assert "urn:matrix:org.matrix.msc2967.client:api:*" in session.scope.split()
        # The refresh token is kept like the access token.
        assert client.secrets.get("refresh_token") == session.refresh_token
        await client.open()
        assert (await client.connection.send(api.whoami()))["user_id"] == client.user_id
        await client.close()
        client = MatrixClient.restore(profile="p", base_dir=tmp_path)
        assert client is not None and client.oauth is not None
        await client.open()
        assert (await client.connection.send(api.whoami()))["device_id"] == flow.device_id
        await client.logout()
        [session] = [s for s in auth.sessions() if s.localpart == localpart]
        assert session.revoked
        assert ("POST", "/oauth2/revoke") in auth.requests_seen()
        # The device is gone from the homeserver, the tokens no longer work.
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"{synapse.base_url}/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {session.access_token}"},
            )
        assert answer.status_code == 401
        assert MatrixClient.restore(profile="p", base_dir=tmp_path) is None
    finally:
        if client.ended is None:
            await client.close()


async def test_refreshed_before_expiry(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    _, auth = oauth_homeserver
    auth.access_token_lifetime = 4.0
    localpart = _localpart()
    client, _flow = await _device_login(oauth_homeserver, tmp_path, localpart)
    try:
        await client.open()
        first = client.oauth.access_token if client.oauth else ""
        await asyncio.sleep(3.5)
        assert (await client.connection.send(api.whoami()))["user_id"] == client.user_id
        [session] = [s for s in auth.sessions() if s.localpart == localpart]
        assert session.refreshes == 1
        assert client.oauth is not None and client.oauth.access_token != first
        # No request was refused on the way: the token was renewed before it expired.
    finally:
        await client.close()


async def test_refreshed_when_refused(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    _, auth = oauth_homeserver
    auth.access_token_lifetime = 3.0
    localpart = _localpart()
    client, _flow = await _device_login(oauth_homeserver, tmp_path, localpart)
    try:
        assert client.oauth is not None
        client.oauth._clock = lambda: 0.0  # never thinks the token is about to expire
        await asyncio.sleep(3.2)
        # Synapse refuses the expired token (M_UNKNOWN_TOKEN); the client refreshes and retries.
        assert (await client.connection.send(api.whoami()))["user_id"] == client.user_id
        [session] = [s for s in auth.sessions() if s.localpart == localpart]
        assert session.refreshes == 1
        assert client.secrets.get("access_token") == session.access_token
        assert client.secrets.get("refresh_token") == session.refresh_token
    finally:
        await client.close()


@pytest.mark.parametrize("outcome", ["denied", "expired"])
async def test_device_login_refused_or_expired(oauth_homeserver: Homeserver, outcome: str) -> None:
    synapse, auth = oauth_homeserver
    flow = await OAuthLogin.prepare("", synapse.base_url)
    try:
        grant = await flow.start_device_login()
        if outcome == "denied":
            task = asyncio.create_task(_approve(auth, grant.user_code, "x", deny=True))
        else:
            auth.expire_device_codes()
            task = asyncio.create_task(asyncio.sleep(0))
        with pytest.raises(OAuthLoginError) as raised:
            await flow.wait_device_login()
        await task
    finally:
        await flow.aclose()
    assert raised.value.code == ("access_denied" if outcome == "denied" else "expired_token")


async def test_slow_down_lengthens_the_interval(oauth_homeserver: Homeserver) -> None:
    synapse, auth = oauth_homeserver
    flow = await OAuthLogin.prepare("", synapse.base_url)
    said: list[str] = []
    try:
        grant = await flow.start_device_login()
        assert flow.device_login is not None
        flow.device_login.interval = 0.01  # polls faster than told: the server says slow_down
        task = asyncio.create_task(flow.wait_device_login(said.append))
        for _ in range(600):  # the first poll is not early; the second one is
            if said or task.done():
                break
            await asyncio.sleep(0.02)
        assert said, task
        assert flow.device_login.interval >= 5
        task.cancel()
        assert grant.user_code in auth.pending_user_codes()
    finally:
        await flow.aclose()
    assert "slow down" in said[0]


async def test_browser_login_with_pkce(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    synapse, auth = oauth_homeserver
    localpart = _localpart()
    auth.browser_user = localpart
    flow = await OAuthLogin.prepare("", synapse.base_url)
    opened: list[str] = []

    async def browser(url: str) -> None:
        opened.append(url)
        async with httpx.AsyncClient(follow_redirects=True) as http:
            answer = await http.get(url)
        assert "close this tab" in answer.text

    try:
        tokens = await flow.browser_login(browser)
        client = await MatrixClient.login_oauth(flow, tokens, profile="b", base_dir=tmp_path)
    finally:
        await flow.aclose()
    try:
        assert "code_challenge_method=S256" in opened[0]
        assert client.user_id == f"@{localpart}:localhost"
    finally:
        await client.close()
    auth.browser_user = None
    flow = await OAuthLogin.prepare("", synapse.base_url)
    try:
        with pytest.raises(OAuthLoginError) as raised:
            await flow.browser_login(browser)
    finally:
        await flow.aclose()
    assert raised.value.code == "access_denied"
