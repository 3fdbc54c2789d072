"""The in-memory store passes the CryptoStore conformance suite (as the SQLite store must)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.store_api import CryptoStore

from .store_conformance import CONFORMANCE_CHECKS, StoreFactory


@pytest.mark.parametrize("check", CONFORMANCE_CHECKS, ids=lambda c: c.__name__)
def test_memory_store_conformance(check: Callable[[StoreFactory], None]) -> None:
    check(MemoryCryptoStore)


def test_memory_store_satisfies_the_protocol() -> None:
    store: CryptoStore = MemoryCryptoStore()
    assert store.load_account() is None


def test_snapshot_restore_is_a_rollback() -> None:
    store = MemoryCryptoStore()
    store.save_tracked_user({"user_id": "@a:x", "dirty": True})
    snapshot = store.snapshot()
    store.save_tracked_user({"user_id": "@b:x", "dirty": True})
    store.record_megolm_index("S", 0, "$e", 1)
    store.restore(snapshot)
    assert [r["user_id"] for r in store.get_tracked_users()] == ["@a:x"]
    assert store.record_megolm_index("S", 0, "$other", 2) == ("$other", 2)
