"""Which errors mean "the cache cannot be written", and what the user is told."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from tui_client.engine.storage import FULL, IO_ERROR, READ_ONLY, StorageUnavailable, storage_problem


def test_a_read_only_database_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as caught:
        readonly.execute("INSERT INTO t VALUES (1)")
    assert storage_problem(caught.value) == READ_ONLY


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), FULL),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), FULL),
        (OSError(errno.EROFS, "Read-only file system"), READ_ONLY),
        (sqlite3.OperationalError("database or disk is full"), FULL),
        (sqlite3.OperationalError("disk I/O error"), IO_ERROR),
        (StorageUnavailable(FULL), FULL),
        (sqlite3.OperationalError("no such table: events"), None),
        (OSError(errno.ECONNRESET, "reset"), None),
        (ValueError("database or disk is full"), None),
    ],
)
def test_errors_are_classified(error: BaseException, problem: str | None) -> None:
    assert storage_problem(error) == problem
    if problem is not None:
        assert str(StorageUnavailable(problem)) == problem
