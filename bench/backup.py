"""Server-side key backup: the cost of our restore and upload over the bare PK work, per backend.

Two benchmarks, each run for python-olm and for vodozemac, each case paired with a
baseline measured in the same round (see ``_harness.py``):

``restore``: 10,000 room keys from a ``GET /room_keys/keys`` answer
    ``ours``: :func:`tui_client.crypto.backup.decrypt_backup` over the whole answer
    (walking rooms and sessions, PK decryption, JSON, validation) and
    ``OlmMachine.import_sessions(batch, origin=KeyOrigin.BACKUP)`` for every batch
    of 1,000 (session import, pickling, the store, merge checks): what a new login
    does, on a fresh machine each round. Twice: into the client's SQLite cache
    (one transaction per batch: what the client does) and into the in-memory
    store (the crypto layer alone). ``bare`` (the baseline): the backend's
    ``PkDecryption.decrypt`` of the same 10,000 ``session_data`` entries in a
    loop, nothing else.
``upload``: backing up 10,000 room keys
    ``ours``: :class:`~tui_client.crypto.backup.BackupUploader` batches of 200 from a
    store holding 10,000 sessions (reading the store, unpickling, exporting, PK
    encryption, the request body, marking the batch backed up), from SQLite (a
    transaction to build each batch and one to mark it) and from the in-memory
    store. ``bare`` (the baseline): ``PkEncryption.encrypt`` of the same 10,000
    plaintexts.

The answers are built once per backend (10,000 fresh Megolm sessions spread over
100 rooms). Run ``python -m bench.backup`` (``--rounds N``, ``--keys N``,
``--backend olm|vodozemac``, ``--only restore|upload``). Nothing here is an
assertion: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tui_client.crypto import BACKENDS, load_backend
from tui_client.crypto.backend import PkMessage
from tui_client.crypto.backup import (
    BACKUP_ALGORITHM,
    BackupKey,
    BackupUploader,
    BackupVersion,
    decrypt_backup,
    encrypt_session_data,
)
from tui_client.crypto.machine import OlmMachine
from tui_client.crypto.memory_store import MemoryCryptoStore
from tui_client.crypto.store_api import CryptoStore
from tui_client.crypto.types import KeyOrigin
from tui_client.store.cache import Cache

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

__all__ = ["BARE", "OURS", "OURS_SQLITE", "run_restore", "run_upload"]

OURS = "ours (memory store)"
OURS_SQLITE = "ours (SQLite)"
BARE = "bare"
ROOMS = 100
USER = "@alice:example.org"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


def _machine(backend: str, store: CryptoStore, key: bytes, device: str) -> OlmMachine:
    return OlmMachine(USER, device, store, load_backend(backend), pickle_key=key, clock=_Clock())


def _sessions(backend: str, count: int) -> list[dict[str, Any]]:
    """``count`` exported Megolm sessions (``ExportedSessionData``), over ``ROOMS`` rooms."""
    primitives = load_backend(backend)
    sender_key = primitives.create_pk_decryption().public_key
    sessions = []
    for i in range(count):
        outbound = primitives.create_outbound_group_session()
        exported = primitives.inbound_group_session(outbound.session_key).export_at(0)
        assert exported is not None
        sessions.append(
            {
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": f"!room{i % ROOMS:03d}:example.org",
                "session_id": outbound.session_id,
                "session_key": exported,
                "sender_key": sender_key,
                "sender_claimed_keys": {"ed25519": outbound.session_id},
                "forwarding_curve25519_key_chain": [],
                "shared_history": False,
            }
        )
    return sessions


@dataclass(slots=True)
class RestoreSetup:
    """A backup answer of ``count`` keys, its key, and an empty machine to restore into."""

    backend: str
    backup_secret: str
    response: dict[str, Any]
    snapshot: dict[str, Any]
    pickle_key: bytes
    count: int


def prepare_restore(backend: str, count: int) -> RestoreSetup:
    """Encrypt ``count`` fresh sessions to a new backup key, as the server would return them."""
    primitives = load_backend(backend)
    key = BackupKey.create(primitives)
    encryption = primitives.pk_encryption(key.public_key)
    rooms: dict[str, Any] = {}
    for session in _sessions(backend, count):
        data = {k: v for k, v in session.items() if k not in ("room_id", "session_id")}
        rooms.setdefault(session["room_id"], {"sessions": {}})["sessions"][
            session["session_id"]
        ] = {
            "first_message_index": 0,
            "forwarded_count": 0,
            "is_verified": False,
            "session_data": encrypt_session_data(encryption, data),
        }
    # What the engine hands over: the parsed JSON of the HTTP answer.
    response = json.loads(json.dumps({"rooms": rooms}))
    store = MemoryCryptoStore()
    pickle_key = secrets.token_bytes(32)
    _machine(backend, store, pickle_key, "NEWLOGIN")
    return RestoreSetup(backend, key.to_secret(), response, store.snapshot(), pickle_key, count)


def ours_restore_case(setup: RestoreSetup) -> Case:
    """``decrypt_backup`` + ``import_sessions`` per batch, fresh machine and store each round."""

    def run(_scratch: Path) -> Sample:
        store = MemoryCryptoStore()
        store.restore(setup.snapshot)
        machine = _machine(setup.backend, store, setup.pickle_key, "NEWLOGIN")
        key = BackupKey.from_secret(machine.backend, setup.backup_secret)
        watch = Stopwatch()
        imported = failed = 0
        batches = decrypt_backup(key, setup.response)
        while True:
            with watch.part("decrypt_backup"):
                batch = next(batches, None)
            if batch is None:
                break
            failed += len(batch.failures)
            with watch.part("import_sessions"):
                imported += machine.import_sessions(
                    batch.sessions, origin=KeyOrigin.BACKUP
                ).imported
        if imported != setup.count or failed:
            raise AssertionError(f"restored {imported} of {setup.count}, {failed} failed")
        return watch.sample

    return run


def sqlite_restore_case(setup: RestoreSetup) -> Case:
    """The same into the client's SQLite cache, one transaction per imported batch."""

    def run(scratch: Path) -> Sample:
        cache = Cache(scratch / "cache.db")
        store = cast(CryptoStore, cache.crypto_store())
        cache.begin()
        machine = _machine(setup.backend, store, setup.pickle_key, "NEWLOGIN")
        cache.commit()
        key = BackupKey.from_secret(machine.backend, setup.backup_secret)
        watch = Stopwatch()
        imported = failed = 0
        batches = decrypt_backup(key, setup.response)
        while True:
            with watch.part("decrypt_backup"):
                batch = next(batches, None)
            if batch is None:
                break
            failed += len(batch.failures)
            with watch.part("import_sessions + commit"):
                cache.begin()
                imported += machine.import_sessions(
                    batch.sessions, origin=KeyOrigin.BACKUP
                ).imported
                cache.commit()
        cache.close()
        if imported != setup.count or failed:
            raise AssertionError(f"restored {imported} of {setup.count}, {failed} failed")
        return watch.sample

    return run


