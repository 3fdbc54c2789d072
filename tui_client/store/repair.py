"""A damaged cache, found at open, at run time or by a check after start, and rebuilt
around what can be saved.

:func:`open_checked` opens the cache and, unless the last run closed it cleanly, runs
``PRAGMA quick_check``. After a clean close it only compares the file's size with the
pages SQLite counts (a file cut short or grown by a backup tool: microseconds); the full
check then runs after start, in the background on a connection of its own
(:func:`check_file`, engine/cache_damage.py), and damage found there or by any store
operation at run time (:func:`is_corruption`) leaves a mark beside the file
(:func:`mark_damaged`) so that the next open rebuilds it. A cache that
fails a check, that is marked, that SQLite cannot read (a truncated file, a page of zeros), or whose schema
comes from a newer release is rebuilt: a new file with the current schema receives,
table by table, what still reads from the old one and cannot be fetched again (the
crypto store: this device's identity, Olm and Megolm sessions, cross-signing and backup
state; the outbox, unfinished uploads and joins; the settings kept in ``meta``), and
takes its place. Everything else (rooms, timelines, members) comes back with a sync
from scratch (the sync position is not kept). The old file is set aside beside it, and
a :class:`RepairReport` says what was kept and what was lost, for the user.

A torn WAL is not damage: SQLite ignores the frames of a transaction that was never
committed, which is all a crash can leave there.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import CLEAN_CLOSE, Cache
from .encrypted_db import CacheDamaged, CacheKeyError, connect
from .schema import SchemaTooNew, migrate

__all__ = [
    "RepairReport",
    "check_file",
    "damage_mark",
    "is_corruption",
    "mark_damaged",
    "open_checked",
]

log = logging.getLogger(__name__)

# Tables worth keeping: what the server cannot give back.
_KEPT_TABLES = ("outbox", "pending_uploads", "pending_joins", "meta")
# meta keys of the sync position: a rebuilt cache syncs from scratch.
_SYNC_POSITION_KEYS = ("next_batch", "sliding_pos", "storage_probe", CLEAN_CLOSE)
_FILE_ENDINGS = ("", "-wal", "-shm")


@dataclass
class RepairReport:
    """What happened to a damaged cache (shown to the user)."""

    reason: str
    set_aside: Path
    crypto_intact: bool
    kept: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unsent: int = 0
    account_lost: bool = False

    def describe(self) -> str:
        """A few sentences for the user."""
        text = f"The local cache was damaged ({self.reason}) and has been rebuilt from the server."
        if self.crypto_intact:
            text += " Your encryption keys were kept."
        elif self.account_lost:
            text += (
                " This device's encryption identity could not be read back: log out and log in again,"
                " then restore your keys from your recovery key or a key file."
            )
        else:
            text += (
                " Some of this device's encryption keys could not be read back: restore them from your"
                " recovery key or a key file (palette: Recovery / Import keys); messages they opened"
                " stay unreadable until then."
            )
        if self.unsent:
            text += f" {self.unsent} unsent message{'s' if self.unsent != 1 else ''} kept."
        if self.lost:
            text += " Lost: " + "; ".join(self.lost) + "."
        text += f" The damaged file is kept as {self.set_aside.name}."
        return text


def _cannot_write(error: BaseException) -> bool:
    """SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR: the disk, not the file."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (8, 10, 13):
        return True
    text = str(error).lower()
    return any(words in text for words in ("disk is full", "readonly database", "disk i/o error"))


# SQLite's primary result codes for a damaged file.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_corruption(error: BaseException) -> bool:
    """Whether ``error`` says the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB: "database
    disk image is malformed", "file is not a database"), from sqlite3 or sqlcipher3."""
    if isinstance(error, CacheDamaged):
        return True
    if type(error).__name__ not in ("DatabaseError", "OperationalError", "IntegrityError"):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(error).lower()
    return any(
        words in text
        for words in ("malformed", "file is not a database", "vtable constructor failed")
    )


def damage_mark(path: Path) -> Path:
    """The file beside the cache that says it is damaged (its text: why)."""
    return path.with_name(path.name + ".damaged")


def mark_damaged(path: Path, reason: str) -> None:
    """Note that the cache at ``path`` is damaged: the next :func:`open_checked` rebuilds it
    (even if the damage is where its checks do not look)."""
    try:
        damage_mark(path).write_text(reason[:500], encoding="utf-8")
    except OSError as error:  # the folder cannot be written: the checks find it again
        log.error("cannot mark the cache as damaged: %s", error)


def _problem(db: sqlite3.Connection) -> str | None:
    """``PRAGMA quick_check``'s first complaint, or None for a sound file."""
    rows = db.execute("PRAGMA quick_check(5)").fetchall()
    found = [
        line for r in rows for line in str(r[0]).splitlines() if line and not line.startswith("***")
    ]
    if found == ["ok"]:
        return None
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"integrity check: {found[0][:150] if found else 'failed'}{more}"


