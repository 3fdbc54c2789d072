"""Hostile formatted messages rendered to timeline lines: bounded, quick, nothing unsafe on screen."""

from __future__ import annotations

import time

import pytest

from tests.unit.test_html import HOSTILE
from tui_client.protocol.render import message_body
from tui_client.protocol.sanitize import is_clean
from tui_client.protocol.timeline import TimelineItem
from tui_client.ui.render import Palette, render_item


def _item(html: str) -> TimelineItem:
    rendered = message_body(
        {
            "msgtype": "m.text",
            "body": "fallback",
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        }
    )
    return TimelineItem(
        "$e", "$e", None, "@bob:x", 1_700_000_000_000, rendered.kind, rendered.body, "m.room.message",
        formatted=rendered.formatted,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("width", [30, 120])
def test_hostile_html_renders_bounded_and_clean(name: str, width: int) -> None:
    item = _item(HOSTILE[name])
    began = time.perf_counter()
    lines = render_item(
        item,
        None,
        lambda user: "\u202eevil\x1b[2J name",
        width,
        Palette(),
        room_name_of=lambda t: "\x1b]0;x\x07room",
    )
    elapsed = time.perf_counter() - began
    assert elapsed < 5.0, elapsed
    # a 100 kB message wraps to many lines, but never more than its characters
    assert len(lines) <= 110_000 // max(1, width - 30) + 50
    for line in lines:
        for segment in line:
            assert is_clean(segment.text), repr(segment.text[:80])
            link = segment.style.link if segment.style is not None else None
            assert link is None or (
                is_clean(link) and link.startswith(("https://", "http://", "mailto:", "matrix:"))
            )


def test_pill_names_from_the_room_are_cleaned() -> None:
    item = _item(
        '<a href="https://matrix.to/#/@m:x">m</a> <a href="https://matrix.to/#/#r:x">r</a>'
    )
    lines = render_item(
        item,
        None,
        lambda user: "\u202eecila\x1b[31m",
        100,
        Palette(),
        room_name_of=lambda t: "Room\u2066\x07",
    )
    text = "".join(segment.text for line in lines for segment in line)
    assert "@ecila" in text and "#Room" in text
    assert is_clean(text)
