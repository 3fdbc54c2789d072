"""Times and day separators in the timeline: 12/24 hours, date patterns, Today/Yesterday."""

from __future__ import annotations

import dataclasses
import locale
import time
from collections.abc import Iterator

import pytest

from tui_client.protocol.timeline import TimelineItem
from tui_client.ui.render import Palette, render_item
from tui_client.ui.when import TimeStyle, day_label, locale_uses_12_hours, set_time_style


@pytest.fixture(autouse=True)
def _default_style() -> Iterator[None]:
    yield
    set_time_style(TimeStyle())


def _ms(*moment: int) -> int:
    """Local time (year, month, day, hour, minute) in milliseconds."""
    return int(time.mktime((*moment, 0, 0, 0, -1)) * 1000)


def _item(ts: int, key: str = "$e", sender: str = "@bob:x") -> TimelineItem:
    return TimelineItem(
        key=key,
        event_id=key,
        txn_id=None,
        sender=sender,
        ts=ts,
        kind="text",
        body="hello",
        event_type="m.room.message",
    )


def _text(lines: list) -> list[str]:
    return ["".join(segment.text for segment in line) for line in lines]


def test_24_hours_by_default_and_12_hours_when_chosen() -> None:
    afternoon = _item(_ms(2026, 11, 27, 14, 5))
    lines = _text(render_item(afternoon, None, lambda u: "Bob", 80, Palette()))
    assert lines[0].strip("─ ") == "Friday, 27 November 2026"
    assert lines[1].startswith("14:05 ") and "Bob hello" in lines[1]
    set_time_style(TimeStyle(twelve_hour=True))
    lines = _text(render_item(afternoon, None, lambda u: "Bob", 80, Palette()))
    assert lines[1].startswith(" 2:05pm ") and "Bob hello" in lines[1]
    midnight = _text(
        render_item(_item(_ms(2026, 11, 27, 0, 7)), None, lambda u: "Bob", 80, Palette())
    )
    noon = _text(
        render_item(_item(_ms(2026, 11, 27, 12, 30)), None, lambda u: "Bob", 80, Palette())
    )
    assert midnight[1].startswith("12:07am ") and noon[1].startswith("12:30pm ")
    # The body column starts at the same cell for a one- and a two-digit hour.
    assert lines[1].index("hello") == noon[1].index("hello")


def test_12_hour_column_keeps_the_trust_mark() -> None:
    set_time_style(TimeStyle(twelve_hour=True))
    item = _item(_ms(2026, 11, 27, 9, 41))
    item = dataclasses.replace(item, encrypted=True, trust="unverified", device_id="D")
    line = _text(render_item(item, None, lambda u: "Bob", 80, Palette()))[1]
    assert line.startswith(" 9:41am!")


def test_today_and_yesterday_separators_in_the_timeline() -> None:
    now = time.time()
    today = time.localtime(now)
    today_ms = _ms(today.tm_year, today.tm_mon, today.tm_mday, 0, 1)
    yesterday_ms = today_ms - 2 * 60_000 - 3_600_000  # 22:59 the day before
    older_ms = today_ms - 3 * 86_400_000
    first = _item(older_ms, "$a")
    second = _item(yesterday_ms, "$b", "@carol:x")
    third = _item(today_ms, "$c")
    separators = []
    for previous, item in ((None, first), (first, second), (second, third)):
        lines = _text(render_item(item, previous, lambda u: u, 80, Palette()))
        separators.append(lines[0].strip("─ "))
    assert separators[1:] == ["Yesterday", "Today"]
    assert separators[0] == time.strftime("%A, %d %B %Y", time.localtime(older_ms / 1000))
    set_time_style(TimeStyle(relative_days=False, date_format="%Y-%m-%d"))
    assert day_label(today_ms) == time.strftime("%Y-%m-%d", today)


def test_style_from_settings_and_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TimeStyle.from_settings("12h", "%d", True).twelve_hour
    assert not TimeStyle.from_settings("24h", "%d", True).twelve_hour
    previous = locale.setlocale(locale.LC_TIME)
    try:
        locale.setlocale(locale.LC_TIME, "C")
        assert not locale_uses_12_hours()
        assert not TimeStyle.from_settings("locale", "%d", True).twelve_hour
        # en_US's T_FMT (the machine has no such locale installed).
        monkeypatch.setattr(
            locale, "nl_langinfo", lambda item: "%r" if item == locale.T_FMT else ""
        )
        assert locale_uses_12_hours()
        assert TimeStyle.from_settings("locale", "%d", True).twelve_hour
        assert not TimeStyle.from_settings("24h", "%d", True).twelve_hour
    finally:
        locale.setlocale(locale.LC_TIME, previous)
