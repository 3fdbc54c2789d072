"""/html with nothing the spec allows is refused on screen, and the line is given back."""

from __future__ import annotations

from pathlib import Path

from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.composer import Composer

from .fake_world import FakeHomeserver
from .test_snapshots import wait_for


async def test_html_with_no_allowed_text_is_refused_and_kept(fake_profile: Path) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        composer = app.screen.query_one(Composer)
        composer.focus()
        line = "/html <script>alert(1)</script><style>p{}</style>"
        composer.text = line
        composer.move_cursor(composer.document.end)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any("nothing to send" in n.message for n in app._notifications),
            "the refusal",
        )
        await wait_for(pilot, lambda: composer.text == line, "the line given back")
