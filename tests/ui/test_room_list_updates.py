"""The room list follows the engine at the cost of what changed (issue 13): the updates
published in one go reach the screen as one batch, the room list is refreshed once for
them, a superseded room list update loses none of the rooms it named, and a room that
changed is moved alone, as a full layout would place it. At 80x24."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.dom import DOMNode
from textual.screen import Screen

from tui_client.engine import gc_policy
from tui_client.engine.updates import (
    BatchCommitted,
    RoomListChanged,
    ThreadUnreadChanged,
    ThreadUpdated,
    TypingChanged,
)
from tui_client.protocol.room_state import RoomSummary
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens import chat_updates
from tui_client.ui.widgets import room_list as room_list_module
from tui_client.ui.widgets.room_header import RoomHeader
from tui_client.ui.widgets.room_list import RoomList

from .fake_world import FakeHomeserver
from .test_login_errors import screen_text
from .test_snapshots import GENERAL, _open_thread, _settle, wait_for

RANDOM = "!random00000000000000000000000000000000000004"
SIZE = (80, 24)


async def test_updates_published_together_refresh_the_room_list_once(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, None)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        chat, client = app.chat_screen, app.client
        assert chat is not None and client is not None
        room_list = chat.query_one(RoomList)
        shown: list[str] = []
        for method in ("show_rooms", "update_rooms"):
            real = getattr(room_list, method)

            def counted(*args: Any, _real: Any = real, _name: str = method, **kwargs: Any) -> Any:
                shown.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(room_list, method, counted)

        lookups: list[object] = []
        account_of = app.accounts.of

        def counted_lookup(client: object) -> Any:
            lookups.append(client)
            return account_of(client)

        monkeypatch.setattr(app.accounts, "of", counted_lookup)

        def rename(room_id: str, name: str) -> None:
            summary = client.rooms[room_id].copy()
            summary.name = summary.display_name = name
            client.rooms[room_id] = summary
            client.publish(RoomListChanged(tuple(client.rooms.values()), frozenset({room_id})))

        # As a sync batch publishes: room lists and typing of many rooms, interleaved.
        rename(GENERAL, "General renamed")
        for n in range(40):
            client.publish(TypingChanged(GENERAL, (f"@user{n}:example.org",)))
            rename(RANDOM, f"Random {n}")
        await pilot.pause(0.2)

        assert len(shown) == 1  # once for the 41 room lists (was once each)
        assert len(lookups) == 1  # the batch's account, looked up once (was once an update)
        screen = screen_text(app)
        assert "Random 39" in screen and "Random 38" not in screen
        # The room on screen was renamed by the first update only: its header follows.
        header = chat.query_one(RoomHeader)
        assert header.room is not None and header.room.display_name == "General renamed"
        assert "General renamed" in screen
        assert "user39" in screen  # the last typist of the room on screen


async def test_a_new_message_moves_one_row_and_builds_no_other(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, None)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        chat, client = app.chat_screen, app.client
        assert chat is not None and client is not None
        room_list = chat.query_one(RoomList)
        rooms = [r for r in room_list.room_ids if client.rooms[r].membership == "join"]
        last = rooms[-1]  # the least recent room of the bottom group
        assert len(room_list.room_ids) >= 4 and last != GENERAL

        built: list[str] = []

        class Counted(room_list_module._Row):
            __slots__ = ()

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                built.append(self.title)

        monkeypatch.setattr(room_list_module, "_Row", Counted)
        summary = client.rooms[last].copy()
        summary.last_ts = max(r.last_ts for r in client.rooms.values()) + 1000
        client.rooms[last] = summary
        client.publish(RoomListChanged(tuple(client.rooms.values()), frozenset({last})))
        await pilot.pause(0.2)

        assert built == [summary.display_name]  # one row (the whole list was rebuilt)
        group = room_list_module.group_of(summary)
        in_group = [
            r for r in room_list.room_ids if room_list_module.group_of(client.rooms[r]) == group
        ]
        assert in_group[0] == last  # now first of its group
        assert chat.current_room == GENERAL
        assert room_list._rows[room_list.highlighted or 0].room_id == GENERAL
        # What the screen shows is what a full layout of the same rooms shows.
        screen = screen_text(app)
        moved = room_list.room_ids
        room_list.show_rooms(chat.filtered_rooms(), chat.current_room)
        assert room_list.room_ids == moved
        await pilot.pause(0.1)
        assert screen_text(app) == screen


def _summary(n: int, rng: random.Random) -> RoomSummary:
    room = RoomSummary(room_id=f"!r{n:03d}:x")
    room.name = room.display_name = f"Room {rng.randint(0, 40)}"
    room.last_ts = rng.randint(0, 50) * 1000
    room.is_dm = rng.random() < 0.3
    room.tags = ["m.favourite"] if rng.random() < 0.1 else []
    room.membership = "invite" if rng.random() < 0.05 else "join"
    room.notification_count = rng.randint(0, 2)
    return room


class _ListApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RoomList()


@pytest.mark.parametrize("seed", range(6))
async def test_moving_rooms_one_by_one_gives_the_full_layout(seed: int) -> None:
    rng = random.Random(seed)
    rooms = {r.room_id: r for r in (_summary(n, rng) for n in range(120))}
    async with _ListApp().run_test(size=SIZE) as pilot:
        room_list = pilot.app.query_one(RoomList)
        room_list.show_rooms(rooms.values(), current="!r007:x")
        for _ in range(40):
            changed: dict[str, RoomSummary | None] = {}
            for room_id in rng.sample(sorted(rooms), rng.randint(1, 5)):
                if rng.random() < 0.1:
                    rooms.pop(room_id)
                    changed[room_id] = None
                    continue
                room = rooms[room_id].copy()
                room.last_ts = rng.randint(0, 60) * 1000
                room.is_dm = rng.random() < 0.3 if rng.random() < 0.2 else room.is_dm
                room.display_name = room.display_name if rng.random() < 0.8 else "Renamed"
                rooms[room_id] = changed[room_id] = room
            if not room_list.update_rooms(changed):  # a heading would come or go
                room_list.show_rooms(rooms.values())
            moved = [(row.title, row.room) for row in room_list._rows]
            room_list.show_rooms(list(rooms.values())[::-1])
            assert moved == [(row.title, row.room) for row in room_list._rows]
        await pilot.pause()


async def test_thread_updates_reach_the_open_panel_without_searching_the_screens(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        panel = await _open_thread(pilot, app)
        client = app.client
        assert client is not None
        searched: list[object] = []
        query = DOMNode.query

        def counted(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
            searched.append(self)
            return query(self, *args, **kwargs)

        monkeypatch.setattr(DOMNode, "query", counted)
        # A first sync: a ThreadUnreadChanged for every room with unread threads.
        for n in range(50):
            client.publish(ThreadUnreadChanged(f"!room{n}:example.org", ()))
        version = panel._version + 7
        client.publish(ThreadUpdated(panel.room_id, panel.root_id, (), version))
        await pilot.pause(0.2)
        monkeypatch.undo()
        assert panel._version == version  # the panel took its update
        assert not [node for node in searched if isinstance(node, Screen)]
        assert "Thread" in screen_text(app)


async def test_a_first_sync_and_the_first_room_freeze_without_a_full_collection(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first sync's rooms are alive and stay: the first room opened after them froze them
    # after a full collection over all of them (10-50 ms on 1,000 rooms, a frame's worth),
    # and until then every full collection held for idleness walked them; only a room
    # switch leaves garbage (the previous room's lines) worth sweeping.
    sweeps: list[bool] = []
    compacted: list[bool] = []
    settle = gc_policy.settle

    def recorded(*, compact: bool = True, sweep: bool = False, loaded: bool = False) -> bool:
        sweeps.append(sweep)
        compacted.append(settle(compact=compact, sweep=sweep, loaded=loaded))
        return compacted[-1]

    monkeypatch.setattr(gc_policy, "settle", recorded)
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, None)
        chat = app.chat_screen
        assert chat is not None and chat.current_room is not None
        # The app's settle after its first paint, the first room's: neither sweeps.
        assert sweeps and not any(sweeps)
        sweeps.clear()
        compacted.clear()
        # What a first sync brings is live data: its settle does not compact (a full
        # collection of the heap, 60-100 ms in bench.sync_frames), however much it grew.
        monkeypatch.setattr(gc_policy, "COMPACT_STEP", 0)
        chat.handle_update(BatchCommitted({}, first=True))
        await wait_for(pilot, lambda: bool(sweeps), "the settle after the first batch")
        assert sweeps == [False]  # the first batch's rooms frozen once drawn, no sweep
        assert compacted == [False]
        sweeps.clear()
        other = GENERAL if chat.current_room != GENERAL else RANDOM
        app.open_room(other)
        await _settle(pilot, other)
        assert "▌" in screen_text(app)
    assert sweeps.count(True) == 1  # the switch swept the first room's lines


async def test_the_first_room_is_the_room_lists_first_without_sorting_again(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, None)
        chat, client = app.chat_screen, app.client
        assert chat is not None and client is not None
        room_list = chat.query_one(RoomList)
        first_joined = next(r for r in room_list.room_ids if client.rooms[r].membership == "join")

        def no_sort(rooms: Any) -> Any:
            raise AssertionError("the rooms were sorted again")

        monkeypatch.setattr(chat_updates, "ordered", no_sort)
        monkeypatch.setattr(client, "last_room", None)
        chat.current_room = None
        chat._open_initial_room()
        await _settle(pilot, first_joined)
        assert chat.current_room == first_joined
        assert "▌" in screen_text(app)
