"""Logging in through the homeserver's OAuth 2.0 server, and keeping the tokens fresh.

- :func:`login_options`: what the server offers (``GET /login`` flows and the auth
  metadata), and in words why a way is missing.
- :class:`DeviceCodeLogin`: the device authorization grant (RFC 8628): the user opens
  a URL (or scans its QR code) on any device and enters a code; we poll.
- :func:`browser_login`: the authorization code grant with PKCE, the browser coming
  back to a loopback HTTP listener (RFC 8252).
- :class:`OAuthTokens`: the :class:`~tui_client.net.http.TokenSource` of a logged-in
  connection: refreshed a minute before expiry and when the server says the token is
  unknown; kept like the access token (keyring or the 0600 file); revoked at logout.

Every failure a user can meet is an :class:`OAuthLoginError` with a sentence for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..net.discovery import Homeserver, discover_homeserver, validate_homeserver
from ..net.http import HomeserverConnection
from ..protocol import oauth
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.oauth import (
    AuthMetadata,
    DeviceAuthorization,
    MetadataError,
    OAuthError,
    TokenResponse,
)
from ..protocol.requests import Request
from .secrets import SecretStore

__all__ = [
    "OAUTH_FILE",
    "DeviceCodeLogin",
    "LoginOptions",
    "OAuthLogin",
    "OAuthLoginError",
    "OAuthTokens",
    "browser_login",
    "discover_auth",
    "login_options",
    "register_client",
]

log = logging.getLogger(__name__)

#: The non-secret half of an OAuth session (issuer, client ID, endpoints, expiry).
OAUTH_FILE = "oauth.json"
#: Refresh this long before the access token expires.
REFRESH_MARGIN = 60.0


class OAuthLoginError(Exception):
    """An OAuth login (or refresh) failed; the message is for the user."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


# -- what the server offers ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginOptions:
    """The ways the homeserver lets us log in."""

    password: bool
    oauth: AuthMetadata | None
    #: Other ``/login`` flow types (``m.login.sso``, ...), for the explanation.
    other_flows: tuple[str, ...] = ()
    #: Why OAuth is not usable, if the server seemed to offer it.
    oauth_problem: str = ""

    @property
    def device_code(self) -> bool:
        """Whether the device code login can be offered."""
        return self.oauth is not None and self.oauth.offers_device_code

    def why_none(self) -> str:
        """Why neither way works, for the login screen (empty when one does)."""
        if (
            self.password
            or self.device_code
            or (self.oauth is not None and self.oauth.offers_code_with_pkce)
        ):
            return ""
        if self.oauth_problem:
            return f"This server's sign-in service cannot be used: {self.oauth_problem}"
        if self.other_flows:
            offered = ", ".join(self.other_flows[:4])
            return f"This server offers neither password nor OAuth login (only {offered}), which this client cannot do."
        return "This server offers neither password nor OAuth login."


async def discover_auth(connection: HomeserverConnection) -> AuthMetadata | None:
    """The server's auth metadata (stable path, then MSC2965's), or None if it has none."""
    for unstable in (False, True):
        try:
            data = await connection.send(
                oauth.auth_metadata(unstable=unstable), wait_on_rate_limit=False
            )
        except MatrixError as error:
            if error.status in (404, 405) or error.errcode in ("M_UNRECOGNIZED", "M_NOT_FOUND"):
                continue
            raise
        return AuthMetadata.from_json(data)
    return None


async def login_options(connection: HomeserverConnection) -> LoginOptions:
    """Ask the server how we may log in (network errors propagate)."""
    flows: list[str] = []
    try:
        data = await connection.send(
            Request("GET", f"{api.CLIENT_V3}/login", authenticated=False), wait_on_rate_limit=False
        )
        for flow in data.get("flows", []) if isinstance(data, dict) else []:
            if isinstance(flow, dict) and isinstance(flow.get("type"), str):
                flows.append(flow["type"])
    except MatrixError as error:
        # A server that delegates everything to OAuth has no /login at all.
        if error.status not in (404, 405) and error.errcode != "M_UNRECOGNIZED":
            raise
    metadata: AuthMetadata | None = None
    problem = ""
    try:
        metadata = await discover_auth(connection)
    except MetadataError as error:
        problem = str(error)
    except MatrixError as error:
        problem = f"its auth metadata failed ({error.errcode}, HTTP {error.status})"
    except NetworkError as error:
        problem = f"its auth metadata could not be read ({error})"
    if metadata is not None and not (metadata.offers_device_code or metadata.offers_code_with_pkce):
        problem = "it offers neither the device code nor the browser (PKCE) login"
        metadata = None
    others = tuple(f for f in flows if f != "m.login.password")
    return LoginOptions("m.login.password" in flows, metadata, others, problem)


