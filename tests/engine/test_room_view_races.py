"""An open room's window and sync commits that interleave with loading it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import keyring
import pytest

from tests.ui.fake_world import ME, FakeHomeserver, make_profile, use_memory_keyring
from tui_client.engine.client import MatrixClient
from tui_client.store.cache import StoredEvent

GENERAL = "!general0000000000000000000000000000000000001"


@pytest.fixture
def client_folder(tmp_path: Path) -> Any:
    previous = keyring.get_keyring()
    use_memory_keyring()
    make_profile(tmp_path)
    yield tmp_path
    keyring.set_keyring(previous)


async def test_events_synced_while_the_window_loads_are_not_lost(client_folder: Path) -> None:
    client = MatrixClient.restore(base_dir=client_folder, transport=FakeHomeserver().transport())
    assert client is not None
    await client.open()
    late = {
        "event_id": "$late",
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "origin_server_ts": 1795780000000,
        "content": {"msgtype": "m.text", "body": "arrived during the load"},
    }
    view = client.new_view(GENERAL)
    client.views[GENERAL] = view
    original = view._reset_window

    async def with_a_sync_commit_in_between(stored: list[StoredEvent]) -> None:
        # The window was read from the cache; a sync batch commits before it is shown.
        view.on_sync_events([StoredEvent(stored[-1].pos + 1, late)])
        await original(stored)

    view._reset_window = with_a_sync_commit_in_between  # type: ignore[method-assign]
    try:
        await view.load()
        bodies = [item.body for item in view.model.items]
        assert bodies[-1] == "arrived during the load"
        assert bodies.count("arrived during the load") == 1
    finally:
        await client.close()


async def test_a_failed_load_does_not_hold_later_events_forever(client_folder: Path) -> None:
    client = MatrixClient.restore(base_dir=client_folder, transport=FakeHomeserver().transport())
    assert client is not None
    await client.open()
    view = client.new_view(GENERAL)

    async def broken(stored: list[StoredEvent]) -> None:
        raise RuntimeError("disk on fire")

    view._reset_window = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            await view.load()
        event = {
            "event_id": "$after",
            "type": "m.room.message",
            "sender": ME,
            "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": "after"},
        }
        view.on_sync_events([StoredEvent(10**9, event)])
        assert [item.body for item in view.model.items][-1] == "after"
    finally:
        await client.close()


async def test_members_from_a_state_block_reach_an_open_view(client_folder: Path) -> None:
    from tui_client.protocol.sync import parse_sync

    client = MatrixClient.restore(base_dir=client_folder, transport=FakeHomeserver().transport())
    assert client is not None
    await client.open()
    try:
        view = await client.open_room(GENERAL)
        assert view.display_name("@erin:example.org") == "@erin:example.org"
        member = {
            "event_id": "$erin",
            "type": "m.room.member",
            "state_key": "@erin:example.org",
            "sender": "@erin:example.org",
            "origin_server_ts": 1795780000000,
            "content": {"membership": "join", "displayname": "Erin"},
        }
        # A batch whose state block (not its timeline) brings a member: a limited sync,
        # or the first batch of a room joined a moment ago.
        batch = parse_sync(
            {"next_batch": "s9", "rooms": {"join": {GENERAL: {"state": {"events": [member]}}}}}
        )
        result = await client.db.run(client.cache.ingest_sync, batch, client.rooms)
        client._after_commit(result)
        for _ in range(100):
            if view.display_name("@erin:example.org") == "Erin":
                break
            await asyncio.sleep(0.01)
        assert view.display_name("@erin:example.org") == "Erin"
    finally:
        await client.close()
