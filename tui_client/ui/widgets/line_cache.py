"""The timeline's rendered lines: one entry per message and width, and rendering ahead.

A page of history or a first sync brings dozens of messages at once; rendered in the
handler that applies them, 50 formatted messages took 15-17 ms of CPU in one frame.
The timeline queues such a batch, renders its new messages in slices between frames
(:data:`RENDER_AHEAD_MIN`, :data:`RENDER_SLICE_SECONDS`), and applies it when its
lines are ready. Lines rendered ahead go into the cache only if nothing forgot their
message meanwhile (an edit, a receipt, a selection, a new palette): :class:`LineCache`
counts its invalidations so the timeline can tell.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message
from textual.strip import Strip

from ...protocol.timeline import Diff, TimelineItem

#: A batch of diffs that brings more messages than this to render is rendered ahead;
#: fewer (a new message, an edit) are applied at once.
RENDER_AHEAD_MIN = 4
#: CPU time the render-ahead worker takes before it lets the event loop run (a frame).
RENDER_SLICE_SECONDS = 0.003

#: (width, selected, the lines): lines are only good for the width and selection they
#: were drawn at.
Entry = tuple[int, bool, list[Strip]]


class LineCache:
    """Rendered lines by item key, with a record of what was forgotten while batches
    are rendered ahead (:meth:`track`)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._tick = 0
        self._tracking = False
        self._forgotten: dict[str, int] = {}
        self._forgot_all_at = 0

    def get(self, key: str, width: int, selected: bool) -> list[Strip] | None:
        """The lines of ``key`` if they were drawn at this width and selection."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != width or entry[1] != selected:
            return None
        return entry[2]

    def has(self, key: str, width: int) -> bool:
        """Whether ``key`` has lines at this width (selected or not)."""
        entry = self._entries.get(key)
        return entry is not None and entry[0] == width

    def put(self, key: str, entry: Entry) -> None:
        """Keep lines just drawn."""
        self._entries[key] = entry

    def forget(self, key: str) -> None:
        """Drop a message's lines: they no longer show what they should."""
        self._entries.pop(key, None)
        if self._tracking:
            self._tick += 1
            self._forgotten[key] = self._tick

    def forget_all(self) -> None:
        """Drop every message's lines (new names, palette, pictures setting...)."""
        self._entries.clear()
        self._tick += 1
        self._forgot_all_at = self._tick
        self._forgotten.clear()

    def track(self) -> int:
        """Start recording what is forgotten; returns the tick to pass to :meth:`keep`."""
        self._tracking = True
        return self._tick

    def stop_tracking(self) -> None:
        """No batch is rendered ahead any more."""
        self._tracking = False
        self._forgotten.clear()

    def still_good(self, rendered: dict[str, Entry], since: int) -> dict[str, Entry]:
        """The lines of ``rendered`` (drawn after tick ``since``) whose message was not
        forgotten since."""
        if self._forgot_all_at > since:
            return {}
        return {
            key: entry
            for key, entry in rendered.items()
            if self._forgotten.get(key, since) <= since
        }

    def keep(self, rendered: dict[str, Entry]) -> None:
        """Put lines rendered ahead (checked by :meth:`still_good`) into the cache."""
        self._entries.update(rendered)


class RenderedAhead(Message, bubble=False):
    """The lines of a queued batch's messages, rendered ahead (worker -> handler)."""

    def __init__(self, generation: int, since: int, rendered: dict[str, Entry]) -> None:
        super().__init__()
        self.generation = generation
        self.since = since
        self.rendered = rendered


def after_diffs(
    items: Sequence[TimelineItem], diffs: Sequence[Diff]
) -> tuple[list[TimelineItem], set[str] | None]:
    """The item list once ``diffs`` are applied, and the keys whose lines they make stale
    (the changed and removed items and the item after each change, which may gain or lose
    its day separator or sender name; ``None`` after a reset: every line), without
    touching the widget."""
    after = list(items)
    stale: set[str] = set()
    reset = False

    def neighbours(index: int) -> None:
        for n in (index, index + 1):
            if 0 <= n < len(after):
                stale.add(after[n].key)

    for diff in diffs:
        if diff.op == "reset":
            after = list(diff.items)
            reset = True
        elif diff.op == "insert" and diff.item is not None:
            after.insert(diff.index, diff.item)
            neighbours(diff.index)
        elif diff.op == "update" and diff.item is not None:
            stale.add(after[diff.index].key)
            after[diff.index] = diff.item
            neighbours(diff.index)
        elif diff.op == "remove":
            stale.add(after.pop(diff.index).key)
            neighbours(diff.index - 1)
    return after, None if reset else stale
