"""The vim mode in the timeline and the lists: ``j``/``k``, ``gg``/``G``, ``Ctrl+D``/``Ctrl+U``,
``:`` for the command line.

The chat screen hands every key that reaches it (the focused widget did not take it) to
:func:`list_key`; with the vim mode on, a vim key on a timeline, the room list or the
member list moves it through the widget's own actions. Keys bound by the user win: a key
the config gives to a timeline or room list action is left to that binding.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from textual import events
from textual.widget import Widget
from textual.widgets import OptionList

from .keymap import KeySettings, split_keys
from .widgets.room_list import RoomList
from .widgets.timeline import TimelineView

#: vim key -> a name for the move it makes.
VIM_KEYS = {"j": "down", "k": "up", "G": "last", "ctrl+d": "page_down", "ctrl+u": "page_up"}
#: The lists where a first ``g`` was typed (``gg`` goes to the top).
_PENDING_G: weakref.WeakSet[Widget] = weakref.WeakSet()


def _moves(widget: Widget) -> dict[str, Callable[[], object]] | None:
    if isinstance(widget, TimelineView):
        return {
            "down": widget.action_select_next,
            "up": widget.action_select_previous,
            "first": widget.action_scroll_home,
            "last": widget.action_jump_to_latest,
            "page_down": widget.action_page_down,
            "page_up": widget.action_page_up,
        }
    if isinstance(widget, RoomList):
        return {
            "down": lambda: widget.action_cursor(1),
            "up": lambda: widget.action_cursor(-1),
            "first": widget.action_first,
            "last": widget.action_last,
            "page_down": lambda: widget.action_cursor(10),
            "page_up": lambda: widget.action_cursor(-10),
        }
    if isinstance(widget, OptionList):
        return {
            "down": widget.action_cursor_down,
            "up": widget.action_cursor_up,
            "first": widget.action_first,
            "last": widget.action_last,
            "page_down": widget.action_page_down,
            "page_up": widget.action_page_up,
        }
    return None


def _rebound(settings: KeySettings, widget: Widget, key: str) -> bool:
    """The user bound ``key`` to one of this widget's actions."""
    context = (
        "timeline"
        if isinstance(widget, TimelineView)
        else "room_list"
        if isinstance(widget, RoomList)
        else ""
    )
    return any(
        action_id.startswith(context + ".") and key in split_keys(keys)
        for action_id, keys in settings.keymap.items()
        if context
    )


def list_key(widget: Widget | None, event: events.Key) -> bool:
    """Handle a vim key on the focused widget; True (and the key stopped) if it was one."""
    settings = getattr(widget.app, "key_settings", None) if widget is not None else None
    if widget is None or not isinstance(settings, KeySettings) or not settings.vim:
        return False
    moves = _moves(widget)
    if moves is None:
        return False
    key = event.key
    token = event.character if event.is_printable and event.character else key
    if _rebound(settings, widget, key):
        return False
    pending = widget in _PENDING_G
    _PENDING_G.discard(widget)
    if token == "g":
        if pending:
            moves["first"]()
        else:
            _PENDING_G.add(widget)
    elif token == ":":
        from .screens.command_line import open_command_line

        open_command_line(widget)
    elif token in VIM_KEYS:
        moves[VIM_KEYS[token]]()
    else:
        return False
    event.stop()
    event.prevent_default()
    return True
