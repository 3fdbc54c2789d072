"""The fuzzy room switcher (Ctrl+K)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from ...protocol.room_state import RoomSummary
from ..bindings import SWITCHER_BINDINGS
from ..widgets.room_list import room_segments


class RoomSwitcher(ModalScreen[str | None]):
    """Type part of a room's name; Enter opens the best match."""

    BINDINGS = SWITCHER_BINDINGS

    def __init__(self, rooms: list[RoomSummary]) -> None:
        super().__init__()
        self._rooms = rooms

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog switcher"):
            yield Input(placeholder="Jump to room…", id="switcher-input")
            yield OptionList(markup=False, id="switcher-results")

    def on_mount(self) -> None:
        self._filter("")

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
        self.dismiss(option.id if option and not option.disabled else None)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close."""
        self.dismiss(None)
