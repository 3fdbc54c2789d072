"""The cache's encryption key, kept with the profile's other secrets, and what to do without it.

One random 256-bit key per profile, stored like the pickle key: in the system
keyring, or in the 0600 secrets file where there is none. A key is only made for a
cache that does not exist yet or is still plain (it is encrypted on open); an
encrypted cache with no key, or with a key that does not open it, raises
:class:`CacheKeyError`, and :func:`set_aside_unreadable_cache` moves it out of the
way so the user can log in again on a fresh cache.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..store.encrypted_db import KEY_BYTES, CacheKeyError, is_plain_sqlite, new_key
from .secrets import SecretStore

__all__ = [
    "CACHE_KEY",
    "CacheKeyError",
    "aside_key_name",
    "cache_key",
    "set_aside_unreadable_cache",
]

CACHE_KEY = "cache_key"
UNREADABLE_MESSAGE = "the cache cannot be opened with this device's key"


def cache_key(secrets: SecretStore, cache_file: Path) -> bytes:
    """The key of the cache at ``cache_file``: the stored one, or a new one for a new or plain cache."""
    stored = secrets.get(CACHE_KEY)
    if stored:
        try:
            key = bytes.fromhex(stored)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise CacheKeyError(f"{UNREADABLE_MESSAGE} (the stored key is malformed)")
        return key
    if cache_file.exists() and cache_file.stat().st_size > 0 and not is_plain_sqlite(cache_file):
        where = "system keyring" if secrets.uses_keyring else "secrets file"
        raise CacheKeyError(f"{UNREADABLE_MESSAGE} (its key is missing from the {where})")
    key = new_key()
    secrets.set(CACHE_KEY, key.hex())
    return key


def aside_key_name(aside: Path) -> str:
    """The secret holding the key of a cache set aside as ``aside``."""
    return f"{CACHE_KEY}.{aside.name}"


def set_aside_unreadable_cache(folder: Path, cache_name: str, session_name: str) -> Path | None:
    """Move an unreadable cache aside and forget the session, so the next login starts afresh.

    The cache (with its WAL) is renamed, not deleted, and the key it had is kept under
    :func:`aside_key_name`: a key that was right (a damaged file) still opens it. The session file and the access token go, so the next login makes a
    new device rather than reuse one whose Olm account is in the unreadable file.
    Returns where the cache went, or ``None`` if there was none.
    """
    cache = folder / cache_name
    aside: Path | None = None
    if cache.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = folder / f"{cache.stem}.unreadable-{stamp}{cache.suffix}"
        for suffix in ("-wal", "-shm"):
            side = folder / (cache_name + suffix)
            if side.exists():
                side.rename(folder / (aside.name + suffix))
        cache.rename(aside)
    session = folder / session_name
    try:
        user_id = json.loads(session.read_text()).get("user_id")
    except (OSError, ValueError, AttributeError):
        user_id = None
    if isinstance(user_id, str):
        secrets = SecretStore(folder, user_id)
        secrets.delete("access_token")
        old_key = secrets.get(CACHE_KEY)
        if old_key is not None and aside is not None:
            # The key may be right and the file damaged, or the other way round: keep it
            # beside the file it belongs to, so that file can still be opened by hand.
            secrets.set(aside_key_name(aside), old_key)
        secrets.delete(CACHE_KEY)
    session.unlink(missing_ok=True)
    return aside
