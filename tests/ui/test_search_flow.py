"""The search screen with Pilot against a real Synapse: Ctrl+F, a query, results grouped
by room with the words highlighted, n/N, Enter opening the room at the result (loaded
from the server when it is older than the cache), ``/`` in a room, bad filters said."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.widgets import Input, OptionList, Static

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.search import SearchScreen
from tui_client.ui.widgets.timeline import TimelineView

from .synapse_login import log_in
from .test_flow import _join, _room, until


def _say(synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, txn: str) -> str:
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/send/m.room.message/{txn}"
    )
    status, answer = synapse.request_json(
        "PUT", path, {"msgtype": "m.text", "body": body}, user.access_token
    )
    assert status == 200, answer
    return str(answer["event_id"])


def _prompts(options: OptionList) -> list[tuple[str, bool]]:
    found = []
    for index in range(options.option_count):
        option = options.get_option_at_index(index)
        prompt = option.prompt
        found.append((prompt.plain if isinstance(prompt, Text) else str(prompt), option.disabled))
    return found


def _status(screen: SearchScreen) -> str:
    return str(screen.query_one("#search-status", Static).render())


async def test_search_screen_groups_highlights_and_opens_the_room_at_the_result(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    garden = _room(synapse, bob, "Garden", [alice.user_id])
    kitchen = _room(synapse, bob, "Kitchen", [alice.user_id])
    for room in (garden, kitchen):
        _join(synapse, alice, room)
    old = _say(synapse, bob, garden, "the first Tomato of the year", "g0")
    for n in range(130):
        weeding = _say(synapse, bob, garden, f"weeding, day {n}", f"g{n + 1}")
    # Read up to there (so the client need not fetch history to count what is unread),
    # and more than an opened room fills its screen with (100 events): the first message
    # is only on the server.
    status, body = synapse.request_json(
        "POST",
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(garden)}/receipt/m.read/{urllib.parse.quote(weeding)}",
        {},
        alice.access_token,
    )
    assert status == 200, body
    _say(synapse, bob, garden, "tomatoes everywhere, tomato soup tonight", "g-new")
    _say(synapse, bob, kitchen, "tomato sauce is ready", "k0")

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        chat = await log_in(pilot, app, alice, synapse)
        await until(
            pilot,
            lambda: {garden, kitchen} <= set(app.client.rooms) if app.client else False,
            "both rooms",
        )
        await until(
            pilot, lambda: chat.current_room is not None and chat.view is not None, "a room open"
        )
        await pilot.pause(0.3)

        # A filter that is not understood is said on screen.
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        search = app.screen
        assert isinstance(search, SearchScreen)
        await pilot.press(*"tomato from:bob", "enter")
        await until(
            pilot,
            lambda: "from: needs a user ID" in _status(search),
            "the problem said",
            on_timeout=lambda: _status(search),
        )
        search.query_one("#search-input", Input).value = ""
        search.query_one("#search-input", Input).focus()
        await pilot.press(*"tomato", "enter")
        results = search.query_one("#search-results", OptionList)
        await until(
            pilot,
            lambda: results.option_count >= 5,
            "results",
            on_timeout=lambda: repr(_prompts(results)),
        )
        prompts = _prompts(results)
        # Grouped by room (newest room first), headings disabled, newest first in a room.
        assert [p for p, disabled in prompts if disabled] == ["Kitchen", "Garden"]
        assert prompts[0] == ("Kitchen", True)
        assert "tomato sauce is ready" in prompts[1][0]
        assert prompts[2] == ("Garden", True)
        assert "tomatoes everywhere" in prompts[3][0]
        assert "the first Tomato of the year" in prompts[4][0] and "(server)" in prompts[4][0]
        assert "2 rooms" in _status(search)
        # The matched words are highlighted (styles, not markup).
        line = results.get_option_at_index(3).prompt
        assert isinstance(line, Text)
        marked = [line.plain[s.start : s.end] for s in line.spans if "reverse" in str(s.style)]
        assert marked == ["tomato"]
        old_line = results.get_option_at_index(4).prompt
        assert isinstance(old_line, Text)
        assert [
            old_line.plain[s.start : s.end] for s in old_line.spans if "reverse" in str(s.style)
        ] == ["Tomato"]

        # n / N step through results, over the room headings.
        assert results.has_focus and results.highlighted == 1
        await pilot.press("n")
        assert results.highlighted == 3
        await pilot.press("n")
        assert results.highlighted == 4
        await pilot.press("n")
        assert results.highlighted == 4
        await pilot.press("N", "N")
        assert results.highlighted == 1
        await pilot.press("n", "n", "enter")

        # Enter: the room opens at the (old, not cached) message, selected.
        await until(pilot, lambda: app.screen is chat, "back to the chat")
        timeline = chat.query_one(TimelineView)
        await until(
            pilot,
            lambda: (
                chat.current_room == garden
                and timeline.selected_item is not None
                and timeline.selected_item.event_id == old
            ),
            "the old message selected in Garden",
            on_timeout=lambda: f"{chat.current_room} {[i.body for i in timeline.items][:3]}",
        )
        assert any(i.body.startswith("weeding, day 0") for i in timeline.items)  # loaded around it
        # n in the timeline: past the last result, said so; N: the previous one.
        timeline.focus()
        await pilot.press("n")
        await pilot.press("N")
        await until(
            pilot,
            lambda: (
                timeline.selected_item is not None
                and timeline.selected_item.body.startswith("tomatoes everywhere")
            ),
            "the previous result selected",
        )

        # '/' in the timeline searches this room only.
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the room's search")
        room_search = app.screen
        assert isinstance(room_search, SearchScreen) and room_search.room_id == garden
        await pilot.press(*"sauce", "enter")  # the query box has the focus on opening
        await until(
            pilot,
            lambda: "No results." in _status(room_search),
            "nothing in Garden",
            on_timeout=lambda: _status(room_search),
        )
        await pilot.press("ctrl+r")  # every room
        await until(
            pilot,
            lambda: "1 result in 1 room" in _status(room_search),
            "found in Kitchen",
            on_timeout=lambda: _status(room_search),
        )
        # F5: the room's older history fetched and indexed, with progress on screen.
        await pilot.press("ctrl+r")  # back to Garden
        await until(pilot, lambda: room_search.room_id == garden, "Garden again")
        await pilot.press("f5")
        await until(
            pilot,
            lambda: "done" in _status(room_search),
            "indexing done",
            on_timeout=lambda: _status(room_search),
        )
        assert "Garden:" in _status(room_search) and "messages indexed" in _status(room_search)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is chat, "closed")

        # Ctrl+F searches every room; Ctrl+R there narrows to the open room.
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen again")
        everywhere = app.screen
        assert (
            isinstance(everywhere, SearchScreen)
            and everywhere.room_id is None
            and everywhere.home_room == garden
        )
