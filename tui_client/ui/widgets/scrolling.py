"""Line-API widgets (``ScrollView`` + ``render_line``) whose height is set by CSS."""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.widget import Widget


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Set what ``view`` scrolls over, without laying out the whole screen.

    ``virtual_size`` is a layout reactive: setting it lays out every widget on the screen
    (5-19 ms with the chat screen), for each page of history or room-list update. A
    widget whose own size comes from CSS (``1fr``, a fixed width) does not change the
    layout by scrolling over more lines: only its scrollbars need the news (a scrollbar
    that appears or goes still lays the screen out, through its own reactive).
    """
    if size == view.virtual_size:
        return
    view.set_reactive(Widget.virtual_size, size)
    view._scroll_update(size)
    view.refresh()
