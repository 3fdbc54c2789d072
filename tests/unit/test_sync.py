"""parse_sync: the spec's example response, and every way a response can be broken."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tui_client.protocol.events import RoomEvent, parse_event
from tui_client.protocol.sync import MalformedResponse, parse_sync

from .spec_examples import sync_response_example

JOINED = "!726s6s6q:example.com"


@pytest.fixture
def example() -> dict[str, Any]:
    return sync_response_example()


def test_the_spec_example_response(example: dict[str, Any]) -> None:
    batch = parse_sync(example)
    assert batch.next_batch == "s72595_4483_1934"

    (room,) = batch.joined
    assert room.room_id == JOINED
    assert room.heroes == ["@alice:example.com", "@bob:example.com"]
    assert (room.joined_count, room.invited_count) == (2, 0)
    assert [e["type"] for e in room.state] == ["m.room.member"]
    assert [e["type"] for e in room.timeline] == ["m.room.member", "m.room.message"]
    assert room.limited is True and room.prev_batch == "t34-23535_0_0"
    assert [e["type"] for e in room.ephemeral] == ["m.typing", "m.receipt"]
    assert [e["type"] for e in room.account_data] == ["m.tag", "org.example.custom.room.config"]
    # We ask for unread_thread_notifications, so the room's own counts are the main
    # timeline's only (spec): the room's totals add the thread's (6, 3) to (5, 1).
    assert (room.notification_count, room.highlight_count) == (11, 4)
    assert room.thread_counts == {"$threadroot": (6, 3)}
    for raw in room.state + room.timeline:
        event = parse_event(raw, room.room_id)
        assert isinstance(event, RoomEvent) and event.room_id == JOINED
    # The events are the response's own dicts, not copies.
    assert room.timeline[1] is example["rooms"]["join"][JOINED]["timeline"]["events"][1]

    (invited,) = batch.invited
    assert invited.room_id == "!696r7674:example.com"
    assert [(e["type"], e["state_key"]) for e in invited.invite_state] == [
        ("m.room.name", ""),
        ("m.room.member", "@bob:example.com"),
    ]
    assert batch.knocked == ["!223asd456:example.com"]
    assert batch.left == []
    assert [e["type"] for e in batch.presence] == ["m.presence"]
    assert [e["type"] for e in batch.account_data] == ["org.example.custom.config"]
    assert (
        batch.to_device == [] and batch.device_lists_changed == [] and batch.device_lists_left == []
    )
    assert batch.one_time_keys_count == {}
    assert batch.unused_fallback_key_types is None
    assert batch.event_count == 3


def test_minimal_response() -> None:
    batch = parse_sync({"next_batch": "s1"})
    assert batch.next_batch == "s1"
    assert (batch.joined, batch.invited, batch.left, batch.knocked) == ([], [], [], [])
    assert batch.event_count == 0


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"next_batch": ""},
        {"next_batch": 5},
        {"next_batch": None},
        {"rooms": {}},
        [],
        "next_batch",
        None,
        42,
    ],
)
def test_no_next_batch_is_malformed(data: object) -> None:
    with pytest.raises(MalformedResponse):
        parse_sync(data)


@pytest.mark.parametrize(
    "garbage", [None, 5, "text", [], [1, 2], {"events": "nope"}, {"events": [1, "x", None]}, True]
)
def test_mistyped_sections_become_empty(garbage: object) -> None:
    data = {
        "next_batch": "s1",
        "rooms": garbage,
        "presence": garbage,
        "account_data": garbage,
        "to_device": garbage,
        "device_lists": garbage,
        "device_one_time_keys_count": garbage,
        "device_unused_fallback_key_types": garbage,
    }
    batch = parse_sync(data)
    assert (batch.joined, batch.invited, batch.left, batch.knocked) == ([], [], [], [])
    assert batch.presence == [] and batch.account_data == [] and batch.to_device == []
    assert batch.device_lists_changed == [] and batch.one_time_keys_count == {}
    assert batch.unused_fallback_key_types in (None, [])


def test_a_broken_room_does_not_stop_the_others(example: dict[str, Any]) -> None:
    good = copy.deepcopy(example["rooms"]["join"][JOINED])
    data = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                "!number:x": 5,
                "!list:x": [1, 2],
                "!weird:x": {
                    "timeline": ["not", "a", "dict"],
                    "state": {"events": "nope"},
                    "ephemeral": {"events": [None, 3, {"type": "m.typing", "content": {}}]},
                    "summary": {
                        "m.heroes": "alice",
                        "m.joined_member_count": "2",
                        "m.invited_member_count": True,
                    },
                    "unread_notifications": {"notification_count": 1.5, "highlight_count": None},
                    "account_data": 7,
                },
                JOINED: good,
            },
            "invite": {
                "!i1:x": None,
                "!i2:x": {"invite_state": {"events": [{"type": "m.room.name"}, "x"]}},
            },
            "leave": {
                "!l1:x": "gone",
                "!l2:x": {
                    "timeline": {
                        "events": [{"event_id": "$e", "type": "m.room.message"}],
                        "limited": "yes",
                        "prev_batch": 3,
                    },
                    "state": {"events": [{"type": "m.room.member"}]},
                },
            },
            "knock": {"!k:x": {}},
        },
    }
    batch = parse_sync(data)
    assert [r.room_id for r in batch.joined] == ["!weird:x", JOINED]
    weird, joined = batch.joined
    assert weird.timeline == [] and weird.state == [] and weird.account_data == []
    assert weird.ephemeral == [{"type": "m.typing", "content": {}}]
    assert weird.heroes is None and weird.joined_count is None and weird.invited_count is None
    assert weird.notification_count is None and weird.highlight_count is None
    assert weird.limited is False and weird.prev_batch is None
    assert len(joined.timeline) == 2 and joined.notification_count == 5 + 6
    assert [r.room_id for r in batch.invited] == ["!i2:x"]
    assert batch.invited[0].invite_state == [{"type": "m.room.name"}]
    (left,) = batch.left
    assert left.room_id == "!l2:x" and len(left.timeline) == 1 and len(left.state) == 1
    assert left.limited is False and left.prev_batch is None
    assert batch.knocked == ["!k:x"]
    assert batch.event_count == 3 + 2


def test_heroes_list_is_filtered_and_counts_must_be_integers() -> None:
    data = {
        "next_batch": "s",
        "rooms": {
            "join": {
                "!r:x": {
                    "summary": {"m.heroes": ["@a:x", 5, None, "@b:x"], "m.joined_member_count": 3},
                    "unread_notifications": {"notification_count": True, "highlight_count": 0},
                }
            }
        },
    }
    (room,) = parse_sync(data).joined
    assert room.heroes == ["@a:x", "@b:x"]
    assert room.joined_count == 3 and room.invited_count is None
    assert room.notification_count is None and room.highlight_count == 0


def test_encryption_sections() -> None:
    data = {
        "next_batch": "s",
        "to_device": {"events": [{"type": "m.room_key", "content": {}}, "junk"]},
        "device_lists": {"changed": ["@a:x", 3], "left": ["@b:x"]},
        "device_one_time_keys_count": {"signed_curve25519": 20, "bad": "5", "flag": True},
        "device_unused_fallback_key_types": ["signed_curve25519", 7],
    }
    batch = parse_sync(data)
    assert batch.to_device == [{"type": "m.room_key", "content": {}}]
    assert batch.device_lists_changed == ["@a:x"] and batch.device_lists_left == ["@b:x"]
    assert batch.one_time_keys_count == {"signed_curve25519": 20}
    assert batch.unused_fallback_key_types == ["signed_curve25519"]
    assert (
        parse_sync(
            {"next_batch": "s", "device_unused_fallback_key_types": []}
        ).unused_fallback_key_types
        == []
    )
