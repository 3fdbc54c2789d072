"""A small OAuth 2.0 authorization server for tests and the demo, speaking to Synapse
the way the Matrix Authentication Service does.

Synapse's ``matrix_authentication_service`` settings point at it (:meth:`synapse_config`):
Synapse reads its metadata (``/.well-known/openid-configuration``) and introspects
every access token at ``/oauth2/introspect`` with the shared secret; this server
creates users and devices in Synapse through ``/_synapse/mas/...`` with the same
secret, and deletes the device when a session is revoked.

Clients see what a real server offers: dynamic registration (RFC 7591, checked
against the spec's rules for native clients), the device authorization grant
(RFC 8628, with ``authorization_pending``, ``slow_down``, ``expired_token``,
``access_denied``), the authorization code grant with PKCE (S256) and a loopback
redirect, refresh tokens (rotated), revocation (RFC 7009) and an account page.

The user's part (approving in a browser) is played by the test: :meth:`approve`,
:meth:`deny`, :meth:`approve_cross_signing_reset`, or ``GET /authorize`` with the
user preset by :attr:`browser_user`. Standard library only; runs in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["AuthServer", "OAuthSession"]

API_SCOPES = ("urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*")
DEVICE_PREFIXES = ("urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class OAuthSession:
    """One login: a user's device, its current tokens, and whether it was ended."""

    localpart: str
    device_id: str
    scope: str
    client_id: str
    access_token: str = ""
    refresh_token: str = ""
    expires_at: float = 0.0
    revoked: bool = False
    refreshes: int = 0


@dataclass
class _DeviceGrant:
    client_id: str
    scope: str
    device_code: str
    user_code: str
    expires_at: float
    interval: float
    last_poll: float = 0.0
    approved_for: str | None = None
    denied: bool = False
    used: bool = False
    slow_downs: int = 0


@dataclass
class _CodeGrant:
    client_id: str
    scope: str
    redirect_uri: str
    challenge: str
    localpart: str
    used: bool = False


@dataclass
class _State:
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    device_grants: dict[str, _DeviceGrant] = field(default_factory=dict)
    codes: dict[str, _CodeGrant] = field(default_factory=dict)
    sessions: list[OAuthSession] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)


