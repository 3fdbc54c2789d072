"""The SQLite crypto store passes the same conformance suite as the in-memory one,
and keeps the engine's decrypted / undecryptable events."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crypto.store_conformance import CONFORMANCE_CHECKS, StoreFactory
from tui_client.crypto.store_api import CryptoStore
from tui_client.store.cache import Cache
from tui_client.store.crypto_store import SqliteCryptoStore

_counter = itertools.count()


def _factory(tmp_path: Path) -> StoreFactory:
    caches: list[Cache] = []

    def make() -> CryptoStore:
        cache = Cache(tmp_path / f"crypto-{next(_counter)}.sqlite3")
        caches.append(cache)
        return cache.crypto_store()

    return make


@pytest.mark.parametrize("check", CONFORMANCE_CHECKS, ids=lambda c: c.__name__)
def test_sqlite_crypto_store_conformance(
    check: Callable[[StoreFactory], None], tmp_path: Path
) -> None:
    check(_factory(tmp_path))


def test_decrypted_and_undecryptable_events(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite3")
    store: SqliteCryptoStore = cache.crypto_store()
    store.save_undecrypted("$a", "!r", "S1", "missing_key", "the key has not arrived yet")
    store.save_undecrypted("$b", "!r", "S2", "missing_key", "the key has not arrived yet")
    assert store.undecrypted(["$a", "$b", "$c"]) == {
        "$a": ("missing_key", "the key has not arrived yet"),
        "$b": ("missing_key", "the key has not arrived yet"),
    }
    store.save_decrypted(
        "$a",
        "!r",
        "S1",
        {"type": "m.room.message", "content": {"body": "hi"}},
        {"trust": "verified"},
    )
    assert "$a" not in store.undecrypted(["$a"])
    assert store.decrypted(["$a"])["$a"][0]["content"] == {"body": "hi"}
    cache.close()