def _size_problem(path: Path, db: sqlite3.Connection) -> str | None:
    """The cheap check after a clean close: the file holds exactly the pages SQLite counts
    (a clean close leaves no WAL to add to them)."""
    wal = Path(f"{path}-wal")
    if str(path) == ":memory:" or (wal.exists() and wal.stat().st_size > 0):
        return None
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    size = path.stat().st_size
    if size < pages * page_size or size % page_size:
        return f"the file is {size} bytes, its {pages} pages make {pages * page_size}"
    if size > pages * page_size:  # pages SQLite does not use: harmless; check_file looks
        log.warning("the cache file has %d bytes past its last page", size - pages * page_size)
    return None


def check_file(path: Path, key: bytes | None) -> str | None:
    """The full check of the cache at ``path`` on a connection of its own (read only, in a
    thread of its own: the client's connection goes on meanwhile): what is wrong, or None.
    A disk that cannot be read raises."""
    db = connect(path, key)
    try:
        db.execute("PRAGMA query_only = 1")
        return _problem(db)
    except Exception as error:
        if is_corruption(error) or (key is not None and "disk i/o error" in str(error).lower()):
            # SQLCipher says a page whose HMAC fails is an I/O error when it reads it.
            return f"SQLite: {error}"
        raise
    finally:
        db.close()


def open_checked(
    path: Path, *, own_user_id: str = "", key: bytes | None = None
) -> tuple[Cache, RepairReport | None]:
    """Open the cache at ``path``; rebuild it first if it is damaged or from a newer release.

    A cache that does not open with ``key`` at all still raises :class:`CacheKeyError`
    (the key may be wrong: engine/cache_key.py sets such a file aside, untouched).
    """
    reason: str | None = None
    clean = False
    mark = damage_mark(path)
    if mark.exists() and not path.exists():
        mark.unlink()
    try:
        if mark.exists():
            raise CacheDamaged(mark.read_text(encoding="utf-8", errors="replace").strip())
        cache = Cache(path, own_user_id=own_user_id, key=key)
    except CacheKeyError:
        raise
    except (SchemaTooNew, CacheDamaged) as error:
        reason = str(error)
    except Exception as error:
        # sqlcipher3's errors are not sqlite3's classes. A full disk or a read-only folder
        # is not damage: it goes up as it is (the file is left alone).
        if type(error).__name__ not in (
            "DatabaseError",
            "OperationalError",
            "IntegrityError",
        ) or (_cannot_write(error) and not _unreadable(path, key, error)):
            raise
        reason = f"SQLite: {error}"
    else:
        try:
            # The full check reads every page (~7 ms a MB encrypted): only after a run that
            # did not end cleanly (a crash, a kill, a power cut), where damage comes from.
            # After a clean close the file is only measured; check_file looks at every
            # page after start.
            clean = cache.get_meta(CLEAN_CLOSE) == "1"
            reason = _size_problem(path, cache._db) if clean else _problem(cache._db)
        except Exception as error:
            if _cannot_write(error) and not _unreadable(path, key, error):
                cache._db.close()
                raise
            reason = f"SQLite: {error}"
        if reason is None:
            cache.fully_checked = not clean
            try:
                cache.set_meta(CLEAN_CLOSE, "0")
            except Exception:  # a full disk: the storage check says so once the client runs
                pass
            return cache, None
        cache._db.close()
    log.error("the cache at %s is damaged (%s): rebuilding it", path, reason)
    report = _rebuild(path, key, reason)
    mark.unlink(missing_ok=True)
    cache = Cache(path, own_user_id=own_user_id, key=key)
    cache.fully_checked = True  # a new file, just written
    return cache, report


def _unreadable(path: Path, key: bytes | None, error: BaseException) -> bool:
    """A "disk I/O error" from SQLCipher reading a page whose HMAC fails is damage, not the
    disk: told apart by the full check on a connection of its own."""
    if key is None or "disk i/o error" not in str(error).lower():
        return False
    try:
        return check_file(path, key) is not None
    except Exception:
        return False


def _rebuild(path: Path, key: bytes | None, reason: str) -> RepairReport:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fresh = path.with_name(path.name + ".rebuilding")
    for ending in _FILE_ENDINGS:
        Path(f"{fresh}{ending}").unlink(missing_ok=True)
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    report = RepairReport(reason=reason, set_aside=aside, crypto_intact=False)
    new = connect(fresh, key)
    try:
        new.execute("PRAGMA journal_mode=WAL")
        migrate(new)
        new_tables = [
            r[0] for r in new.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        crypto_tables = [t for t in new_tables if t.startswith("crypto_")]
        copied, failed = _copy(
            path, key, new, [*crypto_tables, *(t for t in _KEPT_TABLES if t in new_tables)]
        )
        has_account = (
            bool(new.execute("SELECT count(*) FROM crypto_account").fetchone()[0])
            if "crypto_account" in new_tables
            else False
        )
        report.crypto_intact = not any(t in failed for t in crypto_tables) and has_account
        report.account_lost = not has_account
        report.unsent = (
            int(new.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0])
            if "outbox" in new_tables
            else 0
        )
        if not report.crypto_intact:
            report.lost.append("some encryption keys")
        if "outbox" in failed:
            report.lost.append("messages waiting to be sent")
        if "meta" in failed:
            report.lost.append("some settings")
        report.kept = copied
        report.lost.append("the cached rooms and messages (fetched again)")
        new.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        new.close()
    for ending in _FILE_ENDINGS:
        old = Path(f"{path}{ending}")
        if old.exists():
            os.replace(old, Path(f"{aside}{ending}"))
    os.replace(fresh, path)
    for ending in _FILE_ENDINGS[1:]:
        Path(f"{fresh}{ending}").unlink(missing_ok=True)
    return report