def _refusal(error: MatrixError, doing: str) -> OAuthLoginError:
    found = oauth.oauth_error(error.body)
    if found is not None:
        said = f": {found.description}" if found.description else f" ({found.error})"
        return OAuthLoginError(f"The sign-in service refused {doing}{said}", code=found.error)
    if error.status >= 500:
        return OAuthLoginError(
            f"The sign-in service failed {doing} (HTTP {error.status}). Try again later."
        )
    return OAuthLoginError(f"The sign-in service refused {doing} (HTTP {error.status}).")


async def register_client(
    connection: HomeserverConnection, metadata: AuthMetadata, redirect_uris: list[str]
) -> str:
    """Register this client (RFC 7591) and return its client ID."""
    try:
        data = await connection.send(
            oauth.register_client(metadata, redirect_uris), wait_on_rate_limit=False
        )
    except MatrixError as error:
        raise _refusal(error, "to register this client") from error
    except NetworkError as error:
        raise OAuthLoginError(f"Cannot reach the sign-in service: {error}") from error
    client_id = data.get("client_id") if isinstance(data, dict) else None
    if not isinstance(client_id, str) or not client_id:
        raise OAuthLoginError("The sign-in service registered this client without a client ID.")
    return client_id


# -- device code ---------------------------------------------------------------------

#: Called with a sentence for the status line while the device login waits.
StatusCallback = Callable[[str], None]


