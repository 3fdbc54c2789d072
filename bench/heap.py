"""Where a process's memory is, cheaply enough to sample in a long run (bench/soak.py).

RSS is the sum of: Python objects (pymalloc's blocks, :func:`sys.getallocatedblocks`;
big objects go to malloc), SQLite's own allocations (its page cache included; counted by
``sqlite3_memory_used`` of each SQLite library loaded: the system one under :mod:`sqlite3`,
the one built into sqlcipher3), and whatever else malloc holds (glibc's ``mallinfo2``:
bytes in use, and bytes free but kept by the allocator: fragmentation). A Python leak
shows as allocated blocks and some object type growing; the page cache as SQLite's memory
rising to its ``cache_size`` bound and stopping; fragmentation as malloc's free bytes
growing while what is in use stays flat.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def malloc_mb() -> tuple[float, float]:
    """glibc malloc's (in use, free but held) in MB; (0, 0) without ``mallinfo2``."""
    if _LIBC is None:
        return 0.0, 0.0
    info = _LIBC.mallinfo2()
    in_use = info.uordblks + info.hblkhd
    return in_use / 2**20, info.fordblks / 2**20


def _sqlite_libraries() -> list[ctypes.CDLL]:
    """Each SQLite library the process has loaded that exports ``sqlite3_memory_used``:
    the extension modules themselves (sqlcipher3 links SQLCipher in; the standard
    module's symbols resolve to the system libsqlite3)."""
    found: list[ctypes.CDLL] = []
    for module in ("_sqlite3", "sqlcipher3._sqlite3"):
        if module not in sys.modules:
            continue
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not Path(spec.origin).exists():
            continue
        try:
            lib = ctypes.CDLL(spec.origin)
            lib.sqlite3_memory_used.restype = ctypes.c_int64
        except (OSError, AttributeError):
            continue
        found.append(lib)
    return found


def sqlite_mb() -> float:
    """Bytes SQLite has allocated (page caches included), all loaded libraries, in MB.
    A library that shares its symbols with another is counted once."""
    seen: set[int] = set()
    total = 0
    for lib in _sqlite_libraries():
        address = ctypes.cast(lib.sqlite3_memory_used, ctypes.c_void_p).value or 0
        if address in seen:
            continue
        seen.add(address)
        total += lib.sqlite3_memory_used()
    return total / 2**20


def py_blocks_k() -> float:
    """Python's allocated small-object blocks, in thousands."""
    return sys.getallocatedblocks() / 1000


def rss_parts_mb() -> tuple[float, float]:
    """This process's RSS in anonymous memory (heaps, arenas) and in file-backed pages
    (code of the libraries as it is first run, mapped files) plus shared memory, in MB."""
    parts: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile", "RssShmem"):
                parts[name] = int(value.split()[0]) / 1024
    return parts.get("RssAnon", 0.0), parts.get("RssFile", 0.0) + parts.get("RssShmem", 0.0)


def pymalloc_mb() -> tuple[float, float]:
    """The bytes of pymalloc's blocks in use and its arenas (mapped, outside malloc), in
    MB, from :func:`sys._debugmallocstats` (C stderr, caught on a temporary file)."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("ascii", "replace")
    arenas = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    return (
        int(used[1].replace(",", "")) / 2**20 if used else 0.0,
        int(arenas[1]) * int(arenas[2]) / 2**20 if arenas else 0.0,
    )


def frozen_k() -> float:
    """Objects in the collector's permanent generation (engine/gc_policy.py freezes what
    is alive after a load), in thousands: still freed by reference counting, but a cycle
    among them is kept until the next compaction."""
    return gc.get_freeze_count() / 1000


def collect_frozen() -> tuple[int, float, Counter[str]]:
    """Unfreeze and run a full collection: (objects it found unreachable, MB of pymalloc
    blocks it freed, those objects by type). What the permanent generation held as
    garbage (and the young garbage of the moment)."""
    used = pymalloc_mb()[0]
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        kinds = Counter(_type_name(o) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    gc.collect()  # what DEBUG_SAVEALL kept is unreachable again: freed now
    return found, used - pymalloc_mb()[0], kinds


def _type_name(o: object) -> str:
    return f"{type(o).__module__}.{type(o).__qualname__}".removeprefix("builtins.")


def type_counts() -> Counter[str]:
    """Live objects the garbage collector tracks, by type (a census: tens of ms), frozen
    ones included (:func:`gc.get_objects` leaves out the permanent generation, where
    engine/gc_policy.py keeps what lives long: they are unfrozen to be counted, then
    frozen again with whatever else is alive, as a room switch would)."""
    frozen = gc.get_freeze_count()
    if frozen:
        gc.unfreeze()
    try:
        return Counter(_type_name(o) for o in gc.get_objects())
    finally:
        if frozen:
            gc.freeze()


def growers(before: Counter[str], after: Counter[str], top: int = 12) -> list[tuple[str, int]]:
    """The types whose count grew most between two censuses."""
    grown = Counter({name: after[name] - before.get(name, 0) for name in after})
    return [(name, n) for name, n in grown.most_common(top) if n > 0]
