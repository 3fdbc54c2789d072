"""The sidebar's list of accounts (several accounts in one window, :mod:`..accounts`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...protocol.sanitize import clean_line

__all__ = ["AccountBar", "AccountEntry", "account_row"]


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """One account as the switcher and the sidebar show it."""

    slot: str
    user_id: str
    homeserver: str
    notifications: int
    highlights: int
    active: bool
    #: Its cache was found damaged (nothing new is saved until it is rebuilt).
    damaged: bool = False


def account_row(number: int, entry: AccountEntry, width: int) -> Text:
    """One account's line: its number, its user ID cut to ``width``, its unread badge."""
    text = Text(f"{number} " if number < 10 else "  ", style=Style(dim=True))
    name = clean_line(entry.user_id, 200)
    badge = f" {entry.notifications}" if entry.notifications else ""
    room = max(3, width - len(text) - len(badge))
    shown = name if len(name) <= room else name[: room - 1] + "…"
    text.append(shown, style=Style(bold=entry.active, reverse=False))
    if badge:
        colour = "#e06c75" if entry.highlights else "#61afef"
        text.append(badge, style=Style(color=colour, bold=True))
    return text


class AccountBar(OptionList):
    """The sidebar's list of accounts (above the spaces); shown once there are two."""

    DEFAULT_CSS = """
    AccountBar {
        height: auto;
        max-height: 10;
        border: none;
        padding: 0;
        background: $surface;
        border-right: solid $panel;
        border-bottom: solid $panel;
        text-wrap: nowrap;
        display: none;
    }
    AccountBar:focus {
        border: none;
        border-right: solid $accent;
        border-bottom: solid $panel;
    }
    """

    class AccountChosen(Message):
        """The user picked an account (its slot)."""

        def __init__(self, slot: str) -> None:
            super().__init__()
            self.slot = slot

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(markup=False, id=id)
        self.entries: tuple[AccountEntry, ...] = ()

    def show(self, entries: Iterable[AccountEntry]) -> None:
        """List ``entries`` (hidden with fewer than two)."""
        entries = tuple(entries)
        self.display = len(entries) > 1
        if entries == self.entries:
            return
        self.entries = entries
        width = max(8, (self.size.width or 20) - 1)
        highlighted = self.highlighted
        self.set_options(
            Option(account_row(n, e, width), id=e.slot) for n, e in enumerate(entries, 1)
        )
        if highlighted is not None and highlighted < len(entries):
            self.highlighted = highlighted

    def on_resize(self) -> None:
        entries, self.entries = self.entries, ()
        self.show(entries)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.AccountChosen(event.option.id))
