"""Back-filling history from the real Synapse: a long room from scratch, and the gap a
limited sync leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.room_view import MAX_ITEMS, RoomView
from tui_client.engine.sync import SyncV2Source
from tui_client.engine.updates import TimelineUpdated

from ..engine.support import (
    ClientPool,
    apply_diffs,
    bodies,
    create_room,
    join,
    login,
    seed_messages,
    send_text,
    server_messages,
    wait_until,
)
from .long_room import LONG_ROOM_SIZE, LongRoom

HISTORY = LONG_ROOM_SIZE


class WindowWatcher:
    """Follows an open room: mirrors its diffs and checks every window against the truth."""

    def __init__(self, client: MatrixClient, view: RoomView, truth: list[str]) -> None:
        self.view = view
        self.truth = truth
        self.index = {event_id: n for n, event_id in enumerate(truth)}
        self.mirror = list(view.model.items)
        self.seen: set[str] = set()
        client.subscribe(self._on_update)

    def _on_update(self, update: object) -> None:
        if isinstance(update, TimelineUpdated) and update.room_id == self.view.room_id:
            apply_diffs(self.mirror, update.diffs)

    def check(self) -> list[str]:
        """The window's messages: a contiguous run of the server's order, no duplicates."""
        assert [i.key for i in self.mirror] == [i.key for i in self.view.model.items]
        keys = [i.key for i in self.view.model.items]
        assert len(keys) == len(set(keys))
        window = [i.event_id for i in self.view.model.items if i.event_id in self.index]
        if window:
            start = self.index[window[0]]
            assert window == self.truth[start : start + len(window)], (
                "the window is out of order or has holes"
            )
        self.seen.update(window)
        return window


async def _cached_message_ids(client: MatrixClient, room_id: str) -> list[str]:
    rows = await client.db.run(
        client.cache.execute_readonly,
        "SELECT event_id FROM events WHERE room_id = ? AND type = 'm.room.message' AND pos IS NOT NULL ORDER BY pos",
        (room_id,),
    )
    return [r[0] for r in rows]


async def test_backfill_of_a_long_room(
    synapse: SynapseServer, long_room: LongRoom, tmp_path: Path, pool: ClientPool
) -> None:
    await asyncio.to_thread(long_room.wait)
    author, room_id = long_room.author, long_room.room_id
    # Sent in parallel: the server's order is the truth to compare with.
    truth_events = server_messages(synapse, author.access_token, room_id)
    assert sorted(bodies(truth_events)) == long_room.texts
    assert len(truth_events) == HISTORY
    truth = [e["event_id"] for e in truth_events]

    # A fresh device with an empty cache: sync brings only the newest events.
    client = pool.add(await login(synapse, author, tmp_path / "fresh"))
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    cached = await _cached_message_ids(client, room_id)
    assert 0 < len(cached) <= 50 and cached == truth[-len(cached) :]
    assert await client.db.run(client.cache.gaps, room_id)

    view = await client.open_room(room_id)
    watcher = WindowWatcher(client, view, truth)
    assert watcher.check() == truth[-len(cached) :]
    pages = 0
    while not view.reached_start:
        added = await view.paginate_back()
        pages += 1
        assert pages < 60, "paging never reached the start of the room"
        window = watcher.check()
        assert len(view.model) <= MAX_ITEMS
        if added:
            assert window[0] != truth[-1]
    assert watcher.seen == set(truth)
    # The window ends at the very first message, with the room's creation above it.
    assert watcher.check()[0] == truth[0]
    assert view.model.items[0].event_type == "m.room.create"
    # The cache holds the whole room, in the server's order, each event once, no gap left.
    assert await _cached_message_ids(client, room_id) == truth
    assert await client.db.run(client.cache.gaps, room_id) == []
    assert await view.paginate_back() == 0


async def test_gap_after_a_limited_sync_is_filled(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    author, reader = make_user("author"), make_user("reader")
    room_id = create_room(
        synapse, author, name="Gappy", invite=[reader.user_id], preset="public_chat"
    )
    join(synapse, reader, room_id)
    for n in range(5):
        send_text(synapse, author, room_id, f"early {n}", f"early-{n}")

    def small_timeline(connection: Any) -> SyncV2Source:
        return SyncV2Source(connection, timeline_limit=10)

    client = pool.add(await login(synapse, reader, tmp_path / "reader", sync_source=small_timeline))
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    before = await _cached_message_ids(client, room_id)
    await client.close()
    pool.forget(client)

    # While the client is away, more happens than one sync timeline holds.
    await seed_messages(
        synapse, author, room_id, [f"while away {n:02d}" for n in range(30)], concurrency=4
    )
    truth = [e["event_id"] for e in server_messages(synapse, reader.access_token, room_id)]
    assert truth[: len(before)] == before

    restored = MatrixClient.restore(
        base_dir=tmp_path / "reader", sync_source=small_timeline, long_poll_ms=1000
    )
    assert restored is not None
    pool.add(restored)
    await restored.open()
    old_gaps = await restored.db.run(restored.cache.gaps, room_id)
    restored.start()
    await restored.wait_synced()
    gaps = await restored.db.run(restored.cache.gaps, room_id)
    (new_gap,) = [g for g in gaps if g not in old_gaps]
    cached = await _cached_message_ids(restored, room_id)
    # The newest ten and the old ones, with history missing between them.
    assert cached == before + truth[-10:]
    assert len(truth) > len(cached)

    view = await restored.open_room(room_id)
    watcher = WindowWatcher(restored, view, truth)
    assert watcher.check() == truth[-10:]
    pages = 0
    while not view.reached_start:
        await view.paginate_back()
        pages += 1
        assert pages < 20
        watcher.check()
    assert watcher.seen == set(truth)
    assert watcher.check() == truth
    assert await _cached_message_ids(restored, room_id) == truth
    assert new_gap not in await restored.db.run(restored.cache.gaps, room_id)
    assert await restored.db.run(restored.cache.gaps, room_id) == []
