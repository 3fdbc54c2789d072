"""The search screen's snapshot (README screenshot), on the fake world: its plain cache is
encrypted on the first start, and search runs over the encrypted one."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from tui_client.engine.client import CACHE_FILE
from tui_client.engine.paths import profile_dir
from tui_client.store.encrypted_db import is_plain_sqlite
from tui_client.ui.screens.search import SearchScreen

from .conftest import save_screenshot
from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, SIZE, _app, _settle, wait_for


def test_search_screen(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """Ctrl+F: results grouped by room, words highlighted, the chosen one in its context."""
    app = _app(fake_profile, fake_server)
    cache = profile_dir("default", fake_profile) / CACHE_FILE
    assert is_plain_sqlite(cache)  # as the fake world writes it

    async def run_before(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        assert not is_plain_sqlite(cache)  # encrypted on start
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        await pilot.press(*"release", "enter")
        search = app.screen
        assert isinstance(search, SearchScreen)
        results = search.query_one("#search-results", OptionList)
        context = search.query_one("#search-context", Static)
        await wait_for(
            pilot,
            lambda: results.option_count >= 3 and "↓" in str(context.render()),
            "results in their context",
        )
        await pilot.press("n")
        await wait_for(
            pilot,
            lambda: results.highlighted == 2 and "Did the release" in str(context.render()),
            "the second",
        )
        save_screenshot("search", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
