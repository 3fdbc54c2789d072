"""Timeline items as styled terminal lines (lists of Rich segments).

Every piece of untrusted text reaching here has already been through the
sanitiser (the protocol layer does that); here it only ever becomes the text of a
``Segment`` with a style we chose, never parsed as markup.

Rendering is on the scroll path, so it avoids Rich's general text layout: a small
greedy word-wrapper by terminal cells builds the segments directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style

from ..engine.devices import UserTrust
from ..protocol.sanitize import clean_line
from ..protocol.timeline import SendState, TimelineItem
from .when import clock_text, day_label, time_width
from .wrap import Line, Span, styled_lines
from .wrap import truncate as _truncate

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
TIME_WIDTH = 6


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


def palette_from(app: object) -> Palette:
    """The timeline's colours from an app's current Textual theme (the defaults without one)."""
    theme = getattr(app, "current_theme", None)
    if theme is None:
        return Palette()

    def colour(value: object, fallback: str) -> str:
        return value if isinstance(value, str) and value.startswith("#") else fallback

    base = Palette()
    return Palette(
        foreground=colour(theme.foreground, base.foreground),
        muted=base.muted,
        accent=colour(theme.accent, base.accent),
        warning=colour(theme.warning, base.warning),
        error=colour(theme.error, base.error),
        success=colour(theme.success, base.success),
        selection=colour(theme.panel, base.selection),
        notice=colour(theme.secondary, base.notice),
    )


_colour_cache: dict[str, str] = {}


def sender_colour(user_id: str) -> str:
    """A stable colour per user (the same user always gets the same colour)."""
    colour = _colour_cache.get(user_id)
    if colour is None:
        digest = hashlib.blake2s(user_id.encode(), digest_size=2).digest()
        colour = _colour_cache[user_id] = SENDER_COLOURS[digest[0] % len(SENDER_COLOURS)]
    return colour


def day_of(ts: int) -> str:
    """A local calendar day label: ``Today``, ``Yesterday`` or e.g. ``Friday, 27 November 2026``
    (the config's date pattern; see ui/when.py)."""
    return day_label(ts)


def clock(ts: int) -> str:
    """Local ``HH:MM``, or ``2:05pm`` in 12-hour style (ui/when.py)."""
    return clock_text(ts)


def name_column_width(total_width: int) -> int:
    """How wide the sender column is for a given terminal width."""
    if total_width < 50:
        return 8
    if total_width < 80:
        return 12
    return 16


def sender_marker(
    item: TimelineItem, trust: UserTrust | None, own_user: str | None = None
) -> str | None:
    """The mark beside an encrypted message's time: ``!`` for a device we cannot vouch for,
    ``?`` for a key from a backup or a file (whose sender cannot be proven), ``✓`` for a
    verified user's verified device, else nothing.

    ``item.trust`` is the verdict when the message was decrypted; ``trust`` (the
    sender's current trust, when known) overrides it for a device verified since.
    """
    if not item.encrypted or item.trust is None:
        return None
    if item.trust == "unauthenticated":
        return "?"
    device_verified = (
        trust is not None
        and item.device_id is not None
        and item.device_id in trust.verified_devices
    )
    if item.trust in ("unverified", "unknown device") and not device_verified:
        return "!"
    if (
        trust is not None
        and trust.verified
        and item.sender != own_user
        and (item.trust == "verified" or device_verified)
    ):
        return "✓"
    return None


def render_item(
    item: TimelineItem,
    previous: TimelineItem | None,
    name_of: Callable[[str], str],
    width: int,
    palette: Palette,
    *,
    selected: bool = False,
    trust: UserTrust | None = None,
    own_user: str | None = None,
    seen_by: Sequence[str] = (),
    first_new: bool = False,
    room_name_of: Callable[[str], str | None] | None = None,
    reveal: bool = False,
    thread_unread: bool = False,
    picture: Sequence[Line] = (),
    bridged: bool = False,
) -> list[Line]:
    """The lines of one item: day separator, "new messages" line, reply quote, body,
    its picture (an image's lines, drawn as given), reactions, thread, status.
    ``bridged`` marks a bridged (puppeted) sender with ``⇄`` before the name."""
    muted = Style(color=palette.muted)
    lines: list[Line] = []
    day = day_of(item.ts)
    if previous is None or day_of(previous.ts) != day:
        lines.append([Segment(_rule(f" {day} ", width), muted)])
    if first_new:
        lines.append(
            [Segment(_rule(" new messages ", width), Style(color=palette.error, bold=True))]
        )
    name_width = name_column_width(width)
    stamp_width = time_width()
    gutter = stamp_width + name_width + 1
    body_width = max(10, width - gutter)
    grouped = (
        previous is not None
        and previous.sender == item.sender
        and previous.kind in ("text", "emote", "notice", "media")
        and item.kind in ("text", "notice", "media")
        and item.ts - previous.ts < GROUP_WINDOW_MS
        and day_of(previous.ts) == day
        and item.reply is None
    )
    blank_name = Segment(" " * (name_width + 1))
    first_prefix: Line
    if item.kind in ("state", "unknown", "malformed", "encrypted", "redacted", "emote") or grouped:
        name = blank_name
    else:
        display = clean_line(name_of(item.sender))
        if bridged:
            display = "⇄ " + display
        if cell_len(display) > name_width:
            display = chop_cells(display, name_width - 1)[0] + "…"
        padding = " " * max(0, name_width - cell_len(display))
        name = Segment(padding + display + " ", Style(color=sender_colour(item.sender), bold=True))
    first_prefix = [Segment(clock(item.ts).ljust(stamp_width), muted), name]
    marker = sender_marker(item, trust, own_user)
    if marker is not None:
        # The last cell of the time column flags a message from a device we cannot vouch
        # for, or from a verified user.
        colour = (
            palette.success
            if marker == "✓"
            else palette.warning
            if marker == "!"
            else palette.muted
        )
        first_prefix[0] = Segment(clock(item.ts).ljust(stamp_width - 1), muted)
        first_prefix.insert(1, Segment(marker, Style(color=colour, bold=True)))
    indent = Segment(" " * gutter)
    if item.reply is not None:
        quoted_sender = item.reply.sender
        who = clean_line(name_of(quoted_sender)) if quoted_sender else "a message"
        quote_spans: list[Span] = [
            ("↳ ", muted),
            (who, Style(color=sender_colour(quoted_sender or ""), italic=True)),
            (": ", muted),
            (
                item.reply.body if item.reply.body is not None else "(not loaded)",
                Style(color=palette.muted, italic=True),
            ),
        ]
        lines.append([*first_prefix, *_truncate(quote_spans, body_width)])
        first_prefix = [Segment(" " * stamp_width), blank_name]
    if item.formatted is not None and item.kind in ("text", "emote", "notice"):
        body_lines = _formatted_body(item, name_of, room_name_of, palette, body_width, reveal)
    else:
        body_lines = styled_lines(_body(item, name_of, palette), body_width)
    for index, body_line in enumerate(body_lines):
        lines.append([*(first_prefix if index == 0 else [indent]), *body_line])
    picture_at = len(lines)
    for extra in _extras(item, palette, name_of if selected else None, thread_unread=thread_unread):
        lines.append([indent, *_truncate(extra, body_width)])
    if seen_by:
        lines.append(
            [
                indent,
                *_truncate(
                    [(seen_text(seen_by), Style(color=palette.muted, italic=True))], body_width
                ),
            ]
        )
    if selected:
        highlight = Style(bgcolor=palette.selection)
        lines = [
            [Segment(s.text, (s.style or Style()) + highlight) for s in line] for line in lines
        ]
    if picture:
        # After the selection's background: a picture's colours are its own.
        lines[picture_at:picture_at] = [[indent, *line] for line in picture]
    return lines


def _rule(label: str, width: int) -> str:
    """``──── label ────`` across ``width`` cells."""
    rule = max(0, width - cell_len(label))
    return "─" * (rule // 2) + label + "─" * (rule - rule // 2)


def reacted_text(item: TimelineItem, name_of: Callable[[str], str], shown: int = 5) -> str:
    """``👍 Bob, Carol · 🎉 Alice and 3 others``: who reacted with what (names cleaned here)."""
    parts = []
    for reaction in item.reactions:
        names = [clean_line(name_of(sender), 40) for sender in reaction.senders[:shown]]
        others = len(reaction.senders) - len(names)
        listed = ", ".join(names) + (
            f" and {others} other" + ("s" if others != 1 else "") if others > 0 else ""
        )
        parts.append(f"{reaction.key} {listed}")
    return " · ".join(parts)


def seen_text(names: Sequence[str], shown: int = 3) -> str:
    """``✓ Seen by Bob, Carol and 2 others`` (names of untrusted origin, cleaned here)."""
    cleaned = [clean_line(name, 40) for name in names]
    if len(cleaned) <= shown:
        listed = (
            cleaned[0] if len(cleaned) == 1 else ", ".join(cleaned[:-1]) + " and " + cleaned[-1]
        )
    else:
        others = len(cleaned) - shown
        listed = ", ".join(cleaned[:shown]) + f" and {others} other" + ("s" if others != 1 else "")
    return f"✓ Seen by {listed}"


def _body(item: TimelineItem, name_of: Callable[[str], str], palette: Palette) -> list[Span]:
    muted_italic = Style(color=palette.muted, italic=True)
    kind = item.kind
    body = item.body.expandtabs(4)
    if kind == "state":
        return [("→ " + body, muted_italic)]
    if kind == "emote":
        spans: list[Span] = [
            ("* ", Style(italic=True)),
            (
                clean_line(name_of(item.sender)),
                Style(color=sender_colour(item.sender), italic=True),
            ),
            (" " + body, Style(italic=True)),
        ]
    elif kind == "notice":
        spans = [(body, Style(color=palette.notice))]
    elif kind == "media":
        return [(body, Style(color=palette.accent))]
    elif kind == "redacted":
        return [(f"{clean_line(name_of(item.sender))}: message deleted", muted_italic)]
    elif kind == "encrypted":
        return [
            (
                f"{clean_line(name_of(item.sender))}: 🔒 {body}",
                Style(color=palette.warning, italic=True),
            )
        ]
    elif kind in ("unknown", "malformed"):
        who = clean_line(name_of(item.sender)) if item.sender else "someone"
        return [(f"{who} {body}" if kind == "unknown" else body, muted_italic)]
    else:
        spans = [(body, Style())]
    if item.edited:
        spans.append((" (edited)", Style(color=palette.muted)))
    if item.send_state is SendState.PENDING:
        spans.append(("  ⏳", Style(color=palette.muted)))
    return spans


def _formatted_body(
    item: TimelineItem,
    name_of: Callable[[str], str],
    room_name_of: Callable[[str], str | None] | None,
    palette: Palette,
    width: int,
    reveal: bool,
) -> list[Line]:
    """An HTML message's document, with the same lead and tail as its plain text."""
    assert item.formatted is not None
    from .formatted import Look, render_document  # with the first formatted body (issue 13)

    look = Look(
        foreground=palette.foreground,
        muted=palette.muted,
        accent=palette.accent,
        notice=palette.notice,
        code=palette.warning,
        name_of=name_of,
        room_name_of=room_name_of or (lambda _target: None),
        reveal=reveal,
    )
    lead: list[Span] = []
    if item.kind == "emote":
        lead = [
            ("* ", Style(italic=True)),
            (
                clean_line(name_of(item.sender)),
                Style(color=sender_colour(item.sender), italic=True),
            ),
            (" ", Style()),
        ]
    tail: list[Span] = []
    if item.edited:
        tail.append((" (edited)", Style(color=palette.muted)))
    if item.send_state is SendState.PENDING:
        tail.append(("  ⏳", Style(color=palette.muted)))
    base = Style(color=palette.notice) if item.kind == "notice" else None
    return render_document(item.formatted, width, look, base=base, lead=lead, tail=tail)


def _extras(
    item: TimelineItem,
    palette: Palette,
    reactors: Callable[[str], str] | None = None,
    *,
    thread_unread: bool = False,
) -> list[list[Span]]:
    extras: list[list[Span]] = []
    if item.reactions:
        chips: list[Span] = []
        for reaction in item.reactions:
            style = (
                Style(color=palette.accent, bold=True, reverse=True)
                if reaction.mine
                else Style(color=palette.foreground, reverse=True, dim=True)
            )
            chips.append((f" {reaction.key} {reaction.count} ", style))
            chips.append((" ", Style()))
        extras.append(chips)
        if reactors is not None:  # the selected message says who reacted
            extras.append([(reacted_text(item, reactors), Style(color=palette.muted, italic=True))])
    if item.thread_count:
        plural = "reply" if item.thread_count == 1 else "replies"
        thread: list[Span] = [
            (f"💬 {item.thread_count} {plural} in thread", Style(color=palette.accent))
        ]
        if thread_unread:
            thread.append(("  ● unread", Style(color=palette.accent, bold=True)))
        extras.append(thread)
    if item.send_state is SendState.PENDING and item.error:
        extras.append([(f"sending… ({item.error})", Style(color=palette.muted, italic=True))])
    elif item.send_state is SendState.FAILED:
        extras.append(
            [
                (
                    f"✗ not sent: {item.error or 'failed'} — select it and press R to retry, X to discard",
                    Style(color=palette.error),
                )
            ]
        )
    return extras
