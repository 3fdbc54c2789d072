"""The sliding sync response as the v2 batch shape (pure code)."""

from __future__ import annotations

from tui_client.protocol.sliding_sync import (
    POS_KEY,
    TO_DEVICE_KEY,
    decode_token,
    parse_sliding_sync,
    sliding_sync_body,
)

ME = "@me:x"


def _member(user: str, membership: str) -> dict[str, object]:
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": user,
        "event_id": f"$m-{user}-{membership}",
        "content": {"membership": membership},
    }


def test_rooms_extensions_and_tokens_map_to_the_v2_batch() -> None:
    data = {
        "pos": "7/s1",
        "lists": {"all": {"count": 3, "ops": []}},
        "rooms": {
            "!j:x": {
                "required_state": [_member(ME, "join")],
                "timeline": [
                    {"type": "m.room.message", "event_id": "$1", "sender": "@b:x", "content": {}}
                ],
                "limited": True,
                "prev_batch": "t1",
                "notification_count": 2,
                "highlight_count": 1,
                "joined_count": 2,
                "invited_count": 0,
                "heroes": [{"user_id": "@b:x"}],
            },
            "!i:x": {"invite_state": [_member(ME, "invite")]},
            "!l:x": {"timeline": [_member(ME, "leave")]},
        },
        "extensions": {
            "to_device": {
                "next_batch": "5",
                "events": [{"type": "m.room.encrypted", "content": {}}],
            },
            "e2ee": {
                "device_lists": {"changed": ["@b:x"], "left": ["@c:x"]},
                "device_one_time_keys_count": {"signed_curve25519": 3},
                "device_unused_fallback_key_types": ["signed_curve25519"],
            },
            "account_data": {
                "global": [{"type": "m.direct", "content": {}}],
                "rooms": {"!j:x": [{"type": "m.tag", "content": {}}]},
            },
            "receipts": {
                "rooms": {
                    "!j:x": {"type": "m.receipt", "content": {}},
                    "!i:x": {"type": "m.receipt"},
                }
            },
            "typing": {"rooms": {"!k:x": {"type": "m.typing", "content": {"user_ids": []}}}},
        },
    }
    response = parse_sliding_sync(data, ME, sent_to_device_since="4")
    batch = response.batch
    assert response.list_counts == {"all": 3}
    assert batch.tokens == {POS_KEY: "7/s1", TO_DEVICE_KEY: "5"}
    assert decode_token(batch.next_batch) == ("7/s1", "5")
    joined = {room.room_id: room for room in batch.joined}
    room = joined["!j:x"]
    assert room.limited and room.prev_batch == "t1" and room.heroes == ["@b:x"]
    # The server's counts are left unset (Synapse's are always 0): the client counts.
    assert (room.notification_count, room.highlight_count, room.joined_count) == (None, None, 2)
    assert [e["type"] for e in room.account_data] == ["m.tag"]
    assert [e["type"] for e in room.ephemeral] == ["m.receipt"]
    # A room only the typing extension names is a joined room with just that; an invite gets no receipts.
    assert [e["type"] for e in joined["!k:x"].ephemeral] == ["m.typing"]
    assert [r.room_id for r in batch.invited] == ["!i:x"] and "!i:x" not in joined
    assert [r.room_id for r in batch.left] == ["!l:x"]
    assert batch.device_lists_changed == ["@b:x"] and batch.device_lists_left == ["@c:x"]
    assert batch.one_time_keys_count == {"signed_curve25519": 3}
    assert batch.unused_fallback_key_types == ["signed_curve25519"]
    assert [e["type"] for e in batch.account_data] == ["m.direct"] and len(batch.to_device) == 1


def test_to_device_token_kept_when_the_response_does_not_move_it() -> None:
    response = parse_sliding_sync({"pos": "2"}, ME, sent_to_device_since="9")
    assert response.batch.tokens == {POS_KEY: "2", TO_DEVICE_KEY: "9"}


def test_request_body_lists_and_extensions() -> None:
    body = sliding_sync_body(range_end=19, to_device_since="3", subscriptions=["!open:x"])
    assert body["lists"]["all"]["ranges"] == [[0, 19]]
    assert ["m.room.member", "$LAZY"] in body["lists"]["all"]["required_state"]
    assert body["lists"]["invites"]["filters"] == {"is_invite": True}
    assert body["lists"]["dms"]["filters"] == {"is_dm": True}
    assert body["lists"]["spaces"]["filters"] == {"room_types": ["m.space"]}
    assert (
        body["room_subscriptions"]["!open:x"]["timeline_limit"]
        > body["lists"]["all"]["timeline_limit"]
    )
    assert body["extensions"]["to_device"] == {"enabled": True, "since": "3"}
    assert all(
        body["extensions"][name]["enabled"]
        for name in ("e2ee", "account_data", "receipts", "typing")
    )
