"""The local index around one result: the messages before and after it in its room (their
current text, encrypted ones in clear), and ignored senders left out of searches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cache_batches import Account, batch, event, joined_room, message

ROOM = "!room:example.org"
OTHER = "!other:example.org"
EVE = "@eve:example.org"


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acc = Account(tmp_path / "cache.sqlite3")
    yield acc
    acc.close()


def test_neighbours_are_the_messages_around_in_the_same_room(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$1", "first words"),
                        event(
                            "$r",
                            "m.reaction",
                            content={
                                "m.relates_to": {
                                    "rel_type": "m.annotation",
                                    "event_id": "$1",
                                    "key": "x",
                                }
                            },
                        ),
                        message("$2", "the middle one"),
                        message("$e", "eve says hush", sender=EVE),
                        message("$3", "last words"),
                    ]
                ),
                OTHER: joined_room([message("$o", "elsewhere")]),
            },
        )
    )
    cache = account.cache
    pair = cache.message_neighbours(ROOM, "$2")
    assert pair is not None
    before, after = pair
    assert before is not None and (before.event_id, before.body) == ("$1", "first words")
    assert after is not None and (after.event_id, after.body) == ("$e", "eve says hush")
    # An ignored sender is skipped: the next message is the one after hers.
    pair = cache.message_neighbours(ROOM, "$2", [EVE])
    assert pair is not None and pair[1] is not None and pair[1].event_id == "$3"
    # The ends of the room, and an event the cache does not hold.
    first = cache.message_neighbours(ROOM, "$1")
    assert first is not None and first[0] is None
    assert first[1] is not None and first[1].event_id == "$2"  # the reaction is no message
    last = cache.message_neighbours(ROOM, "$3")
    assert last is not None and last[1] is None
    assert cache.message_neighbours(ROOM, "$nowhere") is None
    assert cache.message_neighbours(OTHER, "$2") is None


def test_decrypted_neighbours_are_in_clear(account: Account) -> None:
    encrypted = event(
        "$x", "m.room.encrypted", content={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AA"}
    )
    account.ingest(
        batch("s1", join={ROOM: joined_room([encrypted, message("$2", "after the secret")])})
    )
    store = account.cache.crypto_store()
    account.cache.begin()
    store.save_decrypted(
        "$x",
        ROOM,
        "sess",
        {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "the secret"}},
        {},
    )
    account.cache.commit()
    pair = account.cache.message_neighbours(ROOM, "$2")
    assert pair is not None and pair[0] is not None and pair[0].body == "the secret"


def test_ignored_senders_are_not_found(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [
                        message("$a", "apples from alice"),
                        message("$e", "apples from eve", sender=EVE),
                    ]
                )
            },
        )
    )
    cache = account.cache
    assert [h.event_id for h in cache.search_messages(["apples"])] == ["$e", "$a"]
    assert [h.event_id for h in cache.search_messages(["apples"], exclude_senders=[EVE])] == ["$a"]
    # The page limit counts what is found, not what is left out.
    assert [
        h.event_id for h in cache.search_messages(["apples"], exclude_senders=[EVE], limit=1)
    ] == ["$a"]
