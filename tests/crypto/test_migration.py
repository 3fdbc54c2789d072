"""A python-olm store moved to vodozemac: interrupted at any point, it still opens.

Two ways of being interrupted: a failure injected before each write of the
migration (rolled back, as the engine's transaction does, and also kept half-done,
as a caller committing in between would leave it), and a real process running the
migration on a SQLite cache, killed with SIGKILL after each step. After each, the
store opens with vodozemac, keeps this device's identity and decrypts what it
decrypted before. (The full conversation after a migration, on both stores, is
``check_migration_to_vodozemac`` in the store conformance suite.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tui_client.crypto import load_backend
from tui_client.crypto.machine import OlmMachine
from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.migration import PickleFormatError, prepare_store
from tui_client.crypto.store_api import CryptoStore
from tui_client.store.cache import Cache

from .harness import FakeClock, FakeHomeserver, Peer

ROOMS = ("!one:x", "!two:x", "!three:x")
USERS = ["@alice:x", "@bob:y"]


def _olm_device(store: Any) -> tuple[Peer, list[tuple[str, dict[str, Any], str]]]:
    """Alice on python-olm, with Olm sessions, room keys of hers and Bob's, outbound sessions."""
    server, clock = FakeHomeserver(), FakeClock()
    alice = Peer(server, "@alice:x", "ALICE", "olm", clock, store=store)
    bob = Peer(server, "@bob:y", "BOB", "olm", clock)
    alice.login()
    bob.login()
    events = []
    for room in ROOMS:
        events.append((room, alice.encrypt(room, USERS, f"ours in {room}"), f"ours in {room}"))
        bob.sync()
        events.append((room, bob.encrypt(room, USERS, f"theirs in {room}"), f"theirs in {room}"))
        alice.sync()
    return alice, events


def _open_with_vodozemac(store: CryptoStore, key: bytes) -> OlmMachine:
    """What the engine does at start: prepare the store, then build the machine."""
    backend = load_backend("vodozemac")
    prepare_store(store, backend, key)
    return OlmMachine("@alice:x", "ALICE", store, backend, pickle_key=key, clock=FakeClock())


def _check(
    machine: OlmMachine, identity: Any, events: list[tuple[str, dict[str, Any], str]]
) -> None:
    assert machine.identity_keys == identity
    for room, event, body in events:
        result = machine.decrypt_room_event(event, room)
        assert getattr(result, "content", None) == {"msgtype": "m.text", "body": body}, result
    assert machine.outgoing_requests() is not None  # the account loads: requests can be built


class _FailingStore:
    """A store that raises before its ``fail_at``-th write (0: never)."""

    def __init__(self, inner: MemoryCryptoStore, fail_at: int) -> None:
        self._inner = inner
        self.fail_at = fail_at
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not name.startswith(("save_", "delete_")):
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.fail_at:
                raise OSError("disk full (injected)")
            return attribute(*args, **kwargs)

        return write


def test_a_failure_before_any_write_of_the_migration_leaves_a_store_that_opens() -> None:
    inner = MemoryCryptoStore()
    alice, events = _olm_device(inner)
    identity, key = alice.machine.identity_keys, alice.pickle_key
    before = inner.snapshot()
    counting = _FailingStore(inner, 0)
    prepare_store(counting, load_backend("vodozemac"), key)  # type: ignore[arg-type]
    total = counting.writes
    # The account, Olm sessions, six room keys, three outbound sessions dropped, the format.
    assert total >= 1 + 1 + 6 + 3 + 1
    for fail_at in range(1, total + 1):
        for rolled_back in (True, False):
            inner.restore(before)
            with pytest.raises(OSError, match="injected"):
                prepare_store(_FailingStore(inner, fail_at), load_backend("vodozemac"), key)  # type: ignore[arg-type]
            if rolled_back:
                inner.restore(before)  # the engine's transaction rolled back
                assert inner.load_pickle_format() is None
            # Either way: the next start opens, migrates what is left, and reads everything.
            _check(_open_with_vodozemac(inner, key), identity, events)
            assert inner.load_pickle_format() == "vodozemac"


