"""A response stored in slices (``Cache.ingest_slices``) is committed whole or not at all.

As tests/store/test_cache_crash.py for a whole batch: a child process stores the second
batch of that file in slices of one room each and dies between slices (in the hook,
with earlier slices' rows written) or at a random SQLite VM step; the parent reopens the
file, finds the cache exactly as before the batch (token included), stores the batch
again, and finds exactly what a whole, undisturbed ingest stores: nothing lost, nothing
twice.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tui_client.net.sync_stream import sync_slices
from tui_client.protocol.sync import MalformedResponse, parse_sync
from tui_client.store.cache import Cache

from .cache_batches import Account
from .test_cache_crash import (
    PROGRESS_STEP,
    _assert_batch_two_exactly_once,
    _copy_of_base,
    _dump,
    check_kills_are_all_or_nothing,
    check_untouched_then_stored_once,
    prepared,
    run_child,
)

__all__ = ["prepared"]  # the module-scoped fixture, shared with test_cache_crash

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, signal, sys
from tui_client.net.sync_stream import sync_slices
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache

path, batch_path, own, mode = sys.argv[1:5]
raw = open(batch_path, "rb").read()
cache = Cache(path, own_user_id=own)
rooms = cache.load_summaries()
slices = 0

def make_hook():
    def hook(batch):
        global slices
        slices += 1
        if mode.startswith("slice") and slices == int(mode[5:]):
            # Earlier slices' rows are in the database (uncommitted) when we die.
            written = cache._db.execute("SELECT COUNT(*) FROM events WHERE event_id LIKE '$b2-%'").fetchone()[0]
            print(f"written={written}", flush=True)
            os._exit(9)
        return slices
    return hook

if not mode.startswith("slice"):
    kill_at = int(mode)
    calls = 0
    def handler():
        global calls
        calls += 1
        if calls >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return 0
    cache._db.set_progress_handler(handler, PROGRESS_STEP)
result = cache.ingest_slices(lambda: sync_slices(raw, slice_events=1), rooms, hook=make_hook)
print(f"committed slices={result.hook_result}", flush=True)
os._exit(0)
""".replace("PROGRESS_STEP", str(PROGRESS_STEP))