def bare_restore_case(setup: RestoreSetup) -> Case:
    """The backend's PK decryption of the same ``session_data`` entries, in a loop."""
    messages = [
        PkMessage(
            d["session_data"]["ciphertext"],
            d["session_data"]["mac"],
            d["session_data"]["ephemeral"],
        )
        for room in setup.response["rooms"].values()
        for d in room["sessions"].values()
    ]

    def run(_scratch: Path) -> Sample:
        backend = load_backend(setup.backend)
        from tui_client.crypto.encoding import b64decode

        decrypt = backend.pk_decryption_from_private_key(b64decode(setup.backup_secret)).decrypt
        watch = Stopwatch()
        with watch.part("PkDecryption.decrypt"):
            results = [decrypt(m) for m in messages]
        if len(results) != setup.count:
            raise AssertionError("lost a result")
        return watch.sample

    return run


@dataclass(slots=True)
class UploadSetup:
    """A store holding ``count`` sessions not yet backed up, and a backup version."""

    backend: str
    snapshot: dict[str, Any]
    pickle_key: bytes
    version: dict[str, Any]
    plaintexts: list[str]
    count: int
    #: The same sessions in a SQLite cache (copied afresh for each round).
    database: Path


def prepare_upload(backend: str, count: int, folder: Path) -> UploadSetup:
    """Import ``count`` sessions into a machine (as if received) and create a backup version."""
    store = MemoryCryptoStore()
    pickle_key = secrets.token_bytes(32)
    machine = _machine(backend, store, pickle_key, "DEVICE")
    sessions = _sessions(backend, count)
    result = machine.import_sessions(sessions)
    assert result.imported == count
    key = BackupKey.create(machine.backend)
    version = {
        "algorithm": BACKUP_ALGORITHM,
        "version": "1",
        "auth_data": machine.sign_json({"public_key": key.public_key}),
    }
    plaintexts = [
        json.dumps(
            {k: v for k, v in s.items() if k not in ("room_id", "session_id")},
            separators=(",", ":"),
        )
        for s in sessions
    ]
    database = folder / "template.db"
    cache = Cache(database)
    sqlite_store = cast(CryptoStore, cache.crypto_store())
    cache.begin()
    for record in store.list_inbound_group_sessions():
        sqlite_store.save_inbound_group_session(record)
    account = store.load_account()
    assert account is not None
    sqlite_store.save_account(account)
    cache.commit()
    cache.close()
    return UploadSetup(backend, store.snapshot(), pickle_key, version, plaintexts, count, database)


