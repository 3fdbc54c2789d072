"""Search leaves ignored users out (m.ignored_user_list): their messages are not found in
the local index nor taken from the server's /search, they are skipped around a result
(cache and /context), and a reply's quote of their words neither matches nor shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.cache_batches import Account, batch, joined_room, message
from tui_client.engine.dbthread import DatabaseThread
from tui_client.engine.search import SearchResult, SearchService
from tui_client.protocol import requests as api

ROOM = "!plain:example.org"
EVE = "@eve:example.org"
BOB = "@bob:example.org"


class FakeServer:
    """Answers /search and /context the way Synapse would, ignored users included."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def send(self, request: api.Request, *, wait_on_rate_limit: bool = True) -> Any:
        self.asked.append(request.path)
        if request.path.endswith("/search"):
            results = [
                {"rank": 1.0, "result": _event("$s-eve", EVE, "pears from eve on the server")},
                {"rank": 0.5, "result": _event("$s-bob", BOB, "pears from bob on the server")},
            ]
            return {"search_categories": {"room_events": {"results": results, "count": 2}}}
        if "/context/" in request.path:
            return {
                "event": _event("$s-bob", BOB, "pears from bob on the server"),
                "events_before": [
                    _event("$c-eve1", EVE, "eve just before"),
                    _event("$c-bob0", BOB, "bob before eve"),
                ],
                "events_after": [
                    _event("$c-eve2", EVE, "eve just after"),
                    _event("$c-bob2", BOB, "bob after eve"),
                ],
            }
        return {}


def _event(event_id: str, sender: str, body: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": ROOM,
        "sender": sender,
        "type": "m.room.message",
        "origin_server_ts": 1_700_000_000_000 if "s-" in event_id else 1_600_000_000_000,
        "content": {"msgtype": "m.text", "body": body},
    }


@pytest.fixture
async def world(
    tmp_path: Path,
) -> AsyncIterator[tuple[Account, SearchService, FakeServer, set[str]]]:
    account = Account(tmp_path / "cache.sqlite3")
    reply = message(
        "$reply",
        "> <@eve:example.org> secret plans for the picnic\n\nno thanks",
        sender=BOB,
    )
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$a", "apples and pears from alice"),
                        message("$e", "apples from eve", sender=EVE),
                        message("$b", "apples from bob", sender=BOB),
                        reply,
                    ]
                )
            },
        )
    )
    db = DatabaseThread()
    server = FakeServer()
    ignored: set[str] = set()
    service = SearchService(
        account.cache,
        db,
        server,
        rooms=lambda: account.rooms,
        ignored=lambda: frozenset(ignored),
    )
    yield account, service, server, ignored
    db.shutdown()
    account.close()


async def test_ignored_users_are_not_found_locally_nor_from_the_server(world: Any) -> None:
    _account, service, server, ignored = world
    found = await service.search("apples", server=False)
    assert [r.event_id for r in found.results] == ["$b", "$e", "$a"]
    ignored.add(EVE)
    found = await service.search("apples", server=False)
    assert [r.event_id for r in found.results] == ["$b", "$a"]
    found = await service.search("pears")
    assert any(p.endswith("/search") for p in server.asked)
    assert sorted(r.event_id for r in found.results) == ["$a", "$s-bob"]


async def test_around_a_result_ignored_users_are_skipped(world: Any) -> None:
    _account, service, server, ignored = world
    ignored.add(EVE)
    bob = SearchResult("$b", ROOM, BOB, 0, "apples from bob", "local")
    around = await service.around(bob)
    assert around.before is not None and around.before.event_id == "$a"  # not eve's $e
    assert around.after is not None and around.after.event_id == "$reply"
    assert around.after.body == "no thanks"  # the quote of eve's words is not shown
    # A server result the cache does not hold: /context, eve's messages skipped.
    far = SearchResult("$s-bob", ROOM, BOB, 0, "pears from bob on the server", "server")
    around = await service.around(far)
    assert any("/context/" in p for p in server.asked)
    assert around.before is not None and around.before.body == "bob before eve"
    assert around.after is not None and around.after.body == "bob after eve"


async def test_a_reply_is_not_found_by_the_words_it_quotes(world: Any) -> None:
    _account, service, _server, ignored = world
    ignored.add(EVE)
    assert [r.event_id for r in (await service.search("picnic", server=False)).results] == []
    found = await service.search("thanks", server=False)
    assert [(r.event_id, r.body) for r in found.results] == [("$reply", "no thanks")]
