"""The search index is built after a batch, not inside it (schema 10): ingest only notes
new messages; ``index_pending`` indexes them in slices; a search indexes what is left
first, so it never misses a stored message; an edit or a redaction that comes before its
message was indexed leaves one entry with the current text, or none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cache_batches import Account, batch, event, joined_room, message

ROOM = "!room:example.org"


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acc = Account(tmp_path / "cache.sqlite3")
    yield acc
    acc.close()


def _count(account: Account, table: str) -> int:
    return int(account.cache.execute_readonly(f"SELECT COUNT(*) FROM {table}")[0][0])


def _edit(event_id: str, target: str, body: str) -> dict[str, Any]:
    return event(
        event_id,
        content={
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


def test_ingest_leaves_the_index_for_later_and_slices_build_it(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message(f"${n}", f"word{n} common") for n in range(5)])}))
    assert _count(account, "message_fts") == 0 and _count(account, "fts_pending") == 5
    assert account.cache.index_pending(2) == 3
    assert _count(account, "message_fts") == 2
    assert account.cache.index_pending(2) == 1
    assert account.cache.index_pending(2) == 0
    assert _count(account, "message_fts") == 5 and _count(account, "fts_pending") == 0
    assert account.cache.index_pending() == 0


def test_a_search_indexes_what_is_pending_first(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1", "the quick fox"), message("$2", "a dog")])}))
    assert [h.event_id for h in account.cache.search_messages(["quick"])] == ["$1"]
    assert _count(account, "fts_pending") == 0
    assert account.cache.indexed_count(ROOM) == 2


def test_an_edit_or_redaction_before_indexing_leaves_the_current_text_once(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$1", "first draft"),
                        _edit("$e", "$1", "final text"),
                        message("$2", "to be removed"),
                        event("$r", "m.room.redaction", content={"redacts": "$2"}, redacts="$2"),
                    ]
                )
            },
        )
    )
    account.cache.index_pending()
    rows = account.cache.execute_readonly("SELECT rowid, body FROM message_fts")
    assert [body for _rowid, body in rows] == ["final text"]
    assert [h.event_id for h in account.cache.search_messages(["final"])] == ["$1"]
    assert account.cache.search_messages(["draft"]) == [] and account.cache.search_messages(["removed"]) == []
