"""The search screen on the fake world: each result shown between the messages before and
after it, and after Enter the timeline stays at the chosen message (it does not page on by
itself to the newest ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from textual.widgets import Input, OptionList, Static

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.search import SearchScreen
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import Clock, FakeHomeserver, build_sync, make_profile
from .test_snapshots import wait_for

ROOM = "!history00000000000000000000000000000000000013"
ME = "@alice:example.org"


def _history_sync() -> dict[str, Any]:
    clock = Clock()
    clock.ts = 1795790000000  # the newest room, opened first
    state = [
        clock.event(ROOM, ME, "m.room.create", {"room_version": "12"}, state_key=""),
        clock.event(ROOM, ME, "m.room.name", {"name": "History"}, state_key=""),
        clock.event(ROOM, ME, "m.room.member", {"membership": "join"}, state_key=ME),
        clock.event(
            ROOM,
            "@bob:example.org",
            "m.room.member",
            {"membership": "join", "displayname": "Bob"},
            state_key="@bob:example.org",
        ),
    ]
    timeline = []
    for n in range(400):
        body = "the lighthouse keeper's log" if n == 150 else f"note number {n}"
        timeline.append(
            clock.event(
                ROOM, "@bob:example.org", "m.room.message", {"msgtype": "m.text", "body": body}
            )
        )
    return build_sync(
        {ROOM: {"state": {"events": state}, "timeline": {"events": timeline, "limited": False}}}
    )


def _viewport_events(timeline: TimelineView) -> list[str]:
    top = round(timeline.scroll_y)
    height = timeline.scrollable_content_region.height
    found = []
    for line in range(top, top + height):
        index = timeline.item_at_line(line)
        if index is not None:
            event_id = timeline.items[index].event_id
            if event_id and event_id not in found:
                found.append(event_id)
    return found


async def test_after_enter_the_timeline_stays_at_the_result(
    tmp_path: Path, memory_keyring: None
) -> None:
    make_profile(tmp_path, _history_sync())
    server = FakeHomeserver()
    app = TuiClientApp(base_dir=tmp_path, transport=server.transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None
        app.open_room(ROOM)
        timeline = chat.query_one(TimelineView)
        await wait_for(
            pilot, lambda: chat.current_room == ROOM and bool(timeline.items), "the room"
        )
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        await pilot.press(*"lighthouse", "enter")
        search = app.screen
        assert isinstance(search, SearchScreen)
        results = search.query_one("#search-results", OptionList)
        await wait_for(pilot, lambda: results.option_count >= 2, "the result")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: (
                app.screen is chat
                and timeline.selected_item is not None
                and timeline.selected_item.body == "the lighthouse keeper's log"
            ),
            "the result selected",
        )
        target = timeline.selected_item
        assert target is not None and target.event_id is not None
        # Time for any paging the timeline might do by itself.
        for _ in range(10):
            await pilot.pause(0.1)
        await wait_for(pilot, lambda: True, "idle")
        shown = _viewport_events(timeline)
        assert target.event_id in shown, [i.body for i in timeline.items if i.event_id in shown]
        assert (
            timeline.selected_item is not None
            and timeline.selected_item.event_id == target.event_id
        )
        assert not any(i.body == "note number 399" for i in timeline.items), (
            "paged on to the newest"
        )


def _context_text(search: SearchScreen) -> str:
    return str(search.query_one("#search-context", Static).render())


class SearchingServer(FakeHomeserver):
    """/search finds two old messages the cache does not hold; /context answers for one
    and fails for the other."""

    def __init__(self) -> None:
        super().__init__()
        self.context_asked: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/search"):
            results = [
                {"rank": 1.0, "result": _old("$old-ok", "an old harbour story", 2)},
                {"rank": 0.5, "result": _old("$old-broken", "another harbour tale", 1)},
            ]
            return httpx.Response(
                200, json={"search_categories": {"room_events": {"results": results, "count": 2}}}
            )
        if "/context/" in path:
            self.context_asked.append(path)
            if "old-broken" in path:
                return httpx.Response(
                    500, json={"errcode": "M_UNKNOWN", "error": "context is down"}
                )
            return httpx.Response(
                200,
                json={
                    "event": _old("$old-ok", "an old harbour story", 2),
                    "events_before": [_old("$old-before", "the boats came in", 1)],
                    "events_after": [_old("$old-after", "and left at dawn", 3)],
                },
            )
        return await super().handle(request)


def _old(event_id: str, body: str, minute: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": ROOM,
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "origin_server_ts": 1700000000000 + minute * 60_000,
        "content": {"msgtype": "m.text", "body": body},
    }


async def test_each_result_is_shown_in_its_context(tmp_path: Path, memory_keyring: None) -> None:
    make_profile(tmp_path, _history_sync())
    server = SearchingServer()
    app = TuiClientApp(base_dir=tmp_path, transport=server.transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        search = app.screen
        assert isinstance(search, SearchScreen)
        # A local result: the messages before and after it, from the cache.
        await pilot.press(*"lighthouse", "enter")
        await wait_for(pilot, lambda: "note number 151" in _context_text(search), "its context")
        lines = _context_text(search).splitlines()
        assert "note number 149" in lines[0]
        assert "the lighthouse keeper's log" in lines[1]
        assert "note number 151" in lines[2]
        assert not server.context_asked
        # Server results not in the cache: /context; a failure is said in the pane.
        search.query_one("#search-input", Input).value = ""
        search.query_one("#search-input", Input).focus()
        await pilot.press(*"harbour", "enter")
        await wait_for(pilot, lambda: "and left at dawn" in _context_text(search), "/context")
        lines = _context_text(search).splitlines()
        assert "the boats came in" in lines[0] and "an old harbour story" in lines[1]
        await pilot.press("n")
        await wait_for(
            pilot,
            lambda: "could not be loaded" in _context_text(search),
            "the failure said",
        )
        assert "context is down" in _context_text(search)
        # Back to the first: its context is kept, not asked again.
        asked = len(server.context_asked)
        await pilot.press("N")
        await wait_for(pilot, lambda: "and left at dawn" in _context_text(search), "kept")
        assert len(server.context_asked) == asked
