"""A request cut off by an HTTP/2 connection's graceful close (GOAWAY without an error) is
sent once more if sending it twice does no harm; any other failure is not repeated.

(End to end, through a front that sends the GOAWAY: tests/resilience/test_http2.py.)
"""

from __future__ import annotations

import httpx
import pytest

from tui_client.net.http import HomeserverConnection
from tui_client.protocol import requests as api
from tui_client.protocol.errors import NetworkError
from tui_client.protocol.sliding_sync import sliding_sync

GOAWAY = "<ConnectionTerminated error_code:0, last_stream_id:9, additional_data:None>"
BROKEN = "<ConnectionTerminated error_code:1, last_stream_id:9, additional_data:None>"
REFUSED = "<StreamReset stream_id:11, error_code:7, remote_reset:True>"


def _connection(failures: list[str], seen: list[str]) -> HomeserverConnection:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if failures:
            raise httpx.RemoteProtocolError(failures.pop(0), request=request)
        return httpx.Response(200, json={"ok": True})

    return HomeserverConnection(
        "https://hs.example", "token", transport=httpx.MockTransport(answer)
    )


@pytest.mark.parametrize(
    "request_",
    [
        api.whoami(),
        api.send_event("!r:hs", "m.room.message", "t1", {"body": "x"}),
        sliding_sync(pos="p1", timeout_ms=30000, body={}),
    ],
    ids=["GET", "PUT send", "POST sliding sync"],
)
async def test_a_repeatable_request_is_sent_again_after_a_goaway(request_: api.Request) -> None:
    seen: list[str] = []
    async with _connection([GOAWAY], seen) as connection:
        assert await connection.send(request_) == {"ok": True}
    assert len(seen) == 2 and seen[0] == seen[1]


async def test_a_post_that_is_not_repeatable_fails_as_on_a_lost_connection() -> None:
    seen: list[str] = []
    async with _connection([GOAWAY], seen) as connection:
        with pytest.raises(NetworkError, match="RemoteProtocolError"):
            await connection.send(api.create_room({"name": "once"}))
    assert seen == ["POST /_matrix/client/v3/createRoom"]


async def test_a_refused_stream_was_not_processed_so_any_request_is_sent_again() -> None:
    seen: list[str] = []
    async with _connection([REFUSED], seen) as connection:
        assert await connection.send(api.create_room({"name": "once"})) == {"ok": True}
    assert seen == ["POST /_matrix/client/v3/createRoom"] * 2


async def test_three_tries_and_only_for_a_graceful_close() -> None:
    seen: list[str] = []
    async with _connection([GOAWAY, REFUSED, GOAWAY], seen) as connection:
        with pytest.raises(NetworkError):
            await connection.send(api.whoami())
    assert len(seen) == 3
    seen.clear()
    async with _connection([BROKEN], seen) as connection:
        with pytest.raises(NetworkError):
            await connection.send(api.whoami())
    assert len(seen) == 1
