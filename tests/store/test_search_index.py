"""The local full-text index (schema 6): what it holds follows the events, their edits,
redactions and decryptions; queries with filters. Since schema 10 new messages are
indexed after their batch (``index_pending``, in slices), and a search indexes what is
left first, so it never misses a stored message."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tui_client.protocol.events import index_event
from tui_client.store import schema
from tui_client.store.cache import Cache, Gap, fts_match

from .cache_batches import OWN, Account, batch, event, joined_room, message

ROOM = "!room:example.org"
OTHER = "!other:example.org"


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acc = Account(tmp_path / "cache.sqlite3")
    yield acc
    acc.close()


def _ids(account: Account, *words: str, **filters: Any) -> list[str]:
    return [h.event_id for h in account.cache.search_messages(list(words), **filters)]


def _edit(
    event_id: str, target: str, body: str, sender: str = "@alice:example.org"
) -> dict[str, Any]:
    return event(
        event_id,
        sender=sender,
        content={
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


def _redaction(event_id: str, target: str, sender: str = "@alice:example.org") -> dict[str, Any]:
    return event(event_id, "m.room.redaction", sender, {"redacts": target}, redacts=target)


def test_plain_messages_are_found_newest_first_with_their_text(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$1", "the quick brown fox"),
                        message("$2", "a lazy dog"),
                        message("$3", "Quick thinking"),
                    ]
                )
            },
        )
    )
    hits = account.cache.search_messages(["quick"])
    assert [h.event_id for h in hits] == ["$3", "$1"]
    assert hits[1].body == "the quick brown fox"
    assert hits[1].room_id == ROOM and hits[1].sender == "@alice:example.org"
    assert _ids(account, "dog") == ["$2"]
    assert _ids(account, "cat") == []
    # Diacritics and case folded; a prefix with '*'.
    assert _ids(account, "QUÍCK") == ["$3", "$1"]
    assert _ids(account, "thin*") == ["$3"]


def test_phrases_and_filters(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$1", "red apple pie", origin_server_ts=1000),
                        message(
                            "$2", "apple red", sender="@bob:example.org", origin_server_ts=2000
                        ),
                    ]
                ),
                OTHER: joined_room([message("$3", "red apple", origin_server_ts=3000)]),
            },
        )
    )
    cache = account.cache
    assert [h.event_id for h in cache.search_messages([], ["red apple"])] == ["$3", "$1"]
    assert _ids(account, "apple", room_ids=[ROOM]) == ["$2", "$1"]
    assert _ids(account, "apple", senders=["@bob:example.org"]) == ["$2"]
    assert _ids(account, "apple", after_ts=2000) == ["$3", "$2"]
    assert _ids(account, "apple", before_ts=2000) == ["$1"]
    assert _ids(account, "apple", limit=1) == ["$3"]
    last = cache.search_messages(["apple"], limit=1)[0]
    assert _ids(account, "apple", older_than=(last.ts, last.seq)) == ["$2", "$1"]


def test_query_text_cannot_inject_fts_syntax(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1", 'say "NEAR" OR not')])}))
    assert fts_match(['"NEAR"', "OR"]) == '"""NEAR""" AND "OR"'
    assert _ids(account, "OR") == ["$1"]
    assert _ids(account, 'NEAR"') == ["$1"]
    assert _ids(account, "body:x") == []
    assert account.cache.search_messages([], []) == []


def test_an_edit_replaces_the_text_and_only_the_latest_counts(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1", "helo wrld")])}))
    account.ingest(batch("s2", join={ROOM: joined_room([_edit("$e1", "$1", "hello world")])}))
    assert _ids(account, "helo") == []
    assert [(h.event_id, h.body) for h in account.cache.search_messages(["hello"])] == [
        ("$1", "hello world")
    ]
    # The edit event itself is never a result.
    account.ingest(batch("s3", join={ROOM: joined_room([_edit("$e2", "$1", "goodbye world")])}))
    assert _ids(account, "hello") == []
    assert _ids(account, "goodbye") == ["$1"]
    assert account.cache.indexed_count() == 1
    # Someone else's "edit" changes nothing.
    account.ingest(
        batch(
            "s4",
            join={ROOM: joined_room([_edit("$e3", "$1", "hijacked", sender="@eve:example.org")])},
        )
    )
    assert _ids(account, "hijacked") == []
    assert _ids(account, "goodbye") == ["$1"]


def test_a_redaction_removes_the_message_and_a_redacted_edit_reverts(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$1", "secret plan"),
                        message("$2", "first draft"),
                        _edit("$e", "$2", "second draft"),
                    ]
                )
            },
        )
    )
    assert _ids(account, "secret") == ["$1"]
    assert _ids(account, "second") == ["$2"]
    account.ingest(
        batch("s2", join={ROOM: joined_room([_redaction("$r1", "$1"), _redaction("$r2", "$e")])})
    )
    assert _ids(account, "secret") == []
    assert _ids(account, "second") == []
    assert _ids(account, "first") == ["$2"]
    assert account.cache.indexed_count() == 1


def test_decrypted_messages_are_indexed_when_their_clear_text_is_stored(account: Account) -> None:
    encrypted = event(
        "$x",
        "m.room.encrypted",
        content={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AAAA"},
    )
    account.ingest(batch("s1", join={ROOM: joined_room([encrypted])}))
    assert account.cache.indexed_count() == 0
    store = account.cache.crypto_store()
    account.cache.begin()
    store.save_decrypted(
        "$x",
        ROOM,
        "sess",
        {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "whispered words"}},
        {},
    )
    account.cache.commit()
    assert _ids(account, "whispered") == ["$x"]
    # An encrypted edit whose clear form arrives first, then its event (back-fill order).
    account.cache.begin()
    store.save_decrypted(
        "$xe",
        ROOM,
        "sess",
        {
            "type": "m.room.message",
            "content": {"body": "* shouted", "m.new_content": {"body": "shouted words"}},
        },
        {},
    )
    account.cache.commit()
    assert _ids(account, "shouted") == []
    edit = event(
        "$xe",
        "m.room.encrypted",
        content={
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "BBBB",
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
        },
    )
    account.ingest(batch("s2", join={ROOM: joined_room([edit])}))
    assert _ids(account, "shouted") == ["$x"]
    assert _ids(account, "whispered") == []
    # A decryption written in a transaction that is rolled back leaves no trace.
    account.ingest(
        batch(
            "s3",
            join={
                ROOM: joined_room([event("$y", "m.room.encrypted", content={"ciphertext": "C"})])
            },
        )
    )
    account.cache.begin()
    store.save_decrypted(
        "$y", ROOM, "sess", {"type": "m.room.message", "content": {"body": "vanishing"}}, {}
    )
    account.cache.rollback()
    assert _ids(account, "vanishing") == []


def test_back_filled_messages_are_indexed_even_with_their_edit_first(account: Account) -> None:
    account.ingest(
        batch("s1", join={ROOM: joined_room([message("$new", "recent")], prev_batch="p0")})
    )
    gap = Gap(ROOM, 0, "p0")
    # /messages dir=b: newest first, so the edit comes before what it edits.
    account.cache.fill_gap(
        gap, [_edit("$e", "$old", "ancient history"), message("$old", "ancient typo")], None, "10"
    )
    assert _ids(account, "ancient") == ["$old"]
    assert _ids(account, "history") == ["$old"]
    assert _ids(account, "typo") == []


def test_forgetting_a_room_empties_its_index(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room([message("$1", "keep")]),
                OTHER: joined_room([message("$2", "keep")]),
            },
        )
    )
    account.cache.forget_room(ROOM)
    assert _ids(account, "keep") == ["$2"]
    assert account.cache.indexed_count(OTHER) == 1
    assert account.cache.indexed_count(ROOM) == 0


def test_migrating_a_version_5_cache_indexes_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 5)
    # Events as a version-5 writer left them (today's writers need today's tables).
    with sqlite3.connect(path, isolation_level=None) as db:
        schema.migrate(db)
        for pos, item in enumerate(
            [message("$1", "before the index"), _edit("$e", "$1", "edited before")]
        ):
            index = index_event(item)
            assert index is not None
            db.execute(
                "INSERT INTO events (event_id, room_id, pos, type, sender, ts, state_key, rel_type, "
                "relates_to, rel_key, txn_id, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (index[0], ROOM, pos, *index[1:], json.dumps(item)),
            )
        assert db.execute("PRAGMA user_version").fetchone()[0] == 5
    monkeypatch.undo()
    cache = Cache(path, own_user_id=OWN)
    try:
        assert cache.schema_found == 5
        assert [h.event_id for h in cache.search_messages(["edited"])] == ["$1"]
        assert cache.search_messages(["index"]) == []
    finally:
        cache.close()


# -- schema 10: the index is built after a batch, not inside it ---------------------------


def _count(account: Account, table: str) -> int:
    return int(account.cache.execute_readonly(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_ingest_leaves_the_index_for_later_and_slices_build_it(account: Account) -> None:
    account.ingest(
        batch(
            "s1", join={ROOM: joined_room([message(f"${n}", f"word{n} common") for n in range(5)])}
        )
    )
    assert _count(account, "message_fts") == 0 and _count(account, "fts_pending") == 5
    assert account.cache.index_pending(2) == 3
    assert _count(account, "message_fts") == 2
    assert account.cache.index_pending(2) == 1
    assert account.cache.index_pending(2) == 0
    assert _count(account, "message_fts") == 5 and _count(account, "fts_pending") == 0
    assert account.cache.index_pending() == 0


def test_a_search_indexes_what_is_pending_first(account: Account) -> None:
    account.ingest(
        batch(
            "s1", join={ROOM: joined_room([message("$1", "the quick fox"), message("$2", "a dog")])}
        )
    )
    assert [h.event_id for h in account.cache.search_messages(["quick"])] == ["$1"]
    assert _count(account, "fts_pending") == 0
    assert account.cache.indexed_count(ROOM) == 2


def test_an_edit_or_redaction_before_indexing_leaves_the_current_text_once(
    account: Account,
) -> None:
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
    assert (
        account.cache.search_messages(["draft"]) == []
        and account.cache.search_messages(["removed"]) == []
    )


def test_migrating_a_version_10_cache_keeps_its_pending_messages_and_drops_row_triggers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 10)
    old = Account(path)
    old.ingest(batch("s1", join={ROOM: joined_room([message("$1", "waiting to be indexed")])}))
    old.close()
    monkeypatch.undo()
    account = Account(path)
    try:
        assert account.cache.schema_found == 10
        triggers = {
            name
            for (name,) in account.cache.execute_readonly(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            )
        }
        assert "fts_pending_added" not in triggers and "message_fts_edit_added" not in triggers
        assert _count(account, "fts_pending") == 1
        assert _ids(account, "waiting") == ["$1"]
        # Written by schema 11: the edit re-indexes its (already indexed) message at once.
        account.ingest(
            batch(
                "s2",
                join={
                    ROOM: joined_room(
                        [_edit("$e", "$1", "indexed at last"), message("$2", "later")]
                    )
                },
            )
        )
        assert _count(account, "fts_pending") == 1
        assert _ids(account, "waiting") == [] and _ids(account, "last") == ["$1"]
        assert _ids(account, "later") == ["$2"]
    finally:
        account.close()


def test_an_edit_of_a_message_indexed_early_while_pending_indexes_it_again(
    account: Account,
) -> None:
    account.ingest(
        batch(
            "s1",
            join={ROOM: joined_room([message("$1", "original"), _edit("$e1", "$1", "first")])},
        )
    )
    # Redacting the edit re-indexes its message at once (a trigger), still pending.
    account.ingest(batch("s2", join={ROOM: joined_room([_redaction("$r", "$e1")])}))
    assert _count(account, "fts_pending") == 1 and _count(account, "message_fts") == 1
    account.ingest(batch("s3", join={ROOM: joined_room([_edit("$e2", "$1", "second")])}))
    assert _ids(account, "second") == ["$1"]
    assert _ids(account, "original") == [] and _ids(account, "first") == []
