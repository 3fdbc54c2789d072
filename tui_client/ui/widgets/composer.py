"""The composer: Enter sends, Shift+Enter / Ctrl+J / Alt+Enter insert a newline.

Every key that changes or sends the draft is handled here, in the composer's own message
queue, in the order the terminal delivered it. A binding would not do: Textual runs
priority bindings on the app's queue before the characters typed ahead of them reach the
composer, and runs ordinary bindings only after the key has bubbled up to the app, by
which time later characters are already in. Either way a fast typist's or a paste's
lines would be cut, merged or sent twice. So Enter takes the text and empties the
composer in the same step, and :class:`Composer.Submitted` carries that text: nothing
typed after it can be lost or sent with it.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

#: Keys that insert a line break instead of sending.
NEWLINE_KEYS = frozenset({"shift+enter", "ctrl+j", "alt+enter", "ctrl+enter"})


class Composer(TextArea):
    """Where the user writes. Posts :class:`Composer.Submitted` on Enter."""

    # Shown in the footer and the help screen; the keys themselves are handled in _on_key.
    BINDINGS = [
        Binding("enter", "submit", "Send"),
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
        """The user pressed Enter with this text (already taken out of the composer)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Cancelled(Message):
        """Escape: leave reply or edit mode."""

    class EditLast(Message):
        """Up in an empty composer: edit our last message."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            action = self.action_submit
        elif key in NEWLINE_KEYS:
            action = self.action_newline
        elif key == "escape":
            action = self.action_cancel
        elif key == "up" and not self.text:
            action = self.action_history_or_up
        else:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        action()

    def action_submit(self) -> None:
        """Send what was written: take the text out and post it, in one step."""
        text = self.text
        if not text.strip():
            return
        self.clear()
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

    def restore(self, text: str) -> None:
        """Put back text that could not be sent, the cursor after it, keeping any new draft."""
        draft = self.text
        self.text = f"{text}\n{draft}" if draft else text
        self.move_cursor(self.document.end)