class AuthServer:
    """The authorization server on ``127.0.0.1``; use as a context manager or start()/stop().

    ``homeserver`` (Synapse's base URL) may be set after start, since Synapse's config
    needs this server's URL first.
    """

    def __init__(
        self,
        *,
        homeserver: str = "",
        secret: str | None = None,
        access_token_lifetime: float = 300.0,
        device_code_lifetime: float = 600.0,
        interval: float = 5.0,
    ) -> None:
        self.homeserver = homeserver.rstrip("/")
        self.secret = secret or secrets.token_urlsafe(32)
        self.access_token_lifetime = access_token_lifetime
        self.device_code_lifetime = device_code_lifetime
        self.interval = interval
        #: The user a ``GET /authorize`` (the browser) logs in as; None answers access_denied.
        self.browser_user: str | None = None
        #: Answer this many of the first polls of each new device code with ``slow_down``.
        self.slow_down_polls = 0
        self._state = _State()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> AuthServer:
        """Listen on a free loopback port in a daemon thread."""
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oauth-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The issuer, ending in ``/``."""
        if self._server is None:
            raise RuntimeError("start the server first")
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def synapse_config(self) -> dict[str, Any]:
        """Synapse settings delegating authentication here (merge into its config)."""
        return {
            "matrix_authentication_service": {
                "enabled": True,
                "endpoint": self.url,
                "secret": self.secret,
            },
            "password_config": {"enabled": False},
            "enable_registration": False,
        }

    # -- the user's part ------------------------------------------------------------

    def pending_user_codes(self) -> list[str]:
        """User codes of device grants not yet approved, denied or used."""
        with self._lock:
            return [
                g.user_code
                for g in self._state.device_grants.values()
                if not (g.approved_for or g.denied or g.used)
            ]

    def approve(self, user_code: str, localpart: str) -> None:
        """The user signs in as ``localpart`` and approves the device with ``user_code``."""
        self._provision_user(localpart)
        with self._lock:
            self._grant_by_user_code(user_code).approved_for = localpart

    def deny(self, user_code: str) -> None:
        """The user refuses the device with ``user_code``."""
        with self._lock:
            self._grant_by_user_code(user_code).denied = True

    def expire_device_codes(self) -> None:
        """Make every outstanding device code expire now."""
        with self._lock:
            for grant in self._state.device_grants.values():
                grant.expires_at = 0.0

    def approve_cross_signing_reset(self, localpart: str) -> None:
        """The user approves a cross-signing reset on the account page."""
        self._synapse("allow_cross_signing_reset", {"localpart": localpart})

    def sessions(self) -> list[OAuthSession]:
        """Every session issued so far (copies)."""
        with self._lock:
            return [OAuthSession(**vars(s)) for s in self._state.sessions]

    def requests_seen(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, in order."""
        with self._lock:
            return list(self._state.requests)

    def registered_clients(self) -> list[dict[str, Any]]:
        """The client metadata of every registration."""
        with self._lock:
            return [dict(c) for c in self._state.clients.values()]

    def expire_access_tokens(self) -> None:
        """Every access token stops working now (the refresh tokens still work)."""
        with self._lock:
            for session in self._state.sessions:
                session.expires_at = 0.0

    def end_session(self, device_id: str) -> None:
        """The user signs the device out on the account page: its tokens stop working
        (the refresh token too) and the device is deleted from the homeserver."""
        with self._lock:
            ended = [s for s in self._state.sessions if s.device_id == device_id and not s.revoked]
            for session in ended:
                session.revoked = True
        for session in ended:
            self._synapse(
                "delete_device", {"localpart": session.localpart, "device_id": session.device_id}
            )

    def _grant_by_user_code(self, user_code: str) -> _DeviceGrant:
        for grant in self._state.device_grants.values():
            if grant.user_code == user_code:
                return grant
        raise KeyError(user_code)

    # -- Synapse's side ---------------------------------------------------------------

    def _synapse(self, call: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.homeserver}/_synapse/mas/{call}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def _provision_user(self, localpart: str) -> None:
        self._synapse(
            "provision_user", {"localpart": localpart, "set_displayname": localpart.capitalize()}
        )

    # -- request handling (called by the handler threads) ---------------------------

    def metadata(self) -> dict[str, Any]:
        """The issuer's metadata (RFC 8414 with the spec's account fields)."""
        base = self.url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}authorize",
            "token_endpoint": f"{base}oauth2/token",
            "registration_endpoint": f"{base}oauth2/registration",
            "revocation_endpoint": f"{base}oauth2/revoke",
            "introspection_endpoint": f"{base}oauth2/introspect",
            "device_authorization_endpoint": f"{base}oauth2/device",
            "account_management_uri": f"{base}account/",
            "account_management_actions_supported": [
                "org.matrix.profile",
                "org.matrix.devices_list",
                "org.matrix.device_view",
                "org.matrix.device_delete",
                "org.matrix.cross_signing_reset",
            ],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "prompt_values_supported": ["create"],
        }

    def register(self, body: Any) -> tuple[int, dict[str, Any]]:
        """RFC 7591 registration, with the spec's checks for native clients."""
        if not isinstance(body, dict):
            return 400, {"error": "invalid_client_metadata", "error_description": "not an object"}
        client_uri = body.get("client_uri")
        if not isinstance(client_uri, str) or not client_uri.startswith("https://"):
            return 400, {
                "error": "invalid_client_metadata",
                "error_description": "client_uri must be https",
            }
        if body.get("application_type") != "native":
            return 400, {
                "error": "invalid_client_metadata",
                "error_description": "only native clients",
            }
        for uri in body.get("redirect_uris") or []:
            parts = urlsplit(uri)
            if (
                parts.scheme != "http"
                or parts.hostname not in ("127.0.0.1", "localhost", "::1")
                or parts.port
            ):
                return 400, {
                    "error": "invalid_redirect_uri",
                    "error_description": f"bad redirect URI {uri}",
                }
        client_id = "client_" + secrets.token_hex(8)
        with self._lock:
            self._state.clients[client_id] = dict(body)
        return 201, {"client_id": client_id, **body}

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """RFC 8628 3.1/3.2."""
        with self._lock:
            if form.get("client_id") not in self._state.clients:
                return 401, {"error": "invalid_client"}
            scope = form.get("scope", "")
            if _device_of(scope) is None or not any(s in scope.split() for s in API_SCOPES):
                return 400, {"error": "invalid_scope"}
            device_code = secrets.token_urlsafe(24)
            letters = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
            user_code = f"{letters[:4]}-{letters[4:]}"
            self._state.device_grants[device_code] = _DeviceGrant(
                form["client_id"],
                scope,
                device_code,
                user_code,
                time.monotonic() + self.device_code_lifetime,
                self.interval,
                slow_downs=self.slow_down_polls,
            )
        link = f"{self.url}link"
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": link,
            "verification_uri_complete": f"{link}?code={user_code}",
            "expires_in": int(self.device_code_lifetime),
            "interval": self.interval,
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: device code, authorization code and refresh token grants."""
        grant_type = form.get("grant_type")
        if grant_type == DEVICE_GRANT:
            return self._device_token(form)
        if grant_type == "authorization_code":
            return self._code_token(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return 400, {"error": "unsupported_grant_type"}

    def _device_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self._state.device_grants.get(form.get("device_code", ""))
            if grant is None or grant.client_id != form.get("client_id") or grant.used:
                return 400, {"error": "invalid_grant"}
            now = time.monotonic()
            if now >= grant.expires_at:
                return 400, {
                    "error": "expired_token",
                    "error_description": "The device code expired",
                }
            if grant.denied:
                grant.used = True
                return 400, {
                    "error": "access_denied",
                    "error_description": "The user refused the login",
                }
            too_soon = grant.last_poll and now - grant.last_poll < grant.interval * 0.9
            grant.last_poll = now
            if too_soon or grant.slow_downs > 0:
                grant.slow_downs = max(0, grant.slow_downs - 1)
                grant.interval += 5
                return 400, {"error": "slow_down"}
            if grant.approved_for is None:
                return 400, {"error": "authorization_pending"}
            grant.used = True
            localpart, scope, client_id = grant.approved_for, grant.scope, grant.client_id
        return self._issue(localpart, scope, client_id)

    def _code_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self._state.codes.get(form.get("code", ""))
            if grant is None or grant.used or grant.client_id != form.get("client_id"):
                return 400, {"error": "invalid_grant"}
            if grant.redirect_uri != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
            verifier = form.get("code_verifier", "")
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if digest != grant.challenge:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "PKCE verification failed",
                }
            grant.used = True
            localpart, scope, client_id = grant.localpart, grant.scope, grant.client_id
        return self._issue(localpart, scope, client_id)

    def _issue(self, localpart: str, scope: str, client_id: str) -> tuple[int, dict[str, Any]]:
        device_id = _device_of(scope) or ""
        self._synapse(
            "upsert_device",
            {"localpart": localpart, "device_id": device_id, "display_name": "tui_client"},
        )
        session = OAuthSession(localpart, device_id, scope, client_id)
        with self._lock:
            self._state.sessions.append(session)
            return 200, self._rotate(session)

    def _rotate(self, session: OAuthSession) -> dict[str, Any]:
        session.access_token = "mat_" + secrets.token_urlsafe(24)
        session.refresh_token = "mar_" + secrets.token_urlsafe(24)
        session.expires_at = time.time() + self.access_token_lifetime
        return {
            "access_token": session.access_token,
            "refresh_token": session.refresh_token,
            "token_type": "Bearer",
            "expires_in": int(self.access_token_lifetime),
            "scope": session.scope,
        }

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            token = form.get("refresh_token")
            for session in self._state.sessions:
                if session.refresh_token == token and not session.revoked:
                    if session.client_id != form.get("client_id"):
                        return 400, {"error": "invalid_client"}
                    session.refreshes += 1
                    return 200, self._rotate(session)
        return 400, {
            "error": "invalid_grant",
            "error_description": "unknown or revoked refresh token",
        }

    def introspect(self, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Token introspection, for Synapse only (the shared secret)."""
        if authorization != f"Bearer {self.secret}":
            return 401, {"error": "invalid_client"}
        token = form.get("token")
        with self._lock:
            for session in self._state.sessions:
                if session.access_token == token and not session.revoked:
                    left = session.expires_at - time.time()
                    if left <= 0:
                        break
                    return 200, {
                        "active": True,
                        "scope": session.scope,
                        "username": session.localpart,
                        "sub": session.localpart,
                        "client_id": session.client_id,
                        "expires_in": max(1, int(left)),
                    }
        return 200, {"active": False}

    def revoke(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """RFC 7009: revoking either token ends the session and deletes its device."""
        token = form.get("token")
        ended: OAuthSession | None = None
        with self._lock:
            for session in self._state.sessions:
                if token in (session.access_token, session.refresh_token) and not session.revoked:
                    if session.client_id != form.get("client_id"):
                        return 400, {"error": "invalid_client"}
                    session.revoked = True
                    ended = session
        if ended is not None:
            self._synapse(
                "delete_device", {"localpart": ended.localpart, "device_id": ended.device_id}
            )
        return 200, {}

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """The browser's visit: logs in as :attr:`browser_user` and redirects back (a Location)."""
        redirect_uri = query.get("redirect_uri", "")
        with self._lock:
            client = self._state.clients.get(query.get("client_id", ""))
            if client is None:
                return 400, "unknown client"
            allowed = client.get("redirect_uris") or []
            parts = urlsplit(redirect_uri)
            # The registered loopback URI without a port matches any port (RFC 8252 7.3).
            unported = parts._replace(netloc=parts.hostname or "").geturl()
            if redirect_uri not in allowed and unported not in allowed:
                return 400, "redirect URI not registered"
        state = query.get("state", "")
        user = self.browser_user
        if user is None:
            params = {
                "error": "access_denied",
                "error_description": "The user refused",
                "state": state,
            }
        else:
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                params = {
                    "error": "invalid_request",
                    "error_description": "PKCE required",
                    "state": state,
                }
            else:
                self._provision_user(user)
                code = secrets.token_urlsafe(24)
                with self._lock:
                    self._state.codes[code] = _CodeGrant(
                        query.get("client_id", ""),
                        query.get("scope", ""),
                        redirect_uri,
                        query["code_challenge"],
                        user,
                    )
                params = {"code": code, "state": state}
        return 302, f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(params)}"


