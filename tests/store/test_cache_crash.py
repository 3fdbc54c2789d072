"""A sync batch is committed whole or not at all, even when the writer is killed mid-way.

The writer runs in a child process that dies inside ``Cache.ingest_sync`` (from the
ingest hook, or at a random SQLite VM step); the parent then reopens the file and
compares every table with the state before the batch and with a reference copy
that ingested the batch undisturbed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache

from .cache_batches import (
    OWN,
    Account,
    create_event,
    event,
    joined_room,
    message,
    state,
    sync_response,
)

ROOT = Path(__file__).resolve().parents[2]
TABLES = (
    "meta",
    "rooms",
    "events",
    "room_state",
    "gaps",
    "receipts",
    "account_data",
    "invite_state",
    "outbox",
)
PROGRESS_STEP = 50

CHILD = r"""
import json, os, signal, sys
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache

path, batch_path, own, mode = sys.argv[1:5]
cache = Cache(path, own_user_id=own)
rooms = cache.load_summaries()
with open(batch_path) as handle:
    batch = parse_sync(json.load(handle))
hook = None
if mode == "hook":
    def hook(batch):
        # The batch's rows are in the database (uncommitted) when we die.
        written = cache._db.execute("SELECT COUNT(*) FROM events WHERE event_id = '$b2-msg-0'").fetchone()[0]
        print(f"written={written}", flush=True)
        os._exit(9)
else:
    kill_at = int(mode)
    calls = 0
    def handler():
        global calls
        calls += 1
        if calls >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return 0
    cache._db.set_progress_handler(handler, PROGRESS_STEP)
cache.ingest_sync(batch, rooms, hook=hook)
print("committed", flush=True)
os._exit(0)
""".replace("PROGRESS_STEP", str(PROGRESS_STEP))


def _first_batch() -> dict[str, Any]:
    return sync_response(
        "s1",
        join={
            "!main:x": joined_room(
                [
                    create_event("$b1-create", "11"),
                    state("$b1-me", "m.room.member", OWN, {"membership": "join"}, sender=OWN),
                    message("$b1-target", "to be redacted"),
                    message("$b1-keep", "kept"),
                ],
                prev_batch="p-main-1",
                ephemeral=[
                    {
                        "type": "m.receipt",
                        "content": {"$b1-keep": {"m.read": {"@alice:example.org": {"ts": 10}}}},
                    }
                ],
            )
        },
        invite={
            "!inv:x": {
                "invite_state": {
                    "events": [
                        {
                            "type": "m.room.member",
                            "state_key": OWN,
                            "sender": "@carol:example.org",
                            "origin_server_ts": 1_700_000_000_000,
                            "content": {"membership": "invite"},
                        }
                    ]
                }
            }
        },
    )


def _second_batch() -> dict[str, Any]:
    main_events = [message(f"$b2-msg-{i}", f"second batch {i}") for i in range(60)]
    main_events.append(
        event("$b2-redaction", "m.room.redaction", content={"redacts": "$b1-target"})
    )
    main_events.append(
        message("$b2-echo", "mine", sender=OWN, unsigned={"transaction_id": "txn-1"})
    )
    other = [create_event("$b2-other-create", "10")] + [
        message(f"$b2-other-{i}") for i in range(30)
    ]
    return sync_response(
        "s2",
        join={
            "!main:x": joined_room(
                main_events,
                limited=True,
                prev_batch="p-main-2",
                ephemeral=[
                    {
                        "type": "m.receipt",
                        "content": {"$b2-msg-3": {"m.read": {"@alice:example.org": {"ts": 20}}}},
                    }
                ],
                account_data=[{"type": "m.tag", "content": {"tags": {"m.favourite": {}}}}],
            ),
            "!other:x": joined_room(
                other, prev_batch="p-other-1", summary={"m.heroes": ["@bob:example.org"]}
            ),
            # Accepting the invite.
            "!inv:x": joined_room(
                [state("$b2-inv-join", "m.room.member", OWN, {"membership": "join"}, sender=OWN)]
            ),
        },
        account_data=[{"type": "m.direct", "content": {"@bob:example.org": ["!other:x"]}}],
    )


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}"), key=repr) for t in TABLES}
    finally:
        db.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The database after the first batch, and a reference copy after the second."""
    folder = tmp_path_factory.mktemp("crash")
    base = folder / "base.sqlite3"
    account = Account(base)
    account.ingest(_first_batch())
    account.cache.outbox_add(
        "txn-1", "!main:x", "m.room.message", {"msgtype": "m.text", "body": "mine"}
    )
    account.close()

    batch_path = folder / "batch2.json"
    batch_path.write_text(json.dumps(_second_batch()))

    reference = folder / "reference.sqlite3"
    shutil.copy(base, reference)
    account = Account(reference)
    # Count the VM steps of an undisturbed ingest, to aim the random kills inside it.
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    account.cache._db.set_progress_handler(count, PROGRESS_STEP)
    account.ingest(parse_sync(json.loads(batch_path.read_text())))
    account.cache._db.set_progress_handler(None, PROGRESS_STEP)
    account.close()
    return {
        "base": base,
        "batch": batch_path,
        "before": _dump(base),
        "after": _dump(reference),
        "steps": steps,
    }