def _run_child(path: Path, batch_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return run_child(CHILD, path, batch_path, mode)


def _ingest_sliced(path: Path, batch_path: Path, count: Any = None) -> int:
    """Store the batch in slices of one room; return how many slices there were."""
    account = Account(path)
    raw = batch_path.read_bytes()
    seen = 0

    def hook(batch: object) -> int:
        nonlocal seen
        seen += 1
        return seen

    if count is not None:
        account.cache._db.set_progress_handler(count, PROGRESS_STEP)
    try:
        result = account.cache.ingest_slices(
            lambda: sync_slices(raw, slice_events=1), account.rooms, hook=lambda: hook
        )
    finally:
        account.cache._db.set_progress_handler(None, PROGRESS_STEP)
        account.close()
    assert result.next_batch == "s2"
    return seen


def _pending(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT e.event_id FROM fts_pending p JOIN events e ON e.seq = p.seq ORDER BY 1"
        )
        return [r[0] for r in rows]
    finally:
        db.close()


def _laid_out(batch_path: Path, layout: str, folder: Path) -> Path:
    """The batch with its sections in another order (as servers write them)."""
    body = json.loads(batch_path.read_text())
    rooms = body.pop("rooms")
    if layout == "synapse":  # rooms last, as Synapse writes it
        body["rooms"] = rooms
    elif layout == "to-device after rooms":  # as ruma-based servers write it
        body = {"next_batch": body.pop("next_batch"), "rooms": rooms, **body}
        body["to_device"] = {"events": []}
    else:  # as written: the global account data after the rooms
        body["rooms"] = rooms
        body["account_data"] = body.pop("account_data")
    path = folder / f"{layout}.json"
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize(
    ("layout", "batches"),
    [("synapse", 4), ("account data after rooms", 5), ("to-device after rooms", 4)],
)
def test_stored_in_slices_it_is_what_the_whole_batch_stores(
    prepared: dict[str, Any], tmp_path: Path, layout: str, batches: int
) -> None:
    path = _copy_of_base(prepared, tmp_path, "sliced.sqlite3")
    # The head, then one slice a joined room (three of them), then (when the global
    # account data follows the rooms) a last batch with it.
    assert _ingest_sliced(path, _laid_out(prepared["batch"], layout, tmp_path)) == batches
    assert _dump(path) == prepared["after"]
    _assert_batch_two_exactly_once(path)
    # Every new message waits for the search index once, as after a whole batch.
    whole = _copy_of_base(prepared, tmp_path, "whole.sqlite3")
    account = Account(whole)
    account.ingest(parse_sync(json.loads(prepared["batch"].read_text())))
    account.close()
    assert _pending(path) == _pending(whole) and len(_pending(path)) >= 60 + 30


@pytest.mark.parametrize("broken", ["truncated", "broken room"])
def test_a_response_broken_part_way_stores_nothing(
    prepared: dict[str, Any], tmp_path: Path, broken: str
) -> None:
    # Read in one pass, a response is found broken in its last room after the head
    # and the first rooms were written: the error says so and all of it is rolled back.
    path = _copy_of_base(prepared, tmp_path, "broken.sqlite3")
    raw = _laid_out(prepared["batch"], "synapse", tmp_path).read_bytes()
    rooms = [raw.index(b'"%s": {' % room) for room in (b"!main:x", b"!other:x", b"!inv:x")]
    assert rooms == sorted(rooms)
    if broken == "truncated":
        raw = raw[: rooms[2] + 30]
    else:
        raw = raw.replace(b'"!inv:x": {', b'"!inv:x": {,')
    account = Account(path)
    written: list[int] = []

    def hook(batch: object) -> None:
        written.append(
            account.cache._db.execute(
                "SELECT COUNT(*) FROM events WHERE event_id LIKE '$b2-%'"
            ).fetchone()[0]
        )

    with pytest.raises(MalformedResponse, match="sync response is not JSON"):
        account.cache.ingest_slices(
            lambda: sync_slices(raw, slice_events=1), account.rooms, hook=lambda: hook
        )
    account.close()
    # The head and the two rooms before the broken one had been written.
    assert written == [0, 62, 62 + 31]
    check_untouched_then_stored_once(
        prepared, path, lambda cache: None, lambda path, batch: _ingest_sliced(path, batch)
    )


@pytest.mark.parametrize("slice_no", [2, 3, 4])
def test_killed_between_slices_leaves_the_previous_state(
    prepared: dict[str, Any], tmp_path: Path, slice_no: int
) -> None:
    path = _copy_of_base(prepared, tmp_path, f"slice{slice_no}.sqlite3")
    child = _run_child(path, prepared["batch"], f"slice{slice_no}")
    assert child.returncode == 9, child.stderr
    # The child had written the rooms of the slices before (slice 2: the first room).
    written = int(child.stdout.split("written=")[1].split()[0])
    assert written >= 60 * (slice_no >= 2) + 31 * (slice_no >= 3)

    def untouched(cache: Cache) -> None:
        assert cache.load_events(["$b2-msg-0", "$b2-other-0"]) == {}

    check_untouched_then_stored_once(prepared, path, untouched, _ingest_sliced)


def test_killed_at_random_points_of_a_sliced_ingest_is_all_or_nothing(
    prepared: dict[str, Any], tmp_path: Path
) -> None:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    _ingest_sliced(_copy_of_base(prepared, tmp_path, "count.sqlite3"), prepared["batch"], count)
    check_kills_are_all_or_nothing(prepared, tmp_path, steps, 20261207, _run_child, _ingest_sliced)


def test_each_slice_writes_only_its_own_receipts_and_account_data(
    prepared: dict[str, Any], tmp_path: Path
) -> None:
    # Rows gathered for one statement a slice are written once, not again with every
    # later slice (which made a first sync's writes grow with the square of its rooms).
    account = Account(_copy_of_base(prepared, tmp_path, "once.sqlite3"))
    raw = prepared["batch"].read_bytes()
    statements: list[str] = []
    account.cache._db.set_trace_callback(statements.append)
    try:
        account.cache.ingest_slices(lambda: sync_slices(raw, slice_events=1), account.rooms)
    finally:
        account.cache._db.set_trace_callback(None)
        account.close()
    kinds = {
        "INSERT INTO receipts": "receipt",
        "INSERT OR REPLACE INTO account_data": "account data",
        "DELETE FROM meta WHERE key = 'forgotten:": "unforgotten",
    }
    written = sorted(k for s in statements for p, k in kinds.items() if s.startswith(p))
    # !main's receipt; !main's tag and the m.direct; the three joined rooms.
    assert written == ["account data"] * 2 + ["receipt"] + ["unforgotten"] * 3, written
