"""The local search index: ingest N messages with and without it, against a bare FTS5
insert of the same texts, and the median time of typical queries over them.

Cases (one round each, rotating order):

- ``bare FTS5 insert``: the N bodies into an FTS5 table alone, one transaction (the
  baseline: what full-text indexing costs at the least).
- ``ingest, index off``: the N messages through ``Cache.ingest_sync`` (100 rooms) with
  the index triggers dropped: what storing events costs without search.
- ``ingest, indexed``: the same with the index (the triggers of schema 6).

The indexing cost is ``indexed - index off``, reported as a ratio to the bare insert.
Every file is encrypted (SQLCipher, the cache's own connection), the baseline's too.
Queries: single common and rare words, two words, a phrase, a prefix, and a word with
an ``in:`` room or ``from:`` sender filter, newest first, 50 results, as the search
screen asks them; the goal is a median under 50 ms.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

from tui_client.protocol.room_state import RoomSummary
from tui_client.protocol.search import parse_query
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import connect

from ._harness import Sample, Stopwatch, fmt_ms, print_table, run_rounds, sized

MESSAGES = sized(100_000, 2_000)
ROOMS = 100
ROUNDS = sized(3, 1)
QUERIES = sized(200, 20)
BARE = "bare FTS5 insert"
NO_INDEX = "ingest, index off"
INDEXED = "ingest, indexed"
GOAL_MS = 50.0

_VOCABULARY = [f"w{n}" for n in range(5000)]
_COMMON = ["the", "and", "matrix", "room", "sync", "hello", "lunch", "today", "meeting", "code"]


def _texts(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    # Zipf-like: a few words everywhere, most words rare.
    weights = [1.0 / (rank + 1) for rank in range(len(_VOCABULARY))]
    texts = []
    for _ in range(MESSAGES):
        words = rng.choices(_VOCABULARY, weights, k=rng.randint(3, 20))
        words += rng.sample(_COMMON, rng.randint(0, 3))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts


TEXTS = _texts()


def _batches() -> list[dict[str, Any]]:
    per_room = MESSAGES // ROOMS
    bodies: list[dict[str, Any]] = []
    step = 1000
    for first in range(0, per_room, step):
        join = {}
        for room in range(ROOMS):
            events = []
            for n in range(first, min(first + step, per_room)):
                index = room * per_room + n
                events.append(
                    {
                        "event_id": f"$e{index}",
                        "type": "m.room.message",
                        "sender": f"@user{index % 40}:bench.example",
                        "origin_server_ts": 1_700_000_000_000 + n * 60_000 + room,
                        "content": {"msgtype": "m.text", "body": TEXTS[index]},
                    }
                )
            join[f"!room{room}:bench.example"] = {"timeline": {"events": events, "limited": False}}
        bodies.append({"next_batch": f"s{first}", "rooms": {"join": join}})
    return bodies


BATCHES = _batches()


KEY = os.urandom(32)


def _open(path: Path) -> Cache:
    return Cache(path, own_user_id="@me:bench.example", key=KEY)


def _bare_case(folder: Path) -> Sample:
    watch = Stopwatch()
    db = connect(folder / "bare.sqlite3", KEY)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5 (body, tokenize = 'unicode61 remove_diacritics 2')"
    )
    with watch.part("insert"):
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (rowid, body) VALUES (?, ?)", enumerate(TEXTS))
        db.execute("COMMIT")
    db.close()
    return watch.sample


LAST_CACHE: dict[str, Path] = {}


def _ingest_case(indexed: bool) -> Any:
    def case(folder: Path) -> Sample:
        watch = Stopwatch()
        path = folder / "cache.sqlite3"
        cache = _open(path)
        if not indexed:
            for (name,) in cache.execute_readonly(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ):
                cache._db.execute(f"DROP TRIGGER {name}")
        batches = [parse_sync(b) for b in BATCHES]
        summaries: dict[str, RoomSummary] = {}
        with watch.part("ingest"):
            for batch in batches:
                result = cache.ingest_sync(batch, summaries)
                summaries.update(result.changed_rooms)
        if indexed:
            assert cache.indexed_count() == MESSAGES, cache.indexed_count()
            LAST_CACHE["path"] = path
            watch.sample.parts["query_ms"] = _query_median_ms(cache)
        cache.close()
        return watch.sample

    return case


def _queries() -> list[str]:
    rng = random.Random(11)
    shapes = [
        lambda: rng.choice(_COMMON),
        lambda: rng.choice(_VOCABULARY[1000:]),
        lambda: f"{rng.choice(_COMMON)} {rng.choice(_VOCABULARY[:200])}",
        lambda: f'"{rng.choice(_VOCABULARY[:50])} {rng.choice(_VOCABULARY[:50])}"',
        lambda: f"{rng.choice(_VOCABULARY[100:400])[:3]}*",
        lambda: f"{rng.choice(_VOCABULARY[:300])} in:!room{rng.randrange(ROOMS)}:bench.example",
        lambda: f"{rng.choice(_COMMON)} from:@user{rng.randrange(40)}:bench.example",
    ]
    return [shapes[n % len(shapes)]() for n in range(QUERIES)]


def _query_median_ms(cache: Cache) -> float:
    times = []
    for text in _queries():
        query = parse_query(text)
        start = time.perf_counter()
        cache.search_messages(
            query.words, query.phrases, room_ids=query.rooms, senders=query.senders, limit=50
        )
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """The three cases; ratios to the bare insert; the median query time of each indexed round."""
    results = run_rounds(
        {BARE: _bare_case, NO_INDEX: _ingest_case(False), INDEXED: _ingest_case(True)}, BARE, rounds
    )
    indexed, off, bare = results[INDEXED], results[NO_INDEX], results[BARE]
    extra = [i.wall - o.wall for i, o in zip(indexed.samples, off.samples, strict=True)]
    index_ratio = statistics.median(e / b.wall for e, b in zip(extra, bare.samples, strict=True))
    query_ms = statistics.median(s.parts["query_ms"] for s in indexed.samples)
    return {"results": results, "index_ratio": index_ratio, "query_ms": query_ms}


def rows(rounds: int = ROUNDS) -> list[list[str]]:
    """Table rows for ``python -m bench``."""
    report = run(rounds)
    results = report["results"]
    indexed, off, bare = results[INDEXED], results[NO_INDEX], results[BARE]
    return [
        [
            f"search: ingest {MESSAGES:,} messages, indexed",
            fmt_ms(indexed.wall_median),
            fmt_ms(bare.wall_median),
            f"{indexed.wall_ratio:.2f}",
            f"{indexed.cpu_ratio:.2f}",
            "",
            "bare FTS5 insert of the bodies",
        ],
        [
            "  same, index off",
            fmt_ms(off.wall_median),
            fmt_ms(bare.wall_median),
            f"{off.wall_ratio:.2f}",
            f"{off.cpu_ratio:.2f}",
            "",
            f"(indexing adds {report['index_ratio']:.2f}x the bare insert)",
        ],
        [
            f"search: median query over {MESSAGES:,}",
            f"{report['query_ms']:.1f} ms",
            "",
            "",
            "",
            f"< {GOAL_MS:.0f} ms",
            f"{QUERIES} queries: words, phrases, prefixes, in:, from:",
        ],
    ]


def main() -> None:
    """Print the search benchmark."""
    print(f"search: {MESSAGES:,} messages in {ROOMS} rooms, SQLCipher cache")
    print_table(
        rows(), ["benchmark", "ours", "baseline", "x (wall)", "x (cpu)", "target", "baseline is"]
    )


if __name__ == "__main__":
    main()
