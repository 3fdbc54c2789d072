"""A callback run once after a screen's next refresh, which a modal cannot drop.

Textual's ``call_after_refresh`` hands the callback to whichever screen is on top when the
app handles the request, and a screen popped before its next refresh drops the callbacks
it holds. A modal pushed in between (the damage offer, found by the chat screen's first
reads) and answered at once ("Later") took the account's opening with it: the machine
never opened and sync never started, with nothing said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

__all__ = ["after_paint"]


def after_paint(screen: Screen[Any], callback: Callable[[], object]) -> None:
    """Run ``callback`` once after the next refresh; asked again each time ``screen``
    becomes the app's screen until it has run (so at the latest once ``screen`` shows)."""
    app = screen.app
    done = False

    def run() -> object:
        nonlocal done
        if done:
            return None
        done = True
        return callback()

    def changed(current: Screen[Any]) -> None:
        if not done and current is screen:
            app.call_after_refresh(run)

    app.screen_change_signal.subscribe(screen, changed)
    app.call_after_refresh(run)
