"""A room before joining it: its summary and, if world-readable, its latest messages."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...engine.client import MatrixClient
from ...engine.directory import RoomPreview, preview_room
from ...protocol.directory import PublicRoom
from ...protocol.sanitize import clean_line, clean_text
from ..widgets.directory_list import room_facts
from ..widgets.timeline import TimelineView


class RoomPreviewScreen(ModalScreen[str | None]):
    """Dismisses with ``"join"``, ``"open"``, ``"space"``, ``"knock"`` or None."""

    BINDINGS = [
        Binding("escape", "close", "Close", priority=True),
        Binding("j", "choose('join')", "Join"),
        Binding("o", "choose('open')", "Open", show=False),
    ]

    def __init__(
        self,
        client: MatrixClient,
        target: str,
        via: Sequence[str] = (),
        known: PublicRoom | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.target = target
        self.via = tuple(via)
        self.known = known
        self.preview: RoomPreview | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog preview"):
            yield Static(
                Text(
                    clean_line(self.known.display_name if self.known else self.target),
                    style=Style(bold=True),
                ),
                id="preview-title",
            )
            yield Static(id="preview-facts")
            yield Static(id="preview-topic")
            yield Static(Text("Loading…", style=Style(dim=True)), id="preview-note")
            yield TimelineView(id="preview-history")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Join", variant="primary", id="join")
                yield Button("Open", variant="primary", id="open")
                yield Button("View space", id="space")
                yield Button("Ask to join", id="knock")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#preview-history").display = False
        for button in ("open", "space", "knock"):
            self.query_one(f"#{button}").display = False
        if self.known is not None:
            self._show_info(self.known)
        self._focus_action()
        self._load()

    def _focus_action(self) -> None:
        for button in ("join", "open", "space", "close"):
            widget = self.query_one(f"#{button}", Button)
            if widget.display:
                widget.focus()
                return

    @work(group="preview", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        preview = await preview_room(self.client, self.target, via=self.via, known=self.known)
        self._show(preview)

    def _membership(self, room_id: str | None) -> str | None:
        summary = self.client.rooms.get(room_id) if room_id else None
        return summary.membership if summary is not None else None

    def _show_info(self, info: PublicRoom) -> None:
        self.query_one("#preview-title", Static).update(
            Text(("◆ " if info.is_space else "") + info.display_name, style=Style(bold=True))
        )
        facts = Text()
        if info.canonical_alias:
            facts.append(clean_line(info.canonical_alias) + "  ", style=Style(bold=True))
        facts.append(clean_line(info.room_id), style=Style(dim=True))
        facts.append("\n")
        names = {r: s.display_name for r, s in self.client.rooms.items()}
        names.update(
            {r: d.display_name for r, d in self.client.spaces.described.items() if r not in names}
        )
        summary = self.client.rooms.get(info.room_id)
        facts.append_text(
            room_facts(
                info,
                membership=self._membership(info.room_id),
                encrypted=summary.encrypted if summary else None,
                names=names,
            )
        )
        if info.servers:
            facts.append(
                "\nListed by " + ", ".join(clean_line(s, 60) for s in info.servers),
                style=Style(dim=True),
            )
        self.query_one("#preview-facts", Static).update(facts)
        topic = clean_text(info.topic or "").strip()
        self.query_one("#preview-topic", Static).update(
            Text(topic or "No topic.", style=Style(italic=True, dim=not topic))
        )
        membership = self._membership(info.room_id)
        joined = membership == "join"
        self.query_one("#join").display = not joined
        self.query_one("#open").display = joined and not info.is_space
        self.query_one("#space").display = info.is_space
        self.query_one("#knock").display = (
            info.can_knock and not joined and info.join_rule != "knock_restricted"
        )

    def _show(self, preview: RoomPreview) -> None:
        self.preview = preview
        if preview.info is not None:
            self._show_info(preview.info)
        note = self.query_one("#preview-note", Static)
        lines = [line for line in (preview.error, preview.history_note) if line]
        note.update(Text("\n".join(clean_line(line, 300) for line in lines), style=Style(dim=True)))
        self._focus_action()
        history = self.query_one("#preview-history", TimelineView)
        if preview.history:
            history.display = True
            history.empty_text = ""
            history.set_items(list(preview.history))

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "close":
            self.dismiss(None)
        elif event.button.id:
            self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        """Join or open, from the keyboard."""
        if self.query_one(f"#{choice}").display:
            self.dismiss(choice)

    def action_close(self) -> None:
        """Close without doing anything."""
        self.dismiss(None)
