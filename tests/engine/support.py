"""Helpers for engine and integration tests against a real Synapse.

:class:`Wire` is the only fault injector: an ``httpx.MockTransport`` whose handler
forwards every request to a real ``httpx.AsyncHTTPTransport`` (so the homeserver
is real), records it, and lets a test replace chosen answers with faults.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient

from ..support.waiting import until, until_async

LONG_POLL_MS = 1000


@dataclass
class Recorded:
    """One request that went through the wire, and when (``time.time()``)."""

    at: float
    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: bytes
    injected: bool = False

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def is_send(self) -> bool:
        """A ``PUT .../send/...`` (a message being sent)."""
        return self.method == "PUT" and "/send/" in self.url.path


# A fault: gets the request, returns a response to answer with instead of the
# server's, or raises an httpx error; returning None lets the request through.
Fault = Callable[[httpx.Request], Awaitable[httpx.Response | None] | httpx.Response | None]


@dataclass
class _Rule:
    matches: Callable[[httpx.Request], bool]
    fault: Fault
    times: int | None


@dataclass
class Wire:
    """A recording, fault-injecting pass-through to the real network."""

    requests: list[Recorded] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _real: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    def transport(self) -> httpx.MockTransport:
        """A transport for one client (closing it does not close the real one)."""
        return httpx.MockTransport(self._handle)

    async def aclose(self) -> None:
        await self._real.aclose()

    def inject(
        self,
        matches: Callable[[httpx.Request], bool],
        fault: Fault,
        *,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` matching requests (all if None) with ``fault``."""
        self._rules.append(_Rule(matches, fault, times))

    def clear(self) -> None:
        self._rules.clear()

    @property
    def pending_faults(self) -> int:
        """Injected faults not used up yet."""
        return len(self._rules)

    def requests_to(self, suffix: str, method: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.path.endswith(suffix) and (method is None or r.method == method)
        ]

    async def forward(self, request: httpx.Request) -> httpx.Response:
        """Send to the real server and return its (fully read) answer."""
        response = await self._real.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=body)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        record = Recorded(
            time.time(), request.method, request.url, request.headers, request.content
        )
        self.requests.append(record)
        for rule in list(self._rules):
            if not rule.matches(request):
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
            record.injected = True
            answer = rule.fault(request)
            if asyncio.iscoroutine(answer) or isinstance(answer, Awaitable):
                answer = await answer
            if answer is not None:
                return answer
            record.injected = False
            break
        return await self.forward(request)


def is_sync(request: httpx.Request, *, with_since: bool = True) -> bool:
    """A ``/sync`` request, v2 or sliding sync (by default only incremental ones)."""
    params = request.url.params
    return request.url.path.endswith("/sync") and (
        not with_since or "since" in params or "pos" in params
    )


def is_send(request: httpx.Request) -> bool:
    return request.method == "PUT" and "/send/" in request.url.path


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true (fails the test after ``timeout`` seconds)."""
    await until(predicate, what, timeout, step=0.02)


async def wait_until_async(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Like :func:`wait_until` for a predicate that must be awaited (a cache query)."""
    await until_async(predicate, what, timeout)


async def login(
    synapse: SynapseServer,
    user: RegisteredUser,
    base_dir: Path,
    *,
    wire: Wire | None = None,
    start: bool = True,
    sliding: bool = False,
    **options: Any,
) -> MatrixClient:
    """Log in, open, and (by default) start syncing and wait for the first batch;
    ``sliding`` allows sliding sync explicitly (the client's default where Synapse offers it)."""
    options.setdefault("long_poll_ms", LONG_POLL_MS)
    client = await MatrixClient.login(
        user.user_id,
        user.password,
        homeserver=synapse.base_url,
        base_dir=base_dir,
        transport=wire.transport() if wire else None,
        **options,
    )
    if sliding:
        await client.set_sliding_sync(True)
    await client.open()
    if start:
        client.start()
        await client.wait_synced()
    return client


