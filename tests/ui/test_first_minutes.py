"""Small things a new user meets in the first minutes, checked on the rendered screen:
state lines that name rooms, the quit key in the footer, the Ctrl+C toast, and
start-up warnings said once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import keyring
import pytest
from keyring.backends import fail
from textual.pilot import Pilot
from textual.widgets._toast import Toast

from tui_client.store.cache import StoredEvent
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.recovery import EncryptionHealthScreen
from tui_client.ui.widgets.status_bar import StatusBar
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import GENERAL_ID, PROJECT_SPACE, FakeHomeserver, make_profile
from .test_snapshots import _settle, wait_for

SMALL = (80, 24)


def _app(base_dir: Path, server: FakeHomeserver) -> TuiClientApp:
    return TuiClientApp(base_dir=base_dir, transport=server.transport())


def screen_lines(pilot: Pilot[None]) -> list[str]:
    """The text of every row on the terminal, as drawn (toasts and dialogs included)."""
    return [
        "".join(segment.text for segment in strip)
        for strip in pilot.app.screen._compositor.render_strips()
    ]


def timeline_lines(timeline: TimelineView) -> list[str]:
    return [
        "".join(segment.text for segment in timeline.render_line(y))
        for y in range(timeline.size.height)
    ]


async def test_state_lines_name_the_rooms_they_point_at(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        app.open_room(GENERAL_ID)
        await _settle(pilot, GENERAL_ID)
        assert chat.view is not None
        events = [
            {
                "event_id": "$parent",
                "type": "m.space.parent",
                "state_key": PROJECT_SPACE,
                "sender": "@alice:example.org",
                "origin_server_ts": 1795779999000,
                "content": {"via": ["example.org"], "canonical": True},
            },
            {
                "event_id": "$elsewhere",
                "type": "m.space.parent",
                "state_key": "!notjoined:example.org",
                "sender": "@alice:example.org",
                "origin_server_ts": 1795779999001,
                "content": {"via": ["example.org"]},
            },
        ]
        chat.view.on_sync_events([StoredEvent(10_000 + i, event) for i, event in enumerate(events)])
        timeline = chat.query_one(TimelineView)
        await wait_for(
            pilot,
            lambda: any(i.event_id == "$elsewhere" for i in timeline.items),
            "the state events",
        )
        shown = "\n".join(timeline_lines(timeline))
        assert "Alice set the parent space to Project Space" in shown
        assert PROJECT_SPACE not in shown
        # A room this client does not know is named by its ID.
        bodies = {item.event_id: item.body for item in timeline.items}
        assert bodies["$elsewhere"] == "Alice set the parent space to !notjoined:example.org"


async def test_the_quit_key_is_in_the_footer_at_80x24(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SMALL) as pilot:
        await _settle(pilot)
        assert "^q Quit" in screen_lines(pilot)[-1]  # the composer focused
        await pilot.press("shift+tab")  # the timeline, with its own keys in the footer
        await pilot.pause(0.2)
        assert "^q Quit" in screen_lines(pilot)[-1]
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert not app.is_running


def toast_texts(pilot: Pilot[None]) -> list[str]:
    """Each toast on screen as the words drawn in its region."""
    lines = screen_lines(pilot)
    texts = []
    for toast in pilot.app.screen.query(Toast):
        region = toast.region
        rows = [lines[y][region.x : region.right] for y in range(region.y, region.bottom)]
        texts.append(" ".join(" ".join(rows).replace("▌", " ").split()))
    return texts


async def test_ctrl_c_says_how_to_quit_in_full_at_80x24(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await _settle(pilot)
        await pilot.press("shift+tab", "ctrl+c")  # nothing selected: nothing to copy
        await wait_for(pilot, lambda: bool(toast_texts(pilot)), "the toast")
        (text,) = toast_texts(pilot)
        assert "Do you want to quit?" in text
        assert "Press Ctrl+Q to quit. (Ctrl+C copies selected text.)" in text


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No system keyring (a headless machine): secrets go to a 0600 file, with a warning."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


class NoBackupServer(FakeHomeserver):
    """The fake homeserver of an account that has no key backup."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/room_keys/version"):
            self.requests.append(request)
            return httpx.Response(
                404, json={"errcode": "M_NOT_FOUND", "error": "No current backup version"}
            )
        return await super().handle(request)


async def _started(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, TuiClientApp)
    await wait_for(
        pilot, lambda: app.is_connected and app.chat_screen is not None, "the chat screen"
    )


def _status(app: TuiClientApp) -> str:
    assert app.chat_screen is not None
    return app.chat_screen.query_one(StatusBar).message


async def test_start_up_warnings_are_said_once_then_kept_in_f7_and_the_status_line(
    tmp_path: Path, no_keyring: None
) -> None:
    make_profile(tmp_path)
    keyring_said = "No system keyring"
    backup_said = "not backed up"

    first = _app(tmp_path, NoBackupServer())
    async with first.run_test(size=SMALL, notifications=True) as pilot:
        await _started(pilot)
        await wait_for(
            pilot,
            lambda: any(backup_said in t for t in toast_texts(pilot)),
            "the warnings as toasts",
        )
        assert any(keyring_said in text for text in toast_texts(pilot))

    second = _app(tmp_path, NoBackupServer())
    async with second.run_test(size=SMALL, notifications=True) as pilot:
        await _started(pilot)
        # The backup check that said it the first time has run again by now.
        await wait_for(
            pilot, lambda: backup_said in _status(second), "the reminder in the status line"
        )
        # The status line names the sync source now (" · sync v2"): at 80 columns the reminder is cut.
        assert "│  F7: Your encrypted messages" in screen_lines(pilot)[-2]
        assert not [
            n
            for n in second._notifications
            if keyring_said in n.message or backup_said in n.message
        ]
        assert not toast_texts(pilot)
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(second.screen, EncryptionHealthScreen), "F7")
        health = second.screen
        assert isinstance(health, EncryptionHealthScreen)
        await wait_for(
            pilot, lambda: keyring_said in "\n".join(screen_lines(pilot)), "the keyring line in F7"
        )
        shown = " ".join("\n".join(screen_lines(pilot)).split())
        assert "readable only by you (mode 0600)" in shown
        assert "no key backup" in shown
