"""Damage that the open does not look for: a page zeroed while the client was not running,
after it closed the cache cleanly (the open only measures the file, so a clean start stays
fast), found by the full check after start or by the first store operation that reads the
page. The cache is then marked, written no more, and rebuilt at the next open."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tui_client.engine.cache_damage import CacheDamage
from tui_client.engine.dbthread import DatabaseThread
from tui_client.engine.storage import (
    DAMAGED,
    CacheDamagedError,
    StorageHealth,
    StorageUnavailable,
)
from tui_client.engine.updates import CacheDamageFound, StorageChanged, Update
from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import new_key
from tui_client.store.repair import check_file, damage_mark, mark_damaged, open_checked

ROWS = 3000


def _filled(path: Path, key: bytes | None) -> tuple[int, int, int]:
    """A cache with a few MB in a table of its own and a setting, closed cleanly: the
    table's root page, its page count, the page size."""
    cache = Cache(path, key=key)
    db = cache._db
    db.execute("CREATE TABLE bulk (k TEXT PRIMARY KEY, v TEXT)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO bulk VALUES (?, ?)", ((f"k{i}", "x" * 500) for i in range(ROWS)))
    db.execute("COMMIT")
    cache.set_meta("a_setting", "kept")
    root = int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'bulk'").fetchone()[0])
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    cache.close()
    return root, pages, page_size


