"""sync_slices: a large ``/sync`` response decoded room by room gives what parse_sync
gives for the whole, the outline first, and refuses a broken response before any slice."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tui_client.net import sync_stream
from tui_client.net.sync_stream import READ_SIZE, sliced_decoding, sync_slices
from tui_client.protocol.sync import MalformedResponse, SyncBatch, parse_sync

from .spec_examples import sync_response_example


def _room(index: int, events: int) -> dict[str, Any]:
    timeline = [
        {
            "event_id": f"$r{index}-e{n}",
            "type": "m.room.message",
            "sender": "@alice:example.org",
            "origin_server_ts": 1_700_000_000_000 + n,
            "content": {"msgtype": "m.text", "body": f"room {index} message {n} ✓", "f": 1.5},
        }
        for n in range(events)
    ]
    return {
        "state": {
            "events": [
                {
                    "event_id": f"$r{index}-s",
                    "type": "m.room.name",
                    "state_key": "",
                    "sender": "@alice:example.org",
                    "origin_server_ts": 1,
                    "content": {"name": f"Room {index}"},
                }
            ]
        },
        "timeline": {"events": timeline, "limited": index % 2 == 0, "prev_batch": f"p{index}"},
        "unread_notifications": {"notification_count": index, "highlight_count": 0},
        "summary": {"m.joined_member_count": 2},
    }


def _response(rooms: int = 40, events: int = 6) -> dict[str, Any]:
    example = sync_response_example()
    example["rooms"]["join"].update({f"!room{i}:x": _room(i, events) for i in range(rooms)})
    example["to_device"] = {"events": [{"type": "m.dummy", "sender": "@b:x", "content": {}}]}
    example["device_lists"] = {"changed": ["@b:x"], "left": ["@c:x"]}
    example["device_one_time_keys_count"] = {"signed_curve25519": 20}
    return example


def _flatten(batches: list[SyncBatch]) -> SyncBatch:
    head, *rest = batches
    whole = SyncBatch(**{name: getattr(head, name) for name in SyncBatch.__dataclass_fields__})
    whole.joined = [room for batch in rest for room in batch.joined]
    return whole


def test_the_slices_hold_what_parse_sync_gives_for_the_whole() -> None:
    response = _response()
    raw = json.dumps(response, ensure_ascii=False).encode()
    batches = list(sync_slices(raw, slice_events=20))
    head, *rest = batches
    # The outline first: everything but the joined rooms.
    assert head.joined == [] and head.next_batch == response["next_batch"]
    assert head.to_device and head.device_lists_changed == ["@b:x"]
    assert head.invited and head.knocked and head.presence and head.account_data
    # Then the joined rooms, a few at a time, each slice with the same token.
    assert len(rest) > 5
    assert all(b.next_batch == head.next_batch and b.joined for b in rest)
    assert all(not (b.invited or b.to_device or b.account_data or b.presence) for b in rest)
    assert _flatten(batches) == parse_sync(json.loads(raw))


def test_a_slice_holds_about_the_events_asked_for() -> None:
    raw = json.dumps(_response(rooms=60, events=9)).encode()
    slices = list(sync_slices(raw, slice_events=50))[1:]
    # A slice closes on the room that reaches 50 (a room counts 11: 9, its state, 1).
    sizes = [sum(len(r.state) + len(r.timeline) + 1 for r in b.joined) for b in slices]
    assert all(size < 50 + 11 for size in sizes) and all(size >= 50 for size in sizes[:-1])
    assert sum(len(b.joined) for b in slices) == 61  # and the spec example's room


@pytest.mark.parametrize(
    "raw",
    [
        b'{"next_batch": "s1", "rooms": {"join": {"!a:x": {"timeline": {"events": [',
        b'{"next_batch": "s1"} trailing',
        b'{"rooms": {"join": {}}}',
        b"[1, 2]",
        b"",
        b'{"next_batch": "s1", "x": "\xff"}',
    ],
    ids=["truncated", "trailing", "no next_batch", "not an object", "empty", "bad utf-8"],
)
def test_a_broken_response_is_refused_before_any_slice(raw: bytes) -> None:
    slices = sync_slices(raw)
    with pytest.raises(MalformedResponse):
        next(slices)


def test_what_only_json_loads_reads_is_decoded_whole() -> None:
    # yajl refuses NaN and integers beyond 64 bits; json.loads takes them: one batch.
    response = _response(rooms=3)
    raw = json.dumps(response).encode().replace(b'"f": 1.5', b'"f": NaN', 1)
    raw = raw.replace(b'"m.joined_member_count": 2', b'"m.joined_member_count": 1' + b"0" * 30)
    (whole,) = sync_slices(raw, slice_events=1)
    assert len(whole.joined) == 4
    assert whole.joined[1].joined_count is not None and whole.joined[1].joined_count > 1 << 64


def test_ijson_has_its_c_backend() -> None:
    # Without it the client decodes large responses whole (the pure-Python backend is
    # ~20x slower than json.loads): the memory goal of issue 13 would be missed.
    assert sliced_decoding()


def test_decoding_returns_to_the_interpreter_every_read() -> None:
    # Another thread (the UI's) can take the GIL only when this one runs Python code. Read
    # from a C file (io.BytesIO), the outline's skip over rooms.join was one C call that
    # held the GIL for 0.3-0.6 s in a first sync of 1,000 rooms (the worst frame of issue
    # 13); the bytes must reach the decoder through a Python ``read``, a buffer at a time.
    raw = json.dumps(_response(rooms=400, events=20)).encode()
    assert len(raw) > 20 * READ_SIZE
    reads: list[int] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code.co_name == "read" and isinstance(arg, bytes):
            reads.append(len(arg))

    for decode in (lambda: sync_stream._outline(raw), lambda: list(sync_slices(raw))):
        reads.clear()
        sys.setprofile(profile)
        try:
            decode()
        finally:
            sys.setprofile(None)
        assert sum(reads) >= len(raw)
        assert max(reads) <= READ_SIZE
