"""The cache file itself: numbered migrations, refusing newer schemas, private permissions."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from tui_client.engine.paths import profile_dir
from tui_client.store import schema
from tui_client.store.cache import Cache
from tui_client.store.schema import SCHEMA_VERSION, migrate

from .cache_batches import Account, batch, joined_room, message

EXPECTED_TABLES = {
    "meta",
    "rooms",
    "events",
    "room_state",
    "gaps",
    "receipts",
    "account_data",
    "invite_state",
    "outbox",
}


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_migrations_from_empty_database_reach_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache(path)
    try:
        assert cache.schema_found == 0
        assert cache.stats() == dict.fromkeys(
            ("rooms", "events", "room_state", "gaps", "receipts", "outbox"), 0
        )
    finally:
        cache.close()
    assert _user_version(path) == SCHEMA_VERSION
    assert _tables(path) >= EXPECTED_TABLES


def test_reopening_is_a_no_op_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    account = Account(path)
    account.ingest(batch("s1", join={"!r:x": joined_room([message("$a"), message("$b")])}))
    account.close()
    with sqlite3.connect(path) as db:
        schema_before = sorted(db.execute("SELECT type, name, sql FROM sqlite_master"))

    reopened = Cache(path)
    try:
        assert reopened.schema_found == SCHEMA_VERSION
        assert reopened.sync_token == "s1"
        assert reopened.count_timeline("!r:x") == 2
    finally:
        reopened.close()
    with sqlite3.connect(path) as db:
        assert sorted(db.execute("SELECT type, name, sql FROM sqlite_master")) == schema_before
    assert _user_version(path) == SCHEMA_VERSION


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE from_the_future (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        Cache(path)
    assert _user_version(path) == SCHEMA_VERSION + 1
    assert _tables(path) == {"from_the_future"}


def test_a_failing_migration_step_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    Cache(path).close()
    # A next step whose second statement fails: the first must not survive it.
    broken = (*schema.MIGRATIONS, "CREATE TABLE half_done (x);\nCREATE TABLE meta (key TEXT);\n")
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(broken))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(db)
    finally:
        db.close()
    assert _user_version(path) == SCHEMA_VERSION
    assert "half_done" not in _tables(path)


def test_profile_dir_is_private(tmp_path: Path) -> None:
    base = tmp_path / "data"
    folder = profile_dir("work", base)
    assert folder == base / "work"
    assert _mode(base) == 0o700
    assert _mode(folder) == 0o700
    # An existing folder with loose permissions is tightened.
    loose = tmp_path / "loose"
    (loose / "default").mkdir(parents=True, mode=0o755)
    (loose / "default").chmod(0o755)
    assert _mode(profile_dir("default", loose)) == 0o700
    with pytest.raises(ValueError):
        profile_dir("../escape", base)


def test_cache_and_wal_files_are_private(tmp_path: Path) -> None:
    folder = profile_dir("default", tmp_path)
    path = folder / "cache.sqlite3"
    account = Account(path)
    try:
        assert _mode(path) == 0o600
        account.ingest(batch("s1", join={"!r:x": joined_room([message("$a")])}))
        account.cache.outbox_add("txn1", "!r:x", "m.room.message", {"body": "hi"})
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert _mode(wal) == 0o600
        assert _mode(shm) == 0o600
    finally:
        account.close()


def test_an_existing_world_readable_cache_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Cache(path).close()
    assert _mode(path) == 0o600
