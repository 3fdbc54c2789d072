"""sync_slices: a large ``/sync`` response decoded room by room, in one pass, gives what
parse_sync gives for the whole (the head first, whatever the server's order of sections),
and a broken response raises MalformedResponse where it breaks."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from tui_client.net import sync_stream
from tui_client.net.sync_stream import sync_slices
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
    """The spec's example with more rooms; to-device events, device lists and key counts
    after ``rooms`` (the order of ruma-based servers)."""
    example = sync_response_example()
    example["rooms"]["join"].update({f"!room{i}:x": _room(i, events) for i in range(rooms)})
    example["to_device"] = {"events": [{"type": "m.dummy", "sender": "@b:x", "content": {}}]}
    example["device_lists"] = {"changed": ["@b:x"], "left": ["@c:x"]}
    example["device_one_time_keys_count"] = {"signed_curve25519": 20}
    return example


def _synapse_order(response: dict[str, Any]) -> dict[str, Any]:
    """The same sections in Synapse's order: ``rooms`` last, ``join`` its first member."""
    ordered = {k: v for k, v in response.items() if k != "rooms"}
    rooms = response["rooms"]
    ordered["rooms"] = {"join": rooms["join"], **{k: v for k, v in rooms.items() if k != "join"}}
    return ordered


def _rooms_first(response: dict[str, Any]) -> dict[str, Any]:
    """``rooms`` before every other section, ``next_batch`` included."""
    return {"rooms": response["rooms"], **{k: v for k, v in response.items() if k != "rooms"}}


LAYOUTS = {"spec example": lambda r: r, "synapse": _synapse_order, "rooms first": _rooms_first}


def _flatten(batches: list[SyncBatch]) -> SyncBatch:
    """The batches as one: the head's fields, every batch's rooms and sections."""
    head = batches[0]
    whole = SyncBatch(**{name: getattr(head, name) for name in SyncBatch.__dataclass_fields__})
    for name in ("joined", "invited", "left", "knocked", "account_data", "presence"):
        setattr(whole, name, [item for batch in batches for item in getattr(batch, name)])
    return whole


def _scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the standard library scanner's runs over a room (the values of rooms.join)."""
    calls: list[int] = []
    scan = sync_stream._scan

    def counted(text: str, start: int) -> Any:
        value, end = scan(text, start)
        if isinstance(value, dict) and "timeline" in value:
            calls.append(start)
        return value, end

    monkeypatch.setattr(sync_stream, "_scan", counted)
    return calls


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_slices_hold_what_parse_sync_gives_for_the_whole(layout: str) -> None:
    response = LAYOUTS[layout](_response())
    raw = json.dumps(response, ensure_ascii=False).encode()
    batches = list(sync_slices(raw, slice_events=20))
    head = batches[0]
    # The head first: the token and what the crypto machine reads before any room.
    assert head.joined == [] and head.next_batch == response["next_batch"]
    assert head.to_device and head.device_lists_changed == ["@b:x"]
    assert head.one_time_keys_count == {"signed_curve25519": 20}
    # Then the joined rooms, a few at a time, each slice with the same token.
    joined = [b for b in batches if b.joined]
    assert len(joined) > 5 and batches[1 : len(joined) + 1] == joined
    assert all(b.next_batch == head.next_batch for b in batches)
    assert all(not (b.invited or b.to_device or b.account_data or b.presence) for b in joined)
    assert _flatten(batches) == parse_sync(json.loads(raw))


def test_in_synapse_order_the_rooms_are_read_once_and_invites_come_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans = _scans(monkeypatch)
    response = _synapse_order(_response(rooms=40))
    batches = list(sync_slices(json.dumps(response).encode(), slice_events=20))
    head, *_joined, tail = batches
    assert head.to_device and head.account_data and head.presence and not head.invited
    # invite, knock and leave follow rooms.join: a last batch holds them.
    assert tail.invited and tail.knocked and not tail.joined
    assert len(scans) == 41  # the spec example's room and ours: each decoded once


def test_with_a_head_section_after_the_rooms_they_are_read_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # to_device after rooms.join: the rooms are skipped to reach it, then read again.
    scans = _scans(monkeypatch)
    batches = list(sync_slices(json.dumps(_rooms_first(_response(rooms=40))).encode()))
    assert batches[0].to_device and len(scans) == 2 * 41


