"""End-to-end encryption: the machine's cost over the bare Olm/Megolm work, per backend.

Two benchmarks, each run for python-olm and for vodozemac, and the migration from
one to the other; each case paired with a baseline measured in the same round
(see ``_harness.py``):

``decrypt``: 10,000 Megolm events
    ``machine``: ``OlmMachine.decrypt_room_event`` on each event (session lookup in
    the in-memory store, pickle-checked session cache, decryption, JSON payload,
    room and sender checks, device trust, replay bookkeeping), on a fresh machine
    over a restored store snapshot. ``bare`` (the baseline): the backend's own
    ``InboundGroupSession.decrypt`` over the same ciphertexts, nothing else.
    Target: bare / machine >= 0.8 (the machine adds at most a quarter).
``share``: a room key to 500 devices
    ``machine``: ``get_missing_sessions`` + the ``/keys/claim`` answer (500 one-time
    key signatures checked, 500 Olm sessions created) + ``share_room_key`` (500
    Olm-encrypted ``m.room_key`` payloads, share records, pending to-device
    requests) + marking those requests sent. ``bare`` (the baseline): 500
    ``create_outbound_session`` + ``encrypt`` of a payload of the same size.

``migrate``: a python-olm device's store of 10,000 room keys moved to vodozemac
    (run when both backends are): ``machine``: ``migration.prepare_store`` (the
    account and every room key read through vodozemac's libolm import, pickled
    again, written back; the format recorded). ``bare`` (the baseline):
    vodozemac's libolm import and pickle of the same 10,000 room keys in a loop.

Run ``python -m bench.crypto`` (``--rounds N``, ``--events N``, ``--devices N``,
``--keys N``, ``--backend olm|vodozemac``). Nothing here is an assertion: read the
ratios.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_client.crypto import BACKENDS, load_backend
from tui_client.crypto.machine import OlmMachine
from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.migration import prepare_store
from tui_client.crypto.requests import (
    KeysClaimRequest,
    KeysQueryRequest,
    KeysUploadRequest,
    OutgoingRequest,
    ToDeviceRequest,
)
from tui_client.crypto.types import DecryptedEvent, EncryptionSettings

from ._harness import (
    Case,
    CaseResult,
    Sample,
    Stopwatch,
    fmt_ms,
    print_table,
    run_rounds,
    sized,
)

__all__ = ["BARE", "MACHINE", "TARGET_THROUGHPUT", "run_decrypt", "run_share"]

MACHINE = "machine"
BARE = "bare"
TARGET_THROUGHPUT = 0.8
ROOM = "!bench:example.org"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


class _Loopback:
    """The four E2EE endpoints, in memory, for machines in one process."""

    def __init__(self) -> None:
        self.device_keys: dict[str, dict[str, Any]] = {}
        self.one_time_keys: dict[tuple[str, str], dict[str, Any]] = {}
        self.inbox: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def handle(self, user_id: str, device_id: str, request: OutgoingRequest) -> dict[str, Any]:
        if isinstance(request, KeysUploadRequest):
            if "device_keys" in request.body:
                self.device_keys.setdefault(user_id, {})[device_id] = request.body["device_keys"]
            self.one_time_keys.setdefault((user_id, device_id), {}).update(
                request.body.get("one_time_keys", {})
            )
            count = len(self.one_time_keys[(user_id, device_id)])
            return {"one_time_key_counts": {"signed_curve25519": count}}
        if isinstance(request, KeysQueryRequest):
            return {"device_keys": {u: self.device_keys.get(u, {}) for u in request.users}}
        if isinstance(request, KeysClaimRequest):
            claimed: dict[str, Any] = {}
            for user, devices in request.one_time_keys.items():
                for device in devices:
                    pool = self.one_time_keys.get((user, device), {})
                    if pool:
                        key_id = next(iter(pool))
                        claimed.setdefault(user, {})[device] = {key_id: pool.pop(key_id)}
            return {"one_time_keys": claimed}
        assert isinstance(request, ToDeviceRequest)
        for target, by_device in request.messages.items():
            for target_device, content in by_device.items():
                self.inbox.setdefault((target, target_device), []).append(
                    {"type": request.event_type, "sender": user_id, "content": content}
                )
        return {}

    def flush(self, machine: OlmMachine) -> None:
        for _ in range(5):
            requests = machine.outgoing_requests()
            if not requests:
                return
            for request in requests:
                answer = self.handle(machine.user_id, machine.device_id, request)
                machine.mark_request_as_sent(request.request_id, answer)


def _machine(
    user_id: str, device_id: str, backend: str, store: MemoryCryptoStore, key: bytes
) -> OlmMachine:
    return OlmMachine(
        user_id, device_id, store, load_backend(backend), pickle_key=key, clock=_Clock()
    )


@dataclass(slots=True)
class DecryptSetup:
    """Bob's store holding Alice's session, and the events to decrypt."""

    backend: str
    snapshot: dict[str, Any]
    pickle_key: bytes
    events: list[dict[str, Any]]
    session_pickle: str


def prepare_decrypt(backend: str, count: int) -> DecryptSetup:
    """Alice shares a room key with Bob over Olm and encrypts ``count`` events."""
    loop = _Loopback()
    alice_key, bob_key = secrets.token_bytes(32), secrets.token_bytes(32)
    alice = _machine("@alice:example.org", "ALICE", backend, MemoryCryptoStore(), alice_key)
    bob_store = MemoryCryptoStore()
    bob = _machine("@bob:example.org", "BOB", backend, bob_store, bob_key)
    users = ["@alice:example.org", "@bob:example.org"]
    for machine in (alice, bob):
        loop.flush(machine)
    for machine in (alice, bob):
        machine.update_tracked_users(users)
        loop.flush(machine)
    claim = alice.get_missing_sessions(users)
    assert claim is not None
    alice.mark_request_as_sent(claim.request_id, loop.handle("@alice:example.org", "ALICE", claim))
    settings = EncryptionSettings(rotation_period_msgs=count + 1)
    for request in alice.share_room_key(ROOM, users, settings):
        alice.mark_request_as_sent(
            request.request_id, loop.handle("@alice:example.org", "ALICE", request)
        )
    bob.receive_sync_changes(loop.inbox.pop(("@bob:example.org", "BOB")))
    events = []
    for i in range(count):
        content = alice.encrypt_room_event(
            ROOM, "m.room.message", {"msgtype": "m.text", "body": f"message number {i} " * 3}
        )
        events.append(
            {
                "type": "m.room.encrypted",
                "sender": "@alice:example.org",
                "event_id": f"$event{i:06d}",
                "origin_server_ts": 1_700_000_000_000 + i,
                "content": content,
            }
        )
    [record] = bob_store.list_inbound_group_sessions(ROOM)
    first = bob.decrypt_room_event(events[0], ROOM)
    assert isinstance(first, DecryptedEvent), first
    return DecryptSetup(backend, bob_store.snapshot(), bob_key, events, record["pickle"])


def machine_decrypt_case(setup: DecryptSetup) -> Case:
    """``decrypt_room_event`` on every event, fresh machine and store each round."""

    def run(_scratch: Path) -> Sample:
        store = MemoryCryptoStore()
        store.restore(setup.snapshot)
        bob = _machine("@bob:example.org", "BOB", setup.backend, store, setup.pickle_key)
        decrypt = bob.decrypt_room_event
        events = setup.events
        watch = Stopwatch()
        with watch.part("decrypt_room_event"):
            results = [decrypt(event, ROOM) for event in events]
        if not all(isinstance(r, DecryptedEvent) for r in results):
            raise AssertionError("an event did not decrypt")
        return watch.sample

    return run


def bare_decrypt_case(setup: DecryptSetup) -> Case:
    """The backend's own group-session decrypt over the same ciphertexts."""
    ciphertexts = [e["content"]["ciphertext"] for e in setup.events]

    def run(_scratch: Path) -> Sample:
        backend = load_backend(setup.backend)
        session = backend.inbound_group_session_from_pickle(setup.session_pickle, setup.pickle_key)
        decrypt = session.decrypt
        watch = Stopwatch()
        with watch.part("InboundGroupSession.decrypt"):
            results = [decrypt(c) for c in ciphertexts]
        if len(results) != len(ciphertexts):
            raise AssertionError("lost a result")
        return watch.sample

    return run


