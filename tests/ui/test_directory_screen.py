"""The directory, the space view and the space sidebar, driven with Pilot against the
deterministic fake homeserver; SVG snapshots of the directory and the space view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ConfirmDialog
from tui_client.ui.screens.directory import DirectoryScreen
from tui_client.ui.screens.room_preview import RoomPreviewScreen
from tui_client.ui.screens.space import SpaceScreen
from tui_client.ui.widgets.directory_list import DirectoryList
from tui_client.ui.widgets.room_list import RoomList
from tui_client.ui.widgets.space_bar import SpaceBar
from tui_client.ui.widgets.space_tree import SpaceTree

from .conftest import save_screenshot
from .fake_world import (
    DESIGN,
    DIRECTORY,
    GENERAL_ID,
    MEMBERS_ONLY,
    OTHER_SPACE,
    PROJECT_SPACE,
    STANDUP,
    TEAM_SPACE,
    FakeHomeserver,
)
from .test_snapshots import SIZE, _settle, wait_for

RANDOM = "!random00000000000000000000000000000000000004"
DM = "!dmwithbob000000000000000000000000000000000002"


def _app(base_dir: Path, server: FakeHomeserver) -> TuiClientApp:
    return TuiClientApp(base_dir=base_dir, transport=server.transport())


def _directory_requests(server: FakeHomeserver) -> list[tuple[str | None, dict[str, object]]]:
    return [
        (r.url.params.get("server"), json.loads(r.content or b"{}"))
        for r in server.requests
        if r.url.path.endswith("/publicRooms")
    ]


async def _open_directory(pilot: Pilot[None], count: int = len(DIRECTORY)) -> DirectoryScreen:
    app = pilot.app
    await _settle(pilot)
    await pilot.press("f3")
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.screen, DirectoryScreen)
            and app.screen.query_one(DirectoryList).option_count == count
        ),
        "the directory",
    )
    screen = app.screen
    assert isinstance(screen, DirectoryScreen)
    return screen


def test_directory_snapshot(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """F3: the directory, one topic expanded, a room already joined, hostile names shown literally."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        screen = await _open_directory(pilot)
        await pilot.press("down")  # from the search box into the list
        await pilot.press("t", "down", "down", "down", "down")
        results = screen.query_one(DirectoryList)
        await wait_for(
            pilot, lambda: results.highlighted == 4 and bool(results.expanded), "the highlight"
        )
        app.clear_notifications()
        save_screenshot("directory", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_space_view_snapshot(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """F4 on a space: its hierarchy with a subspace, suggested rooms, a restricted room and
    a child the user may not see."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        chat.query_one(SpaceBar).focus()
        await pilot.press("down", "down", "enter")
        await wait_for(pilot, lambda: chat.space_filter == PROJECT_SPACE, "the space filter")
        await pilot.press("f4")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, SpaceScreen)
                and app.screen.query_one(SpaceTree).option_count == 7
            ),
            "the space view",
        )
        app.clear_notifications()
        save_screenshot("space", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_f3_opens_with_the_search_box_focused(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """Typing right after F3 searches: ``py`` is a search, not ``p`` (preview) and ``y``."""
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(pilot)
        await pilot.press(*"py")
        search = screen.query_one("#directory-search", Input)
        assert search.value == "py"
        results = screen.query_one(DirectoryList)
        await wait_for(
            pilot,
            lambda: screen.browser is not None and screen.browser.search == "py",
            "the search",
        )
        assert app.screen is screen and not any(
            isinstance(s, RoomPreviewScreen) for s in app.screen_stack
        )
        assert "“py”" in str(screen.query_one("#directory-title").render())
        # Down goes from the search box into the results, where keys act on a room again.
        await wait_for(pilot, lambda: results.option_count > 0, "the results")
        await pilot.press("down")
        assert screen.focused is results
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomPreviewScreen), "the preview")


async def test_search_is_debounced_and_sent_to_the_server(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(pilot)
        before = len(_directory_requests(fake_server))
        await pilot.press("ctrl+f", *"rust")
        results = screen.query_one(DirectoryList)
        await wait_for(
            pilot,
            lambda: list(results.rooms) == ["!rust00000000000000000000000000000000000001b"],
            "the search result",
        )
        searches = _directory_requests(fake_server)[before:]
        # Typed as a burst: one search, for the whole word, not one per key.
        assert [body.get("filter") for _, body in searches] == [{"generic_search_term": "rust"}]
        await pilot.press("ctrl+a", "backspace", *"no such thing")
        await wait_for(pilot, lambda: results.option_count == 0, "no result")
        assert "No rooms found." in str(screen.query_one("#directory-status").render())


async def test_a_long_directory_pages_in_as_the_user_scrolls(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        await _open_directory(pilot)
        screen = app.screen
        assert isinstance(screen, DirectoryScreen)
        await pilot.press("ctrl+s", *"big.example", "enter")
        results = screen.query_one(DirectoryList)
        await wait_for(pilot, lambda: results.option_count == 50, "the first page")
        assert [server for server, _ in _directory_requests(fake_server)][-1] == "big.example"
        for _ in range(200):
            if results.option_count >= FakeHomeserver.BIG_DIRECTORY:
                break
            await pilot.press("end")
            await pilot.pause(0.02)
        await wait_for(
            pilot, lambda: results.option_count == FakeHomeserver.BIG_DIRECTORY, "every page"
        )
        assert len(set(results.rooms)) == FakeHomeserver.BIG_DIRECTORY
        assert screen.browser is not None and screen.browser.done
        assert f"{FakeHomeserver.BIG_DIRECTORY} rooms" in str(
            screen.query_one("#directory-status").render()
        )


async def test_a_down_or_slow_server_does_not_block_the_ui(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DirectoryScreen, "timeout", 1.0)
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(pilot)
        servers = screen.query_one("#directory-servers", Input)
        servers.value = "example.org, slow.example, down.example"
        await pilot.press("ctrl+s", "enter")
        results = screen.query_one(DirectoryList)
        # The down server fails at once; the working one is listed while the slow one hangs.
        await wait_for(
            pilot,
            lambda: results.option_count == len(DIRECTORY) and len(screen.errors) == 2,
            "the failures",
            timeout=10,
        )
        status = str(screen.query_one("#directory-status").render())
        assert "down.example could not be reached" in status
        assert "slow.example did not answer within 1 s" in status
        # The UI kept working meanwhile: moving through the list and back to the chat.
        await pilot.press("down", "down")
        assert results.highlighted == 2
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat_screen, "the chat")


async def test_join_and_preview_from_the_directory(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(pilot)
        results = screen.query_one(DirectoryList)
        await pilot.press("down")  # from the search box into the list
        results.highlighted = 3  # Rust
        await pilot.press("j")
        await wait_for(
            pilot,
            lambda: fake_server.joined == ["!rust00000000000000000000000000000000000001b"],
            "the join",
        )
        # Once sync brings the room, the entry says so (and the user stays in the directory).
        await wait_for(
            pilot,
            lambda: (
                results.memberships.get("!rust00000000000000000000000000000000000001b") == "join"
            ),
            "✓ joined",
        )
        assert app.screen is screen
        # Enter on a joined room opens it in the chat.
        results.highlighted = 1
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: app.screen is app.chat_screen and app.chat_screen.current_room == GENERAL_ID,
            "General",
        )
        # Enter on a room not joined shows its preview; Join there joins it.
        screen = await _open_directory(pilot)
        await pilot.press("down")
        screen.query_one(DirectoryList).highlighted = 6  # Python
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RoomPreviewScreen) and app.screen.preview is not None,
            "the preview",
        )
        await pilot.press("j")
        await wait_for(
            pilot,
            lambda: "!python00000000000000000000000000000000001e" in fake_server.joined,
            "the join from the preview",
        )
        # Joined from a preview, the room opens.
        await wait_for(
            pilot,
            lambda: (
                app.screen is app.chat_screen
                and app.chat_screen.current_room == "!python00000000000000000000000000000000001e"
            ),
            "Python opened",
        )


async def test_restricted_room_offers_to_join_its_space_first(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(pilot)
        results = screen.query_one(DirectoryList)
        await pilot.press("down")
        results.highlighted = list(results.rooms).index(MEMBERS_ONLY)
        await pilot.press("j")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the offer")
        question = str(app.screen.query_one(".dialog-title").render())
        assert (
            "Members only is open to members of Other Space only: join Other Space first."
            in question
        )
        assert "Join Other Space now, then Members only?" in question
        assert fake_server.joined == []
        await pilot.press("y")
        await wait_for(
            pilot, lambda: fake_server.joined == [OTHER_SPACE, MEMBERS_ONLY], "both joins, in order"
        )


async def test_space_view_joins_suggested_and_the_sidebar_filters(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        bar = chat.query_one(SpaceBar)
        await wait_for(pilot, lambda: bar.option_count == 5, "the spaces in the sidebar")
        assert [bar.get_option_at_index(i).id for i in range(bar.option_count)] == [
            "home",
            "people",
            "heading:spaces",
            PROJECT_SPACE,
            TEAM_SPACE,
        ]
        rooms = chat.query_one(RoomList)
        everything = set(rooms.room_ids)

        bar.focus()
        await pilot.press("down", "enter")  # People
        await wait_for(pilot, lambda: rooms.room_ids == [DM], "only the DM")
        await pilot.press(
            "down", "enter"
        )  # Project Space (the heading is skipped), subspace rooms included
        await wait_for(
            pilot, lambda: set(rooms.room_ids) == {GENERAL_ID, RANDOM}, "the space's rooms"
        )
        # Rooms of the space not joined yet are listed too, by name once the hierarchy named them.
        await wait_for(
            pilot,
            lambda: [r.title for r in rooms._rows if r.unjoined] == ["Design", "Standup"],
            "the unjoined rooms",
        )
        await pilot.press("down", "enter")  # Team Space
        await wait_for(
            pilot,
            lambda: (
                rooms.room_ids == []
                and [r.unjoined for r in rooms._rows if r.unjoined] == [STANDUP]
            ),
            "Team Space",
        )
        await pilot.press("up", "up", "up", "enter")  # Home
        await wait_for(pilot, lambda: set(rooms.room_ids) == everything, "all rooms again")

        app.show_space(PROJECT_SPACE)
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, SpaceScreen)
                and app.screen.query_one(SpaceTree).option_count == 7
            ),
            "the space view",
        )
        await pilot.press("a")
        # General is suggested too, but joined already: only Design is joined.
        await wait_for(pilot, lambda: fake_server.joined == [DESIGN], "the suggested join")
        await pilot.press("d")
        space = app.screen
        assert isinstance(space, SpaceScreen)
        await wait_for(
            pilot,
            lambda: space.max_depth == 1 and space.query_one(SpaceTree).option_count == 6,
            "depth 1",
        )
        hierarchy_requests = [r for r in fake_server.requests if r.url.path.endswith("/hierarchy")]
        assert hierarchy_requests[-1].url.params.get("max_depth") == "1"


async def test_a_room_link_in_a_message_opens_its_preview(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    from tui_client.ui.widgets.timeline import TimelineView

    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        app.open_room(GENERAL_ID)
        await _settle(pilot, GENERAL_ID)
        timeline = chat.query_one(TimelineView)
        # A message arrives with a link (pushed straight to the open view).
        client = app.client
        assert client is not None and chat.view is not None
        event = {
            "event_id": "$withlink",
            "type": "m.room.message",
            "sender": "@bob:example.org",
            "origin_server_ts": 1795779999000,
            "content": {
                "msgtype": "m.text",
                "body": "come to https://matrix.to/#/%23rust%3Aexample.org?via=example.org",
            },
        }
        from tui_client.store.cache import StoredEvent

        chat.view.on_sync_events([StoredEvent(10_000, event)])
        await wait_for(
            pilot, lambda: any(i.event_id == "$withlink" for i in timeline.items), "the message"
        )
        timeline.focus()
        timeline.selected_key = next(i.key for i in timeline.items if i.event_id == "$withlink")
        await pilot.press("o")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RoomPreviewScreen) and app.screen.preview is not None,
            "the preview",
        )
        preview = app.screen
        assert isinstance(preview, RoomPreviewScreen)
        assert preview.target == "#rust:example.org" and preview.via == ("example.org",)
        assert (
            preview.preview is not None
            and preview.preview.info is not None
            and preview.preview.info.name == "Rust"
        )
