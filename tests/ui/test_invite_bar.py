"""The invite bar is mounted when an invite is first opened (issue 13: not styled before
the first paint), and then shows, takes its place in the focus order and answers keys as
when it was composed with the screen. At 80x24."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button

from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.composer import Composer

from .fake_world import FakeHomeserver
from .test_snapshots import _settle, wait_for

BOOK = "!bookclub000000000000000000000000000000000006"


async def test_the_invite_bar_is_mounted_when_an_invite_is_first_opened(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None and chat.current_room != BOOK
        # After the first paint, with a joined room open: no invite bar, no Buttons.
        assert not chat.query("#invite-bar") and not chat.query(Button)

        app.open_room(BOOK)
        await wait_for(
            pilot,
            lambda: bool(chat.query("#invite-bar")) and chat.query_one("#invite-bar").display,
            "the invite bar",
        )
        bar = chat.query_one("#invite-bar")
        # The composer is disabled: the focus went to the timeline, as it did before.
        assert app.focused is chat.query_one("#timeline")
        assert bar.region.height == 3 and bar.region.width > 0
        rows = [strip.text for strip in chat._compositor.render_strips()]
        bar_rows = rows[bar.region.y : bar.region.bottom]
        assert "@carol:examp" in bar_rows[0] and "invited you" in bar_rows[2], bar_rows
        assert any("Accept" in row and "Reject" in row for row in bar_rows), bar_rows
        # Where it was composed: between the timeline and the typing line.
        center = [w.id for w in chat.query_one("#center").children]
        assert center.index("invite-bar") == center.index("timeline") + 1
        assert center.index("typing") == center.index("invite-bar") + 1
        assert chat.query_one(Composer).disabled
        # The focus order: the timeline, then Accept and Reject (the composer is disabled).
        chain = [w.id for w in chat.focus_chain]
        assert chain.index("accept-invite") == chain.index("timeline") + 1
        assert chain.index("reject-invite") == chain.index("accept-invite") + 1

        chat.query_one("#timeline").focus()
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "accept-invite"
        await pilot.press("enter")  # Accept: the room is joined, the bar goes away
        await wait_for(pilot, lambda: BOOK in fake_server.joined, "the join")
        await wait_for(
            pilot,
            lambda: (
                not chat.query_one("#invite-bar").display and not chat.query_one(Composer).disabled
            ),
            "the joined room",
        )
        # The focus goes to the composer: left to Textual, the hidden Accept handed it to
        # its hidden sibling, and the next Enter pressed Reject (left the room just joined).
        assert app.focused is chat.query_one(Composer)
        # Opening another room asks for no second bar.
        assert len(chat.query("#invite-bar")) == 1