@dataclass(slots=True)
class ShareSetup:
    """Alice knowing ``devices`` devices (queried, no Olm sessions yet) and their claimed keys."""

    backend: str
    users: list[str]
    snapshot: dict[str, Any]
    pickle_key: bytes
    claim_answer: dict[str, Any]
    targets: list[tuple[str, str]]
    payload_size: int


def prepare_share(backend: str, devices: int) -> ShareSetup:
    """``devices`` users with one device each, their keys uploaded and queried by Alice."""
    loop = _Loopback()
    key = secrets.token_bytes(32)
    store = MemoryCryptoStore()
    alice = _machine("@alice:example.org", "ALICE", backend, store, key)
    loop.flush(alice)
    users = [f"@user{i:04d}:example.org" for i in range(devices)]
    for user in users:
        peer = _machine(user, "PHONE", backend, MemoryCryptoStore(), secrets.token_bytes(32))
        [upload] = [r for r in peer.outgoing_requests() if isinstance(r, KeysUploadRequest)]
        loop.handle(user, "PHONE", upload)
    alice.update_tracked_users(users)
    loop.flush(alice)
    snapshot = store.snapshot()
    claim = alice.get_missing_sessions(users)
    assert claim is not None
    answer = loop.handle("@alice:example.org", "ALICE", claim)
    targets = []
    for user in users:
        [key_object] = answer["one_time_keys"][user]["PHONE"].values()
        curve = loop.device_keys[user]["PHONE"]["keys"]["curve25519:PHONE"]
        targets.append((curve, key_object["key"]))
    # The size of one m.room_key Olm payload, for the baseline to encrypt the same amount.
    payload = alice._olm._olm_payload(
        store.get_user_devices(users[0])[0],
        "m.room_key",
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": ROOM,
            "session_id": "x" * 43,
            "session_key": "x" * 308,
            "shared_history": False,
        },
    )
    return ShareSetup(backend, users, snapshot, key, answer, targets, len(payload))


