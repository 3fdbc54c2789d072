"""The clear forms of a sync batch's encrypted events are written together (one statement
for the batch, not one per event), inside the batch's transaction: committed with its
token, or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench.crypto import ROOM
from bench.sync_decrypt import BOB, open_encryption, prepare
from tui_client.engine.client import CACHE_FILE
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache


class _Counting:
    """The store's connection, counting the statements that write clear forms."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.single: list[str] = []
        self.many: list[tuple[str, int]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if "decrypted_events" in sql and not sql.startswith("SELECT"):
            self.single.append(sql)
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = list(rows)
        if "decrypted_events" in sql:
            self.many.append((sql.split(" (")[0], len(rows)))
        return self._db.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _halves(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    room = raw["rooms"]["join"][ROOM]
    events = room["timeline"]["events"]
    half = len(events) // 2

    def batch(token: str, part: list[dict[str, Any]]) -> dict[str, Any]:
        timeline = {"events": part, "limited": False}
        return {"next_batch": token, "rooms": {"join": {ROOM: {**room, "timeline": timeline}}}}

    return batch("s1", events[:half]), batch("s2", events[half:])


def test_a_batch_of_encrypted_events_keeps_its_clear_forms_in_one_statement(
    tmp_path: Path,
) -> None:
    key, raw = prepare(tmp_path, "vodozemac", 40)
    first, second = _halves(raw)
    cache = Cache(tmp_path / CACHE_FILE, own_user_id=BOB)
    encryption = open_encryption(cache, "vodozemac", key)
    counting = _Counting(encryption.store._db)
    encryption.store._db = counting  # type: ignore[assignment]

    result = cache.ingest_sync(parse_sync(first), {}, hook=encryption.ingest_hook)
    ids = [e["event_id"] for e in first["rooms"]["join"][ROOM]["timeline"]["events"]]
    assert result.hook_result is not None and len(result.hook_result.clear[ROOM]) == 20
    assert counting.single == []
    assert counting.many == [
        ("INSERT INTO decrypted_events", 20),
        ("DELETE FROM undecrypted_events WHERE event_id = ?", 20),
    ]
    stored = encryption.store.decrypted(ids)
    assert [stored[i][0]["content"]["body"] for i in ids] == [
        f"message number {n} " * 3 for n in range(20)
    ]
    assert cache.get_meta("next_batch") == "s1"

    # A batch that fails after its hook (here: while its slice is handed on) leaves no
    # clear form behind, and its token is not stored: it is fetched and decrypted again.
    def fail(*_: object) -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        cache.ingest_slices(
            lambda: (parse_sync(second),), {}, hook=lambda: encryption.ingest_hook, on_slice=fail
        )
    later = [e["event_id"] for e in second["rooms"]["join"][ROOM]["timeline"]["events"]]
    assert encryption.store.decrypted(later) == {}
    assert cache.get_meta("next_batch") == "s1"
    cache.close()
