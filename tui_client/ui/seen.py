"""What the user has seen of a timeline, and when to say so (read receipts).

A timeline is marked read only while the terminal has focus (one that never reports
focus counts as focused), the timeline's screen is the one in front (not under a dialog),
and only up to the newest message with a line on screen. The mark waits a moment after the last change
(a message, a scroll, the focus coming back), so scrolling past does not count.
Used by the chat screen's timeline and by the thread panel alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.widget import Widget

from .widgets.timeline import TimelineView

__all__ = ["READ_DELAY", "SeenTracker"]

#: Seconds a message is on screen (with focus) before it counts as read.
READ_DELAY = 1.0


class SeenTracker:
    """Schedules the read mark of one timeline, owned by a widget (or screen) that shows it."""

    def __init__(
        self,
        owner: Widget,
        timeline: Callable[[], TimelineView],
        *,
        delay: float = READ_DELAY,
    ) -> None:
        self._owner = owner
        self._timeline = timeline
        self._delay = delay
        self._task: asyncio.TimerHandle | None = None

    def watch_focus(self, refocused: Callable[[], None]) -> None:
        """Call ``refocused`` (which schedules again) when the terminal's focus comes back;
        forget a pending mark when it goes. Call from the owner's ``on_mount``."""

        def changed(focused: bool) -> None:
            if focused:
                refocused()
            else:
                self.cancel()

        self._owner.watch(self._owner.app, "app_focus", changed, init=False)

    def schedule(self, send: Callable[[str], None]) -> None:
        """After the delay, call ``send`` with the newest event the user can see, if they are
        looking (see the module); a later call replaces a pending one."""
        self.cancel()
        self._task = asyncio.get_running_loop().call_later(self._delay, self._fire, send)

    def cancel(self) -> None:
        """Forget a pending mark."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def seen_event_id(self) -> str | None:
        """The newest event the user sees now, or None if they are not looking."""
        owner = self._owner
        if not owner.is_attached or not owner.app.is_running or not owner.app.app_focus:
            return None
        if owner.app.screen is not owner.screen or not owner.display:
            return None  # another screen, a dialog too, is in front
        return self._timeline().last_visible_event_id()

    def _fire(self, send: Callable[[str], None]) -> None:
        self._task = None
        event_id = self.seen_event_id()
        if event_id is not None:
            send(event_id)
