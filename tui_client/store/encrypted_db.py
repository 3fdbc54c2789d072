"""Opening the cache with SQLCipher 4, and turning a plain SQLite cache into an encrypted one.

The key is 32 random bytes given to SQLCipher in its raw form (``x'<64 hex>'``), so
no key derivation runs at open. Every page of the database, its WAL and its journal
is encrypted (AES-256-CBC with an HMAC-SHA512 per page); the file has no plain
header. A plain cache left by an earlier release is encrypted in place by
:func:`encrypt_in_place`, which is safe to kill at any moment: the cache's name
always holds a complete database, the plain one until an atomic rename puts the
encrypted copy there.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import cast

__all__ = [
    "KEY_BYTES",
    "CacheDamaged",
    "CacheKeyError",
    "connect",
    "encrypt_in_place",
    "finish_interrupted_migration",
    "is_plain_sqlite",
    "new_key",
    "shred",
    "shred_database",
]

log = logging.getLogger(__name__)

KEY_BYTES = 32
PLAIN_HEADER = b"SQLite format 3\x00"
# Said explicitly so a future library default cannot change the format of existing
# caches. The KDF settings only matter for a passphrase; the raw key skips PBKDF2.
# Every page read from disk is decrypted and its HMAC checked: with SQLCipher 4's
# default HMAC-SHA512 on 4 KiB pages that cost about 5.4 us of CPU per 4 KiB here
# (SHA-512 has no instructions of its own on x86), half the cost of opening a room.
# HMAC-SHA256 (a 256-bit MAC: the same strength as the AES-256 key; SHA-NI does it in
# hardware) on 8 KiB pages (half the per-page work) costs about 2 us per 4 KiB.
_CIPHER_SETTINGS = (
    "PRAGMA cipher_page_size = 8192",
    "PRAGMA kdf_iter = 256000",
    "PRAGMA cipher_hmac_algorithm = HMAC_SHA256",
    "PRAGMA cipher_kdf_algorithm = PBKDF2_HMAC_SHA512",
    "PRAGMA cipher_plaintext_header_size = 0",
)
# What caches encrypted before that were made with (SQLCipher 4's defaults): they
# still open, with these.
_EARLIER_CIPHER_SETTINGS = (
    "PRAGMA cipher_page_size = 4096",
    "PRAGMA kdf_iter = 256000",
    "PRAGMA cipher_hmac_algorithm = HMAC_SHA512",
    "PRAGMA cipher_kdf_algorithm = PBKDF2_HMAC_SHA512",
    "PRAGMA cipher_plaintext_header_size = 0",
)
ENCRYPTING_SUFFIX = ".encrypting"
PLAIN_SUFFIX = ".plain"
#: A second name for the plain cache's WAL while it is folded into the file: SQLite then
#: deletes the WAL (rather than truncating it), and its bytes are overwritten through this name.
PLAIN_WAL_SUFFIX = ".plain-wal"


#: Called with the name of each migration step once it is done (tests kill the
#: process there to check that the cache still opens afterwards).
def _no_hook(step: str) -> None:
    return None


after_step: Callable[[str], None] = _no_hook


class CacheDamaged(Exception):
    """The cache's key is right but its file is damaged (store/repair.py rebuilds it)."""


class CacheKeyError(Exception):
    """The cache does not open with the key this device holds (wrong, or missing)."""


def new_key() -> bytes:
    """A fresh random 256-bit cache key."""
    return secrets.token_bytes(KEY_BYTES)


def is_plain_sqlite(path: Path) -> bool:
    """Whether ``path`` is a plain (unencrypted) SQLite database, judged by its header."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(PLAIN_HEADER)) == PLAIN_HEADER
    except FileNotFoundError:
        return False


def connect(path: Path | str, key: bytes | None, *, salvage: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode; encrypted with ``key``, or plain SQLite when it is ``None``.

    ``salvage``: to read what is left of a damaged file (store/repair.py): a file cut
    short then opens with the pages it still has (``writable_schema``; never written).
    Raises :class:`CacheKeyError` when the file exists and does not open with ``key``.
    """
    if key is None:
        plain = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        if salvage:
            plain.execute("PRAGMA writable_schema = ON")
        return plain
    if len(key) != KEY_BYTES:
        raise ValueError(f"the cache key must be {KEY_BYTES} bytes")
    from sqlcipher3 import dbapi2

    error: Exception | None = None
    for settings in (_CIPHER_SETTINGS, _EARLIER_CIPHER_SETTINGS):
        db = dbapi2.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            # SQLCipher logs a failed page HMAC (a wrong key) to stderr, under the TUI.
            db.execute("PRAGMA cipher_log_level = NONE")
            # Freed memory is not wiped (SQLCipher 4.5+'s default, said explicitly):
            # wiping costs every allocation, and what it would wipe (decrypted pages,
            # the message text itself) is in this process's live memory anyway.
            db.execute("PRAGMA cipher_memory_security = OFF")
            db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            for pragma in settings:
                db.execute(pragma)
            if salvage:
                db.execute("PRAGMA writable_schema = ON")
            # The key is only checked when the first page is read.
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except dbapi2.DatabaseError as refused:
            db.close()
            log.debug("SQLCipher refused the key of %s: %s", path, refused)
            error = error or refused
            continue
        # sqlcipher3 is the sqlite3 module built against SQLCipher: the same API.
        return cast(sqlite3.Connection, db)
    if error is not None and "malformed" in str(error):
        # The key opened the first page (a wrong key reads "file is not a database"):
        # the file itself is damaged.
        raise CacheDamaged(f"the cache file is damaged ({error})") from error
    raise CacheKeyError(
        "the cache cannot be opened with this device's key "
        "(the key is not the cache's, or the file is damaged)"
    ) from error


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def shred(path: Path) -> None:
    """Overwrite a file with zeros, flush it, and remove it (nothing if it is not there).

    The zeros go to the file's own blocks, so another name (hard link) of the file, or
    its blocks on a plain file system, keep nothing of it. (A copy-on-write or
    log-structured file system, or an SSD's remapping, may still hold old blocks: the
    cache is encrypted for that reason.)"""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            block = bytes(1 << 20)
            left = size
            while left > 0:
                left -= handle.write(block[: min(left, len(block))])
            handle.flush()
            os.fsync(handle.fileno())
    except FileNotFoundError:
        return
    _unlink(path)


