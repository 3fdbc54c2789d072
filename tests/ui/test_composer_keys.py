"""The composer fed the way a terminal feeds it: every key of a burst queued at once.

Pilot's ``press`` waits for each key to be processed; the driver of a real terminal
does not. These tests post the whole burst to the app before any of it is handled.
"""

from __future__ import annotations

from textual import events, on
from textual.app import App, ComposeResult

from tui_client.ui.widgets.composer import Composer


class ComposerApp(App[None]):
    """Just a composer, recording what it submits."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def compose(self) -> ComposeResult:
        yield Composer(id="composer")

    def on_mount(self) -> None:
        self.query_one(Composer).focus()

    @on(Composer.Submitted)
    def _sent(self, event: Composer.Submitted) -> None:
        self.sent.append(event.text)


def _keys(text: str) -> list[events.Key]:
    """The key events a terminal's bytes become (\\r is Enter, \\n is Ctrl+J)."""
    keys = []
    for char in text:
        if char == "\r":
            keys.append(events.Key("enter", "\r"))
        elif char == "\n":
            keys.append(events.Key("ctrl+j", "\n"))
        elif char == " ":
            keys.append(events.Key("space", " "))
        else:
            keys.append(events.Key(char, char))
    return keys


async def _burst(app: ComposerApp, text: str) -> None:
    for key in _keys(text):
        app.post_message(key)


async def test_a_burst_of_lines_is_sent_line_by_line_once_each() -> None:
    lines = [f"burst {n:02d}" for n in range(1, 51)]
    app = ComposerApp()
    async with app.run_test() as pilot:
        await _burst(app, "".join(line + "\r" for line in lines))
        for _ in range(100):
            await pilot.pause(0.02)
            if len(app.sent) >= len(lines):
                break
        await pilot.pause(0.1)
        assert app.sent == lines
        assert app.query_one(Composer).text == ""


async def test_newlines_and_a_half_typed_line_in_a_burst() -> None:
    app = ComposerApp()
    async with app.run_test() as pilot:
        await _burst(app, "first\nsecond\r/me waves\rstill typ")
        for _ in range(50):
            await pilot.pause(0.02)
            if len(app.sent) >= 2:
                break
        await pilot.pause(0.1)
        assert app.sent == ["first\nsecond", "/me waves"]
        assert app.query_one(Composer).text == "still typ"


async def test_restored_text_puts_the_cursor_after_it_and_keeps_a_new_draft() -> None:
    app = ComposerApp()
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.restore("/topic new topic")
        await pilot.press("!")
        assert composer.text == "/topic new topic!"
        composer.clear()
        await pilot.press("h", "i")
        composer.restore("/invite @x:y")
        await pilot.press("!")
        assert composer.text == "/invite @x:y\nhi!"