def test_python_olm_refuses_a_vodozemac_store_with_a_clear_error() -> None:
    store = MemoryCryptoStore()
    alice, _ = _olm_device(store)
    prepare_store(store, load_backend("vodozemac"), alice.pickle_key)
    with pytest.raises(PickleFormatError, match="vodozemac's format, which olm cannot read"):
        prepare_store(store, load_backend("olm"), alice.pickle_key)
    # A new device records its format at once; an old python-olm store opened with
    # python-olm is left alone (and recorded as python-olm's).
    fresh = MemoryCryptoStore()
    assert not prepare_store(fresh, load_backend("olm"), alice.pickle_key).changed
    assert fresh.load_pickle_format() == "olm"
    old = MemoryCryptoStore()
    _olm_device(old)
    assert not prepare_store(old, load_backend("olm"), alice.pickle_key).changed
    assert old.load_pickle_format() == "olm"


_MIGRATE = """
import sys
from tui_client.crypto import load_backend
from tui_client.crypto.migration import prepare_store
from tui_client.store.cache import Cache

cache = Cache(sys.argv[1])
store = cache.crypto_store()

def step(kind):
    # Report the step, then wait for the test to say go on (or to kill us right here).
    print(kind, flush=True)
    sys.stdin.readline()

cache.begin()
prepare_store(store, load_backend("vodozemac"), bytes.fromhex(sys.argv[2]), step=step)
cache.commit()
step("committed")
"""


def _migrate_and_kill(path: Path, key: bytes, after: int) -> list[str]:
    """Run the migration in a process; SIGKILL it while it waits after step ``after``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", _MIGRATE, str(path), key.hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: list[str] = []
    assert process.stdin is not None and process.stdout is not None
    try:
        # Each step waits for a line from us: the kill lands exactly after step ``after``.
        while len(seen) < after and "committed" not in seen:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line.strip())
            if len(seen) < after and seen[-1] != "committed":
                process.stdin.write("go\n")
                process.stdin.flush()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL, (process.returncode, seen)
    return seen


def test_a_migration_killed_at_any_step_leaves_a_store_that_opens(tmp_path: Path) -> None:
    original = tmp_path / "olm.sqlite3"
    cache = Cache(original)
    alice, events = _olm_device(cache.crypto_store())
    identity, key = alice.machine.identity_keys, alice.pickle_key
    cache.close()
    expected = _migrate_and_kill(_copy(original, tmp_path / "whole.sqlite3"), key, 10_000)
    assert expected[0] == "account" and expected[-1] == "committed"
    steps = len(expected) - 1
    assert steps >= 1 + 6 + 3  # the account, the room keys, the outbound sessions (and Olm's)
    # Killed before anything, after each first and second step of a kind (account, Olm
    # sessions, room keys, outbound sessions), half-way, before and after the commit.
    points = {0, steps // 2, steps, steps + 1}
    for i in range(steps):
        if i == 0 or expected[i] != expected[i - 1]:
            points |= {i + 1, i + 2}
    assert len(points) >= 8
    for after in sorted(p for p in points if p <= steps + 1):
        path = _copy(original, tmp_path / f"killed-{after}.sqlite3")
        seen = _migrate_and_kill(path, key, after)
        cache = Cache(path)
        store = cache.crypto_store()
        # Killed before the commit: nothing of the migration is in the file.
        committed = "committed" in seen
        assert store.load_pickle_format() == ("vodozemac" if committed else None), seen
        cache.begin()
        machine = _open_with_vodozemac(store, key)
        cache.commit()
        _check(machine, identity, events)
        assert store.load_pickle_format() == "vodozemac"
        cache.close()


def _copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target
