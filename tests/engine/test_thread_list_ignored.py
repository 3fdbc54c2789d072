"""The thread list leaves out ignored users: a thread they started is not listed, and
their reply is not shown as a thread's latest (the server is not trusted to filter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tui_client.engine.dbthread import DatabaseThread
from tui_client.engine.threads import ThreadService
from tui_client.net.http import HomeserverConnection
from tui_client.store.cache import Cache

ME = "@me:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:example.org"
ROOM = "!room:example.org"


def _message(event_id: str, sender: str, body: str, ts: int, **unsigned: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "m.room.message",
        "sender": sender,
        "origin_server_ts": ts,
        "room_id": ROOM,
        "content": {"msgtype": "m.text", "body": body},
        "unsigned": unsigned,
    }


def _thread(root: dict[str, Any], latest: dict[str, Any], count: int) -> dict[str, Any]:
    root["unsigned"] = {
        "m.relations": {
            "m.thread": {"latest_event": latest, "count": count, "current_user_participated": False}
        }
    }
    return root


CHUNK = [
    _thread(
        _message("$bob-root", BOB, "bob starts", 10), _message("$c1", CAROL, "carol answers", 11), 1
    ),
    _thread(
        _message("$carol-root", CAROL, "carol starts", 5),
        _message("$b1", BOB, "bob answers", 12),
        2,
    ),
    _thread(_message("$my-root", ME, "mine", 1), _message("$c2", CAROL, "carol here", 3), 1),
]


async def test_thread_list_drops_ignored_roots_and_latest_replies(tmp_path: Path) -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/threads")
        return httpx.Response(200, json={"chunk": CHUNK})

    ignored = {BOB}
    db = DatabaseThread()
    cache = db.call(Cache, tmp_path / "cache.sqlite3", own_user_id=ME)
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
        hidden_sender=ignored.__contains__,
    )
    try:
        page = await service.list_threads(ROOM)
        assert [t.root_id for t in page.threads] == ["$carol-root", "$my-root"]
        carol = page.threads[0]
        assert carol.latest_id is None and carol.latest_sender is None and carol.latest_body is None
        assert carol.count == 2  # the server's count stays
        assert page.threads[1].latest_body == "carol here"

        ignored.clear()  # asked live: unignored, he is listed again
        page = await service.list_threads(ROOM)
        assert [t.root_id for t in page.threads] == ["$bob-root", "$carol-root", "$my-root"]
        assert page.threads[1].latest_sender == BOB
    finally:
        await connection.aclose()
        db.call(cache.close)
        db.shutdown()
