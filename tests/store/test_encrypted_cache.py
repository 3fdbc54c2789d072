"""The cache encrypted with SQLCipher: nothing readable on disk, the wrong key refused,
FTS5 available, and a plain cache encrypted in place, safely even under kill -9."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import (
    PLAIN_HEADER,
    CacheKeyError,
    connect,
    is_plain_sqlite,
    new_key,
)

from .cache_batches import create_event, joined_room, message, state, sync_response

ROOT = Path(__file__).resolve().parents[2]
ROOM = "!room:example.org"
OWN = "@me:example.org"
SECRET_BODY = "zanzibar-quokka-7731 the launch code"
STATE_TOPIC = "topic-pelican-4410"


def _batch(next_batch: str, *event_ids: str) -> dict[str, object]:
    events = [
        create_event("$create", "10"),
        state("$topic", "m.room.topic", "", {"topic": STATE_TOPIC}),
    ]
    events += [message(eid, f"{SECRET_BODY} {eid}") for eid in event_ids]
    return sync_response(next_batch, join={ROOM: joined_room(events)})


def _fill(cache: Cache, count: int = 20) -> None:
    result = cache.ingest_sync(parse_sync(_batch("s1", *[f"$m{i}" for i in range(count)])), {})
    assert ROOM in result.changed_rooms


def _raw_hits(folder: Path, needle: bytes) -> list[str]:
    """Every file of the folder whose raw bytes contain ``needle`` (the attacker's view)."""
    return [
        str(p.relative_to(folder))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and needle in p.read_bytes()
    ]


def _bodies(cache: Cache) -> list[str]:
    rows = cache.execute_readonly(
        "SELECT json FROM events WHERE type = 'm.room.message' ORDER BY pos"
    )
    return [row[0] for row in rows]


def test_encrypted_cache_has_no_header_and_no_clear_text_in_any_file(tmp_path: Path) -> None:
    key = new_key()
    cache = Cache(tmp_path / "cache.sqlite3", own_user_id=OWN, key=key)
    _fill(cache)
    # While open: the WAL holds the batch; it must be as unreadable as the file.
    assert (tmp_path / "cache.sqlite3-wal").stat().st_size > 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "cache.sqlite3-wal" in files
    for needle in (SECRET_BODY.encode(), STATE_TOPIC.encode(), ROOM.encode(), PLAIN_HEADER):
        assert _raw_hits(tmp_path, needle) == []
    cache.close()
    assert not is_plain_sqlite(tmp_path / "cache.sqlite3")
    assert (tmp_path / "cache.sqlite3").read_bytes()[:16] != PLAIN_HEADER
    for needle in (SECRET_BODY.encode(), STATE_TOPIC.encode(), PLAIN_HEADER):
        assert _raw_hits(tmp_path, needle) == []
    reopened = Cache(tmp_path / "cache.sqlite3", key=key)
    assert len(_bodies(reopened)) == 20
    assert reopened.own_user_id == ""
    reopened.close()


def test_plain_cache_does_contain_the_text(tmp_path: Path) -> None:
    """The scan above is able to find text: the same batch in a plain cache is readable."""
    cache = Cache(tmp_path / "cache.sqlite3", own_user_id=OWN)
    _fill(cache)
    cache.close()
    assert _raw_hits(tmp_path, SECRET_BODY.encode()) == ["cache.sqlite3"]
    assert is_plain_sqlite(tmp_path / "cache.sqlite3")


def test_wrong_or_no_key_is_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache(path, key=new_key())
    _fill(cache)
    cache.close()
    with pytest.raises(CacheKeyError, match="cannot be opened with this device's key"):
        Cache(path, key=new_key())
    # SQLCipher says nothing on stderr (under the TUI it would scribble on the screen).
    assert capfd.readouterr().err == ""
    with pytest.raises(sqlite3.DatabaseError):
        Cache(path)
    # Refusing did not damage the file.
    assert not is_plain_sqlite(path)


def test_cipher_settings_are_sqlcipher_4_with_a_cheaper_page_check(tmp_path: Path) -> None:
    """HMAC-SHA256 on 8 KiB pages: about 2 us of CPU per 4 KiB read, against 5.4 us with
    SQLCipher 4's HMAC-SHA512 on 4 KiB pages (bench/encrypted_cache.py); memory not
    wiped on free."""
    db = connect(tmp_path / "x.db", new_key())
    settings = {row[0] for row in db.execute("PRAGMA cipher_settings")}
    assert "PRAGMA cipher_page_size = 8192;" in settings
    assert "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;" in settings
    assert "PRAGMA cipher_use_hmac = 1;" in settings
    assert str(db.execute("PRAGMA cipher_memory_security").fetchone()[0]) == "0"
    assert str(db.execute("PRAGMA cipher_version").fetchone()[0]).startswith("4.")
    db.execute("CREATE TABLE t (x)")
    assert int(db.execute("PRAGMA page_size").fetchone()[0]) == 8192
    db.close()


def test_a_cache_encrypted_with_sqlcipher_4_defaults_still_opens(tmp_path: Path) -> None:
    from sqlcipher3 import dbapi2

    path = tmp_path / "cache.sqlite3"
    key = new_key()
    old = dbapi2.connect(str(path), isolation_level=None)
    old.execute(f"PRAGMA key = \"x'{key.hex()}'\"")  # 4 KiB pages, HMAC-SHA512
    old.execute("CREATE TABLE t (x)")
    old.execute("INSERT INTO t VALUES (?)", (SECRET_BODY,))
    old.close()
    db = connect(path, key)
    assert db.execute("SELECT x FROM t").fetchall() == [(SECRET_BODY,)]
    db.close()
    with pytest.raises(CacheKeyError):
        connect(path, new_key())


def test_cache_connection_is_wal_and_has_fts5(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite3", key=new_key())
    db = cache._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("CREATE VIRTUAL TABLE probe USING fts5(body)")
    db.execute("INSERT INTO probe (body) VALUES (?)", ("the quick brown fox",))
    assert db.execute("SELECT body FROM probe WHERE probe MATCH 'brown'").fetchall() == [
        ("the quick brown fox",)
    ]
    cache.close()


def test_plain_cache_is_encrypted_in_place_with_its_wal(tmp_path: Path) -> None:
    """A plain cache as the previous release left it (its last batch still in the WAL)."""
    source = tmp_path / "source"
    live = Cache(source / "cache.sqlite3", own_user_id=OWN)
    live._db.execute("PRAGMA wal_autocheckpoint=0")
    _fill(live, 30)
    live.set_meta("user_id", OWN)
    assert (source / "cache.sqlite3-wal").stat().st_size > 0
    folder = tmp_path / "profile"
    folder.mkdir()
    for name in ("cache.sqlite3", "cache.sqlite3-wal"):
        (folder / name).write_bytes((source / name).read_bytes())
    live.close()
    assert _raw_hits(folder, SECRET_BODY.encode())

    key = new_key()
    cache = Cache(folder / "cache.sqlite3", key=key)
    assert cache.own_user_id == OWN
    assert len(_bodies(cache)) == 30
    assert ROOM in cache.load_summaries()
    cache.close()
    assert sorted(p.name for p in folder.iterdir()) == ["cache.sqlite3"]
    assert not is_plain_sqlite(folder / "cache.sqlite3")
    assert _raw_hits(folder, SECRET_BODY.encode()) == []
    assert _raw_hits(folder, PLAIN_HEADER) == []


CHILD = r"""
import os, signal, sys
from pathlib import Path
from tui_client.store import encrypted_db
from tui_client.store.cache import Cache

path, key_hex, step = sys.argv[1:4]

def kill(done):
    if done == step:
        os.kill(os.getpid(), signal.SIGKILL)

encrypted_db.after_step = kill
Cache(Path(path), key=bytes.fromhex(key_hex))
sys.exit(3)
"""

STEPS = ("checkpointed", "exported", "synced", "linked", "swapped", "done")


@pytest.mark.parametrize("step", STEPS)
def test_migration_killed_at_each_step_still_opens(tmp_path: Path, step: str) -> None:
    path = tmp_path / "cache.sqlite3"
    plain = Cache(path, own_user_id=OWN)
    _fill(plain, 10)
    plain.set_meta("user_id", OWN)
    plain.close()
    key = new_key()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), key.hex(), step], env=env, timeout=60
    )
    assert child.returncode == -9

    # Old or new, never neither: the name opens, as what its header says it is.
    if is_plain_sqlite(path):
        assert step in ("checkpointed", "exported", "synced", "linked")
        db = sqlite3.connect(path)
    else:
        assert step in ("swapped", "done")
        db = connect(path, key)
    assert (
        db.execute("SELECT count(*) FROM events WHERE type = 'm.room.message'").fetchone()[0] == 10
    )
    db.close()

    # The next start finishes the job and leaves nothing readable behind.
    cache = Cache(path, key=key)
    assert cache.own_user_id == OWN
    assert len(_bodies(cache)) == 10
    cache.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.sqlite3"]
    assert _raw_hits(tmp_path, SECRET_BODY.encode()) == []
