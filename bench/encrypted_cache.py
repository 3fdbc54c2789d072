"""The cache encrypted with SQLCipher against the same cache as a plain SQLite file.

Four pairs, each measured in the same rounds (rotating order, paired ratios):

- **ingest**: the synthetic initial ``/sync`` (already parsed) committed by
  ``Cache.ingest_sync`` into a new cache, then the connection closed (which
  checkpoints the WAL into the file, so the encrypted writes are all counted);
- **cold start**: open a filled cache (key check, schema check) and read what the
  engine reads before the room list shows (summaries, sync token, last room);
- **timeline**: the last 50 events of every room of a filled cache
  (``Cache.load_before``), as opening each room does, on a fresh connection (every
  page read from the file, so decrypted once);
- **timeline, pages cached**: the same again on a connection that already read
  them (SQLite's page cache holds pages decrypted), as when a room is opened a
  second time or was just synced.

Goal: at most 1.15x the plain file.
"""

from __future__ import annotations

import json
from pathlib import Path

from tui_client.protocol.sync import SyncBatch, parse_sync
from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import new_key

from ._harness import Case, CaseResult, Sample, Stopwatch, fmt_ms, print_table, run_rounds, sized
from .synthetic import DEFAULT_SEED, initial_sync

ROUNDS = sized(5, 1)
PAGE = 50
TARGET_RATIO = 1.15
OWN_USER_ID = "@bench:bench.example"
KEY = new_key()
PLAIN = "plain SQLite"
ENCRYPTED = "SQLCipher"
CASES = (PLAIN, ENCRYPTED)
WHAT = ("ingest", "cold start", "timeline", "timeline, pages cached")


def _key(case: str) -> bytes | None:
    return KEY if case == ENCRYPTED else None


def _ingest_case(batch: SyncBatch, case: str) -> Case:
    def ingest(folder: Path) -> Sample:
        watch = Stopwatch()
        with watch.part("ingest"):
            cache = Cache(folder / "cache.sqlite3", own_user_id=OWN_USER_ID, key=_key(case))
            cache.ingest_sync(batch, {})
            cache.close()
        return watch.sample

    return ingest


def _cold_case(filled: Path, case: str) -> Case:
    def cold(folder: Path) -> Sample:
        watch = Stopwatch()
        with watch.part("open"):
            cache = Cache(filled, own_user_id=OWN_USER_ID, key=_key(case))
            cache.load_summaries()
            cache.get_meta("next_batch")
            cache.get_meta("last_room")
        cache.close()
        return watch.sample

    return cold


def _timeline_case(filled: Path, case: str, rooms: list[str], *, warm: bool) -> Case:
    def timeline(folder: Path) -> Sample:
        cache = Cache(filled, own_user_id=OWN_USER_ID, key=_key(case))
        if warm:
            for room_id in rooms:
                cache.load_before(room_id, None, PAGE)
        watch = Stopwatch()
        with watch.part("load"):
            for room_id in rooms:
                cache.load_before(room_id, None, PAGE)
        cache.close()
        return watch.sample

    return timeline


def run(
    folder: Path, rounds: int = ROUNDS, seed: int = DEFAULT_SEED
) -> dict[str, dict[str, CaseResult]]:
    """Every pair's results: ``{"ingest": {PLAIN: ..., ENCRYPTED: ...}, ...}``."""
    batch = parse_sync(json.loads(initial_sync(seed)))
    filled: dict[str, Path] = {}
    for case in CASES:
        filled[case] = folder / f"filled-{'encrypted' if _key(case) else 'plain'}.sqlite3"
        cache = Cache(filled[case], own_user_id=OWN_USER_ID, key=_key(case))
        cache.ingest_sync(batch, {})
        cache.close()
    probe = Cache(filled[PLAIN])
    rooms = list(probe.load_summaries())
    probe.close()
    return {
        "ingest": run_rounds({c: _ingest_case(batch, c) for c in CASES}, PLAIN, rounds),
        "cold start": run_rounds({c: _cold_case(filled[c], c) for c in CASES}, PLAIN, rounds),
        "timeline": run_rounds(
            {c: _timeline_case(filled[c], c, rooms, warm=False) for c in CASES}, PLAIN, rounds
        ),
        "timeline, pages cached": run_rounds(
            {c: _timeline_case(filled[c], c, rooms, warm=True) for c in CASES}, PLAIN, rounds
        ),
    }


def rows(folder: Path, rounds: int = ROUNDS, seed: int = DEFAULT_SEED) -> list[list[str]]:
    """Rows for ``python -m bench``'s table."""
    results = run(folder, rounds, seed)
    out = []
    for what in WHAT:
        ours, base = results[what][ENCRYPTED], results[what][PLAIN]
        out.append(
            [
                f"encrypted cache: {what}",
                fmt_ms(ours.wall_median),
                fmt_ms(base.wall_median),
                f"{ours.wall_ratio:.2f}",
                f"{ours.cpu_ratio:.2f}",
                f"<= {TARGET_RATIO:.2f}",
                "the same on a plain SQLite file",
            ]
        )
    return out


def main() -> None:
    """Print the four pairs."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        table = rows(Path(tmp))
    print("encrypted cache (SQLCipher 4) vs plain SQLite, same payload, same rounds")
    print_table(
        table, ["benchmark", "ours", "baseline", "x (wall)", "x (cpu)", "target", "baseline is"]
    )


if __name__ == "__main__":
    main()
