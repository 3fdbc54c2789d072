"""Ingesting crafted sync batches: gaps, identity by event ID, redactions, receipts, DMs,
invites, malformed events and room names, checked in the database itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tui_client.store.cache import GAP_SPACE, Gap

from .cache_batches import (
    OWN,
    Account,
    batch,
    create_event,
    event,
    joined_room,
    message,
    state,
)

ROOM = "!room:example.org"


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acc = Account(tmp_path / "cache.sqlite3")
    yield acc
    acc.close()


def _positions(account: Account, room_id: str = ROOM) -> list[tuple[int, str]]:
    return [
        (p, e)
        for p, e in account.cache.execute_readonly(
            "SELECT pos, event_id FROM events WHERE room_id = ? AND pos IS NOT NULL ORDER BY pos",
            (room_id,),
        )
    ]


# -- gaps -------------------------------------------------------------------------


def test_first_sight_with_prev_batch_gets_a_top_gap(account: Account) -> None:
    result = account.ingest(
        batch("s1", join={ROOM: joined_room([message("$1"), message("$2")], prev_batch="p0")})
    )
    assert account.cache.gaps(ROOM) == [Gap(ROOM, 0, "p0")]
    assert _positions(account) == [(0, "$1"), (1, "$2")]
    assert [s.pos for s in result.new_events[ROOM]] == [0, 1]
    assert ROOM not in result.limited_rooms
    assert account.cache.sync_token == "s1"


def test_first_sight_without_prev_batch_has_no_gap(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([create_event("$c", "11"), message("$1")])}))
    assert account.cache.gaps(ROOM) == []
    stored, gap = account.cache.load_before(ROOM, None, 10)
    assert [s.event["event_id"] for s in stored] == ["$c", "$1"]
    assert gap is None


def test_following_batches_continue_the_timeline(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1")], prev_batch="p0")}))
    account.ingest(
        batch("s2", join={ROOM: joined_room([message("$2"), message("$3")], prev_batch="p1")})
    )
    # Not limited: no new gap, positions contiguous.
    assert account.cache.gaps(ROOM) == [Gap(ROOM, 0, "p0")]
    assert _positions(account) == [(0, "$1"), (1, "$2"), (2, "$3")]


def test_limited_timeline_leaves_a_gap_below_the_new_events(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1"), message("$2")])}))
    result = account.ingest(
        batch(
            "s2",
            join={
                ROOM: joined_room([message("$10"), message("$11")], limited=True, prev_batch="p9")
            },
        )
    )
    assert result.limited_rooms == {ROOM}
    start = 1 + GAP_SPACE
    assert account.cache.gaps(ROOM) == [Gap(ROOM, start, "p9")]
    assert _positions(account) == [(0, "$1"), (1, "$2"), (start, "$10"), (start + 1, "$11")]
    # Reading back from the live end stops at the gap and reports it.
    stored, gap = account.cache.load_before(ROOM, None, 50)
    assert [s.event["event_id"] for s in stored] == ["$10", "$11"]
    assert gap == Gap(ROOM, start, "p9")
    # Below the gap the older events are still there, with no gap under them.
    older, below = account.cache.load_before(ROOM, start - 1, 50)
    assert [s.event["event_id"] for s in older] == ["$1", "$2"]
    assert below is None


def test_limited_timeline_drops_sent_entries_waiting_for_their_echo(account: Account) -> None:
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1")])}))
    account.cache.outbox_add("t-sent", ROOM, "m.room.message", {"body": "a"})
    account.cache.outbox_sent("t-sent", "$lost-in-gap")
    account.cache.outbox_add("t-pending", ROOM, "m.room.message", {"body": "b"})
    account.ingest(
        batch("s2", join={ROOM: joined_room([message("$9")], limited=True, prev_batch="p8")})
    )
    assert [e.txn_id for e in account.cache.outbox()] == ["t-pending"]


# -- identity by event ID ------------------------------------------------------------


def test_reingesting_the_same_events_does_not_duplicate_them(account: Account) -> None:
    events = [message("$1"), message("$2"), state("$s", "m.room.topic", "", {"topic": "t"})]
    account.ingest(batch("s1", join={ROOM: joined_room(events, prev_batch="p0")}))
    before = _positions(account)
    result = account.ingest(batch("s2", join={ROOM: joined_room(events, prev_batch="p0")}))
    assert _positions(account) == before
    assert account.cache.stats()["events"] == 3
    assert account.cache.count_timeline(ROOM) == 3
    assert account.cache.sync_token == "s2"
    # Nothing new to show either.
    assert result.new_events.get(ROOM, []) == []


def test_state_block_events_get_a_position_when_seen_in_the_timeline(account: Account) -> None:
    member = state(
        "$m", "m.room.member", "@alice:example.org", {"membership": "join", "displayname": "Alice"}
    )
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1")], state_events=[member])}))
    assert account.cache.count_timeline(ROOM) == 1
    assert [e["event_id"] for e in account.cache.load_state(ROOM, "m.room.member")] == ["$m"]
    account.ingest(batch("s2", join={ROOM: joined_room([member, message("$2")])}))
    assert [e for _, e in _positions(account)] == ["$1", "$m", "$2"]
    assert account.cache.stats()["events"] == 3


def test_timeline_state_replaces_current_state(account: Account) -> None:
    account.ingest(
        batch("s1", join={ROOM: joined_room([state("$t1", "m.room.topic", "", {"topic": "old"})])})
    )
    account.ingest(
        batch("s2", join={ROOM: joined_room([state("$t2", "m.room.topic", "", {"topic": "new"})])})
    )
    topics = account.cache.load_state(ROOM, "m.room.topic")
    assert [e["content"]["topic"] for e in topics] == ["new"]
    assert account.rooms[ROOM].topic == "new"


# -- redactions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "redacts_in_content", "keeps_invite_level"),
    [("11", True, True), ("10", False, False), ("1", False, False)],
)
def test_redaction_in_the_same_batch_redacts_the_stored_target(
    account: Account, version: str, redacts_in_content: bool, keeps_invite_level: bool
) -> None:
    target = message("$target", "secret words", unsigned={"age": 5})
    levels = state("$pl", "m.room.power_levels", "", {"ban": 50, "invite": 0, "custom": 1})
    redaction_content = {"redacts": "$target"} if redacts_in_content else {}
    redaction_extra = {} if redacts_in_content else {"redacts": "$target"}
    redaction = event(
        "$red", "m.room.redaction", "@mod:example.org", redaction_content, **redaction_extra
    )
    pl_content = {"redacts": "$pl"} if redacts_in_content else {}
    pl_extra = {} if redacts_in_content else {"redacts": "$pl"}
    pl_redaction = event("$red-pl", "m.room.redaction", "@mod:example.org", pl_content, **pl_extra)
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [create_event("$c", version), target, levels, redaction, pl_redaction]
                )
            },
        )
    )
    stored = account.stored("$target")
    assert stored is not None
    assert stored["content"] == {}
    assert stored["unsigned"]["redacted_because"]["event_id"] == "$red"
    assert "age" not in stored["unsigned"]
    pl = account.stored("$pl")
    assert pl is not None
    expected = {"ban": 50, "invite": 0} if keeps_invite_level else {"ban": 50}
    assert pl["content"] == expected
    rows = account.cache.execute_readonly(
        "SELECT event_id, redacted_by FROM events WHERE event_id IN ('$target', '$pl') ORDER BY event_id"
    )
    assert rows == [("$pl", "$red-pl"), ("$target", "$red")]
    # The redaction itself is kept in the timeline.
    assert "$red" in [e for _, e in _positions(account)]


def test_redaction_of_an_earlier_batch_and_of_an_unknown_event(account: Account) -> None:
    account.ingest(
        batch("s1", join={ROOM: joined_room([create_event("$c", "11"), message("$old", "x")])})
    )
    account.ingest(
        batch(
            "s2",
            join={
                ROOM: joined_room(
                    [
                        event("$r1", "m.room.redaction", content={"redacts": "$old"}),
                        event("$r2", "m.room.redaction", content={"redacts": "$never-seen"}),
                    ]
                )
            },
        )
    )
    old = account.stored("$old")
    assert old is not None and old["content"] == {}
    assert account.cache.sync_token == "s2"


def test_a_redaction_never_reaches_another_room(account: Account) -> None:
    other = "!other:example.org"
    account.ingest(
        batch(
            "s1", join={other: joined_room([create_event("$oc", "11"), message("$victim", "stay")])}
        )
    )
    account.ingest(
        batch(
            "s2",
            join={
                ROOM: joined_room(
                    [
                        create_event("$c", "11"),
                        event("$r", "m.room.redaction", content={"redacts": "$victim"}),
                    ]
                )
            },
        )
    )
    victim = account.stored("$victim")
    assert victim is not None and victim["content"]["body"] == "stay"


def test_redacted_relations_no_longer_count(account: Account) -> None:
    reaction = event(
        "$like",
        "m.reaction",
        content={"m.relates_to": {"rel_type": "m.annotation", "event_id": "$1", "key": "+1"}},
    )
    account.ingest(
        batch("s1", join={ROOM: joined_room([create_event("$c", "11"), message("$1"), reaction])})
    )
    assert [e["event_id"] for e in account.cache.load_relations(["$1"])] == ["$like"]
    account.ingest(
        batch(
            "s2",
            join={
                ROOM: joined_room([event("$r", "m.room.redaction", content={"redacts": "$like"})])
            },
        )
    )
    assert account.cache.load_relations(["$1"]) == []


# -- receipts --------------------------------------------------------------------------


def _receipt(event_id: str, user: str, ts: int, receipt_type: str = "m.read") -> dict[str, object]:
    return {"type": "m.receipt", "content": {event_id: {receipt_type: {user: {"ts": ts}}}}}


def test_receipts_upsert_per_user(account: Account) -> None:
    bob = "@bob:example.org"
    result = account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [message("$1"), message("$2")], ephemeral=[_receipt("$1", bob, 100)]
                )
            },
        )
    )
    assert result.receipts == {ROOM: [(bob, "$1")]}
    account.ingest(batch("s2", join={ROOM: joined_room([], ephemeral=[_receipt("$2", bob, 200)])}))
    assert account.cache.receipts_for(ROOM) == {bob: "$2"}
    # An older receipt arriving late does not move the marker back.
    account.ingest(batch("s3", join={ROOM: joined_room([], ephemeral=[_receipt("$1", bob, 150)])}))
    assert account.cache.receipts_for(ROOM) == {bob: "$2"}
    assert account.cache.stats()["receipts"] == 1
    # Another receipt type is its own row.
    account.ingest(
        batch(
            "s4",
            join={ROOM: joined_room([], ephemeral=[_receipt("$1", bob, 300, "m.read.private")])},
        )
    )
    assert account.cache.stats()["receipts"] == 2


def test_typing_is_reported_not_stored(account: Account) -> None:
    typing = {"type": "m.typing", "content": {"user_ids": ["@bob:example.org", 7]}}
    result = account.ingest(batch("s1", join={ROOM: joined_room([], ephemeral=[typing])}))
    assert result.typing == {ROOM: ["@bob:example.org"]}


# -- account data, DMs, invites, leaving ------------------------------------------------


def test_m_direct_marks_and_unmarks_dms(account: Account) -> None:
    other = "!other:example.org"
    account.ingest(
        batch("s1", join={ROOM: joined_room([message("$1")]), other: joined_room([message("$2")])})
    )
    assert not account.rooms[ROOM].is_dm
    direct = {
        "type": "m.direct",
        "content": {"@bob:example.org": [ROOM], "@carol:example.org": "not a list"},
    }
    result = account.ingest(batch("s2", account_data=[direct]))
    # Rooms changed only by account data still come back changed.
    assert ROOM in result.changed_rooms
    assert account.rooms[ROOM].is_dm and account.rooms[ROOM].dm_user == "@bob:example.org"
    assert not account.rooms[other].is_dm
    assert account.cache.account_data("m.direct") == direct["content"]
    # Persisted with the summary.
    assert account.cache.load_summaries()[ROOM].is_dm
    account.ingest(
        batch("s3", account_data=[{"type": "m.direct", "content": {"@bob:example.org": [other]}}])
    )
    assert not account.rooms[ROOM].is_dm
    assert account.rooms[other].dm_user == "@bob:example.org"


def test_invites_store_inviter_and_stripped_state(account: Account) -> None:
    carol = "@carol:example.org"
    invite_state = [
        {
            "type": "m.room.name",
            "state_key": "",
            "sender": carol,
            "content": {"name": "Carol's room"},
        },
        {
            "type": "m.room.member",
            "state_key": carol,
            "sender": carol,
            "content": {"membership": "join", "displayname": "Carol"},
        },
        {
            "type": "m.room.member",
            "state_key": OWN,
            "sender": carol,
            "origin_server_ts": 1234,
            "content": {"membership": "invite", "is_direct": True},
        },
        "garbage",
    ]
    account.ingest(batch("s1", invite={ROOM: {"invite_state": {"events": invite_state}}}))
    summary = account.rooms[ROOM]
    assert summary.membership == "invite"
    assert summary.inviter == carol
    assert summary.is_dm and summary.dm_user == carol
    assert summary.display_name == "Carol's room"
    assert summary.last_ts == 1234
    assert len(account.cache.load_invite_state(ROOM)) == 3
    assert account.cache.load_summaries()[ROOM].inviter == carol
    # Joining clears the invite.
    account.ingest(
        batch(
            "s2",
            join={
                ROOM: joined_room([state("$j", "m.room.member", OWN, {"membership": "join"}, OWN)])
            },
        )
    )
    assert account.rooms[ROOM].membership == "join"
    assert account.rooms[ROOM].inviter is None
    assert account.cache.load_invite_state(ROOM) == []


def test_left_and_banned_rooms(account: Account) -> None:
    banned = "!banned:example.org"
    account.ingest(
        batch("s1", join={ROOM: joined_room([message("$1")]), banned: joined_room([message("$2")])})
    )
    leave = {
        ROOM: {
            "timeline": {
                "events": [state("$leave", "m.room.member", OWN, {"membership": "leave"}, OWN)]
            }
        },
        banned: {
            "timeline": {
                "events": [state("$ban", "m.room.member", OWN, {"membership": "ban"}, "@mod:x")]
            }
        },
    }
    account.ingest(batch("s2", leave=leave))
    assert account.rooms[ROOM].membership == "leave"
    assert account.rooms[banned].membership == "ban"
    assert [e for _, e in _positions(account)] == ["$1", "$leave"]


def test_room_tags_from_room_account_data(account: Account) -> None:
    tag = {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.1}, "u.work": {}}}}
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1")], account_data=[tag])}))
    assert account.rooms[ROOM].tags == ["m.favourite", "u.work"]
    assert account.cache.account_data("m.tag", ROOM) == tag["content"]


# -- malformed input -------------------------------------------------------------------


def test_malformed_events_are_skipped_and_counted(account: Account) -> None:
    other = "!other:example.org"
    timeline = [
        message("$good1"),
        {"type": "m.room.message", "sender": "@a:x", "content": {"body": "no event id"}},
        {"event_id": "$no-type", "sender": "@a:x", "content": {}},
        {"event_id": 17, "type": "m.room.message"},
        # Kept: only the ID and type are needed to store an event.
        {
            "event_id": "$bad-sender",
            "type": "m.room.message",
            "sender": 5,
            "content": "not an object",
        },
        message("$good2"),
    ]
    bad_state = [
        {"event_id": "$state-no-key", "type": "m.room.topic", "sender": "@a:x", "content": {}}
    ]
    result = account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(timeline, state_events=bad_state),
                other: joined_room([message("$fine")]),
                "!not-a-room-object:x": "garbage",
            },
        )
    )
    assert result.skipped_events == 4
    assert [e for _, e in _positions(account)] == ["$good1", "$bad-sender", "$good2"]
    assert [e for _, e in _positions(account, other)] == ["$fine"]
    assert account.cache.sync_token == "s1"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"origin_server_ts": 2**70}, id="timestamp-beyond-int64"),
        pytest.param(
            {"content": {"msgtype": "m.text", "body": "lone \ud800 surrogate"}},
            id="lone-surrogate-body",
        ),
        pytest.param({"sender": "@\udfff:x"}, id="lone-surrogate-sender"),
    ],
)
def test_events_sqlite_cannot_hold_do_not_wedge_the_batch(
    account: Account, bad: dict[str, object]
) -> None:
    weird = {**message("$weird"), **bad}
    receipt = _receipt("$weird", "@bob:example.org", 2**70)
    result = account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [message("$before"), weird, message("$after")], ephemeral=[receipt]
                )
            },
        )
    )
    assert account.cache.sync_token == "s1"
    assert [e for _, e in _positions(account)] == ["$before", "$weird", "$after"]
    assert [s.event["event_id"] for s in result.new_events[ROOM]] == ["$before", "$weird", "$after"]
    stored = account.stored("$weird")
    assert stored is not None
    # What is stored round-trips as valid UTF-8 JSON.
    json.dumps(stored, ensure_ascii=False).encode()


def test_redaction_with_unusable_target_is_ignored(account: Account) -> None:
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [message("$1"), event("$r", "m.room.redaction", content={"redacts": 5})]
                )
            },
        )
    )
    one = account.stored("$1")
    assert one is not None and one["content"]["body"] == "body of $1"


# -- room names -------------------------------------------------------------------------


def test_room_summary_names(account: Account) -> None:
    named, aliased, heroes, alone = "!named:x", "!aliased:x", "!heroes:x", "!alone:x"
    bob, carol = "@bob:example.org", "@carol:example.org"
    result = account.ingest(
        batch(
            "s1",
            join={
                named: joined_room(
                    [state("$n", "m.room.name", "", {"name": "Plain \x1b[31mname"})]
                ),
                aliased: joined_room(
                    [state("$a", "m.room.canonical_alias", "", {"alias": "#alias:x"})]
                ),
                heroes: joined_room(
                    [],
                    state_events=[
                        state(
                            "$b", "m.room.member", bob, {"membership": "join", "displayname": "Bob"}
                        ),
                        state("$cm", "m.room.member", carol, {"membership": "join"}),
                    ],
                    summary={
                        "m.heroes": [bob, carol],
                        "m.joined_member_count": 3,
                        "m.invited_member_count": 1,
                    },
                ),
                alone: joined_room([], summary={"m.heroes": [], "m.joined_member_count": 1}),
            },
        )
    )
    names = {room_id: s.display_name for room_id, s in result.changed_rooms.items()}
    assert names[named].startswith("Plain ") and "\x1b" not in names[named]
    assert names[aliased] == "#alias:x"
    assert names[heroes] == f"Bob, {carol} and 1 other"
    assert names[alone] == "Empty Room"
    # A hero's later display name change renames the room.
    account.ingest(
        batch(
            "s2",
            join={
                heroes: joined_room(
                    [
                        state(
                            "$cm2",
                            "m.room.member",
                            carol,
                            {"membership": "join", "displayname": "Carol"},
                        )
                    ]
                )
            },
        )
    )
    assert account.rooms[heroes].display_name == "Bob, Carol and 1 other"
    assert account.cache.load_summaries()[heroes].display_name == "Bob, Carol and 1 other"


def test_summaries_are_copies_until_committed(account: Account) -> None:
    account.ingest(
        batch("s1", join={ROOM: joined_room([state("$n", "m.room.name", "", {"name": "One"})])})
    )
    before = account.rooms[ROOM]
    result = account.cache.ingest_sync(
        batch("s2", join={ROOM: joined_room([state("$n2", "m.room.name", "", {"name": "Two"})])}),
        account.rooms,
    )
    assert before.name == "One"
    assert result.changed_rooms[ROOM].name == "Two"
    assert result.changed_rooms[ROOM] is not before


# -- the outbox and echoes ---------------------------------------------------------------


def test_own_echo_removes_the_outbox_entry(account: Account) -> None:
    account.cache.outbox_add("txn-a", ROOM, "m.room.message", {"body": "a"})
    account.cache.outbox_add("txn-b", ROOM, "m.room.message", {"body": "b"})
    echo = message("$a", "a", sender=OWN, unsigned={"transaction_id": "txn-a"})
    # Someone else's event with our transaction ID is not our echo.
    impostor = message("$x", "b", sender="@alice:example.org", unsigned={"transaction_id": "txn-b"})
    result = account.ingest(batch("s1", join={ROOM: joined_room([echo, impostor])}))
    assert result.echoed_txn_ids == {"txn-a"}
    assert [e.txn_id for e in account.cache.outbox()] == ["txn-b"]


def test_a_room_both_joined_and_left_in_one_batch(account: Account) -> None:
    # Nonsense a server should never send; it must not make the batch impossible.
    account.ingest(batch("s1", join={ROOM: joined_room([message("$1")])}))
    result = account.ingest(
        batch(
            "s2",
            join={ROOM: joined_room([message("$2"), message("$3")])},
            leave={
                ROOM: {
                    "timeline": {
                        "events": [
                            message("$3"),
                            state("$bye", "m.room.member", OWN, {"membership": "leave"}, OWN),
                        ]
                    }
                }
            },
        )
    )
    assert account.cache.sync_token == "s2"
    assert account.timeline_ids(ROOM) == ["$1", "$2", "$3", "$bye"]
    assert [s.event["event_id"] for s in result.new_events[ROOM]] == ["$2", "$3", "$bye"]
    assert account.rooms[ROOM].membership == "leave"


def test_an_absurd_number_of_heroes(account: Account) -> None:
    heroes = [f"@user{n}:example.org" for n in range(40_000)]
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [message("$1")], summary={"m.heroes": heroes, "m.joined_member_count": 40_001}
                )
            },
        )
    )
    assert account.cache.sync_token == "s1"
    assert account.rooms[ROOM].display_name.startswith("@user0:example.org, @user1:example.org")


@pytest.mark.parametrize(
    ("redacter", "levels", "applies"),
    [
        ("@alice:example.org", {}, True),  # the sender
        ("@admin:example.org", {}, True),  # same server as the sender
        ("@mallory:evil.example", {}, False),  # another server, no power
        ("@mod:other.example", {"users": {"@mod:other.example": 50}}, True),  # redact power
    ],
)
def test_a_redaction_applies_only_as_the_spec_says(
    account: Account, redacter: str, levels: dict[str, Any], applies: bool
) -> None:
    target = message("$t", "keep me unless allowed")
    power = state("$pl", "m.room.power_levels", "", {"redact": 50, **levels})
    red = event("$r", "m.room.redaction", redacter, {"redacts": "$t"})
    account.ingest(
        batch("s1", join={ROOM: joined_room([create_event("$c", "11"), power, target, red])})
    )
    stored = account.stored("$t")
    assert stored is not None
    assert (stored["content"] == {}) is applies


def test_a_forgotten_room_stays_forgotten_until_joined_again(account: Account) -> None:
    account.ingest(
        batch("s1", join={ROOM: joined_room([create_event("$c", "11"), message("$m1", "hi")])})
    )
    account.cache.forget_room(ROOM)
    assert account.cache.count_timeline(ROOM) == 0
    # The server reports the leave once more after we forgot: nothing comes back.
    account.ingest(batch("s2", leave={ROOM: {"timeline": {"events": [message("$m2", "late")]}}}))
    assert account.cache.count_timeline(ROOM) == 0
    assert ROOM not in account.cache.load_summaries()
    # Joining again makes it a room like any other.
    account.ingest(batch("s3", join={ROOM: joined_room([message("$m3", "back")])}))
    assert account.cache.count_timeline(ROOM) == 1


def test_events_are_stored_as_json_text_whichever_encoder_wrote_them(account: Account) -> None:
    # orjson's text, and the stdlib's for what orjson refuses (a lone surrogate, which SQLite
    # then refuses: the batch is stored again repaired). Both must be TEXT: SQLite's JSON
    # functions (the search index) refuse a BLOB.
    account.ingest(
        batch(
            "s1",
            join={
                ROOM: joined_room(
                    [message("$a", "é 🐈 \u2028"), message("$b", "lone \ud800")], prev_batch="p0"
                )
            },
        )
    )
    account.cache.fill_gap(Gap(ROOM, 0, "p0"), [message("$old", "back-filled")], None, "10")
    rows = account.cache.execute_readonly(
        "SELECT event_id, typeof(json), json_extract(json, '$.content.body') FROM events ORDER BY seq"
    )
    assert rows == [
        ("$a", "text", "é 🐈 \u2028"),
        ("$b", "text", "lone \ufffd"),
        ("$old", "text", "back-filled"),
    ]
