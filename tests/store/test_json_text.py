"""The JSON text the cache stores: orjson's when installed, the same as the standard library's."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import pytest

from tui_client.protocol.room_state import RoomSummary
from tui_client.store import json_text

SAMPLES: list[Any] = [
    {
        "type": "m.room.message",
        "content": {"body": 'héllo 🐈 \u2028 \x00 \x7f "q" \\', "n": [1, 2.5, -3]},
    },
    {"a": None, "b": True, "c": False, "d": [], "e": {}, "f": 9223372036854775807, "g": -(2**63)},
    {"z": 1, "a": 2, "m": {"y": [{"x": "é"}]}},
    ["list", 0.1, 123456789.125],
    "plain",
]


def test_orjson_is_used_and_writes_the_standard_librarys_text() -> None:
    assert json_text.orjson is not None, "orjson is pinned in requirements.lock"
    assert json_text.dumps is not json_text.stdlib_dumps
    for value in [*SAMPLES, {"body": "x" * 5000, "origin_server_ts": 1_700_000_000_000}]:
        text = json_text.dumps(value)
        assert text == json_text.stdlib_dumps(value)
        assert json.loads(text) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1: "int key"}, '{"1":"int key"}'),
        ({"big": 2**64}, '{"big":18446744073709551616}'),
        ({"lone": "\ud800"}, '{"lone":"\ud800"}'),
    ],
)
def test_what_orjson_refuses_the_standard_library_writes(value: Any, expected: str) -> None:
    assert json_text.dumps(value) == expected


def test_floats_in_exponent_form_keep_their_value() -> None:
    value = [1e-7, 1e16, 2.5e300]
    assert json.loads(json_text.dumps(value)) == value


def test_deep_nesting_falls_back_too() -> None:
    value: Any = "leaf"
    for _ in range(300):
        value = [value]
    assert json.loads(json_text.dumps(value)) == value


def test_a_nan_is_written_as_null_not_invalid_json() -> None:
    assert json_text.dumps({"x": math.nan}) == '{"x":null}'


def test_with_unencodable_types_both_refuse() -> None:
    with pytest.raises(TypeError):
        json_text.dumps({"s": {1, 2}})


def test_a_room_summary_is_written_as_asdict_would_be() -> None:
    summary = RoomSummary(
        "!r:x",
        name="Room é",
        heroes=["@a:x"],
        hero_names={"@a:x": None},
        tags=["m.favourite"],
        bridges={"m.bridge|x": {"protocol": "irc", "network": None}},
    )
    assert json_text.dumps_fields(summary) == json_text.stdlib_dumps(asdict(summary))
    summary.name = "lone \ud800"  # orjson refuses it: the stdlib writes asdict's text
    assert json_text.dumps_fields(summary) == json_text.stdlib_dumps(asdict(summary))
