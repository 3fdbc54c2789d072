"""A callback asked for after the next refresh is not lost to a modal that came and went.

Textual's ``call_after_refresh`` gives the callback to the screen on top when the app
handles the request; a modal pushed just before and answered before its first refresh
takes it with it: it never runs. The app opened the account (machine, sync) that way:
with the damage offer (pushed by the chat screen's first reads) answered "Later" at once,
the account never opened its machine nor synced, nothing said
(tests/resilience/test_damage_while_opening.py's 'Later' test: 1-3 times in 3 when the
file ran, as the collector's passes moved the timing).

The screens' refresh period is stretched here (to 2 s) so that "before its first
refresh" is not a race.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import textual.screen
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from tui_client.ui.after_paint import after_paint
from tui_client.ui.screens.dialogs import ConfirmDialog

from ..support.waiting import pilot_until


class Chat(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Static("rooms")


class Opening(App[None]):
    def on_mount(self) -> None:
        self.push_screen(Chat())


@pytest.fixture
def slow_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textual.screen, "UPDATE_PERIOD", 2.0)


async def _answered_before_its_refresh(
    app: Opening, pilot: Pilot[None], ask: Callable[[], None]
) -> None:
    """``ask`` is called with the damage offer just pushed, answered "Later" (Escape)
    before its first refresh."""
    offer = ConfirmDialog("Rebuild the cache now?", "Rebuild now")
    app.push_screen(offer)
    ask()
    await pilot.press("escape")


async def _chat(app: Opening, pilot: Pilot[None]) -> Chat:
    await pilot_until(pilot, lambda: isinstance(app.screen, Chat), "the chat screen")
    chat = app.screen
    assert isinstance(chat, Chat)
    return chat


@pytest.mark.usefixtures("slow_refresh")
async def test_a_modal_answered_before_its_refresh_does_not_drop_it() -> None:
    app = Opening()
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await _chat(app, pilot)
        ran: list[str] = []
        await _answered_before_its_refresh(
            app, pilot, lambda: after_paint(chat, lambda: ran.append("opened"))
        )
        await pilot_until(pilot, lambda: ran == ["opened"], lambda: f"the callback; ran={ran}")
        # Once only, however often the chat screen comes back.
        await _answered_before_its_refresh(app, pilot, lambda: None)
        await pilot.pause()
        assert ran == ["opened"]


@pytest.mark.usefixtures("slow_refresh")
async def test_textual_alone_drops_it() -> None:
    app = Opening()
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat(app, pilot)
        ran: list[str] = []
        await _answered_before_its_refresh(
            app, pilot, lambda: app.call_after_refresh(lambda: ran.append("opened"))
        )
        await pilot.pause(2.5)  # past the (stretched) refresh
        assert ran == []
