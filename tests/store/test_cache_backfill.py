"""Back-fill into gaps (``fill_gap``) and reading windows that stop at gaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_client.store.cache import GAP_SPACE, Gap

from .cache_batches import Account, batch, create_event, event, joined_room, message

ROOM = "!room:example.org"


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acc = Account(tmp_path / "cache.sqlite3")
    yield acc
    acc.close()


def _ids(stored: list) -> list[str]:  # type: ignore[type-arg]
    return [s.event["event_id"] for s in stored]


def _top_gap_room(account: Account) -> Gap:
    account.ingest(
        batch("s1", join={ROOM: joined_room([message("$10"), message("$11")], prev_batch="p0")})
    )
    (gap,) = account.cache.gaps(ROOM)
    return gap


def test_pages_go_below_the_gap_which_moves_down(account: Account) -> None:
    gap = _top_gap_room(account)
    stored = account.cache.fill_gap(gap, [message("$9"), message("$8"), message("$7")], "p1", None)
    assert _ids(stored) == ["$7", "$8", "$9"]
    assert [s.pos for s in stored] == [-3, -2, -1]
    assert account.cache.gaps(ROOM) == [Gap(ROOM, -3, "p1")]
    assert account.timeline_ids(ROOM) == ["$7", "$8", "$9", "$10", "$11"]

    # The end of history (no end token) closes the gap.
    (gap,) = account.cache.gaps(ROOM)
    stored = account.cache.fill_gap(gap, [message("$6"), create_event("$create", "11")], None, None)
    assert _ids(stored) == ["$create", "$6"]
    assert account.cache.gaps(ROOM) == []
    assert account.timeline_ids(ROOM) == ["$create", "$6", "$7", "$8", "$9", "$10", "$11"]
    window, reached = account.cache.load_before(ROOM, None, 100)
    assert _ids(window) == account.timeline_ids(ROOM)
    assert reached is None


def test_a_stale_gap_is_not_filled_twice(account: Account) -> None:
    gap = _top_gap_room(account)
    account.cache.fill_gap(gap, [message("$9")], "p1", None)
    # The same page again, for the gap as it was: ignored.
    assert account.cache.fill_gap(gap, [message("$9"), message("$8")], "p1", None) == []
    assert account.timeline_ids(ROOM) == ["$9", "$10", "$11"]
    assert account.cache.gaps(ROOM) == [Gap(ROOM, -1, "p1")]


def test_reaching_a_known_event_closes_a_limited_gap(account: Account) -> None:
    account.ingest(
        batch(
            "s1", join={ROOM: joined_room([create_event("$c", "11"), message("$1"), message("$2")])}
        )
    )
    account.ingest(
        batch(
            "s2",
            join={
                ROOM: joined_room([message("$10"), message("$11")], limited=True, prev_batch="p9")
            },
        )
    )
    (gap,) = account.cache.gaps(ROOM)
    assert gap.pos_above == 2 + GAP_SPACE

    # The server page overlaps what we hold: "$2" and older are known already.
    page = [message("$9"), message("$8"), message("$2"), message("$1")]
    stored = account.cache.fill_gap(gap, page, "p-older", None)
    assert _ids(stored) == ["$8", "$9"]
    assert account.cache.gaps(ROOM) == []
    assert account.timeline_ids(ROOM) == ["$c", "$1", "$2", "$8", "$9", "$10", "$11"]
    assert account.cache.stats()["events"] == 7
    window, reached = account.cache.load_before(ROOM, None, 100)
    assert _ids(window) == ["$c", "$1", "$2", "$8", "$9", "$10", "$11"]
    assert reached is None


def test_empty_pages(account: Account) -> None:
    gap = _top_gap_room(account)
    # No events but a token: the gap stays where it is, with the new token.
    assert account.cache.fill_gap(gap, [], "p1", None) == []
    assert account.cache.gaps(ROOM) == [Gap(ROOM, 0, "p1")]
    # No events and no token: nothing more to fetch.
    account.cache.fill_gap(Gap(ROOM, 0, "p1"), [], None, None)
    assert account.cache.gaps(ROOM) == []


def test_back_filled_pages_skip_malformed_events_and_apply_redactions(account: Account) -> None:
    gap = _top_gap_room(account)
    page = [
        event("$red", "m.room.redaction", content={"redacts": "$secret"}),
        {"type": "m.room.message", "content": {"body": "no id"}},
        message("$secret", "hidden words"),
        {**message("$surrogate"), "content": {"msgtype": "m.text", "body": "x\udc80y"}},
    ]
    stored = account.cache.fill_gap(gap, page, "p1", "11")
    assert _ids(stored) == ["$surrogate", "$secret", "$red"]
    secret = account.stored("$secret")
    assert secret is not None and secret["content"] == {}
    surrogate = account.stored("$surrogate")
    assert surrogate is not None and surrogate["content"]["body"] == "x\ufffdy"
    assert account.cache.gaps(ROOM) == [Gap(ROOM, -3, "p1")]


def test_load_before_stops_at_each_gap_and_reports_it(account: Account) -> None:
    account.ingest(
        batch("s1", join={ROOM: joined_room([message("$1"), message("$2")], prev_batch="p0")})
    )
    account.ingest(
        batch(
            "s2",
            join={ROOM: joined_room([message("$3"), message("$4")], limited=True, prev_batch="p2")},
        )
    )
    top, bottom = account.cache.gaps(ROOM)
    assert bottom == Gap(ROOM, 0, "p0")
    assert top.token == "p2"

    newest, reached = account.cache.load_before(ROOM, None, 10)
    assert _ids(newest) == ["$3", "$4"]
    assert reached == top
    # A full page does not report the gap yet.
    one, reached = account.cache.load_before(ROOM, None, 1)
    assert _ids(one) == ["$4"]
    assert reached is None
    # From the first event above a gap: nothing, and the gap.
    nothing, reached = account.cache.load_before(ROOM, newest[0].pos, 10)
    assert nothing == []
    assert reached == top
    # Below the upper gap, the older segment, down to the bottom gap.
    older, reached = account.cache.load_before(ROOM, top.pos_above - 1, 10)
    assert _ids(older) == ["$1", "$2"]
    assert reached == bottom
    # Reading forwards stops below the upper gap.
    assert _ids(account.cache.load_after(ROOM, older[0].pos, 10)) == ["$2"]
    assert _ids(account.cache.load_after(ROOM, newest[0].pos, 10)) == ["$4"]


def test_a_timeline_resent_with_more_history_fills_the_gap_above_and_appends_only_what_is_newer(
    account: Account,
) -> None:
    # Sliding sync: a room first comes with its latest events, then (opened, a larger
    # timeline limit) again with older ones before them and one new event.
    account.ingest(
        batch(
            "s1",
            join={ROOM: joined_room([message("$8"), message("$9")], limited=True, prev_batch="p7")},
        )
    )
    resent = [message("$6"), message("$7"), message("$8"), message("$9"), message("$10")]
    # (Synapse says "limited": false for it.)
    result = account.ingest(
        batch("s2", join={ROOM: joined_room(resent, limited=False, prev_batch="p5")})
    )
    assert account.timeline_ids(ROOM) == ["$6", "$7", "$8", "$9", "$10"]
    assert [s.event["event_id"] for s in result.new_events[ROOM]] == ["$10"]
    assert ROOM in result.limited_rooms  # an open room reads its window again
    # The gap moved above the history, with the resent chunk's token.
    (gap,) = account.cache.gaps(ROOM)
    assert gap.token == "p5"
    stored = account.cache.fill_gap(gap, [message("$5"), create_event("$c", "11")], None, None)
    assert _ids(stored) == ["$c", "$5"]
    window, _ = account.cache.load_before(ROOM, None, 100)
    assert _ids(window) == ["$c", "$5", "$6", "$7", "$8", "$9", "$10"]
