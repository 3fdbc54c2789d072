"""The file a start-up table is kept in between starts (engine/method_cache.py,
ui/css_cache.py): a header, then a ``marshal``-ed dict of bytes to bytes, mode 0600.

A file that does not read back (another header: another Python or library version, a
damaged or cut file, not a dict of bytes) reads as an empty table, as does one that is
not the user's own or that others may write: the caller starts afresh and writes it anew.
"""

from __future__ import annotations

import marshal
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["read_table", "write_table"]


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
