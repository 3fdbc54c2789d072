"""Running Client-Server requests over HTTP: the only module that imports httpx.

:class:`HomeserverConnection` sends a :class:`~tui_client.protocol.requests.Request`
to one homeserver, puts the access token in the ``Authorization`` header (never in
the query string), maps every failure to :class:`MatrixError` or
:class:`NetworkError`, and waits out rate limits (``Retry-After`` and
``retry_after_ms``) for ordinary requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.errors import MatrixError, NetworkError
from ..protocol.requests import Request
from .cancel import guarded

if TYPE_CHECKING:
    # Imported when the first request is made (``HomeserverConnection._client``): a cold
    # start paints its room list from the cache before that (issue 13).
    import httpx

__all__ = [
    "HomeserverConnection",
    "TokenSource",
    "backoff_delay",
    "certificate_problem",
    "configure_http2",
    "http2_wanted",
    "map_transport_error",
    "trust_context",
]

USER_AGENT = "tui_client/0.1 (Matrix terminal client)"
DEFAULT_TIMEOUT = 30.0
# How long the server may take beyond a long-poll's own timeout before we give up.
LONG_POLL_GRACE = 15.0

RateLimitCallback = Callable[[float], Awaitable[None] | None]


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with jitter: about base*2^attempt, never more than ``cap``."""
    delay = min(cap, base * (2 ** min(attempt, 16)))
    return float(min(cap, delay * (0.75 + random.random() * 0.5)))


def map_transport_error(error: Exception, base_url: str) -> NetworkError:
    """Turn an httpx (or socket) exception into a :class:`NetworkError` with a plain message."""
    import httpx

    host = httpx.URL(base_url).host or base_url
    if isinstance(error, httpx.TimeoutException):
        return NetworkError("timeout", f"{host} did not answer in time")
    tls = _tls_failure(error, host)
    if tls is not None:
        return tls
    if isinstance(error, httpx.ConnectError):
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, socket.gaierror):
                return NetworkError("dns", f"could not find the server {host} (unknown host)")
            cause = cause.__cause__ or cause.__context__
        text = str(error).lower()
        if (
            "name or service not known" in text
            or "nodename nor servname" in text
            or "name resolution" in text
        ):
            return NetworkError("dns", f"could not find the server {host} (unknown host)")
        return NetworkError(
            "connect", f"could not connect to {host}: the server is down or unreachable"
        )
    if isinstance(error, httpx.TransportError):
        return NetworkError("protocol", f"the connection to {host} failed: {type(error).__name__}")
    return NetworkError("protocol", f"request to {host} failed: {error}")


# OpenSSL's verification results (X509_V_ERR_*): what is wrong with a certificate, short
# (the status line), and what the user can do about it (the login screen).
_CERT_PROBLEMS: dict[int, tuple[str, str]] = {
    9: ("is not valid yet", "it is not valid yet. Check this computer's clock."),
    10: (
        "has expired",
        "it has expired. The server's admin must renew it (or this computer's clock is wrong).",
    ),
    18: (
        "is self-signed",
        "it is self-signed. If you trust it, point SSL_CERT_FILE at it (see the README).",
    ),
    19: (
        "is from an untrusted authority",
        "its authority is self-signed. For a private CA, point SSL_CERT_FILE at it.",
    ),
    20: (
        "is from an unknown authority",
        "its issuer is not in the system trust store. For a private CA, point SSL_CERT_FILE at it.",
    ),
    62: (
        "is for another host name",
        "it was issued for another host name. Check the homeserver URL.",
    ),
    64: (
        "is for another IP address",
        "it was issued for another address. Check the homeserver URL.",
    ),
}
_CERT_PROBLEMS[2] = _CERT_PROBLEMS[21] = _CERT_PROBLEMS[20]


