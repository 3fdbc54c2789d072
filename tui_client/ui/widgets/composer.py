"""The composer: Enter sends, Shift+Enter / Ctrl+J / Alt+Enter insert a newline."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    """Where the user writes. Posts :class:`Composer.Submitted` on Enter."""

    BINDINGS = [
        Binding("enter", "submit", "Send", priority=True),
        Binding("shift+enter,ctrl+j,alt+enter", "newline", "Newline"),
        Binding("escape", "cancel", "Cancel reply/edit", show=False),
        Binding("up", "history_or_up", "Up", show=False),
    ]

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 8;
    }
    """

    class Submitted(Message):
        """The user pressed Enter with this text."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Cancelled(Message):
        """Escape: leave reply or edit mode."""

    class EditLast(Message):
        """Up in an empty composer: edit our last message."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")

    def action_submit(self) -> None:
        """Send what was written."""
        text = self.text
        if not text.strip():
            return
        self.post_message(self.Submitted(text))

    def action_newline(self) -> None:
        """Insert a line break."""
        self.insert("\n")

    def action_cancel(self) -> None:
        """Escape."""
        self.post_message(self.Cancelled())

    def action_history_or_up(self) -> None:
        """Up edits the last message when empty; moves the cursor otherwise."""
        if not self.text:
            self.post_message(self.EditLast())
        else:
            self.action_cursor_up()
