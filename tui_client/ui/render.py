"""Timeline items as styled terminal lines.

Every piece of untrusted text reaching here has already been through the
sanitiser (the protocol layer does that); here it only ever goes into
``rich.text.Text`` as plain text, never parsed as markup.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.style import Style
from rich.text import Text

from ..protocol.sanitize import clean_line
from ..protocol.timeline import SendState, TimelineItem

SENDER_COLOURS = (
    "#e06c75",
    "#61afef",
    "#98c379",
    "#c678dd",
    "#e5c07b",
    "#56b6c2",
    "#d19a66",
    "#ff79c6",
)
GROUP_WINDOW_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Palette:
    """Colours the timeline uses, taken from the active Textual theme."""

    foreground: str = "#e0e0e0"
    muted: str = "#8a8a8a"
    accent: str = "#61afef"
    warning: str = "#e5c07b"
    error: str = "#e06c75"
    success: str = "#98c379"
    selection: str = "#2c313a"
    notice: str = "#56b6c2"


def sender_colour(user_id: str) -> str:
    """A stable colour per user (the same user always gets the same colour)."""
    digest = hashlib.blake2s(user_id.encode(), digest_size=2).digest()
    return SENDER_COLOURS[digest[0] % len(SENDER_COLOURS)]


def day_of(ts: int) -> str:
    """A local calendar day label, e.g. ``Friday, 27 November 2026``."""
    return time.strftime("%A, %d %B %Y", time.localtime(ts / 1000)) if ts else "Unknown date"


def clock(ts: int) -> str:
    """Local ``HH:MM``."""
    return time.strftime("%H:%M", time.localtime(ts / 1000)) if ts else "--:--"


def _wrap(text: Text, width: int, console: Console) -> list[Text]:
    if width <= 0:
        return [text]
    lines = text.wrap(console, width, overflow="fold")
    return list(lines) or [Text("")]


def name_column_width(total_width: int) -> int:
    """How wide the sender column is for a given terminal width."""
    if total_width < 50:
        return 8
    if total_width < 80:
        return 12
    return 16


def render_item(
    item: TimelineItem,
    previous: TimelineItem | None,
    name_of: Callable[[str], str],
    width: int,
    console: Console,
    palette: Palette,
    *,
    selected: bool = False,
) -> list[Text]:
    """The lines of one item: day separator, reply quote, body, reactions, thread, status."""
    lines: list[Text] = []
    if previous is None or day_of(previous.ts) != day_of(item.ts):
        label = f" {day_of(item.ts)} "
        rule = max(0, width - len(label))
        lines.append(Text("─" * (rule // 2) + label + "─" * (rule - rule // 2), style=Style(color=palette.muted)))
    name_width = name_column_width(width)
    gutter = 6 + name_width + 1
    body_width = max(10, width - gutter)
    grouped = (
        previous is not None
        and previous.sender == item.sender
        and previous.kind in ("text", "emote", "notice", "media")
        and item.kind in ("text", "notice", "media")
        and item.ts - previous.ts < GROUP_WINDOW_MS
        and day_of(previous.ts) == day_of(item.ts)
        and item.reply is None
    )
    muted = Style(color=palette.muted)
    time_text = Text(clock(item.ts).ljust(6), style=muted)
    if item.kind in ("state", "unknown", "malformed", "encrypted", "redacted") or item.kind == "emote":
        name = Text(" " * name_width + " ")
    elif grouped:
        name = Text(" " * (name_width + 1))
    else:
        display = clean_line(name_of(item.sender))
        if len(display) > name_width:
            display = display[: name_width - 1] + "…"
        name = Text(display.rjust(name_width) + " ", style=Style(color=sender_colour(item.sender), bold=True))
    body = _body(item, name_of, palette)
    wrapped = _wrap(body, body_width, console)
    indent = Text(" " * gutter)
    if item.reply is not None:
        quote_who = clean_line(name_of(item.reply.sender)) if item.reply.sender else "a message"
        quote_body = item.reply.body if item.reply.body is not None else "(not loaded)"
        quote = Text("↳ ", style=muted)
        quote.append(quote_who, style=Style(color=sender_colour(item.reply.sender or ""), italic=True))
        quote.append(": ", style=muted)
        quote.append(quote_body, style=Style(color=palette.muted, italic=True))
        quote.truncate(body_width, overflow="ellipsis")
        lines.append(Text.assemble(time_text if not grouped else Text(" " * 6), name, quote))
        time_text, name = Text(" " * 6), Text(" " * (name_width + 1))
    for index, line in enumerate(wrapped):
        prefix = Text.assemble(time_text, name) if index == 0 else indent.copy()
        lines.append(Text.assemble(prefix, line))
    extras = _extras(item, palette)
    for extra in extras:
        extra.truncate(body_width, overflow="ellipsis")
        lines.append(Text.assemble(indent.copy(), extra))
    if selected:
        for line in lines:
            line.stylize(Style(bgcolor=palette.selection))
            line.pad_right(max(0, width - line.cell_len))
    return lines


def _body(item: TimelineItem, name_of: Callable[[str], str], palette: Palette) -> Text:
    muted = Style(color=palette.muted, italic=True)
    kind = item.kind
    if kind == "state":
        return Text("→ " + item.body, style=muted)
    if kind == "emote":
        text = Text("* ", style=Style(italic=True))
        text.append(clean_line(name_of(item.sender)), style=Style(color=sender_colour(item.sender), italic=True))
        text.append(" " + item.body, style=Style(italic=True))
        return _with_edit_mark(text, item, palette)
    if kind == "notice":
        return _with_edit_mark(Text(item.body, style=Style(color=palette.notice)), item, palette)
    if kind == "media":
        return Text(item.body, style=Style(color=palette.accent))
    if kind == "redacted":
        return Text(f"{clean_line(name_of(item.sender))}: message deleted", style=muted)
    if kind == "encrypted":
        return Text(f"{clean_line(name_of(item.sender))}: 🔒 {item.body}", style=Style(color=palette.warning, italic=True))
    if kind in ("unknown", "malformed"):
        who = clean_line(name_of(item.sender)) if item.sender else "someone"
        return Text(f"{who} {item.body}" if kind == "unknown" else item.body, style=muted)
    return _with_edit_mark(Text(item.body), item, palette)


def _with_edit_mark(text: Text, item: TimelineItem, palette: Palette) -> Text:
    if item.edited:
        text.append(" (edited)", style=Style(color=palette.muted))
    return text


def _extras(item: TimelineItem, palette: Palette) -> list[Text]:
    extras: list[Text] = []
    if item.reactions:
        line = Text()
        for reaction in item.reactions:
            chip = f" {reaction.key} {reaction.count} "
            style = Style(color=palette.accent, bold=True, reverse=True) if reaction.mine else Style(color=palette.foreground, reverse=True, dim=True)
            line.append(chip, style=style)
            line.append(" ")
        extras.append(line)
    if item.thread_count:
        plural = "reply" if item.thread_count == 1 else "replies"
        extras.append(Text(f"💬 {item.thread_count} {plural} in thread", style=Style(color=palette.accent)))
    if item.send_state is SendState.PENDING:
        detail = f" ({item.error})" if item.error else ""
        extras.append(Text(f"⏳ sending…{detail}", style=Style(color=palette.muted, italic=True)))
    elif item.send_state is SendState.FAILED:
        extras.append(
            Text(
                f"✗ not sent: {item.error or 'failed'} — select and press R to retry, X to discard",
                style=Style(color=palette.error),
            )
        )
    elif item.is_local_echo:
        extras.append(Text("✓ sent", style=Style(color=palette.muted, italic=True)))
    return extras