def certificate_problem(error: ssl.SSLCertVerificationError) -> str | None:
    """Why a certificate failed verification and what the user can do, as the end of a
    sentence (``it has expired. The server's admin ...``); None for a rarer failure."""
    known = _CERT_PROBLEMS.get(error.verify_code)
    return known[1] if known else None


def _tls_failure(error: BaseException, host: str) -> NetworkError | None:
    """A :class:`NetworkError` of kind ``tls`` if ``error`` comes from the TLS layer."""
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            known = _CERT_PROBLEMS.get(cause.verify_code)
            if known is not None:
                return NetworkError("tls", f"the TLS certificate of {host} {known[0]}")
            reason = cause.verify_message or cause.reason or "verification failed"
            return NetworkError("tls", f"the TLS certificate of {host} is not trusted ({reason})")
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or str(cause)
            return NetworkError("tls", f"no secure (TLS) connection to {host} ({reason})")
        cause = cause.__cause__ or cause.__context__
    return None


class TokenSource(Protocol):
    """Access tokens that expire and are refreshed (an OAuth 2.0 login, engine/oauth.py)."""

    async def current(self) -> str | None:
        """The token to send now, refreshed first if it is about to expire."""
        ...

    async def renew(self, rejected: str) -> bool:
        """``rejected`` was refused (``M_UNKNOWN_TOKEN``): True if a newer token is now in place."""
        ...


#: (thread, offers HTTP/2) -> context; see :func:`trust_context`.
_trust: dict[tuple[int, bool], ssl.SSLContext] = {}

HTTP2_ENV = "TUI_CLIENT_HTTP2"
_configured_http2: bool | None = None


def configure_http2(enabled: bool | None) -> None:
    """Whether connections offer HTTP/2 (the config file's ``[network] http2``); set at start."""
    global _configured_http2
    _configured_http2 = enabled


