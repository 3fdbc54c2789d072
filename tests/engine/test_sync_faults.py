"""The sync loop against a real Synapse, with faults injected at the transport.

Every request goes to the session homeserver through :class:`Wire`; chosen ``/sync``
answers are replaced by rate limits, server errors, dropped connections, bad
payloads or a rejected token.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.cache_key import CACHE_KEY
from tui_client.engine.client import CACHE_FILE, SESSION_FILE, MatrixClient
from tui_client.engine.sync import SyncV2Source
from tui_client.engine.updates import SessionEnded, SyncState, SyncStatus
from tui_client.store.encrypted_db import connect

from ..support.updates import Recorder
from .support import (
    ClientPool,
    Wire,
    create_room,
    is_sync,
    json_response,
    login,
    send_text,
    wait_until,
)


def _first(
    recorder: Recorder, status: SyncStatus, after: float = 0.0
) -> tuple[float, SyncState] | None:
    for at, state in recorder.states():
        if at >= after and state.status is status:
            return at, state
    return None


async def _token(client: MatrixClient) -> str | None:
    return await client.db.run(client.cache.get_meta, "next_batch")


async def _has_event_with_body(client: MatrixClient, room_id: str, body: str) -> bool:
    rows = await client.db.run(
        client.cache.execute_readonly,
        "SELECT json FROM events WHERE room_id = ? AND type = 'm.room.message'",
        (room_id,),
    )
    return any(json.loads(j).get("content", {}).get("body") == body for (j,) in rows)


async def _wait_for_body(
    client: MatrixClient, room_id: str, body: str, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await _has_event_with_body(client, room_id, body):
        assert time.monotonic() < deadline, f"{body!r} never reached the cache"
        await asyncio.sleep(0.05)


async def _client_in_room(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> tuple[MatrixClient, Any, str]:
    user = make_user("sync")
    room_id = create_room(synapse, user, name="Faults")
    send_text(synapse, user, room_id, "before the faults", "before")
    # These faults are /sync v2 answers; sliding sync's own are in test_sliding_sync.py.
    client = pool.add(
        await login(synapse, user, tmp_path / "profile", wire=wire, sync_source=SyncV2Source)
    )
    await _wait_for_body(client, room_id, "before the faults")
    return client, user, room_id


async def test_429_with_retry_after_header_is_waited_out(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, user, room_id = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    recorder = Recorder(client)
    wire.inject(
        is_sync,
        lambda r: json_response(
            429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests"}, {"Retry-After": "1"}
        ),
    )
    await wait_until(
        lambda: _first(recorder, SyncStatus.BACKING_OFF) is not None, what="backing off"
    )
    published_at, state = _first(recorder, SyncStatus.BACKING_OFF)  # type: ignore[misc]
    assert state.retry_at is not None
    assert state.retry_at - published_at >= 0.99
    assert "rate limited" in state.detail
    await wait_until(
        lambda: _first(recorder, SyncStatus.CONNECTED, published_at) is not None,
        what="reconnecting",
    )
    limited = next(r for r in wire.requests if r.injected)
    retry = next(r for r in wire.requests if r.at > limited.at and r.path.endswith("/sync"))
    # The next attempt waited for the server's Retry-After, not less.
    assert retry.at >= state.retry_at - 0.02
    assert retry.at - limited.at >= 0.98
    # Sync works again afterwards.
    send_text(synapse, user, room_id, "after the rate limit", "after-429")
    await _wait_for_body(client, room_id, "after the rate limit")


async def test_429_with_retry_after_ms_is_waited_out(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, _, _ = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    recorder = Recorder(client)
    wire.inject(
        is_sync,
        lambda r: json_response(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}),
    )
    await wait_until(
        lambda: _first(recorder, SyncStatus.BACKING_OFF) is not None, what="backing off"
    )
    published_at, state = _first(recorder, SyncStatus.BACKING_OFF)  # type: ignore[misc]
    assert state.retry_at is not None and state.retry_at - published_at >= 1.49
    assert state.describe(published_at).startswith("retrying in ")
    await wait_until(
        lambda: _first(recorder, SyncStatus.CONNECTED, published_at) is not None,
        timeout=8,
        what="reconnecting",
    )
    limited = next(r for r in wire.requests if r.injected)
    retry = next(r for r in wire.requests if r.at > limited.at and r.path.endswith("/sync"))
    assert retry.at - limited.at >= 1.48


async def test_server_errors_back_off_longer_then_recover(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, user, room_id = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    recorder = Recorder(client)
    wire.inject(is_sync, lambda r: httpx.Response(500, content=b"Internal Server Error"), times=1)
    wire.inject(
        is_sync,
        lambda r: json_response(502, {"errcode": "M_UNKNOWN", "error": "bad gateway"}),
        times=1,
    )
    await wait_until(
        lambda: _first(recorder, SyncStatus.BACKING_OFF) is not None, what="first backoff"
    )
    first_at, first = _first(recorder, SyncStatus.BACKING_OFF)  # type: ignore[misc]
    assert "server error 500" in first.detail
    assert client.sync_loop is not None
    client.sync_loop.retry_now()
    await wait_until(
        lambda: _first(recorder, SyncStatus.BACKING_OFF, first_at + 1e-6) is not None,
        what="second backoff",
    )
    second_at, second = _first(recorder, SyncStatus.BACKING_OFF, first_at + 1e-6)  # type: ignore[misc]
    assert "server error 502" in second.detail
    assert first.retry_at is not None and second.retry_at is not None
    # Exponential: the second wait is longer than the first (jitter included).
    assert second.retry_at - second_at > first.retry_at - first_at
    # The first wait is backoff_delay(1): 2 s with +-25 % jitter (1.5-2.5 s), plus timing slack.
    assert 1.0 <= first.retry_at - first_at <= 3.0
    client.sync_loop.retry_now()
    await wait_until(
        lambda: _first(recorder, SyncStatus.CONNECTED, second_at) is not None, what="recovery"
    )
    assert client.sync_state.status is SyncStatus.CONNECTED
    send_text(synapse, user, room_id, "after the outage", "after-500")
    await _wait_for_body(client, room_id, "after the outage")


async def test_connection_errors_show_offline_then_recover(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, user, room_id = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    recorder = Recorder(client)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    wire.inject(is_sync, refuse, times=2)
    await wait_until(lambda: _first(recorder, SyncStatus.OFFLINE) is not None, what="offline")
    at, state = _first(recorder, SyncStatus.OFFLINE)  # type: ignore[misc]
    assert "could not connect" in state.detail
    assert state.retry_at is not None and state.retry_at > at
    assert "offline" in state.describe(at) and "retrying in" in state.describe(at)
    assert client.sync_loop is not None
    client.sync_loop.retry_now()
    await wait_until(
        lambda: len([s for _, s in recorder.states() if s.status is SyncStatus.OFFLINE]) >= 2,
        what="second failure",
    )
    client.sync_loop.retry_now()
    await wait_until(
        lambda: _first(recorder, SyncStatus.CONNECTED, at) is not None, what="back online"
    )
    send_text(synapse, user, room_id, "back online", "after-offline")
    await _wait_for_body(client, room_id, "back online")


def _integrity(client: MatrixClient) -> str:
    key = client.secrets.get(CACHE_KEY)
    assert key
    db = connect(client.folder / CACHE_FILE, bytes.fromhex(key))
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


async def test_bad_payloads_do_not_corrupt_or_advance(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, user, room_id = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    assert client.sync_loop is not None
    recorder = Recorder(client)
    deep = b'{"next_batch": "deep", "rooms": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bad_answers = [
        (httpx.Response(200, content=b"<html>gateway timeout</html>"), "not JSON"),
        (
            json_response(200, {"rooms": {"join": {room_id: {"timeline": {"events": []}}}}}),
            "no next_batch",
        ),
        (json_response(200, ["a", "list"]), "not a JSON object"),
        (httpx.Response(200, content=deep), "not JSON"),
    ]
    for answer, reason in bad_answers:
        since = len(recorder.updates)
        # What the cache held when the bad answer was fetched (other activity on the
        # shared server may move the token between batches).
        before: dict[str, Any] = {}

        async def bad(
            request: httpx.Request, answer: httpx.Response = answer, before: dict[str, Any] = before
        ) -> httpx.Response:
            before["since"] = request.url.params["since"]
            before["stats"] = await client.db.run(client.cache.stats)
            return answer

        wire.inject(is_sync, bad)
        await wait_until(
            lambda since=since: any(
                isinstance(u, SyncState) and u.status is SyncStatus.BACKING_OFF
                for _, u in recorder.updates[since:]
            ),
            what=f"backoff after a payload with {reason}",
        )
        state = next(
            u
            for _, u in recorder.updates[since:]
            if isinstance(u, SyncState) and u.status is SyncStatus.BACKING_OFF
        )
        assert reason in state.detail
        # Nothing of the bad answer was committed: same token, same rows.
        assert await _token(client) == before["since"]
        assert await client.db.run(client.cache.stats) == before["stats"]
        client.sync_loop.retry_now()
        await wait_until(
            lambda since=since: any(
                isinstance(u, SyncState) and u.status is SyncStatus.CONNECTED
                for _, u in recorder.updates[since:]
            ),
            what="reconnect",
        )
        # The next request asked again from the same token.
        bad_at = next(r.at for r in reversed(wire.requests) if r.injected)
        retry = next(r for r in wire.requests if r.at > bad_at and r.path.endswith("/sync"))
        assert retry.url.params["since"] == before["since"]

    # A real batch with a room full of garbage: the garbage is skipped, the rest kept.
    garbage_token: list[str] = []

    async def garbage(request: httpx.Request) -> httpx.Response:
        real = await wire.forward(request)
        data = real.json()
        garbage_token.append(data["next_batch"])
        data.setdefault("rooms", {}).setdefault("join", {})["!garbage:localhost"] = {
            "timeline": {
                "events": [
                    5,
                    {"no": "event id"},
                    {"event_id": "$typeless", "sender": "@x:localhost"},
                    {
                        "event_id": "$good-among-garbage",
                        "type": "m.room.message",
                        "sender": "@x:localhost",
                        "origin_server_ts": 1,
                        "content": {"msgtype": "m.text", "body": "fine"},
                    },
                    {
                        "event_id": "$huge-ts",
                        "type": "m.room.message",
                        "sender": "@x:localhost",
                        "origin_server_ts": 2**80,
                        "content": {"body": "when?"},
                    },
                ],
                "limited": "yes",
                "prev_batch": 12,
            },
            "state": {"events": "not a list"},
            "ephemeral": {"events": [{"type": "m.receipt", "content": {"$e": "garbage"}}]},
            "summary": {"m.heroes": "nobody", "m.joined_member_count": "many"},
        }
        data["rooms"]["join"]["!not-an-object:localhost"] = ["garbage"]
        data["rooms"]["invite"] = {"!inv:localhost": {"invite_state": {"events": [{"type": 5}]}}}
        data["account_data"] = {
            "events": [{"type": "m.direct", "content": {"@x:localhost": "not a list"}}]
        }
        return json_response(200, data)

    wire.inject(is_sync, garbage)
    await wait_until(
        lambda: bool(garbage_token) and not wire.pending_faults,
        what="garbage batch sent",
    )
    garbage_request = next(r for r in reversed(wire.requests) if r.injected)
    await wait_until(
        lambda: any(r.at > garbage_request.at and r.path.endswith("/sync") for r in wire.requests),
        what="next sync",
    )
    following = next(
        r for r in wire.requests if r.at > garbage_request.at and r.path.endswith("/sync")
    )
    stored = await client.db.run(
        client.cache.load_events, ["$good-among-garbage", "$huge-ts", "$typeless"]
    )
    assert set(stored) == {"$good-among-garbage", "$huge-ts"}
    # The batch was committed with its token: the next request continues from it.
    assert following.url.params["since"] == garbage_token[0]

    # Good batches after it ingest fine.
    send_text(synapse, user, room_id, "after the garbage", "after-garbage")
    await _wait_for_body(client, room_id, "after the garbage")
    assert client.sync_state.status is SyncStatus.CONNECTED
    assert _integrity(client) == "ok"


async def test_soft_logout_keeps_session_and_cache(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, user, room_id = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    recorder = Recorder(client)
    wire.inject(
        is_sync,
        lambda r: json_response(
            401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Token expired", "soft_logout": True}
        ),
    )
    await wait_until(lambda: bool(recorder.of(SessionEnded)), what="session ended")
    (ended,) = recorder.of(SessionEnded)
    assert ended.soft is True
    assert "log in again" in ended.message
    assert client.sync_state.status is SyncStatus.LOGGED_OUT
    folder = client.folder
    assert client.secrets.get("access_token") == client.connection.access_token
    await client.close()
    pool.forget(client)
    assert (folder / SESSION_FILE).exists()
    saved = MatrixClient.saved_session(base_dir=tmp_path / "profile")
    assert saved is not None and saved.user_id == user.user_id
    restored = MatrixClient.restore(base_dir=tmp_path / "profile")
    assert restored is not None
    pool.add(restored)
    await restored.open()
    assert room_id in restored.rooms
    assert await _has_event_with_body(restored, room_id, "before the faults")


async def test_hard_logout_removes_the_token(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, user, _ = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    recorder = Recorder(client)
    wire.inject(
        is_sync,
        lambda r: json_response(
            401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"}
        ),
    )
    await wait_until(lambda: bool(recorder.of(SessionEnded)), what="session ended")
    (ended,) = recorder.of(SessionEnded)
    assert ended.soft is False
    assert client.secrets.get("access_token") is None
    # The loop stopped: no sync request after the rejected one.
    rejected = next(r for r in wire.requests if r.injected)
    await client.close()
    pool.forget(client)
    assert not [r for r in wire.requests if r.at > rejected.at and r.path.endswith("/sync")]
    # The cache is left alone (logging in again as the same user reuses it).
    assert (client.folder / CACHE_FILE).exists()
    assert MatrixClient.restore(base_dir=tmp_path / "profile") is None
    # Who was logged in is still known (to offer logging in again).
    saved = MatrixClient.saved_session(base_dir=tmp_path / "profile")
    assert saved is not None and saved.user_id == user.user_id


async def test_a_rejected_token_on_send_stops_the_queue_without_losing_the_message(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    client, _, room_id = await _client_in_room(synapse, make_user, tmp_path, wire, pool)
    wire.inject(
        lambda r: r.method == "PUT" and "/send/" in r.url.path,
        lambda r: json_response(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "gone"}),
    )
    entry = await client.send_message(room_id, "kept for later")
    await wait_until(lambda: any(r.injected for r in wire.requests), what="send attempt")
    outbox = await client.db.run(client.cache.outbox)
    assert [(e.txn_id, e.state) for e in outbox] == [(entry.txn_id, "pending")]
