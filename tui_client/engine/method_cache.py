"""The methods ``@dataclass`` writes, compiled once and kept between starts (issue 13).

``dataclasses`` writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``
and, for frozen classes, ``__setattr__``/``__delattr__`` as source text and ``exec``-s
it: compiling that text was ~80% of the ~0.5 ms a frozen class costs, and ~190 classes are
made before the first painted room list (~0.1 s of CPU). :func:`install` gives the
``dataclasses`` module an ``exec`` that looks the text up in a table of code objects
compiled by an earlier start (``marshal``, as ``.pyc`` files are, in a 0600 file under
the user's cache folder) and compiles only what is new; :func:`save` (at exit) writes the
table back when something was added. The same text compiles to the same code, with the
same flags as ``exec`` (``dataclasses`` has no ``from __future__``), so every class is
exactly what ``@dataclass`` makes without it. A table that does not read back (another
Python, a damaged file) is ignored and written anew.
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import hashlib
import importlib.util
import marshal
from pathlib import Path
from types import CodeType
from typing import Any

from .table_file import KeptTable, cache_file

__all__ = ["cache_path", "install", "save", "stats", "uninstall"]

#: The table's first bytes: this interpreter's bytecode magic and the table's format.
_HEADER = importlib.util.MAGIC_NUMBER + b"tui-dataclass-methods-2\n"
#: A table grown past this (stale texts of older versions) keeps only this run's texts.
MAX_ENTRIES = 4000

#: The table as read and written: a digest of each text -> its code, marshalled (each one
#: read back when first used: reading all of them was ~10 ms).
_kept = KeptTable(".methods.", MAX_ENTRIES)
_real_exec = builtins.exec


def cache_path() -> Path:
    """``$TUI_CLIENT_CODE_CACHE`` if set, else a file in the user's cache folder."""
    return cache_file("TUI_CLIENT_CODE_CACHE", "dataclass-methods")


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """``exec`` for ``dataclasses``: source text is compiled once per text, ever."""
    if not isinstance(source, str):
        _real_exec(source, globals, locals)
        return
    digest = hashlib.blake2b(source.encode(), digest_size=20).digest()
    stored = _kept.entries.get(digest)
    code = _code(stored) if stored is not None else None
    _kept.use(digest, hit=code is not None)
    if code is None:
        # As exec compiles it from dataclasses' own frame: no __future__ flags.
        code = compile(source, "<string>", "exec", dont_inherit=True)
        _kept.add(digest, marshal.dumps(code))
    _real_exec(code, globals, locals)


def _code(stored: bytes) -> CodeType | None:
    try:
        code = marshal.loads(stored)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def install(path: Path | None = None, *, save_at_exit: bool = True) -> None:
    """Read the table (``path``, else :func:`cache_path`) and route ``dataclasses``' exec
    through it; with ``save_at_exit``, :func:`save` runs when the process ends."""
    _kept.open(path if path is not None else cache_path(), _HEADER)
    _kept.read()
    setattr(dataclasses, "exec", _exec)  # noqa: B010 - a module global that shadows the builtin
    if save_at_exit:
        atexit.register(save)


def uninstall() -> None:
    """``dataclasses`` back to the builtin ``exec``; the table forgotten (tests)."""
    if getattr(dataclasses, "exec", None) is _exec:
        delattr(dataclasses, "exec")
    _kept.clear()


def stats() -> dict[str, int]:
    """Texts found in the table, compiled anew, and the table's size."""
    return _kept.stats()


def save() -> bool:
    """Write the table if this run added to it (0600, replaced whole). True if written."""
    return _kept.save()
