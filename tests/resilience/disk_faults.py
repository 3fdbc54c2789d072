"""A disk that fills up for real: a small tmpfs mounted for the test (the tests run as
root, here and in CI), filled to the last byte by a filler file and freed by deleting
it. SQLite then meets ``ENOSPC`` where it would on a user's full disk: appending to the
WAL, growing the file, in the middle of any transaction."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tui_client.engine.client import MatrixClient


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder`` for the duration; fails loudly if it cannot mount."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs (the test needs root): {mounted.stderr}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Take up every free byte of the file system under ``folder``."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 20)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, chunk[:size])
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def free(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / "filler")


async def fill_now(folder: Path, client: MatrixClient) -> None:
    """Fill the disk right after the client's WAL was checkpointed and truncated: no
    write finds room left in an already grown WAL file (it would succeed until then)."""
    db = client.cache._db  # the test reaches into the cache's connection on purpose
    await client.db.run(lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    fill(folder)
