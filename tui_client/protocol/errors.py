"""Errors a homeserver answers with, and the faults of getting an answer at all."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["MatrixError", "NetworkError", "parse_retry_after"]


class MatrixError(Exception):
    """An error response from a homeserver (the standard ``errcode``/``error`` body).

    ``retry_after`` is in seconds, from the ``Retry-After`` header or the body's
    ``retry_after_ms``, whichever asks for the longer wait. ``soft_logout`` is set
    with ``M_UNKNOWN_TOKEN`` when the session may be resumed by logging in again.
    """

    def __init__(
        self,
        status: int,
        errcode: str,
        message: str = "",
        *,
        retry_after: float | None = None,
        soft_logout: bool = False,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{errcode} ({status}): {message}" if message else f"{errcode} ({status})")
        self.status = status
        self.errcode = errcode
        self.message = message
        self.retry_after = retry_after
        self.soft_logout = soft_logout
        self.body = body or {}

    @classmethod
    def from_response(
        cls, status: int, body: object, retry_after_header: str | None = None
    ) -> MatrixError:
        """Build the error from a status, a decoded JSON body (or anything) and a header."""
        data = body if isinstance(body, dict) else {}
        errcode = data.get("errcode")
        if not isinstance(errcode, str) or not errcode:
            errcode = "M_UNKNOWN" if status < 500 else "M_SERVER_ERROR"
        message = data.get("error")
        waits = [parse_retry_after(retry_after_header)]
        retry_ms = data.get("retry_after_ms")
        if isinstance(retry_ms, int | float) and not isinstance(retry_ms, bool) and retry_ms >= 0:
            waits.append(retry_ms / 1000.0)
        known = [w for w in waits if w is not None]
        return cls(
            status,
            errcode,
            message if isinstance(message, str) else "",
            retry_after=max(known) if known else None,
            soft_logout=data.get("soft_logout") is True,
            body=data,
        )

    @property
    def is_rate_limit(self) -> bool:
        """True for ``429`` / ``M_LIMIT_EXCEEDED``."""
        return self.status == 429 or self.errcode == "M_LIMIT_EXCEEDED"

    @property
    def is_unknown_token(self) -> bool:
        """True when the access token is no longer valid."""
        return self.errcode == "M_UNKNOWN_TOKEN"

    @property
    def is_transient(self) -> bool:
        """True when trying the same request again later may succeed."""
        return self.is_rate_limit or self.status >= 500 or self.status in (408, 425)


class NetworkError(Exception):
    """The homeserver could not be reached or did not answer in time.

    ``kind`` is one of ``"connect"`` (refused, unreachable), ``"dns"`` (unknown host),
    ``"tls"`` (handshake failed, certificate not trusted), ``"timeout"``, ``"protocol"``
    (cut connection, bad HTTP), ``"decode"`` (not JSON).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date. ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    import email.utils  # (an HTTP date: rare, and not needed at start-up)

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
