"""Unread counts over sliding sync, the default where Synapse offers it, against Synapse.

Synapse's sliding sync sends ``notification_count: 0`` and ``highlight_count: 0`` for every
room and no counts per thread; the client counts from the push rules over its cache, and
fetches history down to our receipt when the 10 events a room comes with do not reach
it. The counts must be those ``/sync`` v2 gives (the server's own), threads included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient

from ..conftest import MakeUser
from ..engine.support import ClientPool, create_room, join, login, send_text, wait_until
from .receipts_support import q


def _send(
    synapse: SynapseServer, user: RegisteredUser, room: str, content: dict[str, Any], txn: str
) -> str:
    status, answer = synapse.request_json(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn}",
        content,
        user.access_token,
    )
    assert status == 200, answer
    return str(answer["event_id"])


def _receipt(
    synapse: SynapseServer,
    user: RegisteredUser,
    room: str,
    event_id: str,
    thread: str | None = None,
) -> None:
    body = {"thread_id": thread} if thread else {}
    status, answer = synapse.request_json(
        "POST",
        f"/_matrix/client/v3/rooms/{q(room)}/receipt/m.read/{q(event_id)}",
        body,
        user.access_token,
    )
    assert status == 200, answer


def _in_thread(root: str, body: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        },
    }


def _counts(client: MatrixClient, room: str) -> tuple[int, int, dict[str, tuple[int, int]]]:
    summary = client.rooms.get(room)
    if summary is None:
        return (-1, -1, {})
    return summary.notification_count, summary.highlight_count, client.threads.unread_in(room)


async def test_counts_over_sliding_sync_are_the_servers_v2_counts(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, pool: ClientPool
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    busy = create_room(synapse, bob, invite=[alice.user_id], name="Busy")
    read = create_room(synapse, bob, invite=[alice.user_id], name="Read")
    join(synapse, alice, busy)
    join(synapse, alice, read)
    mark = send_text(synapse, bob, busy, "read up to here", "m0")
    _receipt(synapse, alice, busy, mark)
    # More unread than the 10 events a room comes with: 20 messages, a mention of alice,
    # a thread root, then 3 replies in its thread (one of them read in the thread) and 2 in another.
    for n in range(20):
        send_text(synapse, bob, busy, f"unread {n}", f"u{n}")
    _send(
        synapse,
        bob,
        busy,
        {
            "msgtype": "m.text",
            "body": f"hey {alice.user_id}",
            "m.mentions": {"user_ids": [alice.user_id]},
        },
        "mention",
    )
    root = send_text(synapse, bob, busy, "a thread", "root")
    other = send_text(synapse, bob, busy, "another thread", "root2")
    replies = [_send(synapse, bob, busy, _in_thread(root, f"reply {n}"), f"t{n}") for n in range(4)]
    _receipt(synapse, alice, busy, replies[0], thread=root)
    for n in range(2):
        _send(synapse, bob, busy, _in_thread(other, f"other {n}"), f"o{n}")
    last = send_text(synapse, bob, read, "all read", "r0")
    _receipt(synapse, alice, read, last)

    # The server's counts: a v2 session.
    v2 = pool.add(await login(synapse, alice, tmp_path / "v2", start=False, long_poll_ms=500))
    await v2.set_sliding_sync(False)
    v2.start()
    await v2.wait_synced()
    assert v2.sync_mode == "sync v2"
    expected = _counts(v2, busy)
    # 23 in the main timeline, 3 + 2 in threads; the mention highlights.
    assert expected == (28, 1, {root: (3, 0), other: (2, 0)}), expected
    assert _counts(v2, read) == (0, 0, {})

    # The default: sliding sync, with the same counts once the history down to the receipt came.
    client = pool.add(await login(synapse, alice, tmp_path / "sliding", long_poll_ms=500))
    assert client.sync_mode == "sliding sync"
    try:
        await wait_until(lambda: _counts(client, busy) == expected, 30, f"v2's counts {expected}")
    except AssertionError as error:
        raise AssertionError(f"{error}; counted {_counts(client, busy)}") from None
    assert _counts(client, read) == (0, 0, {})

    # Live: a new reply in the thread counts there, a new message in the room; reading the
    # thread (a threaded receipt) takes its replies off, not the room's main messages.
    _send(synapse, bob, busy, _in_thread(root, "reply live"), "t-live")
    await wait_until(
        lambda: _counts(client, busy)[2].get(root) == (4, 0), 30, "the live reply counted"
    )
    assert _counts(client, busy)[:2] == (29, 1)
    await client.threads.open(busy, root)
    await client.threads.mark_read(busy, root)
    await wait_until(
        lambda: _counts(client, busy) == (25, 1, {other: (2, 0)}), 30, "the thread read"
    )

    # After a restart from the cache (before any sync) the counts are still there.
    folder = tmp_path / "sliding"
    await client.close()
    pool.forget(client)
    restored = MatrixClient.restore(base_dir=folder)
    assert restored is not None
    pool.add(restored)
    await restored.open()
    assert _counts(restored, busy) == (25, 1, {other: (2, 0)})
