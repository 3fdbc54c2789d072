"""Unread counts per thread are kept in the cache (migration 8), as the last sync said them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.store.cache import Cache

from .cache_batches import Account, joined_room, message, sync_response

ROOM = "!room:example.org"
OTHER = "!other:example.org"


def _room(threads: dict[str, tuple[int, int]] | None, **counts: int) -> dict[str, Any]:
    room = joined_room([message("$m" + str(len(counts)), "hello")])
    if counts:
        room["unread_notifications"] = counts
    if threads is not None:
        room["unread_thread_notifications"] = {
            root: {"notification_count": n, "highlight_count": h}
            for root, (n, h) in threads.items()
        }
    return room


def test_thread_counts_survive_a_reopen_and_follow_later_batches(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    account = Account(path)
    result = account.ingest(
        sync_response(
            "s1",
            join={
                ROOM: _room({"$a": (2, 1), "$b": (1, 0)}, notification_count=0),
                OTHER: _room({"$c": (3, 0)}, notification_count=1),
            },
        )
    )
    assert result.thread_counts[ROOM] == {"$a": (2, 1), "$b": (1, 0)}
    account.cache.close()

    reopened = Cache(path)
    assert reopened.thread_unread() == {
        ROOM: {"$a": (2, 1), "$b": (1, 0)},
        OTHER: {"$c": (3, 0)},
    }
    # Read here: that thread is forgotten until sync says otherwise.
    reopened.clear_thread_unread(ROOM, "$b")
    assert reopened.thread_unread()[ROOM] == {"$a": (2, 1)}
    reopened.close()

    account = Account(path)
    # The room's counts came with no thread left unread: none kept. A room whose counts
    # did not come keeps its threads.
    account.ingest(sync_response("s2", join={ROOM: _room({}, notification_count=0)}))
    account.ingest(sync_response("s3", join={OTHER: _room(None)}))
    assert account.cache.thread_unread() == {OTHER: {"$c": (3, 0)}}
    account.cache.forget_room(OTHER)
    assert account.cache.thread_unread() == {}
    account.cache.close()
