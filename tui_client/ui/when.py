"""How times and days are written in the timeline: 12 or 24 hours, the date pattern,
"Today" and "Yesterday".

One style for the process, set from the config when the app starts (the timeline's
render functions are module-level and cached per event, so they read it from here).
"""

from __future__ import annotations

import locale
import time
from dataclasses import dataclass

__all__ = [
    "TimeStyle",
    "clock_text",
    "day_label",
    "locale_uses_12_hours",
    "set_time_style",
    "time_style",
    "time_width",
]

DEFAULT_DATE_FORMAT = "%A, %d %B %Y"


@dataclass(frozen=True, slots=True)
class TimeStyle:
    """How times and day separators are written."""

    twelve_hour: bool = False
    date_format: str = DEFAULT_DATE_FORMAT
    relative_days: bool = True

    @classmethod
    def from_settings(cls, time_format: str, date_format: str, relative_days: bool) -> TimeStyle:
        """From the config's values (``time_format``: ``"24h"``, ``"12h"`` or ``"locale"``)."""
        twelve = time_format == "12h" or (time_format == "locale" and locale_uses_12_hours())
        return cls(twelve_hour=twelve, date_format=date_format, relative_days=relative_days)


_style = TimeStyle()


def set_time_style(style: TimeStyle) -> None:
    """Use ``style`` from now on (lines rendered before keep theirs until redrawn)."""
    global _style
    _style = style


def time_style() -> TimeStyle:
    """The style in force."""
    return _style


def locale_uses_12_hours() -> bool:
    """True if LC_TIME's time format is a 12-hour one (``%I``, ``%l`` or ``%r``).

    Reads the locale the process set (``locale.setlocale(LC_TIME, "")`` at start); the
    C locale is 24-hour.
    """
    try:
        pattern = locale.nl_langinfo(locale.T_FMT)
    except (AttributeError, ValueError):
        return False
    return any(code in pattern for code in ("%I", "%l", "%r"))


def time_width() -> int:
    """Cells of the timeline's time column, its trailing space included."""
    return 8 if _style.twelve_hour else 6


def clock_text(ts: int) -> str:
    """``14:05``, or ``2:05pm`` right-aligned in 12-hour style; ``--:--`` without a time."""
    if not ts:
        return "--:--".rjust(time_width() - 1)
    moment = time.localtime(ts / 1000)
    if not _style.twelve_hour:
        return time.strftime("%H:%M", moment)
    hour = moment.tm_hour % 12 or 12
    suffix = "am" if moment.tm_hour < 12 else "pm"
    return f"{hour}:{moment.tm_min:02d}{suffix}".rjust(time_width() - 1)


def day_label(ts: int, now: float | None = None) -> str:
    """The day separator's text: ``Today``, ``Yesterday`` or the date in the style's pattern."""
    if not ts:
        return "Unknown date"
    moment = time.localtime(ts / 1000)
    if _style.relative_days:
        today = time.localtime(time.time() if now is None else now)
        day = (moment.tm_year, moment.tm_yday)
        if day == (today.tm_year, today.tm_yday):
            return "Today"
        # Noon today minus a day is yesterday, whatever a daylight-saving change did.
        noon = time.mktime((today.tm_year, today.tm_mon, today.tm_mday, 12, 0, 0, 0, 0, -1))
        yesterday = time.localtime(noon - 86400)
        if day == (yesterday.tm_year, yesterday.tm_yday):
            return "Yesterday"
    return time.strftime(_style.date_format, moment)
