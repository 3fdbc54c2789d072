"""Waiting on the running app, and logging in through the login screen against Synapse,
for the UI tests that drive the real app with Pilot."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Input

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.login import LoginScreen

from ..support.waiting import pilot_until


async def until(
    pilot: Pilot[None],
    predicate: Callable[[], bool],
    what: str,
    timeout: float = 30.0,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    """Wait for a condition of the running app; fail with ``what`` if it never holds."""
    await pilot_until(pilot, predicate, what, timeout, describe=on_timeout)


async def log_in(
    pilot: Pilot[None], app: TuiClientApp, user: RegisteredUser, synapse: SynapseServer
) -> ChatScreen:
    """Fill in the login screen with ``user``'s password on ``synapse``, submit it and wait
    for the chat screen, which is returned."""
    await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
    app.screen.query_one("#user-id", Input).value = user.user_id
    app.screen.query_one("#password", Input).value = user.password
    app.screen.query_one("#homeserver", Input).value = synapse.base_url
    app.screen.query_one("#password", Input).focus()
    await pilot.press("enter")
    await until(
        pilot,
        lambda: isinstance(app.screen, ChatScreen),
        "the chat screen",
        on_timeout=lambda: _login_error(app),
    )
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    return screen


def _login_error(app: TuiClientApp) -> str:
    errors = app.screen.query("#login-error")
    return str(errors.first().render()) if errors else f"still on {type(app.screen).__name__}"