def http2_wanted(explicit: bool | None = None) -> bool:
    """Whether a connection offers HTTP/2: ``explicit``, else ``$TUI_CLIENT_HTTP2`` (``0``/``1``),
    else the config file's, else yes.

    Offered over HTTPS only, by ALPN, so the server chooses (one without it gets HTTP/1.1);
    never over plain http (no h2c). It measurably helps where requests overlap: sends and
    key requests while the ``/sync`` long-poll holds a connection, a burst of thumbnails, a
    cold start (one TLS handshake instead of several); see bench/README.md, ``http2``.
    """
    if explicit is not None:
        return explicit
    env = os.environ.get(HTTP2_ENV, "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    return _configured_http2 if _configured_http2 is not None else True


def _h2_available() -> bool:
    """Whether httpx can speak HTTP/2 here (the ``h2`` package, ``httpx[http2]``)."""
    import importlib.util

    return importlib.util.find_spec("h2") is not None


def trust_context(http2: bool = False) -> ssl.SSLContext:
    """The TLS context of every connection: the system's trust store (through truststore).

    On Linux that is OpenSSL's default locations, so ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` replace them as they do for curl; on macOS and Windows the
    system's own verifier. One per thread and per ``http2``: httpcore sets the context's
    ALPN protocols on every connect and truststore reloads its verify paths on every wrap,
    so a context shared by two threads, or by clients offering different protocols, is
    changed under a handshake. Making one is cheap (~0.3 ms, no file read); the CA bundle
    is read by truststore at every TLS handshake (~25 ms on Linux), whichever context.
    """
    import threading

    key = (threading.get_ident(), http2)
    context = _trust.get(key)
    if context is None:
        import truststore

        context = _trust[key] = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return context


class HomeserverConnection:
    """An HTTP connection to one homeserver, with its access token.

    ``transport`` replaces httpx's network transport (tests inject faults with
    ``httpx.MockTransport`` or a proxy). ``http2``: whether to offer HTTP/2 over HTTPS
    (default: :func:`http2_wanted`). ``max_rate_limit_wait`` caps the total time
    one request waits on 429 answers before the error is raised to the caller.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_rate_limit_wait: float = 300.0,
        http2: bool | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: Offer HTTP/2 by ALPN (https only: never h2c over plain http); the server chooses.
        #: ``None``: :func:`http2_wanted` (the environment, the config file, else yes).
        self.http2 = http2_wanted(http2)
        self.access_token = access_token
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.on_rate_limited: RateLimitCallback | None = None
        #: Where the access token comes from when it expires and is refreshed (OAuth);
        #: ``None``: :attr:`access_token` is used as it is.
        self.token_source: TokenSource | None = None
        self._transport = transport
        self._client_instance: httpx.AsyncClient | None = None

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """The transport given at construction (``None``: httpx's network transport)."""
        return self._transport

    @property
    def _client(self) -> httpx.AsyncClient:
        # Made on first use: the first client imports httpcore (~30-50 ms), which a
        # cold start should not spend before the room list is painted.
        if self._client_instance is None:
            import httpx

            http2 = self.http2 and _h2_available() and self.base_url.startswith("https://")
            self._client_instance = httpx.AsyncClient(
                base_url=self.base_url,
                http2=http2,
                transport=self._transport,
                verify=trust_context(http2),
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
        return self._client_instance

    async def aclose(self) -> None:
        """Close the connection pool (if it was ever opened)."""
        if self._client_instance is not None:
            await self._client_instance.aclose()

    async def __aenter__(self) -> HomeserverConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send_raw(self, request: Request) -> bytes:
        """Run one request once; return the body of a 2xx answer, raise otherwise."""
        headers: dict[str, str] = {}
        content = None
        if request.content is not None:
            content = request.content
            headers["Content-Type"] = request.content_type
        elif request.body is not None:
            content = json.dumps(request.body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        import httpx

        timeout = httpx.Timeout(
            self.timeout + (request.timeout + LONG_POLL_GRACE if request.timeout else 0.0),
            connect=min(self.timeout, 10.0),
        )
        if not (request.authenticated and self.token_source is not None):
            return await self._exchange(request, content, headers, timeout)
        sent = await self._current_token()
        try:
            return await self._exchange(request, content, dict(headers), timeout)
        except MatrixError as error:
            # An expired or revoked token is refreshed once, and the request sent again.
            if not (error.is_unknown_token and sent and await self.token_source.renew(sent)):
                raise
        await self._current_token()
        return await self._exchange(request, content, headers, timeout)

    async def _current_token(self) -> str | None:
        if self.token_source is not None:
            self.access_token = await self.token_source.current()
        return self.access_token

    async def send_stream(self, request: Request, chunks: AsyncIterable[bytes], length: int) -> Any:
        """Run a request whose body is streamed from ``chunks`` (an upload read from disk,
        never held whole in memory), ``length`` bytes in all; decode its JSON answer.

        Not retried on 429: the stream is spent; the caller starts again.
        """
        headers = {"Content-Type": request.content_type, "Content-Length": str(length)}
        if request.authenticated:
            await self._current_token()
        import httpx

        timeout = httpx.Timeout(self.timeout + request.timeout, connect=min(self.timeout, 10.0))
        return decode_json(await self._exchange(request, chunks, headers, timeout), self.base_url)

    async def _exchange(
        self,
        request: Request,
        content: bytes | AsyncIterable[bytes] | None,
        headers: dict[str, str],
        timeout: httpx.Timeout,
    ) -> bytes:
        """Send ``request`` once (with its access token when it needs one); return the
        body of a 2xx answer, raise the transport or Matrix error otherwise."""
        if request.authenticated:
            if not self.access_token:
                raise MatrixError(401, "M_MISSING_TOKEN", "not logged in")
            headers["Authorization"] = f"Bearer {self.access_token}"
        client = self._client
        import httpx

        async def exchange() -> tuple[httpx.Response, bytes]:
            response = await client.request(
                request.method,
                request.path,
                params=list(request.query) or None,
                content=content,
                headers=headers,
                timeout=timeout,
            )
            return response, await response.aread()

        for attempt in range(_CLOSED_CONNECTION_TRIES):
            try:
                response, body = await guarded(client, exchange)
                break
            except (httpx.HTTPError, OSError) as error:
                last = attempt == _CLOSED_CONNECTION_TRIES - 1
                if not last and _answer_lost_to_goaway(error, request, content):
                    continue  # again, on a new connection
                raise map_transport_error(error, self.base_url) from error
        if 200 <= response.status_code < 300:
            return body
        raise _error_from(response.status_code, body, response.headers.get("Retry-After"))

    async def send(self, request: Request, *, wait_on_rate_limit: bool = True) -> Any:
        """Run a request and decode its JSON answer.

        On 429 the request is retried after the server's ``retry_after`` (or a backoff
        delay), until ``max_rate_limit_wait`` seconds have been spent waiting.
        """
        waited = 0.0
        attempt = 0
        while True:
            try:
                body = await self.send_raw(request)
            except MatrixError as error:
                if not (wait_on_rate_limit and error.is_rate_limit):
                    raise
                delay = (
                    error.retry_after if error.retry_after is not None else backoff_delay(attempt)
                )
                if waited + delay > self.max_rate_limit_wait:
                    raise
                waited += delay
                attempt += 1
                await self._notify_rate_limit(delay)
                await asyncio.sleep(delay)
                continue
            return decode_json(body, self.base_url)

    async def _notify_rate_limit(self, delay: float) -> None:
        if self.on_rate_limited is None:
            return
        result = self.on_rate_limited(delay)
        if result is not None:
            await result

    async def get_url(self, url: str) -> tuple[int, bytes]:
        """GET an absolute URL without authentication (``.well-known`` discovery)."""
        client = self._client
        import httpx

        async def exchange() -> tuple[int, bytes]:
            response = await client.get(url, follow_redirects=True)
            return response.status_code, await response.aread()

        try:
            return await guarded(client, exchange)
        except (httpx.HTTPError, OSError) as error:
            raise map_transport_error(error, url) from error


# Tries of a request cut off by connections closing gracefully (the new one may close too).
_CLOSED_CONNECTION_TRIES = 3
_GOAWAY = re.compile(r"ConnectionTerminated error_code:(0|ErrorCodes\.NO_ERROR)\b")
_REFUSED = re.compile(r"StreamReset stream_id:\d+, error_code:(7|ErrorCodes\.REFUSED_STREAM)\b")


def _answer_lost_to_goaway(
    error: Exception, request: Request, content: bytes | AsyncIterable[bytes] | None
) -> bool:
    """Whether ``error`` cut off a request that may be sent again on a new connection.

    An HTTP/2 connection's graceful close (GOAWAY without an error, as nginx sends after
    ``keepalive_requests``): httpcore drops every stream still open on it, even those the
    server would have answered, so a request that may be sent twice (``repeatable``) is.
    A stream the server refused (``REFUSED_STREAM``, one opened after its GOAWAY) was not
    processed at all (RFC 9113 8.7): any request is. A streamed body (an upload read from
    disk) cannot be sent again.
    """
    import httpx

    if not isinstance(error, httpx.RemoteProtocolError):
        return False
    if content is not None and not isinstance(content, bytes):
        return False
    text = str(error)
    return _REFUSED.search(text) is not None or (
        _GOAWAY.search(text) is not None and request.repeatable
    )


def decode_json(body: bytes, base_url: str) -> Any:
    """Decode a JSON body, as a :class:`NetworkError` of kind ``decode`` if it is not JSON."""
    if not body:
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise NetworkError(
            "decode", f"{base_url} answered with something that is not JSON"
        ) from error


def _error_from(status: int, body: bytes, retry_after: str | None) -> MatrixError:
    try:
        data = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = {}
    return MatrixError.from_response(status, data, retry_after)
