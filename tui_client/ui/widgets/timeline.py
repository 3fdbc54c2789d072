"""The timeline: a line-API widget (``ScrollView`` + ``render_line``), no widget per message.

It mirrors the engine's item list through diffs, renders each item to strips once
per width (cached), and keeps a prefix sum of item heights to map a screen row to
an item. Near the top it asks for older history; when the user is at the bottom,
new messages keep it there, otherwise the view stays on what the user is reading.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events, on
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...engine.devices import UserTrust
from ...engine.images import MODE_OFF, ImageService, Picture, placeholder_rows
from ...protocol.media import ImageRef
from ...protocol.timeline import Diff, TimelineItem
from ..pictures import box_for, image_service, picture_lines, placeholder_lines
from ..render import TIME_WIDTH, Palette, name_column_width, palette_from, render_item
from ..url_previews import preview_line, preview_service, preview_url_of
from ..wrap import Line
from .line_cache import (
    RENDER_AHEAD_MIN,
    RENDER_SLICE_SECONDS,
    Entry,
    LineCache,
    RenderedAhead,
    after_diffs,
)
from .scrolling import set_virtual_size

LOAD_MORE_THRESHOLD = 8


class TimelineView(ScrollView, can_focus=True):
    """The open room's messages."""

    BINDINGS = [
        Binding("up", "select_previous", "Previous message", show=False, id="timeline.previous"),
        Binding("down", "select_next", "Next message", show=False, id="timeline.next"),
        Binding("pageup", "page_up", "Page up", show=False, id="timeline.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="timeline.page_down"),
        Binding("home", "scroll_home", "Oldest loaded", show=False, id="timeline.oldest"),
        Binding("end", "jump_to_latest", "Latest", show=False, id="timeline.latest"),
        Binding("r", "reply", "Reply", id="timeline.reply"),
        Binding("e", "edit", "Edit", id="timeline.edit"),
        Binding("plus,equals_sign", "react", "React", id="timeline.react"),
        Binding("d,delete", "delete", "Delete", id="timeline.delete"),
        Binding("R", "retry", "Retry", show=False, id="timeline.retry"),
        Binding("X", "discard", "Discard", show=False, id="timeline.discard"),
        Binding("o", "open_link", "Open file or link", show=False, id="timeline.open_link"),
        Binding("O", "copy_link", "Copy link", show=False, id="timeline.copy_link"),
        Binding("s", "save_attachment", "Save file", show=False, id="timeline.save"),
        Binding("v", "reveal", "Show spoiler", show=False, id="timeline.reveal"),
        Binding("enter", "view_image", "View image", show=False, id="timeline.view_image"),
        Binding(
            "t", "thread", "Open its thread (replies, answer)", show=False, id="timeline.thread"
        ),
        Binding("escape", "clear_selection", "Unselect", show=False, id="timeline.unselect"),
        Binding("slash", "search", "Search room", show=False, id="timeline.search"),
        Binding("n", "search_step(1)", "Next result", show=False, id="timeline.next_result"),
        Binding(
            "N", "search_step(-1)", "Previous result", show=False, id="timeline.previous_result"
        ),
    ]

    DEFAULT_CSS = """
    TimelineView {
        height: 1fr;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    """

    selected_key: reactive[str | None] = reactive(None, always_update=True)

    class NeedOlder(Message):
        """The user scrolled to the top of what is loaded."""

    class NeedNewer(Message):
        """The user scrolled to the bottom of a window that is not at the live end."""

    class Viewed(Message):
        """The newest message on screen changed (the user scrolled): what was seen may move on."""

    class SearchRequested(Message):
        """``/``: search this room."""

    class SearchStep(Message):
        """``n``/``N``: the next or previous result of the last search."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    class ItemAction(Message):
        """The user asked for something on a message: reply, edit, react, delete, retry, discard."""

        def __init__(self, action: str, item: TimelineItem) -> None:
            super().__init__()
            self.action = action
            self.item = item

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.items: list[TimelineItem] = []
        self.name_of: Callable[[str], str] = lambda user_id: user_id
        #: Names of rooms we know, by room ID or alias (room pills in formatted messages).
        self.room_name_of: Callable[[str], str | None] = lambda target: None
        #: Items whose spoilers the reader revealed.
        self.revealed: set[str] = set()
        #: The sender's current trust, when known (marks messages of verified users).
        self.trust_of: Callable[[str], UserTrust | None] = lambda user_id: None
        #: Whether a sender is a bridged (puppeted) user of the room's bridges.
        self.is_bridged: Callable[[str], bool] = lambda user_id: False
        self._bridges: object = ()
        self.own_user: str | None = None
        #: Shown event ID -> the members who have read up to it.
        self.read_by: dict[str, tuple[str, ...]] = {}
        #: The "new messages" line goes after this event (set when a room opens).
        self.new_after: str | None = None
        self.palette = Palette()
        #: Where pictures come from (the app's client's service unless set).
        self.images: ImageService | None = None
        #: The room shown (its setting decides on link previews); ``None``: no previews.
        self.room_id: str | None = None
        #: Items whose link preview is asked for once they are on screen, and the items
        #: drawn for each previewed link.
        self._unasked_previews: dict[str, str] = {}
        self._preview_keys: dict[str, set[str]] = {}
        #: Items drawn with a placeholder: their picture is asked for once they are on screen.
        self._unloaded: dict[str, tuple[ImageRef, int, int]] = {}
        self._requested: set[tuple[ImageRef, int, int]] = set()
        self._ready: set[str] = set()
        self._cache = LineCache()
        #: Diff batches waiting for their lines (rendered ahead), oldest first.
        self._pending: deque[list[Diff]] = deque()
        self._rendering_ahead = False
        #: Bumped by :meth:`set_items`: lines rendered ahead for an older list are dropped.
        self._generation = 0
        self._offsets: list[int] = [0]
        self._layout_width = 0
        self._stick_to_bottom = True
        self._requested_older = False
        self._requested_newer = False
        self.at_live_end = True
        self.reached_start = False
        self.empty_text = "No messages yet."
        #: Thread roots (event IDs) whose threads have unread replies (marked on the root).
        self.thread_unread: frozenset[str] = frozenset()
        self._last_visible: str | None = None
        #: Where the scroll after the next refresh goes (see :meth:`_relayout`).
        self._after_layout_anchor: tuple[str, int] | None = None
        self._relayout_soon = False

    # -- data -----------------------------------------------------------------------

    def set_items(
        self,
        items: Sequence[TimelineItem],
        read_by: dict[str, tuple[str, ...]] | None = None,
        new_after: str | None = None,
    ) -> None:
        """Replace everything (a newly opened room)."""
        self.items = list(items)
        self.revealed.clear()
        self.read_by = read_by or {}
        self.new_after = new_after
        self._drop_pending()
        self._cache.forget_all()
        self._stick_to_bottom = True
        self.selected_key = None
        self._relayout(anchor=None)
        self.scroll_end(animate=False, immediate=True)

    def apply_diffs(self, diffs: Sequence[Diff]) -> None:
        """Apply the engine's diffs, keeping the reader's place.

        A batch with many messages to render waits while its lines are rendered ahead
        (:meth:`_render_ahead`); later batches queue behind it, so the order holds.
        """
        if not diffs:
            return
        self._pending.append(list(diffs))
        if not self._rendering_ahead:
            self._next_pending()

    def _next_pending(self) -> None:
        width = self._layout_width
        while self._pending:
            diffs = self._pending[0]
            after, stale = after_diffs(self.items, diffs)
            todo = [
                (item, after[n - 1] if n else None)
                for n, item in enumerate(after)
                if stale is None or item.key in stale or not self._cache.has(item.key, width)
            ]
            if len(todo) <= RENDER_AHEAD_MIN or not width or not self.is_attached:
                self._pending.popleft()
                self._apply(after, stale, {})
                continue
            self._rendering_ahead = True
            since = self._cache.track()
            # (not ``@work``: it would describe the worker with a repr of every item)
            self.run_worker(
                self._render_ahead(self._generation, since, todo, width),
                name="render ahead",
                group="timeline-render-ahead",
                description=f"render {len(todo)} messages ahead",
                exit_on_error=False,
            )
            return
        self._cache.stop_tracking()

    async def _render_ahead(
        self,
        generation: int,
        since: int,
        todo: list[tuple[TimelineItem, TimelineItem | None]],
        width: int,
    ) -> None:
        """Render a queued batch's messages in slices of :data:`RENDER_SLICE_SECONDS`,
        letting frames and keys through between slices; the handler applies the batch."""
        rendered: dict[str, Entry] = {}
        began = time.thread_time()
        for item, previous in todo:
            if generation != self._generation:
                return
            selected = item.key == self.selected_key
            rendered[item.key] = (
                width,
                selected,
                self._render_lines(item, previous, width, selected),
            )
            if time.thread_time() - began > RENDER_SLICE_SECONDS:
                await asyncio.sleep(0)
                began = time.thread_time()
        self.post_message(RenderedAhead(generation, since, rendered))

    @on(RenderedAhead)
    def _rendered_ahead(self, message: RenderedAhead) -> None:
        if message.generation != self._generation or not self._pending:
            return
        self._rendering_ahead = False
        ahead = self._cache.still_good(message.rendered, message.since)
        self._apply(*after_diffs(self.items, self._pending.popleft()), ahead)
        self._next_pending()

    def _drop_pending(self) -> None:
        """Forget the queued batches (a new item list replaces what they would change)."""
        self._generation += 1
        self._rendering_ahead = False
        self._pending.clear()
        self._cache.stop_tracking()

    def _apply(
        self, after: list[TimelineItem], stale: set[str] | None, ahead: dict[str, Entry]
    ) -> None:
        """Show one batch's items (:func:`after_diffs`): the stale lines go, and the lines
        of its messages rendered ahead (if any) come in."""
        anchor = None if self._stick_to_bottom else self._anchor()
        self.items = after
        if stale is None:
            self._cache.forget_all()
        else:
            for key in stale:
                self._cache.forget(key)
        self._cache.keep(ahead)
        if self.selected_key is not None and not any(
            i.key == self.selected_key for i in self.items
        ):
            self.selected_key = None
        self._requested_older = False
        self._requested_newer = False
        self._relayout(anchor)

    def _known_items(self) -> Iterator[TimelineItem]:
        """The items shown and those in batches waiting to be applied (their lines may be
        rendered ahead already, so a change must forget them too)."""
        yield from self.items
        for diffs in self._pending:
            for diff in diffs:
                yield from diff.items
                if diff.item is not None:
                    yield diff.item

    def set_read_by(self, read_by: dict[str, tuple[str, ...]]) -> None:
        """Who has read up to which message (shown under it); re-renders what changed."""
        if read_by == self.read_by:
            return
        changed = {
            e for e in set(read_by) | set(self.read_by) if read_by.get(e) != self.read_by.get(e)
        }
        self.read_by = read_by
        for item in self._known_items():
            if item.event_id in changed:
                self._cache.forget(item.key)
        self._relayout(None if self._stick_to_bottom else self._anchor())

    def set_thread_unread(self, roots: frozenset[str]) -> None:
        """Which thread roots have unread replies; re-renders the roots that changed."""
        if roots == self.thread_unread:
            return
        changed = roots ^ self.thread_unread
        self.thread_unread = roots
        for item in self._known_items():
            if item.event_id in changed:
                self._cache.forget(item.key)
        self._relayout(None if self._stick_to_bottom else self._anchor())

    def set_bridges(self, bridges: object, is_bridged: Callable[[str], bool]) -> None:
        """The room's bridges (compared to the last ones: re-rendered when they change)."""
        if bridges == self._bridges:
            return
        self._bridges = bridges
        self.is_bridged = is_bridged
        self.refresh_names()

    def on_mount(self) -> None:
        # A theme picked while the app runs: the lines drawn in the old colours go.
        self.app.theme_changed_signal.subscribe(
            self, lambda _theme: self.set_palette(palette_from(self.app))
        )

    def set_palette(self, palette: Palette) -> None:
        """New colours (a theme change): every message is drawn again in them."""
        if palette != self.palette:
            self.palette = palette
            self.refresh_names()

    def refresh_trust(self, user_ids: Collection[str]) -> None:
        """These users' trust changed: re-render only their encrypted messages (the mark
        beside them), not every line (trust is computed as senders are first drawn)."""
        stale = [i.key for i in self._known_items() if i.encrypted and i.sender in user_ids]
        for key in stale:
            self._cache.forget(key)
        if stale:
            self._relayout(None if self._stick_to_bottom else self._anchor())

    def refresh_names(self) -> None:
        """Display names changed: re-render everything."""
        self._cache.forget_all()
        self._relayout(None if self._stick_to_bottom else self._anchor())

    # -- layout ---------------------------------------------------------------------

    def _strips_for(self, index: int, width: int) -> list[Strip]:
        item = self.items[index]
        selected = item.key == self.selected_key
        cached = self._cache.get(item.key, width, selected)
        if cached is not None:
            return cached
        strips = self._render_lines(
            item, self.items[index - 1] if index > 0 else None, width, selected
        )
        self._cache.put(item.key, (width, selected, strips))
        return strips

    def _render_lines(
        self, item: TimelineItem, previous: TimelineItem | None, width: int, selected: bool
    ) -> list[Strip]:
        """One message's lines, each exactly ``width`` cells."""
        trust = self.trust_of(item.sender) if item.encrypted and item.sender else None
        readers = self.read_by.get(item.event_id, ()) if item.event_id else ()
        lines = render_item(
            item,
            previous,
            self.name_of,
            width,
            self.palette,
            selected=selected,
            trust=trust,
            own_user=self.own_user,
            # (the sender saw their own message: not worth saying)
            seen_by=[self.name_of(user) for user in readers if user != item.sender],
            first_new=previous is not None
            and self.new_after is not None
            and previous.event_id == self.new_after,
            room_name_of=self.room_name_of,
            reveal=item.key in self.revealed,
            thread_unread=item.event_id in self.thread_unread if item.event_id else False,
            picture=self._picture_of(item, width) + self._preview_of(item, width),
            bridged=self.is_bridged(item.sender),
        )
        pad = Style(bgcolor=self.palette.selection) if selected else None
        strips = []
        for line in lines:
            used = sum(cell_len(segment.text) for segment in line)
            if used < width:
                line.append(Segment(" " * (width - used), pad))
                strips.append(Strip(line, width))
            else:
                strips.append(Strip(line, used).crop(0, width))
        return strips

    def image_source(self) -> ImageService | None:
        """The image service (the app's client's), or ``None`` without one."""
        if self.images is None:
            client = getattr(self.app, "client", None)
            if client is not None:
                self.images = image_service(client)
                self.images.listen(self.refresh_pictures)
        return self.images

    def _picture_of(self, item: TimelineItem, width: int) -> list[Line]:
        ref = item.image
        self._unloaded.pop(item.key, None)
        if ref is None:
            return []
        service = self.image_source()
        if service is None or service.mode == MODE_OFF:
            return []
        body_width = max(10, width - TIME_WIDTH - name_column_width(width) - 1)
        cols, rows = box_for(ref, body_width)
        found = service.peek(ref, cols, rows)
        if isinstance(found, Picture):
            return picture_lines(found, self.app)
        if isinstance(found, str):
            return [
                [
                    Segment(
                        f"⚠ image not shown: {found}", Style(color=self.palette.error, italic=True)
                    )
                ]
            ]
        self._unloaded[item.key] = (ref, cols, rows)
        keep_cols, keep_rows = placeholder_rows(ref, cols, rows)
        return placeholder_lines(ref, keep_cols, keep_rows, "loading image…", self.palette.muted)

    def _want_picture(self, item: TimelineItem) -> None:
        wanted = self._unloaded.get(item.key)
        service = self.images
        if wanted is None or service is None or wanted in self._requested:
            return
        self._requested.add(wanted)
        ref, cols, rows = wanted
        service.request(ref, cols, rows, self._picture_ready)

    def _picture_ready(self, ref: ImageRef) -> None:
        self._ready.add(ref.key)
        if len(self._ready) == 1:
            # Pictures arriving together are laid out once.
            self.call_later(self._pictures_ready)

    def _pictures_ready(self) -> None:
        ready, self._ready = self._ready, set()
        self._requested = {wanted for wanted in self._requested if wanted[0].key not in ready}
        changed = False
        for item in self._known_items():
            if item.image is not None and item.image.key in ready:
                self._cache.forget(item.key)
                self._unloaded.pop(item.key, None)
                changed = True
        if changed and self.is_attached:
            self._relayout(None if self._stick_to_bottom else self._anchor())
            # A picture is hundreds of long-lived objects (segments, styles): out of the
            # collector's sight, as engine/gc_policy does after a load, or a full
            # collection walks them all while the user scrolls (a 1 s stall at 500 images).
            gc.freeze()

    def _preview_of(self, item: TimelineItem, width: int) -> list[Line]:
        self._unasked_previews.pop(item.key, None)
        client = getattr(self.app, "client", None)
        if self.room_id is None or client is None:
            return []
        url = preview_url_of(item)
        if url is None:
            return []
        service = preview_service(client)
        if not service.allowed(self.room_id):
            return []
        self._preview_keys.setdefault(url, set()).add(item.key)
        found = service.peek(url)
        if found is False:
            self._unasked_previews[item.key] = url
            return []
        if found is None or isinstance(found, bool):
            return []
        body_width = max(10, width - TIME_WIDTH - name_column_width(width) - 1)
        return [preview_line(found, body_width, self.palette.muted)]

    def _want_preview(self, item: TimelineItem) -> None:
        url = self._unasked_previews.pop(item.key, None)
        client = getattr(self.app, "client", None)
        if url is None or client is None or self.room_id is None:
            return
        preview_service(client).request(self.room_id, url, self._preview_ready)

    def _preview_ready(self, url: str) -> None:
        keys = self._preview_keys.pop(url, set())
        client = getattr(self.app, "client", None)
        if client is not None and preview_service(client).peek(url) is None:
            return  # no preview: the messages are drawn as they were
        for key in keys:
            self._cache.forget(key)
        if keys and self.is_attached and not self._relayout_soon:
            # Previews arriving together are laid out once.
            self._relayout_soon = True
            self.call_later(self._relayout_after_news)

    def _relayout_after_news(self) -> None:
        self._relayout_soon = False
        if self.is_attached:
            self._relayout(None if self._stick_to_bottom else self._anchor())

    def refresh_pictures(self) -> None:
        """The images setting changed: draw every picture again."""
        self._unloaded.clear()
        if self.is_attached:
            self.refresh_names()

    def _relayout(self, anchor: tuple[str, int] | None) -> None:
        width = max(20, self.scrollable_content_region.width or 80)
        self._layout_width = width
        offsets = [0]
        total = 0
        for index in range(len(self.items)):
            total += len(self._strips_for(index, width))
            offsets.append(total)
        self._offsets = offsets
        set_virtual_size(self, Size(width, max(total, 1)))
        target: int | None = None
        if self._stick_to_bottom:
            target = max(0, total - self.scrollable_content_region.height)
        elif anchor is not None:
            key, delta = anchor
            for index, item in enumerate(self.items):
                if item.key == key:
                    target = max(0, offsets[index] + delta)
                    break
        if target is not None:
            self.scroll_to(y=target, animate=False, immediate=True)
            # The new virtual size is only in effect after the next refresh; scroll again
            # then, to where the latest layout (or selection) put the reader.
            self._after_layout_anchor = anchor
            self.call_after_refresh(self._scroll_after_layout)
        self.refresh()

    def _scroll_after_layout(self) -> None:
        anchor, self._after_layout_anchor = self._after_layout_anchor, None
        if self._stick_to_bottom:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
            return
        if anchor is not None:
            key, delta = anchor
            for index, item in enumerate(self.items):
                if item.key == key:
                    self.scroll_to(
                        y=max(0, self._offsets[index] + delta), animate=False, immediate=True
                    )
                    return

    def _anchor(self) -> tuple[str, int] | None:
        if not self.items:
            return None
        top = round(self.scroll_y)
        index = max(0, min(len(self.items) - 1, bisect.bisect_right(self._offsets, top) - 1))
        return self.items[index].key, top - self._offsets[index]

    def on_resize(self, event: events.Resize) -> None:
        """Re-wrap at the new width."""
        self._relayout(None if self._stick_to_bottom else self._anchor())

    def item_at_line(self, line: int) -> int | None:
        """The index of the item drawn on a virtual line."""
        if not self.items or line < 0 or line >= self._offsets[-1]:
            return None
        return bisect.bisect_right(self._offsets, line) - 1

    def last_visible_event_id(self) -> str | None:
        """The newest server event with a line in the viewport (local echoes skipped): the
        most the reader can have seen."""
        if not self.items or self._offsets[-1] <= 0:
            return None
        top = round(self.scroll_y)
        bottom = min(top + max(1, self.scrollable_content_region.height) - 1, self._offsets[-1] - 1)
        index = self.item_at_line(bottom)
        if index is None:
            return None
        for i in range(index, -1, -1):
            if self._offsets[i + 1] <= top:
                return None  # above the viewport
            item = self.items[i]
            if item.event_id and not item.is_local_echo:
                return item.event_id
        return None

    # -- rendering ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One screen row."""
        width = self._layout_width or self.size.width
        line = round(self.scroll_y) + y
        if not self.items:
            if y == 0:
                return Strip(
                    [Segment(self.empty_text, Style(color=self.palette.muted, italic=True))]
                ).adjust_cell_length(width)
            return Strip.blank(width)
        index = self.item_at_line(line)
        if index is None:
            return Strip.blank(width)
        strips = self._strips_for(index, width)
        item = self.items[index]
        if item.key in self._unloaded:
            self._want_picture(item)
        if item.key in self._unasked_previews:
            self._want_preview(item)
        within = line - self._offsets[index]
        if within >= len(strips):
            return Strip.blank(width)
        return strips[within]

    # -- scrolling ------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        bottom = max(0, self.virtual_size.height - self.scrollable_content_region.height)
        self._stick_to_bottom = new_value >= bottom - 1 and self.at_live_end
        if (
            new_value < LOAD_MORE_THRESHOLD
            and not self._requested_older
            and not self.reached_start
            and self.items
        ):
            self._requested_older = True
            self.post_message(self.NeedOlder())
        if (
            not self.at_live_end
            and new_value >= bottom - LOAD_MORE_THRESHOLD
            and not self._requested_newer
        ):
            self._requested_newer = True
            self.post_message(self.NeedNewer())
        visible = self.last_visible_event_id()
        if visible != self._last_visible:
            self._last_visible = visible
            self.post_message(self.Viewed())

    def action_page_up(self) -> None:
        """One screen up, at once (no animation frames to draw)."""
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        """One screen down, at once."""
        self.scroll_page_down(animate=False)

    def action_jump_to_latest(self) -> None:
        """Back to the newest message."""
        self._stick_to_bottom = True
        self.scroll_end(animate=False)
        if not self.at_live_end:
            self.post_message(self.NeedNewer())

    # -- selection ------------------------------------------------------------------

    def _selected_index(self) -> int | None:
        for index, item in enumerate(self.items):
            if item.key == self.selected_key:
                return index
        return None

    def watch_selected_key(self, _old: str | None, _new: str | None) -> None:
        self.refresh()

    def _select(self, index: int) -> None:
        if not self.items:
            return
        index = max(0, min(len(self.items) - 1, index))
        old = self.selected_key
        self.selected_key = self.items[index].key
        if old is not None:
            self._cache.forget(old)
        self._cache.forget(self.selected_key)
        self._relayout(self._anchor() if not self._stick_to_bottom else None)
        top, bottom = self._offsets[index], self._offsets[index + 1]
        view_top = round(self.scroll_y)
        height = self.scrollable_content_region.height
        target: int | None = None
        if top < view_top:
            target = top
        elif bottom > view_top + height:
            target = bottom - height
        if target is not None:
            self.scroll_to(y=target, animate=False)
            if self._after_layout_anchor is not None:
                # The layout's pending scroll would take the reader back where they were
                # (a jump to a search result then ended at the window's newest end).
                self._after_layout_anchor = (self.items[index].key, target - top)

    def action_select_previous(self) -> None:
        """Select the message above (the newest when none is selected)."""
        index = self._selected_index()
        if index is None:
            self._select(len(self.items) - 1)
        elif index == 0:
            self.post_message(self.NeedOlder())
        else:
            self._select(index - 1)

    def action_select_next(self) -> None:
        """Select the message below."""
        index = self._selected_index()
        if index is None:
            return
        if index >= len(self.items) - 1:
            self.action_clear_selection()
            self.action_jump_to_latest()
        else:
            self._select(index + 1)

    def select_event(self, event_id: str) -> bool:
        """Select (and scroll to) the message with this event ID, if it is loaded."""
        for index, item in enumerate(self.items):
            if item.event_id == event_id:
                self._stick_to_bottom = False
                self._select(index)
                return True
        return False

    def action_search(self) -> None:
        """Search this room."""
        self.post_message(self.SearchRequested())

    def action_search_step(self, step: int) -> None:
        """Next or previous search result."""
        self.post_message(self.SearchStep(step))

    def action_clear_selection(self) -> None:
        """Unselect."""
        old = self.selected_key
        self.selected_key = None
        if old is not None:
            self._cache.forget(old)
            self._relayout(self._anchor() if not self._stick_to_bottom else None)

    def on_click(self, event: events.Click) -> None:
        """Select the clicked message."""
        index = self.item_at_line(round(self.scroll_y) + event.y)
        if index is not None:
            self._select(index)

    @property
    def selected_item(self) -> TimelineItem | None:
        """The selected message."""
        index = self._selected_index()
        return self.items[index] if index is not None else None

    def _item_action(self, action: str) -> None:
        item = self.selected_item
        if item is not None:
            self.post_message(self.ItemAction(action, item))

    def action_reply(self) -> None:
        """Reply to the selected message."""
        self._item_action("reply")

    def action_edit(self) -> None:
        """Edit the selected message (ours)."""
        self._item_action("edit")

    def action_react(self) -> None:
        """React to the selected message."""
        self._item_action("react")

    def action_delete(self) -> None:
        """Delete the selected message."""
        self._item_action("delete")

    def action_retry(self) -> None:
        """Retry a failed message."""
        self._item_action("retry")

    def action_open_link(self) -> None:
        """Open (or join) the room the selected message links to."""
        self._item_action("open_link")

    def action_copy_link(self) -> None:
        """Copy the selected message's link to the clipboard."""
        self._item_action("copy_link")

    def action_thread(self) -> None:
        """Open the selected message's thread (or start one from it)."""
        self._item_action("thread")

    def action_save_attachment(self) -> None:
        """Save the selected message's file to the Downloads folder."""
        self._item_action("save")

    def action_reveal(self) -> None:
        """Show (or hide again) the spoilers of the selected message."""
        item = self.selected_item
        if item is None or item.formatted is None:
            return
        self.revealed.symmetric_difference_update({item.key})
        self._cache.forget(item.key)
        self._relayout(self._anchor() if not self._stick_to_bottom else None)

    def action_view_image(self) -> None:
        """Show the selected message's image on the whole screen."""
        item = self.selected_item
        service = self.image_source()
        if item is None or item.image is None or service is None:
            return
        from ..screens.image_viewer import ImageViewer

        self.app.push_screen(ImageViewer(service, item.image, self.palette.muted))

    def action_discard(self) -> None:
        """Discard a failed message."""
        self._item_action("discard")
