"""A first sync (a cache holding no event and no thread counts) asks nothing per room
that it alone could not have written: no timeline position is looked up, no room's
thread counts are cleared but those the response itself gave; later batches still do
both, and what is stored is the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.protocol.sync import parse_sync

from .cache_batches import Account, joined_room, message, sync_response

ROOMS = 5


def _room(index: int, batch: int, threads: dict[str, int]) -> dict[str, Any]:
    room = joined_room(
        [message(f"$r{index}-b{batch}-{n}") for n in range(3)], prev_batch=f"p{index}-{batch}"
    )
    room["unread_notifications"] = {"notification_count": 1, "highlight_count": 0}
    room["unread_thread_notifications"] = {
        root: {"notification_count": count, "highlight_count": 0} for root, count in threads.items()
    }
    return room


def _response(batch: int, threads: dict[str, int]) -> dict[str, Any]:
    join = {f"!r{i}:x": _room(i, batch, threads) for i in range(ROOMS)}
    return sync_response(f"s{batch}", join=join)


def _statements(account: Account, response: dict[str, Any]) -> list[str]:
    statements: list[str] = []
    account.cache._db.set_trace_callback(statements.append)
    try:
        account.ingest(response)
    finally:
        account.cache._db.set_trace_callback(None)
    return statements


def _counted(statements: list[str]) -> tuple[int, int]:
    positions = sum(s.startswith("SELECT MAX(pos) FROM events WHERE room_id") for s in statements)
    clears = sum(s.startswith("DELETE FROM thread_unread WHERE room_id") for s in statements)
    return positions, clears


def test_a_first_sync_asks_nothing_per_room_of_an_empty_cache(tmp_path: Path) -> None:
    account = Account(tmp_path / "cache.sqlite3")
    assert _counted(_statements(account, _response(1, {"$t1": 2}))) == (0, 0)
    assert account.cache.thread_unread() == {f"!r{i}:x": {"$t1": (2, 0)} for i in range(ROOMS)}
    # The next batch continues each timeline from the cache and replaces the counts.
    assert _counted(_statements(account, _response(2, {"$t2": 4}))) == (ROOMS, ROOMS)
    assert account.cache.thread_unread() == {f"!r{i}:x": {"$t2": (4, 0)} for i in range(ROOMS)}
    assert account.timeline_ids("!r0:x") == [f"$r0-b{b}-{n}" for b in (1, 2) for n in range(3)]
    account.close()


def test_a_room_twice_in_a_first_sync_keeps_its_last_counts(tmp_path: Path) -> None:
    # Handed over in two slices (a malformed response naming the room twice): the counts
    # the first slice wrote are the batch's own, replaced by the second's.
    account = Account(tmp_path / "cache.sqlite3")
    first = parse_sync(_response(1, {"$t1": 2, "$t2": 1}))
    again = parse_sync(_response(1, {"$t1": 3}))
    again.joined = again.joined[:1]
    for room in again.joined[0].timeline:
        room["event_id"] += "-again"
    result = account.cache.ingest_slices(lambda: (first, again), account.rooms)
    assert result.next_batch == "s1"
    counts = account.cache.thread_unread()
    assert counts["!r0:x"] == {"$t1": (3, 0)} and counts["!r1:x"] == {"$t1": (2, 0), "$t2": (1, 0)}
    # Its second timeline continued from the first (positions of the batch's own rows).
    assert account.timeline_ids("!r0:x")[3:] == [f"$r0-b1-{n}-again" for n in range(3)]
    account.close()