def test_a_slice_holds_about_the_events_asked_for() -> None:
    raw = json.dumps(_synapse_order(_response(rooms=60, events=9))).encode()
    slices = [b for b in sync_slices(raw, slice_events=50) if b.joined]
    # A slice closes on the room that reaches 50 (a room counts 11: 9, its state, 1).
    sizes = [sum(len(r.state) + len(r.timeline) + 1 for r in b.joined) for b in slices]
    assert all(size < 50 + 11 for size in sizes) and all(size >= 50 for size in sizes[:-1])
    assert sum(len(b.joined) for b in slices) == 61  # and the spec example's room


def test_rooms_cut_by_the_decoding_window_decode_as_the_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A window of a few bytes: every room, key, number and multi-byte character (an
    # emoji, a lone surrogate escaped or in UTF-8) is cut somewhere and scanned again.
    monkeypatch.setattr(sync_stream, "_AHEAD", 7)
    monkeypatch.setattr(sync_stream, "_CHUNK", 5)
    response = _synapse_order(_response(rooms=6, events=3))
    response["rooms"]["join"]["!room2:x"]["timeline"]["events"][0]["content"].update(
        {"body": "😀 ✓ ESC ☃ RAW", "n": 12345678901234567890, "neg": -1.25e-3, "t": True}
    )
    text = json.dumps(response, ensure_ascii=False, indent=1).encode()
    text = text.replace(b"ESC", b"\\ud800").replace(
        b"RAW", "\ud800".encode("utf-8", "surrogatepass")
    )
    raw = b"\xef\xbb\xbf \n" + text + b" \n"
    assert _flatten(list(sync_slices(raw, slice_events=3))) == parse_sync(json.loads(raw))


def test_what_only_json_loads_reads_is_read_in_slices_too() -> None:
    # NaN and integers beyond 64 bits: json.loads takes them, and so does each slice.
    response = _synapse_order(_response(rooms=3))
    raw = json.dumps(response).encode().replace(b'"f": 1.5', b'"f": NaN', 1)
    raw = raw.replace(b'"m.joined_member_count": 2', b'"m.joined_member_count": 1' + b"0" * 30)
    batches = list(sync_slices(raw, slice_events=1))
    assert len(batches) == 6  # head, four rooms, the invites and leaves
    big = [r.joined_count for b in batches for r in b.joined if (r.joined_count or 0) > 1 << 64]
    assert len(big) == 4
    nan = batches[2].joined[0].timeline[0]["content"]["f"]
    assert nan != nan  # NaN
    assert repr(_flatten(batches)) == repr(parse_sync(json.loads(raw)))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"rooms": {"join": {}}}',
        b"[1, 2]",
        b"",
        b'{"next_batch": "s1", "x": "\xff", "rooms": {"join": {"!a:x": {}}}}',
        b'{"next_batch": "s1"} trailing',
        b'{"next_batch": "s1", "account_data": {"events": [}, "rooms": {"join": {"!a:x": {}}}}',
    ],
    ids=["no next_batch", "not an object", "empty", "bad utf-8", "trailing", "broken head"],
)
def test_a_response_with_a_broken_head_is_refused_before_any_slice(raw: bytes) -> None:
    slices = sync_slices(raw)
    with pytest.raises(MalformedResponse):
        next(slices)


