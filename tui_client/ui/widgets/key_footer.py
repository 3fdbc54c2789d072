"""The key bar at the bottom of a screen: the focused widget's bindings, drawn as ONE widget.

It looks like Textual's ``Footer`` (the same keys, descriptions and order, the same theme
colours, the command palette's key on the right behind a thin rule), but Textual's footer is
a container of one ``FooterKey`` widget per key that it composes again (removes, mounts,
styles and lays out ~10-20 widgets, a screen layout each time) whenever the focus or the
bindings change: 10-20 ms of the UI thread each time (bench/README.md, ``start_process``
"Round five"). This one renders a single cropped Rich ``Text`` line and repaints itself
when the screen's bindings change; a click on a key presses that key, as Textual's does.

Not carried over: binding groups (``Binding.Group``, unused here: each key of a group is
shown with its own description), key tooltips, and scrolling an overflowing bar with the
mouse wheel (what does not fit is cropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.binding import Binding
    from textual.screen import Screen

#: The command palette's label: Textual's footer shows its key with this after it.
_PALETTE_RULE = "▏"


@dataclass(frozen=True, slots=True)
class FooterItem:
    """One key as drawn: the cells ``start``..``end`` of the line."""

    key: str
    key_display: str
    description: str
    enabled: bool
    start: int = 0
    end: int = 0


class KeyFooter(Widget, can_focus=False):
    """The active bindings of the screen, one line."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "key-footer--key",
        "key-footer--description",
        "key-footer--rule",
        "key-footer--hover",
    }
    # The variables and styles of Textual's Footer and FooterKey (its non-compact footer;
    # the palette's key is compact there: no padding around the key).
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        width: 1fr;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: clip;
        .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-footer--rule {
            color: $foreground 20%;
        }
        .key-footer--hover {
            background: $block-hover-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._items: list[FooterItem] = []
        self._hover: str | None = None  # the key under the mouse

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        # As Textual's footer: nothing while the app has lost the terminal's focus.
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self.refresh()

    def bindings(self) -> tuple[list[FooterItem], FooterItem | None]:
        """The keys to show, in order (one per action), and the command palette's key."""
        active = self.screen.active_bindings
        items: list[FooterItem] = []
        seen: set[str] = set()
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                items.append(self._item(binding, enabled))
        palette = None
        if self.app.ENABLE_COMMAND_PALETTE:
            found = active.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                palette = self._item(found[1], found[2])
        return items, palette

    def _item(self, binding: Binding, enabled: bool) -> FooterItem:
        return FooterItem(
            binding.key, self.app.get_key_display(binding), binding.description, enabled
        )

    def render(self) -> Text:
        width = self.size.width
        items, palette = self.bindings()
        key_style = self.get_component_rich_style("key-footer--key", partial=True)
        text_style = self.get_component_rich_style("key-footer--description", partial=True)
        hover = self.get_component_rich_style("key-footer--hover", partial=True)
        line = Text(no_wrap=True, overflow="crop", end="")
        placed: list[FooterItem] = []
        for item in items:
            start = line.cell_len
            line.append(f" {item.key_display} ", key_style)
            if item.description:
                line.append(f"{item.description} ", text_style)
            placed.append(_placed(item, start, line.cell_len))
            _decorate(line, placed[-1], hover if item.key == self._hover else None)
        if palette is not None:
            tail = Text(no_wrap=True, end="")
            tail.append(_PALETTE_RULE, self.get_component_rich_style("key-footer--rule"))
            tail.append(palette.key_display, key_style)
            if palette.description:
                tail.append(f" {palette.description}", text_style)
            tail.append(" ")
            room = max(0, width - tail.cell_len)
            line.truncate(room, pad=True)
            placed = [_placed(item, item.start, min(item.end, room)) for item in placed]
            placed.append(_placed(palette, room, room + tail.cell_len))
            hovered = palette.key == self._hover
            _decorate(tail, _placed(palette, 1, tail.cell_len), hover if hovered else None)
            line.append_text(tail)
        line.truncate(width)
        self._items = [
            _placed(item, item.start, min(item.end, width))
            for item in placed
            if item.start < min(item.end, width)
        ]
        return line

    def item_at(self, x: int) -> FooterItem | None:
        """The key drawn at cell ``x`` (as last rendered), if any."""
        return _find(self._items, x)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        item = self.item_at(event.x)
        if item is None:
            return
        event.stop()
        if item.enabled:
            self.app.simulate_key(item.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        item = self.item_at(event.x)
        self._set_hover(None if item is None else item.key)

    def on_leave(self, _event: events.Leave) -> None:
        self._set_hover(None)

    def _set_hover(self, key: str | None) -> None:
        if key != self._hover:
            self._hover = key
            self.refresh()


def _placed(item: FooterItem, start: int, end: int) -> FooterItem:
    return FooterItem(item.key, item.key_display, item.description, item.enabled, start, end)


def _decorate(line: Text, item: FooterItem, hover: Style | None) -> None:
    """A disabled key dimmed (under its own styles), a hovered one on the hover colour."""
    if not item.enabled:
        line.stylize_before(Style(dim=True), item.start, item.end)
    if hover is not None:
        line.stylize(hover, item.start, item.end)


def _find(items: Sequence[FooterItem], x: int) -> FooterItem | None:
    for item in items:
        if item.start <= x < item.end:
            return item
    return None
