"""A large first ``/sync`` v2 response is stored in slices: the engine's own
``MatrixClient._ingest_raw`` (parse, store, the encryption hook, unread counts) on the
benchmark's synthetic account, with the traced peak of Python memory measured against
the same response stored whole, in the same run (a ratio, not a timing)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any, cast

from bench.ingest import CACHE_FILE, OWN_USER_ID, _Engine, open_encryption
from bench.synthetic import initial_sync
from tui_client.engine.client import MatrixClient
from tui_client.engine.core import Core
from tui_client.engine.encryption import CryptoResult
from tui_client.engine.sync import SyncV2Source
from tui_client.engine.sync_ingest import ingest_response
from tui_client.store.cache import Cache, IngestResult

ROOMS = 80


def _first_sync(
    raw: bytes, folder: Path, *, sliced: bool
) -> tuple[int, IngestResult[CryptoResult], dict[str, int]]:
    """Traced peak of the ingest, its result, and what the cache then holds."""
    source = SyncV2Source(cast(Any, None))
    source.slice_bytes = 0 if sliced else len(raw) + 1
    source.slice_events = 200
    cache = Cache(folder / CACHE_FILE, own_user_id=OWN_USER_ID)
    engine = _Engine(source, cache, {})
    open_encryption(engine)
    tracemalloc.start()
    try:
        result = MatrixClient._ingest_raw(cast(MatrixClient, engine), raw, True)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stats = cache.stats()
    cache.close()
    return peak, result, stats


def test_a_first_sync_in_slices_holds_a_fraction_of_the_whole(tmp_path: Path) -> None:
    raw = initial_sync(rooms=ROOMS)
    (tmp_path / "whole").mkdir()
    (tmp_path / "sliced").mkdir()
    whole_peak, whole, whole_stats = _first_sync(raw, tmp_path / "whole", sliced=False)
    peak, result, stats = _first_sync(raw, tmp_path / "sliced", sliced=True)

    # The same cache and room list either way.
    assert stats == whole_stats and stats["events"] > 3_000
    assert result.next_batch == whole.next_batch
    assert result.changed_rooms == whole.changed_rooms and len(result.changed_rooms) == ROOMS
    # The slices' events were not kept for the engine to publish (views read the cache);
    # only the state events in timelines stay.
    assert result.trimmed_rooms == set(whole.new_events) and len(result.trimmed_rooms) == ROOMS
    assert all("state_key" in s.event for events in result.new_events.values() for s in events)
    assert sum(map(len, result.new_events.values())) < sum(map(len, whole.new_events.values())) / 4

    # Decoded whole, the response's objects are ~8x its bytes, all alive at once; in
    # slices, a few slices' worth on top of what every room needs kept (its summary).
    print(f"traced peak: whole {whole_peak / len(raw):.2f}x, sliced {peak / len(raw):.2f}x")
    assert whole_peak > 5 * len(raw)
    assert peak < 0.4 * whole_peak


def test_account_data_and_presence_after_the_rooms_reach_the_engine(tmp_path: Path) -> None:
    # A server that writes them after rooms.join: read in one pass, they come in the last
    # batch, stored with the rest; the engine reads them (presence, the account data
    # types its notifications look at) from the head it is handed, as if written first.
    body = json.loads(initial_sync(rooms=5))
    body["presence"] = {
        "events": [{"type": "m.presence", "sender": "@zed:x", "content": {"presence": "online"}}]
    }
    for key in ("account_data", "presence"):
        body[key] = body.pop(key)  # after "rooms" now
    raw = json.dumps(body).encode()
    assert raw.index(b'"rooms"') < raw.index(b'"account_data"')
    source = SyncV2Source(cast(Any, None))
    source.slice_bytes = 0
    cache = Cache(tmp_path / CACHE_FILE, own_user_id=OWN_USER_ID)
    engine = _Engine(source, cache, {})
    open_encryption(engine)
    assert engine.encryption is not None
    result, head = ingest_response(
        source, raw, cast(Core, engine), engine.encryption, engine.server_clock, True
    )
    assert len(result.changed_rooms) == 5
    assert [e["type"] for e in head.account_data] == [
        e["type"] for e in body["account_data"]["events"]
    ]
    assert head.presence == body["presence"]["events"]
    assert cache.account_data("m.direct") == body["account_data"]["events"][0]["content"]
    cache.close()
