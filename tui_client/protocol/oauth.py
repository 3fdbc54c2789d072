"""The spec's OAuth 2.0 API, sans I/O: server metadata, client registration, the
device authorization grant (RFC 8628), the authorization code grant with PKCE
(RFC 7636) and a loopback redirect (RFC 8252), tokens, refresh and revocation
(RFC 7009), and the account management URL.

Everything here builds :class:`~tui_client.protocol.requests.Request` objects or
parses answers; the engine (``engine/oauth.py``) sends them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from .requests import Request

__all__ = [
    "ACCOUNT_ACTIONS",
    "CLIENT_URI",
    "DEVICE_CODE_GRANT",
    "AuthMetadata",
    "DeviceAuthorization",
    "MetadataError",
    "OAuthError",
    "TokenResponse",
    "account_management_url",
    "auth_metadata",
    "authorization_url",
    "client_metadata",
    "code_challenge",
    "device_authorization",
    "new_device_id",
    "new_state",
    "new_verifier",
    "oauth_error",
    "parse_redirect_query",
    "register_client",
    "revoke",
    "scope_for",
    "token_by_code",
    "token_by_device_code",
    "token_by_refresh",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
STABLE_API_SCOPE = "urn:matrix:client:api:*"
STABLE_DEVICE_SCOPE = "urn:matrix:client:device:"
UNSTABLE_API_SCOPE = "urn:matrix:org.matrix.msc2967.client:api:*"
UNSTABLE_DEVICE_SCOPE = "urn:matrix:org.matrix.msc2967.client:device:"

CLIENT_NAME = "tui_client"
CLIENT_URI = "https://github.com/tui-client/tui_client"
POLICY_URI = "https://github.com/tui-client/tui_client/blob/main/README.md#privacy"

#: The account management actions the palette offers, by what the user wants.
ACCOUNT_ACTIONS = {
    "profile": "org.matrix.profile",
    "sessions": "org.matrix.devices_list",
    "session": "org.matrix.device_view",
    "cross_signing_reset": "org.matrix.cross_signing_reset",
}
#: Names servers used before the spec settled them (MSC4191).
_UNSTABLE_ACTIONS = {
    "org.matrix.devices_list": "org.matrix.sessions_list",
    "org.matrix.device_view": "org.matrix.session_view",
}


class MetadataError(ValueError):
    """The server's auth metadata (or another OAuth answer) is unusable."""


@dataclass(frozen=True, slots=True)
class OAuthError(Exception):
    """An OAuth 2.0 error answer (RFC 6749 5.2, RFC 8628 3.5): ``error`` and its description."""

    error: str
    description: str = ""

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


def oauth_error(body: object) -> OAuthError | None:
    """The OAuth error in a decoded error body, or None if it is not one."""
    # A Matrix error (``errcode``) also has an ``error`` field: its message, not a code.
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or "errcode" in body:
        return None
    description = body.get("error_description")
    return OAuthError(body["error"], description if isinstance(description, str) else "")


def _secure_url(value: object, name: str) -> str:
    """``value`` as an https URL (http only on the loopback interface, for tests)."""
    if not isinstance(value, str) or not value:
        raise MetadataError(f"the server's auth metadata has no {name}")
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise MetadataError(f"the server's {name} is not an https URL")
    if parts.fragment:
        raise MetadataError(f"the server's {name} has a fragment")
    return value