_BROKEN_ROOMS = {
    "truncated": lambda raw: raw[: len(raw) * 2 // 3],
    "bad utf-8": lambda raw: raw.replace(b"room 3 message 2", b"room 3 \xff 2"),
    "broken room": lambda raw: raw.replace(b'"!room3:x": {', b'"!room3:x": {,'),
    "missing comma": lambda raw: raw.replace(b'}, "!room3:x"', b'} "!room3:x"'),
    "control character": lambda raw: raw.replace(b"room 3 message 2", b"room 3\nmessage 2"),
    "trailing": lambda raw: raw + b" {}",
}


@pytest.mark.parametrize("broken", _BROKEN_ROOMS)
def test_a_response_broken_part_way_raises_where_it_breaks(
    broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small window, so that a break is met where it is (bad UTF-8 when decoded).
    monkeypatch.setattr(sync_stream, "_AHEAD", 64)
    monkeypatch.setattr(sync_stream, "_CHUNK", 64)
    raw = json.dumps(_synapse_order(_response(rooms=6))).encode()
    raw = _BROKEN_ROOMS[broken](raw)
    with pytest.raises(ValueError):
        json.loads(raw)  # the whole response is refused as well
    slices = sync_slices(raw, slice_events=1)
    head = next(slices)
    assert head.next_batch and head.to_device  # handed out before the rooms
    with pytest.raises(MalformedResponse) as refused:
        for _batch in slices:
            pass
    # Short enough for the status line, and where: "... (expected a key at byte 1234)".
    message = str(refused.value)
    assert re.fullmatch(r"sync response is not (UTF-8|JSON \([^()]+ at byte \d+\))", message)
    assert len(message) < 70, message


def test_each_call_into_c_handles_a_room_or_a_bounded_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another thread (the UI's) can take the GIL only when this one runs Python code: no
    # call into C may cover the response (ijson's skip of rooms.join held the GIL for
    # 0.3-0.6 s in a first sync of 1,000 rooms, the worst frame of issue 13). The
    # scanner decodes one room a call, the UTF-8 decoder and the search a piece at a time.
    monkeypatch.setattr(sync_stream, "SEARCH_SIZE", 64 * 1024)
    response = _synapse_order(_response(rooms=400, events=20))
    del response["to_device"]  # the bytes after rooms.join are searched for it
    raw = json.dumps(response).encode()
    decoded: list[int] = []
    searched: list[int] = []
    scanned: list[int] = []

    class Raw(bytes):
        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, slice):
                decoded.append(len(range(*key.indices(len(self)))))
            return bytes.__getitem__(self, key)

        def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
            searched.append(min(end, len(self)) - start)
            return bytes.find(self, sub, start, end)

    scan = sync_stream._scan

    def counted(text: str, start: int) -> Any:
        value, end = scan(text, start)
        scanned.append(end - start)
        return value, end

    monkeypatch.setattr(sync_stream, "_scan", counted)
    batches = list(sync_slices(Raw(raw)))
    assert sum(len(b.joined) for b in batches) == 401
    assert len(raw) > 10 * sync_stream._CHUNK
    assert sum(decoded) >= len(raw) and max(decoded) <= sync_stream._CHUNK
    assert sum(searched) > len(raw) * 0.9 and max(searched) < 64 * 1024 + 40
    largest_room = max(len(json.dumps(room)) for room in response["rooms"]["join"].values())
    assert len(scanned) > 401 and max(scanned) <= largest_room


@pytest.mark.parametrize("where", ["head", "room"])
def test_an_integer_too_long_for_python_is_refused_as_not_json(where: str) -> None:
    # Over Python's 4,300 digits int() raises a plain ValueError; decoded whole it is a
    # MalformedResponse ('sync response is not JSON'), and so it must be in slices (it
    # was 'internal error: ValueError' with a traceback in the log).
    response = _synapse_order(_response(rooms=3))
    raw = json.dumps(response).encode()
    huge = b"1" + b"0" * 5000
    if where == "head":
        raw = raw.replace(b'"signed_curve25519": 20', b'"signed_curve25519": ' + huge)
    else:
        raw = raw.replace(b'"f": 1.5', b'"f": ' + huge, 1)
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(MalformedResponse) as refused:
        for _batch in sync_slices(raw, slice_events=1):
            pass
    assert re.fullmatch(r"sync response is not JSON \([^()]+ at byte \d+\)", str(refused.value))


# Pieces of strings that look like JSON's own syntax, escapes, multi-byte and astral
# characters, lone surrogates, control characters and the names the scanner looks for.
_NASTY = [
    *'{}[]",:\\', '\\"', '"}', '{"', '":', "\u00e9", "\u2603", "\U0001f600", "\ud800", "\udfff",
    "\n", "\x00", "\x1f", "next_batch", '"to_device"', '"rooms"', '"join"', " ", "null", "1e5",
]  # fmt: skip


def _nasty(rng: random.Random, longest: int = 12) -> str:
    return "".join(rng.choice(_NASTY) for _ in range(rng.randint(0, longest)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 9 if depth < 3 else 5)
    if kind == 0:
        return rng.randint(-(10**25), 10**25)
    if kind == 1:
        return rng.choice([1.5, -0.0, 1e-300, 12345.678e10, 0.1])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind <= 5:
        return _nasty(rng, 40)
    if kind <= 7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_nasty(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_event(rng: random.Random, index: int) -> dict[str, Any]:
    event = {
        "type": rng.choice(["m.room.message", _nasty(rng)]),
        "event_id": f"$e{index}{_nasty(rng)}",
        "sender": "@a:x",
        "origin_server_ts": rng.randint(0, 10**13),
        "content": {_nasty(rng): _value(rng) for _ in range(rng.randint(0, 4))},
    }
    if rng.random() < 0.3:
        event["state_key"] = _nasty(rng)
    return event


def _random_room(rng: random.Random) -> dict[str, Any]:
    events = [_random_event(rng, n) for n in range(rng.randint(0, 5))]
    return {
        "timeline": {"events": events, "limited": rng.random() < 0.5, "prev_batch": _nasty(rng)},
        "state": {"events": [_random_event(rng, n) for n in range(rng.randint(0, 3))]},
        "unread_notifications": {"notification_count": rng.randint(0, 9)},
        _nasty(rng): _value(rng),
    }


def _random_response(rng: random.Random) -> bytes:
    """A response of random sections in a random order, full of nasty strings, laid out
    one of several ways (escaped or raw UTF-8, indented or not)."""
    rooms: dict[str, Any] = {
        "join": {
            f"!r{_nasty(rng)}{n}": _random_room(rng) if rng.random() < 0.9 else _value(rng)
            for n in range(rng.randint(0, 8))
        },
        "invite": {"!i:x": {"invite_state": {"events": [_random_event(rng, 0)]}}},
        "leave": {"!l:x": _random_room(rng)},
    }
    response: dict[str, Any] = {
        "next_batch": f"s{_nasty(rng)}",
        "rooms": dict(rng.sample(sorted(rooms.items()), rng.randint(1, 3))),
        "account_data": {"events": [_random_event(rng, 1)]},
        "presence": {"events": [_random_event(rng, 2)]},
        "to_device": {"events": [_random_event(rng, 3)]},
        "device_lists": {"changed": [_nasty(rng)]},
        "device_one_time_keys_count": {"signed_curve25519": rng.randint(0, 50)},
        f"x{_nasty(rng)}": _value(rng),  # not ours: a number, a string, a list...
    }
    names = [n for n in response if n in ("next_batch", "rooms") or rng.random() < 0.8]
    rng.shuffle(names)
    text = json.dumps(
        {name: response[name] for name in names},
        ensure_ascii=rng.random() < 0.5,
        indent=rng.choice([None, 0, 1, "\t"]),
    )
    return text.encode("utf-8", "surrogatepass")


def _damaged(rng: random.Random, raw: bytes) -> bytes:
    at = rng.randrange(len(raw))
    byte = bytes([rng.choice(b'{}[]",:\\ 0-eE.nt\xff\xc3')])
    return rng.choice([raw[:at], raw[:at] + byte + raw[at + 1 :], raw[:at] + byte + raw[at:]])


def _whole_or_refused(raw: bytes) -> SyncBatch | None:
    try:
        return parse_sync(json.loads(raw))
    except (ValueError, MalformedResponse):
        return None


def _sliced_or_refused(raw: bytes, slice_events: int) -> SyncBatch | None:
    try:
        return _flatten(list(sync_slices(raw, slice_events=slice_events)))
    except MalformedResponse:
        return None


@pytest.mark.parametrize("damage", [False, True], ids=["whole", "damaged"])
def test_random_responses_decode_in_slices_as_json_loads_decodes_them(
    damage: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any window may cut a string, an escape, a character or a number: each room, key and
    # section is the same as json.loads of the whole gives, whatever the layout, and a
    # damaged response is refused (MalformedResponse, nothing else) exactly when json.loads
    # refuses it. (A window shorter than a \uXXXX escape, 6, would not be: the real one is 64 KiB.)
    rng = random.Random(13)
    for _case in range(150):
        raw = _random_response(rng)
        if damage:
            raw = _damaged(rng, raw)
        monkeypatch.setattr(sync_stream, "_AHEAD", rng.randint(6, 40))
        monkeypatch.setattr(sync_stream, "_CHUNK", rng.randint(1, 40))
        got = _sliced_or_refused(raw, rng.randint(1, 10))
        assert repr(got) == repr(_whole_or_refused(raw)), raw


@pytest.mark.parametrize("number", ["1234567.5", "1234567e5", "123456e+5", "123456E-5"])
@pytest.mark.parametrize("where", ["section", "room"])
def test_a_number_cut_after_its_point_or_exponent_is_read_whole(
    number: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value longer than the text decoded ahead of it, cut by the window right after its
    # '.', 'e' or 'e+': the scanner reads '1234567' there, a whole number that ends
    # before the window does, and the '.5' left after it broke a valid response.
    section, room = (number, "{}") if where == "section" else ("{}", number)
    raw = (
        f'{{"x": {section}, "next_batch": "s", "rooms": {{"join": {{"!a:x": {room}, "!b:x": {{}}}}}}}}'
    ).encode()
    monkeypatch.setattr(sync_stream, "_CHUNK", 1)
    for ahead in range(6, 12):  # the window's end at each character of the number
        monkeypatch.setattr(sync_stream, "_AHEAD", ahead)
        assert _flatten(list(sync_slices(raw))) == parse_sync(json.loads(raw)), ahead
