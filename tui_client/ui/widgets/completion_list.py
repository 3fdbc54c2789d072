"""The candidates of a completion in progress, listed above the composer.

It only shows what :class:`~tui_client.ui.widgets.composer.Composer.Completing` says: the
composer keeps every key (Tab, Shift+Tab, Enter, Space, Escape) in its own queue, so this
list never takes focus and never sees a key.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

#: Rows shown at most; the window follows the candidate that is in.
MAX_ROWS = 6


class CompletionList(Static):
    """A few rows of candidates, the current one highlighted; hidden when not completing."""

    DEFAULT_CSS = """
    CompletionList {
        display: none;
        height: auto;
        max-height: 6;
        padding: 0 1;
        background: $boost;
        color: $text-muted;
    }
    """

    can_focus = False

    def show(self, labels: Sequence[str], index: int) -> None:
        """List ``labels`` with ``labels[index]`` highlighted; nothing hides the list."""
        if not labels:
            self.display = False
            return
        first = min(max(0, index - MAX_ROWS // 2), max(0, len(labels) - MAX_ROWS))
        text = Text(no_wrap=True, overflow="ellipsis")
        for number in range(first, min(len(labels), first + MAX_ROWS)):
            if number > first:
                text.append("\n")
            if number == index:
                text.append(f"▶ {labels[number]}", style=Style(reverse=True, bold=True))
                text.append(f"  {index + 1}/{len(labels)}", style=Style(dim=True))
            else:
                text.append(f"  {labels[number]}")
        self.update(text)
        self.display = True
