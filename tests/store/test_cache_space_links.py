"""The cache hands the space graph every room's current space links in one query."""

from __future__ import annotations

from pathlib import Path

from .cache_batches import Account, batch, joined_room, state

SPACE = "!space:example.org"
ROOM = "!room:example.org"


def test_current_space_links_of_every_room(tmp_path: Path) -> None:
    account = Account(tmp_path / "cache.sqlite3")
    first = state("$c1", "m.space.child", ROOM, {"via": ["example.org"], "order": "1"})
    account.ingest(
        batch(
            "s1",
            join={
                SPACE: joined_room(
                    [first], state_events=[state("$name", "m.room.name", "", {"name": "Space"})]
                ),
                ROOM: joined_room(
                    [],
                    state_events=[state("$p1", "m.space.parent", SPACE, {"via": ["example.org"]})],
                ),
            },
        )
    )
    # A later child event replaces the first (current state only); other types are left out.
    account.ingest(
        batch(
            "s2",
            join={
                SPACE: joined_room(
                    [state("$c2", "m.space.child", ROOM, {"via": ["example.org"], "order": "2"})]
                )
            },
        )
    )
    links = account.cache.load_state_of_types(["m.space.child", "m.space.parent"])
    assert sorted((room, e["event_id"], e["content"].get("order")) for room, e in links) == [
        (ROOM, "$p1", None),
        (SPACE, "$c2", "2"),
    ]
    assert account.cache.load_state_of_types([]) == []
    account.close()
