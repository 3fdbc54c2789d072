"""A sync batch of encrypted events: the engine's ingest with its crypto hook, against the
same ingest whose hook only decrypts.

``hook`` (ours)
    ``Cache.ingest_sync(batch, {}, hook=Encryption.ingest_hook)``: one joined room, its
    state and ``--events`` Megolm events (one session, the key already held), stored and
    decrypted in one transaction, the clear forms kept (``decrypted_events``), committed.
``decrypt only`` (the baseline)
    The same ``ingest_sync`` with a hook that calls ``OlmMachine.decrypt_room_event`` on
    every encrypted event and keeps nothing: the least work that stores and decrypts the
    batch. The ratio is what keeping the clear forms costs.

Each case runs on a copy of the same prepared cache (the machine's account and room key
in its SQLite store), with a new machine. Run ``python -m bench.sync_decrypt``
(``--rounds N``, ``--events N``, ``--backend olm|vodozemac``).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from tui_client.crypto import CryptoStore, load_backend
from tui_client.crypto.machine import OlmMachine
from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.types import DecryptedEvent, EncryptionSettings
from tui_client.engine.client import CACHE_FILE
from tui_client.engine.core import Core
from tui_client.engine.encryption import Encryption
from tui_client.engine.secrets import SecretStore
from tui_client.protocol.sync import SyncBatch, parse_sync
from tui_client.store.cache import Cache

from ._harness import Case, CaseResult, Sample, Stopwatch, fmt_ms, print_table, run_rounds, sized
from .crypto import ROOM, _Loopback, _machine

__all__ = ["BASELINE", "OURS", "open_encryption", "prepare", "run"]

OURS = "hook"
BASELINE = "decrypt only"
ALICE, BOB = "@alice:example.org", "@bob:example.org"


class _Core:
    """What :class:`Encryption` reads of the engine's core during a sync hook."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rooms: dict[str, Any] = {}
        self.user_id = BOB


def _state(event_type: str, content: dict[str, Any], key: str = "") -> dict[str, Any]:
    return {
        "type": event_type,
        "state_key": key,
        "sender": ALICE,
        "event_id": f"${event_type}{key}",
        "origin_server_ts": 1_700_000_000_000,
        "content": content,
    }


def prepare(folder: Path, backend: str, count: int) -> tuple[bytes, dict[str, Any]]:
    """Bob's cache (his machine holding Alice's room key) and the raw batch; Bob's pickle key."""
    loop = _Loopback()
    alice = _machine(ALICE, "ALICE", backend, MemoryCryptoStore(), secrets.token_bytes(32))
    cache = Cache(folder / CACHE_FILE, own_user_id=BOB)
    bob_key = secrets.token_bytes(32)
    bob = OlmMachine(
        BOB,
        "BOB",
        cast(CryptoStore, cache.crypto_store()),
        alice.backend,
        pickle_key=bob_key,
    )
    for machine in (alice, bob):
        loop.flush(machine)
    for machine in (alice, bob):
        machine.update_tracked_users([ALICE, BOB])
        loop.flush(machine)
    claim = alice.get_missing_sessions([ALICE, BOB])
    assert claim is not None
    alice.mark_request_as_sent(claim.request_id, loop.handle(ALICE, "ALICE", claim))
    settings = EncryptionSettings(rotation_period_msgs=count + 1)
    for request in alice.share_room_key(ROOM, [ALICE, BOB], settings):
        alice.mark_request_as_sent(request.request_id, loop.handle(ALICE, "ALICE", request))
    bob.receive_sync_changes(loop.inbox.pop((BOB, "BOB")))
    events = []
    for i in range(count):
        content = alice.encrypt_room_event(
            ROOM, "m.room.message", {"msgtype": "m.text", "body": f"message number {i} " * 3}
        )
        events.append(
            {
                "type": "m.room.encrypted",
                "sender": ALICE,
                "event_id": f"$event{i:06d}",
                "origin_server_ts": 1_700_000_000_001 + i,
                "content": content,
            }
        )
    cache.close()
    state = [
        _state("m.room.create", {"creator": ALICE, "room_version": "10"}),
        _state("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        _state("m.room.member", {"membership": "join"}, ALICE),
        _state("m.room.member", {"membership": "join"}, BOB),
    ]
    raw = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                ROOM: {"state": {"events": state}, "timeline": {"events": events, "limited": False}}
            }
        },
    }
    return bob_key, raw


def open_encryption(cache: Cache, backend: str, key: bytes) -> Encryption:
    """The engine's encryption service over Bob's prepared cache, its machine open."""
    encryption = Encryption(
        cast(Core, _Core(cache)), cast(SecretStore, None), fetch_members=_no_members
    )
    encryption.machine = OlmMachine(
        BOB, "BOB", cast(CryptoStore, encryption.store), load_backend(backend), pickle_key=key
    )
    return encryption


def _case(prepared: Path, backend: str, key: bytes, raw: dict[str, Any], *, keep: bool) -> Case:
    def run(folder: Path) -> Sample:
        shutil.copy(prepared / CACHE_FILE, folder / CACHE_FILE)
        batch: SyncBatch = parse_sync(raw)
        cache = Cache(folder / CACHE_FILE, own_user_id=BOB)
        encryption = open_encryption(cache, backend, key)
        machine = encryption.require_machine()

        def decrypt_only(batch: SyncBatch) -> int:
            done = 0
            for room in batch.joined:
                for event in room.timeline:
                    if event.get("type") == "m.room.encrypted":
                        done += isinstance(
                            machine.decrypt_room_event(event, room.room_id), DecryptedEvent
                        )
            return done

        hook: Callable[[SyncBatch], Any] = encryption.ingest_hook if keep else decrypt_only
        watch = Stopwatch()
        with watch.part("ingest_sync"):
            result = cache.ingest_sync(batch, {}, hook=hook)
        cache.close()
        expected = len(raw["rooms"]["join"][ROOM]["timeline"]["events"])
        got = result.hook_result
        found = len(got.clear.get(ROOM, {})) if keep else got
        if found != expected:
            raise AssertionError(f"decrypted {found} of {expected} events")
        return watch.sample

    return run


async def _no_members(room_id: str) -> None:
    raise AssertionError("the benchmark fetches no members")


def run(backend: str, rounds: int, events: int) -> dict[str, CaseResult]:
    """Both cases, ``rounds`` rounds, on copies of one prepared cache."""
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        prepared = Path(tmp)
        key, raw = prepare(prepared, backend, events)
        cases = {
            BASELINE: _case(prepared, backend, key, raw, keep=False),
            OURS: _case(prepared, backend, key, raw, keep=True),
        }
        return run_rounds(cases, BASELINE, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync_decrypt", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=sized(15, 1))
    parser.add_argument("--events", type=int, default=sized(200, 10))
    parser.add_argument("--backend", default="vodozemac")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    results = run(args.backend, args.rounds, args.events)
    ours, base = results[OURS], results[BASELINE]
    print_table(
        [
            [
                f"sync of {args.events} encrypted events ({args.backend})",
                fmt_ms(ours.wall_median),
                fmt_ms(base.wall_median),
                f"{ours.wall_ratio:.2f}",
                f"{ours.cpu_ratio:.2f}",
            ]
        ],
        ["benchmark", "hook", "decrypt only", "x (wall)", "x (cpu)"],
    )
    print("x = median over rounds of hook / decrypt only in the same round; lower is better.")
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