def machine_share_case(setup: ShareSetup) -> Case:
    """Claim answer + share_room_key + marking the to-device requests sent."""

    def run(_scratch: Path) -> Sample:
        store = MemoryCryptoStore()
        store.restore(setup.snapshot)
        alice = _machine("@alice:example.org", "ALICE", setup.backend, store, setup.pickle_key)
        watch = Stopwatch()
        with watch.part("claim answer (sessions)"):
            claim = alice.get_missing_sessions(setup.users)
            assert claim is not None
            outcome = alice.mark_request_as_sent(claim.request_id, setup.claim_answer)
        with watch.part("share_room_key"):
            requests = alice.share_room_key(ROOM, setup.users)
        with watch.part("mark sent"):
            for request in requests:
                alice.mark_request_as_sent(request.request_id, {})
        if len(outcome.sessions_created) != len(setup.users):
            raise AssertionError("sessions missing")
        if sum(r.recipient_count() for r in requests) != len(setup.users):
            raise AssertionError("not every device got the key")
        return watch.sample

    return run


def bare_share_case(setup: ShareSetup) -> Case:
    """Per device: create_outbound_session + encrypt a payload of the same size."""
    plaintext = json.dumps({"pad": "x" * (setup.payload_size - 11)})

    def run(_scratch: Path) -> Sample:
        account = load_backend(setup.backend).create_account()
        create = account.create_outbound_session
        watch = Stopwatch()
        with watch.part("sessions + encrypt"):
            for curve, one_time_key in setup.targets:
                create(curve, one_time_key).encrypt(plaintext)
        return watch.sample

    return run


@dataclass(slots=True)
class MigrateSetup:
    snapshot: dict[str, Any]
    pickle_key: bytes
    pickles: list[str]


def prepare_migrate(keys: int) -> MigrateSetup:
    """A python-olm device's store holding ``keys`` room keys (and one outbound session)."""
    key = secrets.token_bytes(32)
    store = MemoryCryptoStore()
    alice = _machine("@alice:example.org", "ALICE", "olm", store, key)
    _Loopback().flush(alice)
    olm = load_backend("olm")
    sessions = []
    for i in range(keys):
        exported = olm.create_outbound_group_session()
        sessions.append(
            {
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": f"!room{i % 100}:example.org",
                "session_id": exported.session_id,
                "session_key": olm.inbound_group_session(exported.session_key).export_at(0),
                "sender_key": "x" * 43,
                "sender_claimed_keys": {"ed25519": "y" * 43},
                "forwarding_curve25519_key_chain": [],
            }
        )
    assert alice.import_sessions(sessions).imported == keys
    pickles = [r["pickle"] for r in store.list_inbound_group_sessions()]
    return MigrateSetup(store.snapshot(), key, pickles)