@dataclass(frozen=True, slots=True)
class AuthMetadata:
    """The authorization server's metadata (RFC 8414, with the spec's account fields)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    account_management_uri: str | None = None
    account_management_actions: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    code_challenge_methods: tuple[str, ...] = ()
    #: The whole answer, as saved with the session.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: object) -> AuthMetadata:
        """Parse ``GET /auth_metadata``; :class:`MetadataError` says what is wrong."""
        if not isinstance(data, dict):
            raise MetadataError("the server's auth metadata is not a JSON object")

        def optional(name: str) -> str | None:
            return _secure_url(data[name], name) if data.get(name) is not None else None

        def strings(name: str) -> tuple[str, ...]:
            value = data.get(name)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        return cls(
            issuer=_secure_url(data.get("issuer"), "issuer"),
            authorization_endpoint=_secure_url(
                data.get("authorization_endpoint"), "authorization_endpoint"
            ),
            token_endpoint=_secure_url(data.get("token_endpoint"), "token_endpoint"),
            registration_endpoint=_secure_url(
                data.get("registration_endpoint"), "registration_endpoint"
            ),
            revocation_endpoint=optional("revocation_endpoint"),
            device_authorization_endpoint=optional("device_authorization_endpoint"),
            account_management_uri=optional("account_management_uri"),
            account_management_actions=strings("account_management_actions_supported"),
            grant_types=strings("grant_types_supported"),
            code_challenge_methods=strings("code_challenge_methods_supported"),
            raw=dict(data),
        )

    @property
    def offers_device_code(self) -> bool:
        """Whether the device authorization grant can be used."""
        return self.device_authorization_endpoint is not None and (
            not self.grant_types or DEVICE_CODE_GRANT in self.grant_types
        )

    @property
    def offers_code_with_pkce(self) -> bool:
        """Whether the authorization code grant with S256 PKCE can be used."""
        grant_ok = not self.grant_types or "authorization_code" in self.grant_types
        return grant_ok and "S256" in self.code_challenge_methods


def auth_metadata(*, unstable: bool = False) -> Request:
    """``GET /_matrix/client/v1/auth_metadata`` (or MSC2965's unstable path)."""
    prefix = "/_matrix/client/unstable/org.matrix.msc2965" if unstable else "/_matrix/client/v1"
    return Request("GET", f"{prefix}/auth_metadata", authenticated=False)


def client_metadata(redirect_uris: list[str]) -> dict[str, Any]:
    """Our client metadata for dynamic registration (RFC 7591, the spec's rules for native clients)."""
    grants = ["authorization_code", "refresh_token", DEVICE_CODE_GRANT]
    return {
        "client_name": CLIENT_NAME,
        "client_uri": CLIENT_URI,
        "policy_uri": POLICY_URI,
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": grants,
        "response_types": ["code"],
        "redirect_uris": redirect_uris,
    }


def _form(url: str, fields: dict[str, str]) -> Request:
    return Request(
        "POST",
        url,
        authenticated=False,
        content=urlencode(fields).encode(),
        content_type="application/x-www-form-urlencoded",
    )


def register_client(metadata: AuthMetadata, redirect_uris: list[str]) -> Request:
    """``POST`` our client metadata to the registration endpoint."""
    return Request(
        "POST",
        metadata.registration_endpoint,
        body=client_metadata(redirect_uris),
        authenticated=False,
    )


def scope_for(device_id: str) -> str:
    """The scope for the whole client API and our device, in the stable and unstable names."""
    return " ".join(
        (
            STABLE_API_SCOPE,
            STABLE_DEVICE_SCOPE + device_id,
            UNSTABLE_API_SCOPE,
            UNSTABLE_DEVICE_SCOPE + device_id,
        )
    )


_DEVICE_ALPHABET = string.ascii_uppercase + string.digits


def new_device_id() -> str:
    """A fresh device ID (10 characters from ``[A-Z0-9]``, as the spec's examples)."""
    return "".join(secrets.choice(_DEVICE_ALPHABET) for _ in range(10))


def new_verifier() -> str:
    """A PKCE code verifier: 64 unreserved characters (RFC 7636 4.1)."""
    return secrets.token_urlsafe(48)


def new_state() -> str:
    """An unguessable ``state`` value binding the redirect to this attempt."""
    return secrets.token_urlsafe(24)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of a verifier: base64url(SHA-256), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    metadata: AuthMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    verifier: str,
    login_hint: str | None = None,
) -> str:
    """The URL to open in the browser for the authorization code grant."""
    params = {
        "response_type": "code",
        "response_mode": "query",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = f"mxid:{login_hint}"
    joiner = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
    return metadata.authorization_endpoint + joiner + urlencode(params)


def parse_redirect_query(params: dict[str, str], state: str) -> str:
    """The code in the loopback redirect's query; :class:`OAuthError` for an error or a wrong state."""
    if params.get("state") != state:
        raise OAuthError("invalid_state", "the browser came back with an answer for another login")
    error = oauth_error(params)
    if error is not None:
        raise error
    code = params.get("code")
    if not code:
        raise OAuthError("invalid_response", "the browser came back without a code")
    return code


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """RFC 8628 3.2: what to show the user and how to poll."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float

    @classmethod
    def from_json(cls, data: object) -> DeviceAuthorization:
        """Parse the device authorization answer; :class:`MetadataError` if it is unusable."""
        if not isinstance(data, dict):
            raise MetadataError("the device authorization answer is not a JSON object")
        for name in ("device_code", "user_code", "verification_uri"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise MetadataError(f"the device authorization answer has no {name}")
        complete = data.get("verification_uri_complete")
        expires = data.get("expires_in")
        interval = data.get("interval", 5)
        return cls(
            device_code=data["device_code"],
            user_code=data["user_code"],
            verification_uri=_secure_url(data["verification_uri"], "verification_uri"),
            verification_uri_complete=_secure_url(complete, "verification_uri_complete")
            if complete
            else None,
            expires_in=_positive(expires) or 600.0,
            interval=_positive(interval) or 5.0,
        )


def _positive(value: object) -> float | None:
    """A positive JSON number as a float, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def device_authorization(metadata: AuthMetadata, client_id: str, scope: str) -> Request:
    """``POST`` to the device authorization endpoint (RFC 8628 3.1)."""
    if metadata.device_authorization_endpoint is None:
        raise MetadataError("the server does not offer device code login")
    return _form(metadata.device_authorization_endpoint, {"client_id": client_id, "scope": scope})


def token_by_device_code(metadata: AuthMetadata, client_id: str, device_code: str) -> Request:
    """Poll the token endpoint with a device code (RFC 8628 3.4)."""
    return _form(
        metadata.token_endpoint,
        {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": client_id},
    )


def token_by_code(
    metadata: AuthMetadata, client_id: str, code: str, redirect_uri: str, verifier: str
) -> Request:
    """Exchange an authorization code (RFC 6749 4.1.3, with the PKCE verifier)."""
    return _form(
        metadata.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )


def token_by_refresh(token_endpoint: str, client_id: str, refresh_token: str) -> Request:
    """Refresh the access token (RFC 6749 6)."""
    return _form(
        token_endpoint,
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
    )


def revoke(revocation_endpoint: str, client_id: str, token: str, hint: str) -> Request:
    """Revoke a token (RFC 7009); ``hint`` is ``access_token`` or ``refresh_token``."""
    return _form(
        revocation_endpoint, {"token": token, "token_type_hint": hint, "client_id": client_id}
    )


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint's success answer (RFC 6749 5.1)."""

    access_token: str
    refresh_token: str | None
    expires_in: float | None

    @classmethod
    def from_json(cls, data: object) -> TokenResponse:
        """Parse the answer; :class:`MetadataError` if it has no usable access token."""
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("access_token"), str)
            or not data["access_token"]
        ):
            raise MetadataError("the token answer has no access token")
        token_type = data.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise MetadataError(f"the token answer is of an unknown type ({token_type[:20]})")
        refresh = data.get("refresh_token")
        expires = data.get("expires_in")
        return cls(
            access_token=data["access_token"],
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=_positive(expires),
        )


def account_management_url(
    metadata: AuthMetadata, action: str | None = None, device_id: str | None = None
) -> str:
    """The account management URL, with ``action=`` (and ``device_id=``) when the server supports it.

    ``action`` is a key of :data:`ACCOUNT_ACTIONS` or a full action name.
    """
    if metadata.account_management_uri is None:
        raise MetadataError("the server has no account management page")
    base = metadata.account_management_uri
    if action is None:
        return base
    name = ACCOUNT_ACTIONS.get(action, action)
    supported = metadata.account_management_actions
    if supported and name not in supported and _UNSTABLE_ACTIONS.get(name) in supported:
        name = _UNSTABLE_ACTIONS[name]
    params = {"action": name}
    if device_id is not None:
        params["device_id"] = device_id
    joiner = "&" if urlsplit(base).query else "?"
    return base + joiner + urlencode(params)