class DeviceCodeLogin:
    """One device authorization grant: :meth:`start` for the code, :meth:`wait` for the tokens."""

    def __init__(
        self,
        connection: HomeserverConnection,
        metadata: AuthMetadata,
        client_id: str,
        device_id: str,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.connection = connection
        self.metadata = metadata
        self.client_id = client_id
        self.device_id = device_id
        self.authorization: DeviceAuthorization | None = None
        self.interval = 5.0
        self._sleep = sleep

    async def start(self) -> DeviceAuthorization:
        """Ask for a user code and the verification URI."""
        scope = oauth.scope_for(self.device_id)
        try:
            data = await self.connection.send(
                oauth.device_authorization(self.metadata, self.client_id, scope),
                wait_on_rate_limit=False,
            )
            self.authorization = DeviceAuthorization.from_json(data)
        except MatrixError as error:
            raise _refusal(error, "to start the device login") from error
        except NetworkError as error:
            raise OAuthLoginError(f"Cannot reach the sign-in service: {error}") from error
        except MetadataError as error:
            raise OAuthLoginError(f"The sign-in service's answer is unusable: {error}.") from error
        self.interval = self.authorization.interval
        return self.authorization

    async def wait(self, status: StatusCallback | None = None) -> TokenResponse:
        """Poll the token endpoint at the interval until the user approved, refused, or the code expired."""
        grant = self.authorization
        if grant is None:
            raise RuntimeError("start() first")
        deadline = time.monotonic() + grant.expires_in
        failures = 0
        while True:
            await self._sleep(self.interval)
            if time.monotonic() >= deadline:
                raise OAuthLoginError(
                    "The code expired before it was approved. Start again for a new code.",
                    code="expired_token",
                )
            try:
                data = await self.connection.send(
                    oauth.token_by_device_code(self.metadata, self.client_id, grant.device_code),
                    wait_on_rate_limit=False,
                )
            except NetworkError as error:
                failures += 1
                if failures >= 5:
                    raise OAuthLoginError(f"Lost the sign-in service: {error}") from error
                if status:
                    status(f"Cannot reach the sign-in service ({error}); trying again…")
                continue
            except MatrixError as error:
                found = oauth.oauth_error(error.body)
                code = found.error if found else ""
                if code == "authorization_pending":
                    failures = 0
                    continue
                if code == "slow_down":
                    # RFC 8628 3.5: add 5 seconds to the interval, for this and every later poll.
                    self.interval += 5
                    if status:
                        status(
                            f"The server asked us to slow down: checking every {self.interval:.0f} s."
                        )
                    continue
                if code == "expired_token":
                    raise OAuthLoginError(
                        "The code expired before it was approved. Start again for a new code.",
                        code=code,
                    ) from error
                if code == "access_denied":
                    raise OAuthLoginError(
                        "The login was refused on the other device.", code=code
                    ) from error
                if error.status >= 500 and failures < 5:
                    failures += 1
                    continue
                raise _refusal(error, "the login") from error
            try:
                return TokenResponse.from_json(data)
            except MetadataError as error:
                raise OAuthLoginError(
                    f"The sign-in service's answer is unusable: {error}."
                ) from error


# -- authorization code with PKCE and a loopback redirect ------------------------------


class LoopbackRedirect:
    """A one-shot HTTP listener on 127.0.0.1 that catches the browser's redirect."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._answer: asyncio.Future[dict[str, str]] | None = None
        self.port = 0

    async def start(self) -> str:
        """Listen; return the redirect URI (``http://127.0.0.1:<port>/callback``)."""
        self._answer = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/callback"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)).strip():
                pass
            parts = line.decode("latin-1").split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            params = {k: v[0] for k, v in parse_qs(target.query).items()}
            done = target.path == "/callback" and ("code" in params or "error" in params)
            page = (
                "You can close this tab and go back to the terminal." if done else "Not found."
            ).encode()
            status = "200 OK" if done else "404 Not Found"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
            if done and self._answer is not None and not self._answer.done():
                self._answer.set_result(params)
        except (TimeoutError, ConnectionError, UnicodeError):
            pass
        finally:
            writer.close()

    async def wait(self) -> dict[str, str]:
        """The redirect's query parameters."""
        assert self._answer is not None
        return await self._answer

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()


async def browser_login(
    connection: HomeserverConnection,
    metadata: AuthMetadata,
    device_id: str,
    open_url: Callable[[str], Awaitable[None] | None],
    *,
    user_hint: str | None = None,
    timeout: float = 600.0,
) -> tuple[str, TokenResponse]:
    """The authorization code grant: open the browser, catch the redirect, exchange the code.

    Returns the client ID and the tokens.
    """
    if not metadata.offers_code_with_pkce:
        raise OAuthLoginError(
            "This server does not offer browser login (authorization code with PKCE)."
        )
    listener = LoopbackRedirect()
    redirect_uri = await listener.start()
    try:
        # Registered without the port: the spec has servers accept any port on loopback.
        client_id = await register_client(connection, metadata, ["http://127.0.0.1/callback"])
        verifier, state = oauth.new_verifier(), oauth.new_state()
        url = oauth.authorization_url(
            metadata,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=oauth.scope_for(device_id),
            state=state,
            verifier=verifier,
            login_hint=user_hint,
        )
        opened = open_url(url)
        if opened is not None:
            await opened
        try:
            params = await asyncio.wait_for(listener.wait(), timeout)
        except TimeoutError as error:
            raise OAuthLoginError("The browser did not come back in time. Try again.") from error
        try:
            code = oauth.parse_redirect_query(params, state)
        except OAuthError as error:
            if error.error == "access_denied":
                raise OAuthLoginError(
                    "The login was refused in the browser.", code=error.error
                ) from error
            raise OAuthLoginError(f"The browser login failed: {error}", code=error.error) from error
        try:
            data = await connection.send(
                oauth.token_by_code(metadata, client_id, code, redirect_uri, verifier),
                wait_on_rate_limit=False,
            )
            return client_id, TokenResponse.from_json(data)
        except MatrixError as error:
            raise _refusal(error, "the login") from error
        except NetworkError as error:
            raise OAuthLoginError(f"Cannot reach the sign-in service: {error}") from error
        except MetadataError as error:
            raise OAuthLoginError(f"The sign-in service's answer is unusable: {error}.") from error
    finally:
        listener.close()


# -- tokens of a logged-in session ------------------------------------------------------


class OAuthTokens:
    """An OAuth session's tokens: refreshed before expiry and on ``M_UNKNOWN_TOKEN``,
    saved as they change (secrets in the :class:`SecretStore`, the rest in ``oauth.json``)."""

    def __init__(
        self,
        connection: HomeserverConnection,
        secrets: SecretStore,
        folder: Path,
        *,
        metadata: dict[str, Any],
        client_id: str,
        access_token: str,
        refresh_token: str | None,
        expires_at: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.secrets = secrets
        self.folder = folder
        self.metadata = metadata
        self.client_id = client_id
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_at = expires_at
        self.refreshes = 0
        #: The last token's lifetime, which bounds how early it is refreshed.
        self.lifetime: float | None = None
        #: Called when the session cannot be refreshed any more (the refresh token was refused).
        self.on_lost: Callable[[str], None] | None = None
        self._clock = clock
        self._lock = asyncio.Lock()

    @property
    def auth_metadata(self) -> AuthMetadata:
        """The issuer's metadata as saved at login."""
        return AuthMetadata.from_json(self.metadata)

    # -- saving ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the tokens (secrets) and the rest (``oauth.json``, mode 0600)."""
        self.secrets.set("access_token", self.access_token)
        if self.refresh_token:
            self.secrets.set("refresh_token", self.refresh_token)
        else:
            self.secrets.delete("refresh_token")
        data = {
            "client_id": self.client_id,
            "metadata": self.metadata,
            "expires_at": self.expires_at,
        }
        path = self.folder / OAUTH_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)

    @classmethod
    def load(
        cls, connection: HomeserverConnection, secrets: SecretStore, folder: Path
    ) -> OAuthTokens | None:
        """The saved OAuth session of a profile, or None if it logged in with a password."""
        try:
            data = json.loads((folder / OAUTH_FILE).read_text())
        except (OSError, ValueError):
            return None
        token = secrets.get("access_token")
        if not isinstance(data, dict) or not isinstance(data.get("client_id"), str) or not token:
            return None
        metadata = data.get("metadata")
        expires = data.get("expires_at")
        try:
            AuthMetadata.from_json(metadata)
        except MetadataError:
            return None
        assert isinstance(metadata, dict)
        return cls(
            connection,
            secrets,
            folder,
            metadata=metadata,
            client_id=data["client_id"],
            access_token=token,
            refresh_token=secrets.get("refresh_token"),
            expires_at=float(expires) if isinstance(expires, int | float) else None,
        )

    def take(self, tokens: TokenResponse) -> None:
        """Use and save a token answer (a refresh token not sent again stays)."""
        self.access_token = tokens.access_token
        if tokens.refresh_token:
            self.refresh_token = tokens.refresh_token
        self.expires_at = self._clock() + tokens.expires_in if tokens.expires_in else None
        self.lifetime = tokens.expires_in
        self.connection.access_token = self.access_token
        self.save()

    # -- TokenSource -------------------------------------------------------------------

    async def current(self) -> str | None:
        """The access token, refreshed first when it expires within a minute."""
        margin = min(REFRESH_MARGIN, (self.lifetime or 4 * REFRESH_MARGIN) / 4)
        if (
            self.expires_at is not None
            and self.refresh_token
            and self._clock() >= self.expires_at - margin
        ):
            await self._refresh(self.access_token)
        return self.access_token

    async def renew(self, rejected: str) -> bool:
        """The server refused ``rejected``: refresh (once for all requests that saw it)."""
        if not self.refresh_token:
            return False
        return await self._refresh(rejected)

    async def _refresh(self, seen: str) -> bool:
        async with self._lock:
            if self.access_token != seen:
                return True  # another request refreshed it meanwhile
            if self.refresh_token is None:
                return False  # another request found the session ended meanwhile
            endpoint = self.auth_metadata.token_endpoint
            try:
                data = await self.connection.send(
                    oauth.token_by_refresh(endpoint, self.client_id, self.refresh_token),
                    wait_on_rate_limit=False,
                )
                self.take(TokenResponse.from_json(data))
            except MatrixError as error:
                found = oauth.oauth_error(error.body)
                if found is not None and found.error in (
                    "invalid_grant",
                    "invalid_client",
                    "unauthorized_client",
                ):
                    log.warning("the refresh token was refused: %s", found.error)
                    self.refresh_token = None
                    self.secrets.delete("refresh_token")
                    if self.on_lost is not None:
                        self.on_lost("The sign-in service ended this session. Log in again.")
                    return False
                log.warning("token refresh failed: HTTP %s", error.status)
                return False
            except (NetworkError, MetadataError) as error:
                log.warning("token refresh failed: %s", error)
                return False
            self.refreshes += 1
            return True

    # -- logout --------------------------------------------------------------------------

    async def revoke_all(self) -> None:
        """Revoke the refresh token and the access token (RFC 7009); failures are logged."""
        endpoint = self.metadata.get("revocation_endpoint")
        if not isinstance(endpoint, str):
            log.warning(
                "the sign-in service has no revocation endpoint; the tokens expire on their own"
            )
            return
        pairs = [(self.refresh_token, "refresh_token"), (self.access_token, "access_token")]
        for token, hint in pairs:
            if not token:
                continue
            try:
                await self.connection.send(
                    oauth.revoke(endpoint, self.client_id, token, hint), wait_on_rate_limit=False
                )
            except (MatrixError, NetworkError) as error:
                log.warning("revoking the %s failed: %s", hint, error)
        self.secrets.delete("refresh_token")


def remove_saved(folder: Path) -> None:
    """Forget a profile's OAuth file (the secrets go with the others)."""
    try:
        (folder / OAUTH_FILE).unlink()
    except FileNotFoundError:
        pass


# -- the whole login, for the UI ---------------------------------------------------------


class OAuthLogin:
    """One login attempt against one homeserver: what it offers, then the device code
    (or browser) login; :meth:`MatrixClient.login_oauth` turns the tokens into a session.

    ``transport`` replaces the network (tests). Close it with :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        options: LoginOptions,
        *,
        transport: Any = None,
        device_id: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.options = options
        self.transport = transport
        self.connection = HomeserverConnection(base_url, transport=transport)
        self.device_id = device_id or oauth.new_device_id()
        self.client_id: str | None = None
        self.device_login: DeviceCodeLogin | None = None

    @classmethod
    async def prepare(
        cls, user_id: str, homeserver: str | None, *, transport: Any = None
    ) -> OAuthLogin:
        """Find the homeserver (from ``homeserver`` or the user ID) and ask how it lets us log in.

        Raises :class:`~tui_client.net.discovery.DiscoveryError`, ``NetworkError`` or ``MatrixError``.
        """
        server: Homeserver = (
            await validate_homeserver(homeserver, transport=transport)
            if homeserver
            else await discover_homeserver(user_id, transport=transport)
        )
        async with HomeserverConnection(
            server.base_url, transport=transport, timeout=15.0
        ) as connection:
            options = await login_options(connection)
        return cls(server.base_url, options, transport=transport)

    @property
    def metadata(self) -> AuthMetadata:
        """The issuer's metadata (raises :class:`OAuthLoginError` when OAuth is not offered)."""
        if self.options.oauth is None:
            raise OAuthLoginError(
                (
                    self.options.oauth_problem
                    and f"This server's sign-in service cannot be used: {self.options.oauth_problem}"
                )
                or "This server does not offer OAuth login; log in with your password."
            )
        return self.options.oauth

    async def start_device_login(self) -> DeviceAuthorization:
        """Register (once) and ask for a user code."""
        metadata = self.metadata
        if not metadata.offers_device_code:
            raise OAuthLoginError(
                "This server does not offer login with a code on another device; use the browser login."
            )
        if self.client_id is None:
            self.client_id = await register_client(
                self.connection, metadata, ["http://127.0.0.1/callback"]
            )
        self.device_login = DeviceCodeLogin(
            self.connection, metadata, self.client_id, self.device_id
        )
        return await self.device_login.start()

    async def wait_device_login(self, status: StatusCallback | None = None) -> TokenResponse:
        """Poll until the code is approved (or refused, or expired)."""
        if self.device_login is None:
            raise RuntimeError("start_device_login() first")
        return await self.device_login.wait(status)

    async def browser_login(
        self, open_url: Callable[[str], Awaitable[None] | None], user_hint: str | None = None
    ) -> TokenResponse:
        """The authorization code grant through a browser on this machine."""
        self.client_id, tokens = await browser_login(
            self.connection, self.metadata, self.device_id, open_url, user_hint=user_hint
        )
        return tokens

    async def aclose(self) -> None:
        """Close the connection."""
        await self.connection.aclose()
