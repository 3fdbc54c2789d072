"""A change of some users' trust redraws only their encrypted messages (the mark beside
the time), not every line of the timeline: trust is computed as senders are first drawn,
so during a first sync trust updates come one after another (issue 13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult

from tui_client.engine.devices import IdentityState, UserTrust
from tui_client.engine.updates import TrustChanged
from tui_client.protocol.timeline import TimelineItem
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.timeline import TimelineView

from ..support.waiting import ui_caught_up
from .fake_world import FakeHomeserver
from .test_snapshots import wait_for

BOB = "@bob:example.org"
CAROL = "@carol:example.org"


def _item(n: int, sender: str, *, encrypted: bool = True) -> TimelineItem:
    return TimelineItem(
        f"$e{n}",
        f"$e{n}",
        None,
        sender,
        1_795_000_000_000 + n * 60_000,
        "text",
        f"message number {n}",
        "m.room.message",
        encrypted=encrypted,
        trust="verified" if encrypted else None,
        device_id="DEVICE" if encrypted else None,
    )


class _Room(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelineView()


def _counting(timeline: TimelineView) -> list[str]:
    """The keys of the messages drawn from now on."""
    drawn: list[str] = []
    render = timeline._render_lines

    def counting(item: TimelineItem, *args: Any) -> Any:
        drawn.append(item.key)
        return render(item, *args)

    timeline._render_lines = counting  # type: ignore[method-assign,assignment]
    return drawn


def _line_of(timeline: TimelineView, body: str) -> str:
    lines = [timeline.render_line(y).text for y in range(timeline.size.height)]
    return next(line for line in lines if body in line)


async def test_only_the_messages_of_users_whose_trust_changed_are_redrawn() -> None:
    known: dict[str, UserTrust] = {}
    async with _Room().run_test(size=(80, 24)) as pilot:
        timeline = pilot.app.query_one(TimelineView)
        timeline.trust_of = known.get
        timeline.set_items(
            [_item(1, BOB), _item(2, CAROL), _item(3, BOB, encrypted=False), _item(4, BOB)]
        )
        await pilot.pause()
        assert "✓" not in _line_of(timeline, "message number 1")
        drawn = _counting(timeline)

        known[BOB] = UserTrust(
            BOB,
            IdentityState.VERIFIED,
            devices=frozenset({"DEVICE"}),
            verified_devices=frozenset({"DEVICE"}),
        )
        timeline.refresh_trust(frozenset({BOB}))
        await pilot.pause()
        # Bob's encrypted messages, not Carol's nor Bob's unencrypted one.
        assert sorted(drawn) == ["$e1", "$e4"]
        assert "✓" in _line_of(timeline, "message number 1")
        assert "✓" in _line_of(timeline, "message number 4")
        assert "✓" not in _line_of(timeline, "message number 2")

        drawn.clear()
        timeline.refresh_trust(frozenset({"@dave:example.org"}))  # not in this room
        await pilot.pause()
        assert drawn == []


async def test_the_app_redraws_no_message_for_the_trust_of_someone_not_in_the_room(
    fake_profile: Path,
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot,
            lambda: (
                app.chat_screen is not None and bool(app.chat_screen.query_one(TimelineView).items)
            ),
            "a room's timeline",
        )
        chat = app.chat_screen
        assert chat is not None
        timeline = chat.query_one(TimelineView)
        drawn = _counting(timeline)
        chat.client.publish(TrustChanged(frozenset({"@stranger:example.org"})))
        await ui_caught_up(app)
        await pilot.pause()
        assert drawn == []  # (every message was drawn again)
