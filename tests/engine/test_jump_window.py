"""Jumping to an event (a search result) shows a window in the middle of the room's
history: it is not the live end, and messages synced meanwhile do not join it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tests.ui.fake_world import FakeHomeserver, make_profile, use_memory_keyring
from tests.ui.test_search_jump import ROOM, _history_sync
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import TimelineUpdated, Update
from tui_client.store.cache import StoredEvent


@pytest.fixture
def history_folder(tmp_path: Path) -> Iterator[Path]:
    previous = keyring.get_keyring()
    use_memory_keyring()
    make_profile(tmp_path, _history_sync())
    yield tmp_path
    keyring.set_keyring(previous)


async def test_a_jump_is_not_the_live_end_and_keeps_synced_messages_out(
    history_folder: Path,
) -> None:
    client = MatrixClient.restore(base_dir=history_folder, transport=FakeHomeserver().transport())
    assert client is not None
    await client.open()
    view = client.new_view(ROOM)
    client.views[ROOM] = view
    try:
        await view.load()
        target = next(i.event_id for i in view.model.items if i.body == "note number 399")
        assert target is not None
        middle = "$event0155histo"  # "the lighthouse keeper's log", 250 messages back
        live_end_when_published: list[bool] = []

        def watching(update: Update) -> None:
            if isinstance(update, TimelineUpdated) and update.room_id == ROOM:
                live_end_when_published.append(view.at_live_end)

        client.subscribe(watching)
        late = {
            "event_id": "$late",
            "type": "m.room.message",
            "sender": "@bob:example.org",
            "origin_server_ts": 1795799999999,
            "content": {"msgtype": "m.text", "body": "synced during the jump"},
        }
        original = view._reset_window

        async def with_a_sync_commit_in_between(stored: list[StoredEvent]) -> None:
            view.on_sync_events([StoredEvent(10**9, late)])
            await original(stored)

        view._reset_window = with_a_sync_commit_in_between  # type: ignore[method-assign]
        assert await view.jump_to(middle)
        bodies = [i.body for i in view.model.items]
        assert "the lighthouse keeper's log" in bodies
        assert "synced during the jump" not in bodies  # it belongs after note 399, not here
        assert "note number 399" not in bodies
        assert view.at_live_end is False
        assert live_end_when_published and not any(live_end_when_published)
        # Paging forward reaches the live end, the message synced meanwhile at its end.
        for _ in range(10):
            if not await view.paginate_forward():
                break
        assert view.at_live_end
        assert [i.body for i in view.model.items][-1] == "note number 399"
    finally:
        await client.close()
