"""The thread list says we took part in a thread we wrote in, even when the server's
``current_user_participated`` says no (Synapse keeps a cached answer from before our reply)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tui_client.engine.dbthread import DatabaseThread
from tui_client.engine.threads import ThreadService, thread_relation
from tui_client.net.http import HomeserverConnection
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache

from .test_thread_list_ignored import BOB, ME, ROOM, _message, _thread


def _reply(event_id: str, sender: str, root: str, ts: int) -> dict[str, Any]:
    event = _message(event_id, sender, "in the thread", ts)
    event["content"]["m.relates_to"] = thread_relation(root, root)
    return event


async def test_a_thread_we_wrote_in_or_started_is_ours_whatever_the_server_says(
    tmp_path: Path,
) -> None:
    chunk = [
        _thread(_message("$answered", BOB, "bob asks", 1), _reply("$b2", BOB, "$answered", 4), 2),
        _thread(_message("$mine", ME, "I ask", 2), _reply("$b3", BOB, "$mine", 5), 1),
        _thread(_message("$other", BOB, "bob again", 3), _reply("$b4", BOB, "$other", 6), 1),
    ]

    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"chunk": chunk})

    db = DatabaseThread()
    cache = db.call(Cache, tmp_path / "cache.sqlite3", own_user_id=ME)
    # Our reply in the first thread, as sync stored it.
    sync = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                ROOM: {
                    "timeline": {
                        "events": [
                            _message("$answered", BOB, "bob asks", 1),
                            _reply("$ours", ME, "$answered", 3),
                            _reply("$elsewhere", BOB, "$other", 3),
                        ]
                    }
                }
            }
        },
    }
    db.call(cache.ingest_sync, parse_sync(sync), {})
    connection = HomeserverConnection(
        "https://hs.example.org", "token", transport=httpx.MockTransport(handle)
    )

    async def no_send(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing is sent")

    service = ThreadService(
        connection,
        db,
        cache,
        lambda update: None,
        user_id=ME,
        decrypt=lambda room_id, events: {},
        enqueue=no_send,
        mark_read=no_send,
    )
    try:
        page = await service.list_threads(ROOM)
        assert [(t.root_id, t.participated) for t in page.threads] == [
            ("$answered", True),
            ("$mine", True),
            ("$other", False),
        ]
    finally:
        await connection.aclose()
        db.call(cache.close)
        db.shutdown()
