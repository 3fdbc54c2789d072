"""MatrixError.from_response and Retry-After."""

from __future__ import annotations

import email.utils
import time

import pytest

from tui_client.protocol.errors import MatrixError, NetworkError, parse_retry_after

NOW = 1_700_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        (http_date(NOW + 90), 90.0),
        (http_date(NOW - 90), 0.0),  # in the past: go now
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("²", None),  # str.isdigit() says yes, int() says no
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_date_uses_the_clock() -> None:
    wait = parse_retry_after(http_date(time.time() + 3600))
    assert wait is not None and 3500 < wait <= 3600


def test_rate_limit_from_body() -> None:
    error = MatrixError.from_response(
        429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2500}
    )
    assert (error.status, error.errcode, error.message) == (
        429,
        "M_LIMIT_EXCEEDED",
        "Too many requests",
    )
    assert error.retry_after == 2.5
    assert error.is_rate_limit and error.is_transient and not error.is_unknown_token
    assert "M_LIMIT_EXCEEDED" in str(error) and "429" in str(error)


@pytest.mark.parametrize(
    ("header", "body_ms", "expected"),
    [
        ("10", 2000, 10.0),  # header asks longer
        ("1", 5000, 5.0),  # body asks longer
        ("3", None, 3.0),
        (None, 1500, 1.5),
        ("garbage", 1500, 1.5),
        ("0", 0, 0.0),
        (None, -5, None),
        (None, "1000", None),
        (None, True, None),
        (None, None, None),
    ],
)
def test_retry_after_the_longer_wait_wins(
    header: str | None, body_ms: object, expected: float | None
) -> None:
    body: dict[str, object] = {"errcode": "M_LIMIT_EXCEEDED"}
    if body_ms is not None:
        body["retry_after_ms"] = body_ms
    assert MatrixError.from_response(429, body, header).retry_after == expected


def test_retry_after_http_date_header() -> None:
    header = http_date(time.time() + 60)
    wait = MatrixError.from_response(429, {"retry_after_ms": 1000}, header).retry_after
    assert wait is not None and 55 < wait <= 60


def test_soft_logout() -> None:
    soft = MatrixError.from_response(
        401, {"errcode": "M_UNKNOWN_TOKEN", "error": "expired", "soft_logout": True}
    )
    assert soft.is_unknown_token and soft.soft_logout and not soft.is_transient
    hard = MatrixError.from_response(401, {"errcode": "M_UNKNOWN_TOKEN"})
    assert hard.is_unknown_token and not hard.soft_logout
    odd = MatrixError.from_response(401, {"errcode": "M_UNKNOWN_TOKEN", "soft_logout": "true"})
    assert not odd.soft_logout


@pytest.mark.parametrize(
    ("status", "body", "errcode"),
    [
        (502, "<html>Bad Gateway</html>", "M_SERVER_ERROR"),
        (500, None, "M_SERVER_ERROR"),
        (404, b"not json", "M_UNKNOWN"),
        (400, ["a", "list"], "M_UNKNOWN"),
        (403, {"errcode": 5, "error": ["x"]}, "M_UNKNOWN"),
        (403, {"errcode": ""}, "M_UNKNOWN"),
        (403, {"errcode": "M_FORBIDDEN"}, "M_FORBIDDEN"),
    ],
)
def test_non_json_or_odd_bodies(status: int, body: object, errcode: str) -> None:
    error = MatrixError.from_response(status, body)
    assert error.errcode == errcode and error.status == status
    assert error.message == "" or isinstance(error.message, str)
    assert isinstance(error.body, dict)
    assert error.retry_after is None and not error.soft_logout


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (500, True),
        (503, True),
        (408, True),
        (425, True),
        (429, True),
        (400, False),
        (403, False),
        (404, False),
    ],
)
def test_transient(status: int, transient: bool) -> None:
    assert MatrixError.from_response(status, {}).is_transient is transient


def test_network_error() -> None:
    error = NetworkError("timeout", "no answer in 30 s")
    assert error.kind == "timeout" and str(error) == "no answer in 30 s"