def machine_migrate_case(setup: MigrateSetup) -> Case:
    """``prepare_store``: the account and every room key re-pickled for vodozemac."""

    def run(_scratch: Path) -> Sample:
        store = MemoryCryptoStore()
        store.restore(setup.snapshot)
        backend = load_backend("vodozemac")
        watch = Stopwatch()
        with watch.part("prepare_store"):
            report = prepare_store(store, backend, setup.pickle_key)
        assert report.migrated == len(setup.pickles) + 1, report
        return watch.sample

    return run


def bare_migrate_case(setup: MigrateSetup) -> Case:
    """vodozemac reading each libolm room key pickle and writing its own, nothing else."""

    def run(_scratch: Path) -> Sample:
        backend = load_backend("vodozemac")
        load, key = backend.inbound_group_session_from_pickle, setup.pickle_key
        watch = Stopwatch()
        with watch.part("unpickle + pickle"):
            for pickle in setup.pickles:
                load(pickle, key).pickle(key)
        return watch.sample

    return run


def run_migrate(
    rounds: int, keys: int, progress: Callable[[str], None] | None = None
) -> dict[str, CaseResult]:
    """The python-olm to vodozemac migration benchmark."""
    setup = prepare_migrate(keys)
    return _run(
        {BARE: bare_migrate_case(setup), MACHINE: machine_migrate_case(setup)}, rounds, progress
    )


def _run(
    cases: dict[str, Case], rounds: int, progress: Callable[[str], None] | None
) -> dict[str, CaseResult]:
    return run_rounds(cases, BARE, rounds, progress=progress)


def run_decrypt(
    backend: str, rounds: int, events: int, progress: Callable[[str], None] | None = None
) -> dict[str, CaseResult]:
    """The decrypt benchmark for one backend."""
    setup = prepare_decrypt(backend, events)
    return _run(
        {BARE: bare_decrypt_case(setup), MACHINE: machine_decrypt_case(setup)}, rounds, progress
    )


def run_share(
    backend: str, rounds: int, devices: int, progress: Callable[[str], None] | None = None
) -> dict[str, CaseResult]:
    """The share benchmark for one backend."""
    setup = prepare_share(backend, devices)
    return _run(
        {BARE: bare_share_case(setup), MACHINE: machine_share_case(setup)}, rounds, progress
    )


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks for each backend and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.crypto", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=sized(5, 1))
    parser.add_argument("--events", type=int, default=sized(10_000, 50))
    parser.add_argument("--devices", type=int, default=sized(500, 5))
    parser.add_argument("--keys", type=int, default=sized(10_000, 20))
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows: list[list[str]] = []
    parts: list[str] = []
    chosen = args.backend or list(BACKENDS)
    runs: list[tuple[str, Callable[[], dict[str, CaseResult]], int]] = []
    for backend in chosen:
        runs.append(
            (
                f"decrypt {args.events:,} events ({backend})",
                lambda backend=backend: run_decrypt(backend, args.rounds, args.events),
                args.events,
            )
        )
        runs.append(
            (
                f"share to {args.devices} devices ({backend})",
                lambda backend=backend: run_share(backend, args.rounds, args.devices),
                args.devices,
            )
        )
    if set(BACKENDS) <= set(chosen):
        runs.append(
            (
                f"migrate {args.keys:,} room keys (olm to vodozemac)",
                lambda: run_migrate(args.rounds, args.keys),
                args.keys,
            )
        )
    for label, run, unit in runs:
        results = run()
        ours, bare = results[MACHINE], results[BARE]
        throughput = 1.0 / ours.wall_ratio if ours.wall_ratio else float("nan")
        rows.append(
            [
                label,
                fmt_ms(ours.wall_median),
                fmt_ms(bare.wall_median),
                f"{ours.wall_ratio:.2f}",
                f"{ours.cpu_ratio:.2f}",
                f"{throughput:.2f}",
                f"{ours.wall_median / unit * 1e6:.1f} us",
            ]
        )
        parts.append(
            f"{label}: "
            + ", ".join(f"{name} {fmt_ms(t)}" for name, t in ours.part_medians().items())
        )
    print_table(
        rows,
        ["benchmark", "machine", "bare", "x (wall)", "x (cpu)", "bare/machine", "per item"],
    )
    print()
    print(
        "x = median over rounds of machine / bare in the same round (lower is better); "
        f"bare/machine is the throughput ratio (decrypt target >= {TARGET_THROUGHPUT})."
    )
    for line in parts:
        print(line)
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