def room_path(room_id: str) -> str:
    return urllib.parse.quote(room_id, safe="")


def server_messages(
    synapse: SynapseServer, token: str, room_id: str, limit: int = 1000
) -> list[dict[str, Any]]:
    """The room's events as the server has them (oldest first), read with ``token``."""
    filter_json = urllib.parse.quote(json.dumps({"types": ["m.room.message"]}))
    events: list[dict[str, Any]] = []
    start = ""
    while True:
        query = f"?dir=b&limit={limit}&filter={filter_json}" + (
            f"&from={urllib.parse.quote(start)}" if start else ""
        )
        status, body = synapse.request_json(
            "GET", f"/_matrix/client/v3/rooms/{room_path(room_id)}/messages{query}", token=token
        )
        assert status == 200, body
        events.extend(body.get("chunk", []))
        if not body.get("end") or not body.get("chunk"):
            break
        start = body["end"]
    events.reverse()
    return events


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("content", {}).get("body") for e in events]


def create_room(
    synapse: SynapseServer, owner: RegisteredUser, *, invite: list[str] = (), **extra: Any
) -> str:  # type: ignore[assignment]
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "invite": list(invite), **extra},
        token=owner.access_token,
    )
    assert status == 200, body
    return str(body["room_id"])


def join(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> None:
    status, body = synapse.request_json(
        "POST", f"/_matrix/client/v3/join/{room_path(room_id)}", {}, token=user.access_token
    )
    assert status == 200, body


def send_text(
    synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, txn: str
) -> str:
    status, answer = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_path(room_id)}/send/m.room.message/{urllib.parse.quote(txn)}",
        {"msgtype": "m.text", "body": body},
        token=user.access_token,
    )
    assert status == 200, answer
    return str(answer["event_id"])


class ClientPool:
    """Clients a test opened; all closed at teardown (those not closed already)."""

    def __init__(self) -> None:
        self.clients: list[MatrixClient] = []

    def add(self, client: MatrixClient) -> MatrixClient:
        self.clients.append(client)
        return client

    def forget(self, client: MatrixClient) -> None:
        """The test closed (or logged out) this client itself."""
        self.clients.remove(client)

    async def close_all(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients.clear()


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    """A recording, fault-injecting transport to the real network."""
    w = Wire()
    yield w
    await w.aclose()


@pytest.fixture
async def pool() -> AsyncIterator[ClientPool]:
    """Closes every client a test opened."""
    clients = ClientPool()
    yield clients
    await clients.close_all()


async def seed_messages(
    synapse: SynapseServer,
    user: RegisteredUser,
    room_id: str,
    texts: list[str],
    *,
    concurrency: int = 16,
) -> None:
    """Send many messages quickly (in parallel: the server decides their order)."""
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {user.access_token}"}
    async with httpx.AsyncClient(
        base_url=synapse.base_url, headers=headers, limits=limits, timeout=60, trust_env=False
    ) as http:
        gate = asyncio.Semaphore(concurrency)
        prefix = f"seed-{time.monotonic_ns()}"

        async def send(n: int, text: str) -> None:
            async with gate:
                response = await http.put(
                    f"/_matrix/client/v3/rooms/{room_path(room_id)}/send/m.room.message/{prefix}-{n}",
                    json={"msgtype": "m.text", "body": text},
                )
                assert response.status_code == 200, response.text

        await asyncio.gather(*(send(n, text) for n, text in enumerate(texts)))


def apply_diffs(items: list[Any], diffs: Any) -> None:
    """Apply timeline diffs to a plain list, as a UI would."""
    for diff in diffs:
        if diff.op == "reset":
            items[:] = list(diff.items)
        elif diff.op == "insert":
            items.insert(diff.index, diff.item)
        elif diff.op == "update":
            items[diff.index] = diff.item
        elif diff.op == "remove":
            del items[diff.index]
        else:
            raise AssertionError(f"unknown diff {diff.op}")
