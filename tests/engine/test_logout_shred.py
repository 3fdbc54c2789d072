"""Logout overwrites the cache's files (the database, its WAL and shared memory) with
zeros before removing them: a hard link kept to each old file (the attacker's view of
its blocks) holds only zeros afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tests.ui.fake_world import FakeHomeserver, make_profile, use_memory_keyring
from tui_client.engine.client import CACHE_FILE, MatrixClient


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    previous = keyring.get_keyring()
    use_memory_keyring()
    yield make_profile(tmp_path / "base")
    keyring.set_keyring(previous)


async def test_logout_zeroes_the_cache_files_before_removing_them(
    folder: Path, tmp_path: Path
) -> None:
    client = MatrixClient.restore(
        base_dir=tmp_path / "base", transport=FakeHomeserver().transport()
    )
    assert client is not None
    await client.open()
    # Something written, so the WAL holds pages.
    await client.db.run(client.cache.set_meta, "probe", "x" * 5000)
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    sizes: dict[str, int] = {}
    for ending in ("", "-wal", "-shm"):
        path = folder / (CACHE_FILE + ending)
        assert path.exists() and path.stat().st_size > 0, ending
        os.link(path, attacker / f"old{ending or '-file'}")
    await client.logout()
    assert not any(p.name.startswith(CACHE_FILE) for p in folder.iterdir())
    for link in sorted(attacker.iterdir()):
        data = link.read_bytes()
        sizes[link.name] = len(data)
        assert data, link.name  # its blocks were overwritten, not freed
        assert data.count(0) == len(data), link.name
