"""The outbox: messages the server has not confirmed, durable across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cache_batches import OWN, Account, batch, joined_room, message

ROOM = "!room:example.org"
OTHER = "!other:example.org"


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acc = Account(tmp_path / "cache.sqlite3")
    yield acc
    acc.close()


def test_add_is_pending_and_durable(tmp_path: Path) -> None:
    account = Account(tmp_path / "cache.sqlite3")
    entry = account.cache.outbox_add(
        "t1", ROOM, "m.room.message", {"msgtype": "m.text", "body": "héllo"}
    )
    account.close()
    assert (entry.txn_id, entry.state, entry.attempts, entry.event_id, entry.error) == (
        "t1",
        "pending",
        0,
        None,
        None,
    )
    reopened = Account(tmp_path / "cache.sqlite3")
    try:
        assert reopened.cache.outbox() == [entry]
    finally:
        reopened.close()


def test_order_by_seq_and_filters(account: Account) -> None:
    for n, room in enumerate([ROOM, OTHER, ROOM, OTHER, ROOM]):
        account.cache.outbox_add(f"t{n}", room, "m.room.message", {"body": str(n)})
    assert [e.txn_id for e in account.cache.outbox()] == ["t0", "t1", "t2", "t3", "t4"]
    seqs = [e.seq for e in account.cache.outbox()]
    assert seqs == sorted(seqs)
    assert [e.txn_id for e in account.cache.outbox(ROOM)] == ["t0", "t2", "t4"]
    account.cache.outbox_set_state("t2", "failed", "no")
    assert [e.txn_id for e in account.cache.outbox(None, ("pending",))] == ["t0", "t1", "t3", "t4"]
    assert [e.txn_id for e in account.cache.outbox(ROOM, ("failed",))] == ["t2"]


def test_transaction_ids_are_unique(account: Account) -> None:
    account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "a"})
    with pytest.raises(Exception, match="UNIQUE"):
        account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "b"})
    assert len(account.cache.outbox()) == 1


def test_attempts_are_counted(account: Account) -> None:
    account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "a"})
    account.cache.outbox_attempt("t1")
    account.cache.outbox_attempt("t1")
    (entry,) = account.cache.outbox()
    assert entry.attempts == 2
    assert entry.state == "pending"


def test_sent_waits_for_the_echo(account: Account) -> None:
    account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "a"})
    assert account.cache.outbox_sent("t1", "$e1") is False
    (entry,) = account.cache.outbox()
    assert (entry.state, entry.event_id) == ("sent", "$e1")
    # Pending-only readers (the send queue) no longer see it.
    assert account.cache.outbox(None, ("pending",)) == []
    result = account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [message("$e1", "a", sender=OWN, unsigned={"transaction_id": "t1"})]
                )
            },
        )
    )
    assert result.echoed_txn_ids == {"t1"}
    assert account.cache.outbox() == []


def test_sent_after_the_echo_removes_the_entry(account: Account) -> None:
    account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "a"})
    # The echo came by sync before the send request returned (no transaction ID on it,
    # as when it was sent from another device session).
    account.ingest(batch("s1", join={ROOM: joined_room([message("$e1", "a", sender=OWN)])}))
    assert [e.txn_id for e in account.cache.outbox()] == ["t1"]
    assert account.cache.outbox_sent("t1", "$e1") is True
    assert account.cache.outbox() == []


def test_failed_then_retried(account: Account) -> None:
    account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "a"})
    account.cache.outbox_set_state("t1", "failed", "not allowed to send here")
    (entry,) = account.cache.outbox()
    assert (entry.state, entry.error) == ("failed", "not allowed to send here")
    account.cache.outbox_set_state("t1", "pending", None)
    (entry,) = account.cache.outbox()
    assert (entry.state, entry.error, entry.txn_id) == ("pending", None, "t1")


def test_remove(account: Account) -> None:
    account.cache.outbox_add("t1", ROOM, "m.room.message", {"body": "a"})
    account.cache.outbox_add("t2", ROOM, "m.room.message", {"body": "b"})
    account.cache.outbox_remove("t1")
    account.cache.outbox_remove("does-not-exist")
    assert [e.txn_id for e in account.cache.outbox()] == ["t2"]


def test_forgetting_a_room_keeps_other_rooms(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room([message("$1")], prev_batch="p"),
                OTHER: joined_room([message("$2")]),
            },
        )
    )
    account.cache.forget_room(ROOM)
    assert account.cache.count_timeline(ROOM) == 0
    assert account.cache.gaps(ROOM) == []
    assert ROOM not in account.cache.load_summaries()
    assert account.cache.count_timeline(OTHER) == 1