class _Salvage:
    """Read connections to the damaged file, a fresh one after each failure: once a page
    failed its check, SQLCipher may refuse later reads on that connection too."""

    def __init__(self, path: Path, key: bytes | None) -> None:
        self._path = path
        self._key = key
        self._db: sqlite3.Connection | None = None

    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect(self._path, self._key, salvage=True)
            self._db.execute("PRAGMA query_only = 1")
        return self._db

    def failed(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _readable_rows(old: _Salvage, table: str, names: str) -> tuple[list[Any], bool]:
    """The rows of ``table`` that read back, and whether that is all of them. A damaged page
    stops a scan where it lies: the table is then read from both ends in key order (the
    b-tree's own order), up to the damage each way, so only the rows on damaged pages go."""
    try:
        return old.db().execute(f'SELECT {names} FROM "{table}"').fetchall(), True
    except Exception as error:
        old.failed()
        if not is_corruption(error) and "disk i/o error" not in str(error).lower():
            raise
    info = old.db().execute(f'PRAGMA table_info("{table}")').fetchall()
    keys = [f'"{r[1]}"' for r in sorted(info, key=lambda r: int(r[5])) if int(r[5]) > 0]
    rowid = (
        not old.db()
        .execute(
            "SELECT 1 FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'", (table,)
        )
        .fetchone()
    )
    order = ["rowid"] if rowid else keys
    if not order:
        return [], False
    width = len(order)
    # Forward up to the damage, then backward up to it: in the table's own order.
    ends: list[dict[tuple[Any, ...], tuple[Any, ...]]] = [{}, {}]
    for found, direction in zip(ends, ("ASC", "DESC"), strict=True):
        by = ", ".join(f"{column} {direction}" for column in order)
        query = f'SELECT {", ".join(order)}, {names} FROM "{table}" ORDER BY {by}'
        try:
            for row in old.db().execute(query):
                found[tuple(row[:width])] = tuple(row[width:])
        except Exception as error:
            old.failed()
            log.warning("reading %s stopped at the damage (%s)", table, error)
    first, last = ends
    rest = [row for key, row in last.items() if key not in first]
    return [*first.values(), *reversed(rest)], False


def _copy(
    path: Path, key: bytes | None, new: sqlite3.Connection, tables: list[str]
) -> tuple[list[str], list[str]]:
    """Copy each table's readable rows (the columns both schemas have); the tables copied
    whole and those that failed (their readable rows copied all the same)."""
    copied: list[str] = []
    failed: list[str] = []
    old = _Salvage(path, key)
    try:
        old.db()
    except Exception as error:
        log.error("the damaged cache does not open for reading: %s", error)
        return copied, list(tables)
    try:
        for table in tables:
            try:
                old_columns = {r[1] for r in old.db().execute(f'PRAGMA table_info("{table}")')}
                columns = [
                    r[1]
                    for r in new.execute(f'PRAGMA table_info("{table}")')
                    if r[1] in old_columns
                ]
                if not columns:
                    failed.append(table)
                    continue
                names = ", ".join(f'"{c}"' for c in columns)
                rows, whole = _readable_rows(old, table, names)
                if table == "meta":
                    rows = (
                        [r for r in rows if r[columns.index("key")] not in _SYNC_POSITION_KEYS]
                        if "key" in columns
                        else []
                    )
                marks = ", ".join("?" * len(columns))
                new.execute("BEGIN")
                new.execute(f'DELETE FROM "{table}"')
                new.executemany(
                    f'INSERT OR REPLACE INTO "{table}" ({names}) VALUES ({marks})', rows
                )
                new.execute("COMMIT")
                if whole:
                    copied.append(table)
                else:  # the rows that read back are kept; the table counts as damaged
                    log.error("%s read back in part: %d rows", table, len(rows))
                    failed.append(table)
            except Exception as error:
                old.failed()
                if new.in_transaction:
                    new.execute("ROLLBACK")
                log.error("cannot read %s back from the damaged cache: %s", table, error)
                failed.append(table)
    finally:
        old.failed()
    return copied, failed