def _zero_page(path: Path, page: int, page_size: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\0" * page_size)


@pytest.fixture(params=["encrypted", "plain"])
def key(request: pytest.FixtureRequest) -> bytes | None:
    return new_key() if request.param == "encrypted" else None


def test_a_clean_cache_is_measured_at_open_and_checked_whole_apart(
    tmp_path: Path, key: bytes | None
) -> None:
    path = tmp_path / "cache.db"
    _filled(path, key)
    cache, report = open_checked(path, key=key)
    assert report is None and not cache.fully_checked
    cache.close()
    assert check_file(path, key) is None


def test_a_cache_cut_short_after_a_clean_close_is_rebuilt_at_open(
    tmp_path: Path, key: bytes | None
) -> None:
    path = tmp_path / "cache.db"
    _root, _pages, page_size = _filled(path, key)
    os.truncate(path, path.stat().st_size - page_size - 100)  # not even whole pages
    cache, report = open_checked(path, key=key)
    try:
        assert report is not None and report.set_aside.exists()
        assert cache.get_meta("a_setting") == "kept"
    finally:
        cache.close()


async def test_a_page_zeroed_after_a_clean_close_is_found_after_start(
    tmp_path: Path, key: bytes | None
) -> None:
    path = tmp_path / "cache.db"
    _root, pages, page_size = _filled(path, key)
    _zero_page(path, pages // 2, page_size)  # a leaf of the bulk table, read by nothing at start
    db = DatabaseThread()
    cache, report = db.call(open_checked, path, key=key)
    assert report is None and not cache.fully_checked  # the open did not read every page
    published: list[Update] = []
    storage = StorageHealth(db.run, cache.probe_write, published.append)
    damage = CacheDamage(db, cache, storage, published.append, path, key)
    ready = asyncio.Event()
    ready.set()
    try:
        await damage.check_after(ready)
        assert damage.reason is not None, "the check found nothing"
        assert any(isinstance(u, CacheDamageFound) for u in published), published
        assert StorageChanged(DAMAGED) in published and not storage.writable.is_set()
        assert damage_mark(path).exists()
        # What still reads is read; nothing is written to the damaged file any more.
        assert await db.run(cache.get_meta, "a_setting") == "kept"
        with pytest.raises(CacheDamagedError):
            await db.run(cache.set_meta, "after", "the damage")
        assert storage.problem == DAMAGED  # a write refused is not "a read-only folder"
    finally:
        await db.run(cache.close)
        db.shutdown()
    # The next open rebuilds it (the mark), keeping the settings.
    cache, report = open_checked(path, key=key)
    try:
        assert (report is not None and "malformed" in report.reason) or "page" in str(report)
        assert cache.get_meta("a_setting") == "kept" and cache.get_meta("after") is None
        assert not damage_mark(path).exists()
    finally:
        cache.close()
    assert check_file(path, key) is None


async def test_a_malformed_page_met_by_a_store_operation_is_damage(
    tmp_path: Path, key: bytes | None
) -> None:
    path = tmp_path / "cache.db"
    root, pages, page_size = _filled(path, key)
    for page in range(root, pages + 1):  # the whole table, its root included
        _zero_page(path, page, page_size)
    db = DatabaseThread()
    cache, _report = db.call(open_checked, path, key=key)
    published: list[Update] = []
    storage = StorageHealth(db.run, cache.probe_write, published.append)
    damage = CacheDamage(db, cache, storage, published.append, path, key)

    def read_bulk() -> int:
        return int(cache._db.execute("SELECT count(*) FROM bulk").fetchone()[0])

    try:
        with pytest.raises(CacheDamagedError):
            await db.run(read_bulk)
        assert damage.reason is not None and [
            u for u in published if isinstance(u, CacheDamageFound)
        ]
        assert damage_mark(path).exists()
    finally:
        await db.run(cache.close)
        db.shutdown()


def test_the_open_of_a_clean_cache_costs_no_full_check(tmp_path: Path) -> None:
    """The figure: a clean open against the full check of the same file (no timing assert)."""
    key = new_key()
    path = tmp_path / "cache.db"
    _filled(path, key)
    shutil.copy(path, tmp_path / "copy.db")
    started = time.perf_counter()
    for _ in range(5):
        cache, _report = open_checked(path, key=key)
        cache.close()
    opened = (time.perf_counter() - started) / 5
    started = time.perf_counter()
    assert check_file(path, key) is None
    checked = time.perf_counter() - started
    print(f"clean open {opened * 1000:.1f} ms, full check {checked * 1000:.1f} ms")


@pytest.mark.parametrize("table", ["crypto_inbound_sessions", "meta"])
def test_a_damaged_page_of_a_kept_table_loses_only_its_own_rows(
    tmp_path: Path, key: bytes | None, table: str
) -> None:
    """Room keys and settings (WITHOUT ROWID tables) over many pages, one zeroed: the
    rebuild keeps the rows of every other page (read from both ends up to the damage),
    and says what was lost."""
    count = 800
    path = tmp_path / "cache.db"
    cache = Cache(path, key=key)
    db = cache._db
    before = int(db.execute("PRAGMA page_count").fetchone()[0])
    db.execute("BEGIN")
    if table == "meta":
        rows = [(f"setting{i:05}", "v" * 400) for i in range(count)]
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
    else:
        keys = [(f"!room{i % 7}:x", f"session{i:05}", 1, "k" * 400) for i in range(count)]
        db.executemany("INSERT INTO crypto_inbound_sessions VALUES (?, ?, ?, ?)", keys)
    db.execute("COMMIT")
    after = int(db.execute("PRAGMA page_count").fetchone()[0])
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    # A leaf in the middle of the table (SQLCipher has no dbstat: there, the middle page,
    # a leaf or an interior page whose whole subtree goes).
    page = (before + after) // 2
    leaf_only = key is None
    if leaf_only:
        leaves = [
            int(r[0])
            for r in db.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (table,),
            )
        ]
        page = leaves[len(leaves) // 2]
    cache.close()
    _zero_page(path, page, page_size)
    mark_damaged(path, "found by the check")
    cache, report = open_checked(path, key=key)
    try:
        assert report is not None
        if table == "meta":
            query = "SELECT count(*) FROM meta WHERE key LIKE 'setting%'"
            assert "some settings" in report.lost and "meta" not in report.kept
        else:
            query = "SELECT count(*) FROM crypto_inbound_sessions"
            assert not report.crypto_intact and "some encryption keys" in report.lost
        kept = int(cache._db.execute(query).fetchone()[0])
        # One leaf's rows (about 8) are gone, the rest are kept.
        assert (count - 12 if leaf_only else 0) < kept < count, kept
    finally:
        cache.close()


async def test_a_failing_disk_is_checked_whole_once_not_at_every_failed_call() -> None:
    # A disk I/O error may be a page of a SQLCipher file failing its check: the full check
    # tells. While the disk keeps failing (the storage probe every few seconds, sync's
    # retries) it is not run again at each call; after a call succeeds, it is.
    db = DatabaseThread()
    checks: list[None] = []

    async def verify() -> str | None:
        checks.append(None)
        return None

    db.verify = verify

    def failing() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    try:
        for _ in range(3):
            with pytest.raises(StorageUnavailable):
                await db.run(failing)
        assert len(checks) == 1
        await db.run(lambda: None)
        with pytest.raises(StorageUnavailable):
            await db.run(failing)
        assert len(checks) == 2
    finally:
        db.shutdown()