def _copy_of_base(prepared: dict[str, Any], tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copy(prepared["base"], path)
    return path


def run_child(
    code: str, path: Path, batch_path: Path, mode: str
) -> subprocess.CompletedProcess[str]:
    """Run the child program ``code`` on the cache at ``path`` (it stores the batch at
    ``batch_path``, dying as ``mode`` says)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, str(path), str(batch_path), OWN, mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def _run_child(path: Path, batch_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return run_child(CHILD, path, batch_path, mode)


def _ingest_normally(path: Path, batch_path: Path) -> None:
    account = Account(path)
    try:
        account.ingest(parse_sync(json.loads(batch_path.read_text())))
    finally:
        account.close()


def _assert_batch_two_exactly_once(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        ids = [r[0] for r in db.execute("SELECT event_id FROM events WHERE event_id LIKE '$b2-%'")]
        token = db.execute("SELECT value FROM meta WHERE key = 'next_batch'").fetchone()[0]
    finally:
        db.close()
    assert token == "s2"
    assert len(ids) == len(set(ids)) == 60 + 2 + 31 + 1


def test_killed_after_events_before_token_leaves_previous_state(
    prepared: dict[str, Any], tmp_path: Path
) -> None:
    path = _copy_of_base(prepared, tmp_path, "hook.sqlite3")
    child = _run_child(path, prepared["batch"], "hook")
    assert child.returncode == 9, child.stderr
    # The child really had written the batch's events when it died.
    assert "written=1" in child.stdout

    def untouched(cache: Cache) -> None:
        assert cache.load_events(["$b2-msg-0", "$b2-other-0", "$b2-redaction"]) == {}
        assert (
            cache.load_events(["$b1-target"])["$b1-target"]["content"]["body"] == "to be redacted"
        )
        assert [e.txn_id for e in cache.outbox()] == ["txn-1"]

    check_untouched_then_stored_once(prepared, path, untouched, _ingest_normally)


def check_untouched_then_stored_once(
    prepared: dict[str, Any],
    path: Path,
    untouched: Callable[[Cache], None],
    ingest: Callable[[Path, Path], object],
) -> None:
    """The cache at ``path`` (its writer killed mid-batch) is as before the batch, token
    included (and as ``untouched`` checks); ``ingest`` then stores the batch exactly once."""
    cache = Cache(path, own_user_id=OWN)
    try:
        assert cache.sync_token == "s1"
        untouched(cache)
    finally:
        cache.close()
    assert _dump(path) == prepared["before"]

    ingest(path, prepared["batch"])
    assert _dump(path) == prepared["after"]
    _assert_batch_two_exactly_once(path)


def test_killed_at_random_points_is_all_or_nothing(
    prepared: dict[str, Any], tmp_path: Path
) -> None:
    check_kills_are_all_or_nothing(
        prepared, tmp_path, prepared["steps"], 20240611, _run_child, _ingest_normally
    )


def check_kills_are_all_or_nothing(
    prepared: dict[str, Any],
    tmp_path: Path,
    steps: int,
    seed: int,
    run_child: Callable[[Path, Path, str], subprocess.CompletedProcess[str]],
    ingest: Callable[[Path, Path], object],
) -> None:
    """Kill a child ingesting ``prepared``'s batch at ten of its ``steps`` (SQLite progress
    calls): each cache holds the batch whole or not at all, and ``ingest`` then stores it once.
    """
    assert steps > 20, "the batch is too small to aim kills inside it"
    rng = random.Random(seed)
    # The last point is past the end of the ingest: that child commits and exits normally.
    kill_points = sorted(
        {1, steps // 2, steps, *(rng.randint(1, steps) for _ in range(7)), steps + 10}
    )
    outcomes = []
    for kill_at in kill_points:
        path = _copy_of_base(prepared, tmp_path, f"kill-{kill_at}.sqlite3")
        child = run_child(path, prepared["batch"], str(kill_at))
        assert child.returncode in (0, -9), child.stderr
        dump = _dump(path)
        if dump == prepared["before"]:
            outcomes.append("nothing")
            ingest(path, prepared["batch"])
            dump = _dump(path)
        else:
            outcomes.append("all")
        assert dump == prepared["after"], (
            f"killed at step {kill_at}: the cache holds part of the batch"
        )
        _assert_batch_two_exactly_once(path)
    # The kills really landed inside the ingest (not all after it).
    assert "nothing" in outcomes
    assert outcomes[-1] == "all"


def test_an_exception_in_the_ingest_rolls_back(prepared: dict[str, Any], tmp_path: Path) -> None:
    path = _copy_of_base(prepared, tmp_path, "raise.sqlite3")
    account = Account(path)

    def fail(batch: object) -> None:
        raise RuntimeError("boom")

    rooms_before = {k: v.copy() for k, v in account.rooms.items()}
    with pytest.raises(RuntimeError, match="boom"):
        account.cache.ingest_sync(
            parse_sync(json.loads(prepared["batch"].read_text())), account.rooms, hook=fail
        )
    # The in-memory room list was only read.
    assert account.rooms == rooms_before
    # The connection is usable afterwards, and the same batch then goes in whole.
    account.ingest(parse_sync(json.loads(prepared["batch"].read_text())))
    account.close()
    assert _dump(path) == prepared["after"]
