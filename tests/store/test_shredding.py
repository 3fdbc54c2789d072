"""Nothing of the plain cache stays in the blocks it leaves: encrypting it in place
overwrites its WAL with zeros before it is removed, as the file itself. Checked the way
an attacker keeping a hard link to the old files would see them."""

from __future__ import annotations

import os
from pathlib import Path

from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import finish_interrupted_migration, new_key, shred

from .test_encrypted_cache import OWN, SECRET_BODY, _bodies, _fill, _raw_hits


def _plain_cache_with_its_wal(tmp_path: Path) -> Path:
    """A plain cache as an earlier release left it after a crash: its last batch in the WAL."""
    source = tmp_path / "source"
    live = Cache(source / "cache.sqlite3", own_user_id=OWN)
    live._db.execute("PRAGMA wal_autocheckpoint=0")
    _fill(live, 30)
    folder = tmp_path / "profile"
    folder.mkdir()
    for name in ("cache.sqlite3", "cache.sqlite3-wal"):
        (folder / name).write_bytes((source / name).read_bytes())
    live.close()
    return folder


def _only_zeros(path: Path) -> bool:
    data = path.read_bytes()
    return data.count(0) == len(data)


def test_the_plain_wal_is_overwritten_before_it_is_removed(tmp_path: Path) -> None:
    folder = _plain_cache_with_its_wal(tmp_path)
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    wal_size = (folder / "cache.sqlite3-wal").stat().st_size
    assert SECRET_BODY.encode() in (folder / "cache.sqlite3-wal").read_bytes()
    os.link(folder / "cache.sqlite3-wal", attacker / "old-wal")
    os.link(folder / "cache.sqlite3", attacker / "old-file")
    file_size = (folder / "cache.sqlite3").stat().st_size

    cache = Cache(folder / "cache.sqlite3", key=new_key())
    assert len(_bodies(cache)) == 30  # what was in the WAL was kept
    cache.close()
    # The old WAL's own blocks now hold zeros (not freed with the text still in them).
    assert (attacker / "old-wal").stat().st_size == wal_size
    assert _only_zeros(attacker / "old-wal")
    assert (attacker / "old-file").stat().st_size >= file_size
    assert _only_zeros(attacker / "old-file")
    assert _raw_hits(folder, SECRET_BODY.encode()) == []
    assert sorted(p.name for p in folder.iterdir()) == ["cache.sqlite3"]


def test_an_interrupted_migration_keeps_a_wal_still_in_use(tmp_path: Path) -> None:
    """Killed after the second name was made but before SQLite folded the WAL in: the WAL
    is still the cache's, so only the extra name goes."""
    folder = _plain_cache_with_its_wal(tmp_path)
    os.link(folder / "cache.sqlite3-wal", folder / "cache.sqlite3.plain-wal")
    finish_interrupted_migration(folder / "cache.sqlite3")
    assert not (folder / "cache.sqlite3.plain-wal").exists()
    assert SECRET_BODY.encode() in (folder / "cache.sqlite3-wal").read_bytes()
    cache = Cache(folder / "cache.sqlite3", key=new_key())
    assert len(_bodies(cache)) == 30
    cache.close()
    assert _raw_hits(folder, SECRET_BODY.encode()) == []


def test_shred_zeroes_every_name_of_the_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"x" * 3_000_000)
    os.link(target, tmp_path / "link")
    shred(target)
    assert not target.exists()
    assert (tmp_path / "link").stat().st_size == 3_000_000
    assert _only_zeros(tmp_path / "link")
    shred(tmp_path / "missing")  # nothing there: nothing done