def ours_upload_case(setup: UploadSetup) -> Case:
    """Every upload batch built, "sent" and marked, until nothing is left."""

    def run(_scratch: Path) -> Sample:
        store = MemoryCryptoStore()
        store.restore(setup.snapshot)
        backend = load_backend(setup.backend)
        version = BackupVersion.from_response(setup.version)
        uploader = BackupUploader(store, backend, setup.pickle_key, version)
        watch = Stopwatch()
        sent = 0
        while True:
            with watch.part("next_upload"):
                upload = uploader.next_upload()
            if upload is None:
                break
            with watch.part("mark_sent"):
                uploader.mark_sent(upload, {"count": sent + upload.count, "etag": "x"})
            sent += upload.count
        if sent != setup.count:
            raise AssertionError(f"uploaded {sent} of {setup.count}")
        return watch.sample

    return run


def sqlite_upload_case(setup: UploadSetup) -> Case:
    """The same from the client's SQLite cache, each batch built and marked in a transaction."""

    def run(scratch: Path) -> Sample:
        path = scratch / "cache.db"
        shutil.copyfile(setup.database, path)
        cache = Cache(path)
        store = cast(CryptoStore, cache.crypto_store())
        backend = load_backend(setup.backend)
        version = BackupVersion.from_response(setup.version)
        uploader = BackupUploader(store, backend, setup.pickle_key, version)
        watch = Stopwatch()
        sent = 0
        while True:
            with watch.part("next_upload"):
                cache.begin()
                upload = uploader.next_upload()
                cache.commit()
            if upload is None:
                break
            with watch.part("mark_sent + commit"):
                cache.begin()
                uploader.mark_sent(upload, {"count": sent + upload.count, "etag": "x"})
                cache.commit()
            sent += upload.count
        cache.close()
        if sent != setup.count:
            raise AssertionError(f"uploaded {sent} of {setup.count}")
        return watch.sample

    return run


def bare_upload_case(setup: UploadSetup) -> Case:
    """The backend's PK encryption of the same plaintexts, in a loop."""

    def run(_scratch: Path) -> Sample:
        backend = load_backend(setup.backend)
        public_key = BackupVersion.from_response(setup.version).public_key
        encrypt = backend.pk_encryption(public_key).encrypt
        watch = Stopwatch()
        with watch.part("PkEncryption.encrypt"):
            results = [encrypt(p) for p in setup.plaintexts]
        if len(results) != setup.count:
            raise AssertionError("lost a result")
        return watch.sample

    return run


def run_restore(
    backend: str, rounds: int, keys: int, progress: Callable[[str], None] | None = None
) -> dict[str, CaseResult]:
    """The restore benchmark for one backend."""
    setup = prepare_restore(backend, keys)
    cases = {
        BARE: bare_restore_case(setup),
        OURS: ours_restore_case(setup),
        OURS_SQLITE: sqlite_restore_case(setup),
    }
    return run_rounds(cases, BARE, rounds, progress=progress)


def run_upload(
    backend: str, rounds: int, keys: int, progress: Callable[[str], None] | None = None
) -> dict[str, CaseResult]:
    """The upload benchmark for one backend."""
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        setup = prepare_upload(backend, keys, Path(tmp))
        cases = {
            BARE: bare_upload_case(setup),
            OURS: ours_upload_case(setup),
            OURS_SQLITE: sqlite_upload_case(setup),
        }
        return run_rounds(cases, BARE, rounds, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks for each backend and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.backup", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=sized(5, 1))
    parser.add_argument("--keys", type=int, default=sized(10_000, 20))
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--only", choices=("restore", "upload"), action="append")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows: list[list[str]] = []
    parts: list[str] = []
    benchmarks: list[tuple[str, Callable[..., dict[str, CaseResult]]]] = [
        ("restore", run_restore),
        ("upload", run_upload),
    ]
    for backend in args.backend or list(BACKENDS):
        for name, run in benchmarks:
            if args.only and name not in args.only:
                continue
            label = f"{name} {args.keys:,} keys ({backend})"
            results = run(backend, args.rounds, args.keys)
            bare = results[BARE]
            for case in (OURS_SQLITE, OURS):
                ours = results[case]
                rows.append(
                    [
                        f"{label}, {case}",
                        fmt_ms(ours.wall_median),
                        fmt_ms(bare.wall_median),
                        f"{ours.wall_ratio:.2f}",
                        f"{ours.cpu_ratio:.2f}",
                        f"{ours.wall_median / args.keys * 1e6:.1f} us",
                        f"{bare.wall_median / args.keys * 1e6:.1f} us",
                    ]
                )
                parts.append(
                    f"{label}, {case}: "
                    + ", ".join(f"{part} {fmt_ms(t)}" for part, t in ours.part_medians().items())
                )
    print_table(
        rows,
        ["benchmark", "ours", "bare", "x (wall)", "x (cpu)", "ours/key", "bare/key"],
    )
    print()
    print(
        "x = median over rounds of ours / bare in the same round (lower is better); "
        "bare = the backend's PkDecryption.decrypt (restore) or PkEncryption.encrypt (upload) "
        "of the same entries in a loop."
    )
    for line in parts:
        print(line)
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