def _device_of(scope: str) -> str | None:
    for token in scope.split():
        for prefix in DEVICE_PREFIXES:
            if token.startswith(prefix) and len(token) > len(prefix):
                return token[len(prefix) :]
    return None


def _handler_for(server: AuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, *, content_type: str = "application/json") -> None:
            data = (
                json.dumps(body).encode()
                if content_type == "application/json"
                else str(body).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on this request (a cancelled poll)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(raw).items()}

        def _note(self) -> str:
            path = urlsplit(self.path).path
            with server._lock:
                server._state.requests.append((self.command, path))
            return path

        def do_GET(self) -> None:
            path = self._note()
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if path == "/.well-known/openid-configuration":
                self._send(200, server.metadata())
            elif path == "/authorize":
                status, location = server.authorize(query)
                if status != 302:
                    self._send(status, location, content_type="text/plain")
                    return
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path in ("/link", "/account/"):
                self._send(
                    200,
                    f"<html><body>{path} {query.get('action', '')}</body></html>",
                    content_type="text/html",
                )
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = self._note()
            try:
                if path == "/oauth2/registration":
                    length = int(self.headers.get("Content-Length") or 0)
                    try:
                        body = json.loads(self.rfile.read(length))
                    except ValueError:
                        body = None
                    self._send(*server.register(body))
                elif path == "/oauth2/device":
                    self._send(*server.device_authorization(self._form()))
                elif path == "/oauth2/token":
                    self._send(*server.token(self._form()))
                elif path == "/oauth2/introspect":
                    self._send(
                        *server.introspect(self.headers.get("Authorization", ""), self._form())
                    )
                elif path == "/oauth2/revoke":
                    self._send(*server.revoke(self._form()))
                else:
                    self._send(404, {"error": "not_found"})
            except urllib.error.URLError as error:
                self._send(
                    500, {"error": "server_error", "error_description": f"homeserver: {error}"}
                )

    return Handler
