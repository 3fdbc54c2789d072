"""bench/heap.py: the measures the soak (bench/soak.py) uses to say where its RSS is."""

from __future__ import annotations

from collections import Counter

from bench.heap import (
    collect_frozen,
    growers,
    malloc_mb,
    py_blocks_k,
    pymalloc_mb,
    rss_parts_mb,
    sqlite_mb,
    type_counts,
)


class _Grower:
    pass


def test_sqlite_memory_counts_sqlcipher_page_cache() -> None:
    from sqlcipher3 import dbapi2

    before = sqlite_mb()
    db = dbapi2.connect(":memory:")
    db.execute("PRAGMA cache_size=-4096")
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 3000)
    filled = sqlite_mb()
    db.close()
    # 3 MB of rows in a 4 MiB page cache: SQLCipher's own allocator counts them.
    assert filled - before > 2.5, (before, filled)
    assert sqlite_mb() < filled - 2.5


def test_python_heap_measures_and_census() -> None:
    used, arenas = pymalloc_mb()
    assert 0 < used <= arenas
    assert py_blocks_k() > 0
    in_use, _free = malloc_mb()
    assert in_use > 0
    anon, file = rss_parts_mb()
    assert anon > arenas and file > 0
    before = type_counts()
    kept = [_Grower() for _ in range(500)]
    after = type_counts()
    grown = dict(growers(before, after))
    assert grown[f"{__name__}._Grower"] == 500
    assert len(kept) == 500
    assert growers(Counter({"a": 3}), Counter({"a": 2})) == []


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_census_counts_frozen_objects_and_the_frozen_garbage_by_type() -> None:
    import gc

    kept = [_Grower() for _ in range(300)]
    dropped = [_Cycle() for _ in range(200)]
    gc.freeze()
    try:
        census = type_counts()
        assert census[f"{__name__}._Grower"] >= 300  # frozen, and still counted
        assert gc.get_freeze_count() > 0  # frozen again afterwards
        del dropped
        found, _freed, kinds = collect_frozen()
        assert found >= 200
        assert kinds[f"{__name__}._Cycle"] == 200
        assert not gc.garbage
    finally:
        gc.unfreeze()
    assert len(kept) == 300
