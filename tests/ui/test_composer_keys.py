"""The composer fed the way a terminal feeds it: every key of a burst queued at once.

Pilot's ``press`` waits for each key to be processed; the driver of a real terminal
does not. These tests post the whole burst to the app before any of it is handled.
"""

from __future__ import annotations

from textual import events, on
from textual.app import App, ComposeResult
from textual.widgets import Button

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


class ButtonAndComposerApp(ComposerApp):
    """A button before the composer, recording its presses."""

    def __init__(self) -> None:
        super().__init__()
        self.pressed = 0

    def compose(self) -> ComposeResult:
        yield Button("Go", id="go")
        yield Composer(id="composer")

    @on(Button.Pressed)
    def _pressed(self) -> None:
        self.pressed += 1


async def test_keys_typed_behind_a_tab_that_moves_the_focus_go_where_it_went() -> None:
    """Shift+Tab then Enter in one burst: the app hands Enter to the composer before the
    Shift+Tab is handled; the composer moves the focus and hands Enter on, to the button
    (not sending the draft)."""
    app = ButtonAndComposerApp()
    async with app.run_test() as pilot:
        await _burst(app, "draft")
        app.post_message(events.Key("shift+tab", None))
        app.post_message(events.Key("enter", "\r"))
        for _ in range(50):
            await pilot.pause(0.02)
            if app.pressed or app.sent:
                break
        await pilot.pause(0.1)
        assert (app.pressed, app.sent) == (1, [])
        assert app.query_one(Composer).text == "draft"
        assert app.focused is app.query_one(Button)
