"""The fuzzy room switcher (Ctrl+K).

Keys typed in one burst with the Enter (or Escape) that closes it, as a terminal delivers
them typed quickly ("Ctrl+K book Enter hi Enter"), are not typed into its input: the app
hands them to the input before the Enter's action has run. The input holds them; once the
room is open (opened in the same step, not by a callback run later) they go, in the order
typed, to the widget focused then (the room's composer), and later ones follow them there.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from ...protocol.room_state import RoomSummary
from ..bindings import SWITCHER_BINDINGS
from ..widgets.room_list import room_segments

#: The input's key that submits (Textual's ``Input`` binds it; no keymap id).
_SUBMIT_KEY = "enter"


class _SwitcherInput(Input):
    """The switcher's input: keys that reach it behind the Enter or Escape closing the
    switcher go to the screen, which hands them on."""

    async def _on_key(self, event: events.Key) -> None:
        screen = self.screen
        if isinstance(screen, RoomSwitcher) and screen.closing:
            event.stop()
            event.prevent_default()
            screen.hand_on(events.Key(event.key, event.character))
            return
        if isinstance(screen, RoomSwitcher) and screen.closes(event.key):
            screen.closing = True
        await super()._on_key(event)


class RoomSwitcher(ModalScreen[str | None]):
    """Type part of a room's name; Enter opens the best match (``on_choice`` called with
    its ID before the switcher closes)."""

    BINDINGS = SWITCHER_BINDINGS

    def __init__(
        self, rooms: list[RoomSummary], on_choice: Callable[[str], None] | None = None
    ) -> None:
        super().__init__()
        self._rooms = rooms
        self._on_choice = on_choice
        #: Enter or Escape reached the input: the keys behind it are not for it.
        self.closing = False
        self._held: list[events.Key] = []
        #: Where the keys behind the closing key go, once the switcher has closed.
        self._target: Widget | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog switcher"):
            yield _SwitcherInput(placeholder="Jump to room…", id="switcher-input")
            yield OptionList(markup=False, id="switcher-results")

    def on_mount(self) -> None:
        self._filter("")

    def closes(self, key: str) -> bool:
        """Whether ``key`` closes the switcher: the input's Enter, or the key bound to its
        cancel action now (``dialogs.cancel``, which ``[keys]`` may rebind: named by what
        it does, not by "escape", or a rebound Escape would hold every key after it and
        the switcher would never close)."""
        if key == _SUBMIT_KEY:
            return True
        bound = self.active_bindings.get(key)
        return bound is not None and bound.binding.action == "cancel"

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._filter(event.value)

    def _filter(self, query: str) -> None:
        results = self.query_one("#switcher-results", OptionList)
        if query:
            matcher = Matcher(query)
            scored = [(matcher.match(r.display_name), r) for r in self._rooms]
            matches = [r for score, r in sorted(scored, key=lambda x: -x[0]) if score > 0]
        else:
            matches = sorted(self._rooms, key=lambda r: -r.last_ts)
        options = [
            Option(
                Text.assemble(*((s.text, s.style or "") for s in room_segments(room, 60))),
                id=room.room_id,
            )
            for room in matches[:200]
        ]
        if not options:
            options = [Option(Text("no matching room"), disabled=True)]
        results.set_options(options)
        results.highlighted = 0 if matches else None

    def action_move(self, step: int) -> None:
        """Move the highlight."""
        results = self.query_one("#switcher-results", OptionList)
        if results.option_count:
            current = results.highlighted or 0
            results.highlighted = max(0, min(results.option_count - 1, current + step))

    @on(Input.Submitted)
    def _submit(self) -> None:
        results = self.query_one("#switcher-results", OptionList)
        option = results.highlighted_option
        self._close(option.id if option and not option.disabled else None)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._close(event.option.id)

    def action_cancel(self) -> None:
        """Close."""
        self._close(None)

    def _close(self, room_id: str | None) -> None:
        """Open the room (in this step), close, and hand the held keys on."""
        if self._target is not None:
            return  # closed already (a second Enter)
        if room_id and self._on_choice is not None:
            self._on_choice(room_id)
        self.dismiss(room_id)
        self._target = self.app.focused or self.app.screen
        held, self._held = self._held, []
        for key in held:
            self._target._forward_event(key)

    def hand_on(self, key: events.Key) -> None:
        """A key typed behind the closing one: to the widget focused once closed, in order."""
        if self._target is None:
            self._held.append(key)
        else:
            self._target._forward_event(key)
