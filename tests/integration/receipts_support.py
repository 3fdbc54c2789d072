"""What the server says of receipts and presence, read as the test's users (no client code)."""

from __future__ import annotations

import itertools
import json
import urllib.parse

from tui_client.devtools.synapse import RegisteredUser, SynapseServer


def q(value: str) -> str:
    """One path segment."""
    return urllib.parse.quote(value, safe="")


def say(synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, txn: str) -> str:
    """Send a text message as ``user``; its event ID."""
    path = f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{txn}"
    status, answer = synapse.request_json(
        "PUT", path, {"msgtype": "m.text", "body": body}, user.access_token
    )
    assert status == 200, answer
    return str(answer["event_id"])


def fully_read(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> str | None:
    """``user``'s fully-read marker in the room (room account data), or None."""
    path = f"/_matrix/client/v3/user/{q(user.user_id)}/rooms/{q(room_id)}/account_data/m.fully_read"
    status, body = synapse.request_json("GET", path, None, user.access_token)
    if status == 404:
        return None
    assert status == 200, body
    return str(body["event_id"])


_nonces = itertools.count()


def receipts_seen_by(
    synapse: SynapseServer, viewer: RegisteredUser, room_id: str, reader: str
) -> dict[str, str]:
    """The receipts of ``reader`` in the room as ``viewer``'s fresh /sync shows them:
    receipt type -> event ID (a viewer sees another's ``m.read``, never their ``m.read.private``)."""
    # Synapse answers the same initial /sync from a cache for a while: each filter is new.
    nonce = f"x.test.nonce.{next(_nonces)}"
    sync_filter = json.dumps(
        {
            "room": {"rooms": [room_id], "timeline": {"limit": 1}},
            "presence": {"types": []},
            "account_data": {"not_types": [nonce]},
        }
    )
    status, body = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/sync?timeout=0&filter={q(sync_filter)}",
        None,
        viewer.access_token,
    )
    assert status == 200, body
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    found: dict[str, str] = {}
    for event in room.get("ephemeral", {}).get("events", []):
        if event.get("type") != "m.receipt":
            continue
        for event_id, by_type in event["content"].items():
            for receipt_type, by_user in by_type.items():
                if reader in by_user:
                    found[receipt_type] = event_id
    return found


def presence_of(synapse: SynapseServer, viewer: RegisteredUser, user_id: str) -> str:
    """``user_id``'s presence as ``viewer`` reads it (GET /presence/{userId}/status)."""
    status, body = synapse.request_json(
        "GET", f"/_matrix/client/v3/presence/{q(user_id)}/status", None, viewer.access_token
    )
    assert status == 200, body
    return str(body["presence"])


def receipts_by_thread(
    synapse: SynapseServer, viewer: RegisteredUser, room_id: str, reader: str
) -> dict[tuple[str, str | None], str]:
    """Like :func:`receipts_seen_by`, keyed by (receipt type, thread ID or None when unthreaded)."""
    nonce = f"x.test.nonce.{next(_nonces)}"
    sync_filter = json.dumps(
        {
            "room": {"rooms": [room_id], "timeline": {"limit": 1}},
            "presence": {"types": []},
            "account_data": {"not_types": [nonce]},
        }
    )
    status, body = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/sync?timeout=0&filter={q(sync_filter)}",
        None,
        viewer.access_token,
    )
    assert status == 200, body
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    found: dict[tuple[str, str | None], str] = {}
    for event in room.get("ephemeral", {}).get("events", []):
        if event.get("type") != "m.receipt":
            continue
        for event_id, by_type in event["content"].items():
            for receipt_type, by_user in by_type.items():
                if reader in by_user:
                    found[(receipt_type, by_user[reader].get("thread_id"))] = event_id
    return found