_shred = shred

#: The second names :func:`shred_database` gives an open database's WAL and shared memory.
HELD_SUFFIX = ".shred"


def shred_database(path: Path, close: Callable[[], None]) -> None:
    """Close the database at ``path`` (``close``) and overwrite its file, WAL and shared
    memory with zeros before they go.

    SQLite deletes the WAL and shared memory when the last connection closes, freeing
    their blocks as they are; a second name made before the close keeps them for the
    zeros."""
    held: list[Path] = []
    for suffix in ("-wal", "-shm"):
        side = _sidecar(path, suffix)
        kept = _sidecar(path, suffix + HELD_SUFFIX)
        _unlink(kept)
        try:
            os.link(side, kept)
        except FileNotFoundError:
            continue
        held.append(kept)
    close()
    for leftover in (path, _sidecar(path, "-wal"), _sidecar(path, "-shm"), *held):
        shred(leftover)


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def finish_interrupted_migration(path: Path) -> None:
    """Clean up after an :func:`encrypt_in_place` that was killed: drop the half copy, shred the plain one."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        _unlink(_sidecar(path, ENCRYPTING_SUFFIX + suffix))
    plain_wal = _sidecar(path, PLAIN_WAL_SUFFIX)
    if plain_wal.exists():
        wal = _sidecar(path, "-wal")
        if wal.exists() and os.path.samefile(plain_wal, wal):
            # Killed before SQLite folded the WAL in: it is still the cache's WAL.
            plain_wal.unlink()
        else:
            _shred(plain_wal)
    plain = _sidecar(path, PLAIN_SUFFIX)
    if not plain.exists():
        return
    if not path.exists():
        os.replace(plain, path)
    elif os.path.samefile(plain, path):
        # Killed before the swap: the link is the cache itself; only the name goes.
        plain.unlink()
    else:
        _shred(plain)


def encrypt_in_place(path: Path, key: bytes) -> None:
    """Replace the plain SQLite database at ``path`` by an encrypted copy (same name, same content).

    Steps: fold the WAL into the file and leave WAL mode (the plain file then stands
    alone; the old WAL, kept by a second name while SQLite deletes it, is overwritten
    with zeros and removed), export every table to ``<name>.encrypting`` with ``sqlcipher_export``,
    fsync it, hard-link the plain file to ``<name>.plain``, rename the copy over the
    name, fsync the folder, then overwrite the plain file with zeros and delete it.
    Killed at any step, ``path`` holds either the plain or the encrypted database;
    :func:`finish_interrupted_migration` removes what was left over.
    """
    finish_interrupted_migration(path)
    wal = _sidecar(path, "-wal")
    plain_wal = _sidecar(path, PLAIN_WAL_SUFFIX)
    if wal.exists():
        os.link(wal, plain_wal)
    plain_db = sqlite3.connect(str(path), isolation_level=None)
    try:
        # Leaving WAL mode folds the WAL into the file and deletes it; a TRUNCATE
        # checkpoint would free its blocks with the clear text still in them.
        plain_db.execute("PRAGMA wal_checkpoint(FULL)")
        plain_db.execute("PRAGMA journal_mode=DELETE")
        user_version = int(plain_db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        plain_db.close()
    _fsync_file(path)
    _shred(plain_wal)
    after_step("checkpointed")
    tmp = _sidecar(path, ENCRYPTING_SUFFIX)
    db = connect(tmp, key)
    try:
        db.execute("ATTACH DATABASE ? AS plain KEY ''", (str(path),))
        db.execute("SELECT sqlcipher_export('main', 'plain')")
        db.execute(f"PRAGMA main.user_version = {user_version}")
        db.execute("DETACH DATABASE plain")
    finally:
        db.close()
    after_step("exported")
    _fsync_file(tmp)
    _fsync_dir(path.parent)
    after_step("synced")
    # The plain file's -wal and -shm are empty leftovers now (it is out of WAL mode).
    _shred(_sidecar(path, "-wal"))
    _shred(_sidecar(path, "-shm"))
    plain = _sidecar(path, PLAIN_SUFFIX)
    _unlink(plain)
    os.link(path, plain)
    after_step("linked")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    after_step("swapped")
    _shred(plain)
    _fsync_dir(path.parent)
    after_step("done")
