"""is_verification_event runs for every timeline event of a sync (35,000 in a first sync
of 1,000 rooms): an ordinary event is told apart without importing the verification
model (a function-level import, lazy for start-up, costs ~1 us a call: ~40 ms there)."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from tui_client.engine.encryption import is_verification_event

ORDINARY: list[dict[str, Any]] = [
    {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "hi"}},
    {"type": "m.room.message", "content": {"msgtype": 5}},
    {"type": "m.room.message", "content": "not an object"},
    {"type": "m.room.message"},
    {"type": "m.reaction", "content": {}},
    {"type": "m.room.encrypted", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
    {"type": "m.room.member", "state_key": "@a:x", "content": {"membership": "join"}},
    {"type": 7},
    {},
]


def test_an_ordinary_event_is_told_apart_without_an_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imported: list[str] = []
    real_import = builtins.__import__

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", counting)
    told = [is_verification_event(event) for event in ORDINARY]
    monkeypatch.undo()
    assert told == [False] * len(ORDINARY) and imported == []


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"type": "m.key.verification.start", "content": {}}, True),
        ({"type": "m.key.verification.cancel", "content": {}}, True),
        ({"type": "m.key.verification.unknown", "content": {}}, False),
        (
            {"type": "m.room.message", "content": {"msgtype": "m.key.verification.request"}},
            True,
        ),
        # Only the request travels as a message.
        ({"type": "m.room.message", "content": {"msgtype": "m.key.verification.start"}}, False),
    ],
)
def test_verification_events_are_found(event: dict[str, Any], expected: bool) -> None:
    assert is_verification_event(event) is expected
