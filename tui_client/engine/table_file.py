"""A table kept between starts in one file (engine/method_cache.py, ui/css_cache.py):
a header, then a ``marshal``-ed dict of bytes to bytes, mode 0600, in the user's cache
folder; read at start, written at exit only when the run added to it.

A file that does not read back (another header: another Python or library version, a
damaged or cut file, not a dict of bytes) reads as an empty table, as does one that is
not the user's own or that others may write: the caller starts afresh and writes it anew.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["KeptTable", "cache_file", "read_table", "write_table"]


def cache_file(variable: str, name: str) -> Path:
    """``$variable`` if set, else ``name.<python tag>.bin`` in the user's cache folder."""
    override = os.environ.get(variable)
    if override:
        return Path(override)
    import platformdirs

    tag = sys.implementation.cache_tag or "python"
    return Path(platformdirs.user_cache_dir("tui_client")) / f"{name}.{tag}.bin"


def read_table(path: Path, header: bytes) -> dict[bytes, bytes]:
    """The table in ``path`` if it starts with ``header``; else an empty one."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return {}
            data = handle.read()
    except OSError:
        return {}
    if not data.startswith(header):
        return {}
    try:
        table = marshal.loads(data[len(header) :])
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(k, bytes) and isinstance(v, bytes)}


def write_table(path: Path, header: bytes, table: dict[bytes, bytes], prefix: str) -> bool:
    """Replace ``path`` whole with ``table`` (0600, its folder made 0700). False if the
    disk refused (read-only, full): the next start does the work again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(header + marshal.dumps(table))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError:
        return False
    return True


class KeptTable:
    """One such table in memory: its entries, what this run used and added, its file."""

    def __init__(self, prefix: str, max_entries: int) -> None:
        #: The temporary file's prefix while it is written.
        self.prefix = prefix
        #: A table grown past this (entries of older versions) keeps only the entries this
        #: run used, the most recently used first.
        self.max_entries = max_entries
        self.entries: dict[bytes, bytes] = {}
        #: This run's keys, in the order last used.
        self.used: dict[bytes, None] = {}
        self.counts = {"hits": 0, "misses": 0, "added": 0}
        self.path: Path | None = None
        self.header = b""
        self.lock = threading.Lock()

    def open(self, path: Path, header: bytes) -> None:
        """Where the table is kept, and what its file must start with."""
        self.path, self.header = path, header

    def read(self) -> None:
        """The file's entries added to the table (none if it does not read back)."""
        if self.path is not None:
            self.entries.update(read_table(self.path, self.header))

    def add(self, key: bytes, value: bytes) -> None:
        with self.lock:
            self.entries[key] = value
            self.counts["added"] += 1

    def drop(self, key: bytes) -> None:
        with self.lock:
            self.entries.pop(key, None)

    def use(self, key: bytes, *, hit: bool) -> None:
        """Count ``key`` as found (``hit``) or made anew, and as used last (under the lock:
        :meth:`save` at exit reads ``used`` while a thread may still be importing)."""
        with self.lock:
            self.counts["hits" if hit else "misses"] += 1
            self.used.pop(key, None)
            self.used[key] = None

    def clear(self) -> None:
        """Forgotten, file and all (tests)."""
        self.path, self.header = None, b""
        self.entries.clear()
        self.used.clear()
        self.counts.update(hits=0, misses=0, added=0)

    def stats(self) -> dict[str, int]:
        """Entries found in the table, made anew, added, and the table's size."""
        return {**self.counts, "entries": len(self.entries)}

    def save(self) -> bool:
        """Write the table if this run added to it (0600, replaced whole). True if written;
        False on a read-only or full disk too (the next start does the work again)."""
        path = self.path
        if path is None or not self.counts["added"]:
            return False
        with self.lock:
            table = dict(self.entries)
            if len(table) > self.max_entries:
                recent = [key for key in reversed(self.used) if key in table]
                table = {key: table[key] for key in recent[: self.max_entries]}
        if not write_table(path, self.header, table, self.prefix):
            return False
        self.counts["added"] = 0
        return True
