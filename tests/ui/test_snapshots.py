"""SVG snapshots of the main screens at a fixed size, from a deterministic account.

Run ``pytest tests/ui --snapshot-update`` after an intended visual change; set
``TUI_CLIENT_UPDATE_SCREENSHOTS=1`` to refresh the README's screenshots too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from tui_client.store.cache import IngestResult
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.help import HelpScreen
from tui_client.ui.screens.login import LoginScreen
from tui_client.ui.screens.switcher import RoomSwitcher
from tui_client.ui.screens.threads import ThreadListScreen, ThreadPanel
from tui_client.ui.widgets.member_list import MemberList
from tui_client.ui.widgets.timeline import TimelineView

from .conftest import save_screenshot
from .fake_world import FakeHomeserver

SIZE = (120, 36)
GENERAL = "!general0000000000000000000000000000000000001"


def _app(base_dir: Path, server: FakeHomeserver) -> TuiClientApp:
    return TuiClientApp(base_dir=base_dir, transport=server.transport())


def freeze_cursors(app: App[None]) -> None:
    """A blinking cursor would make snapshots differ by when they were taken."""
    for screen in app.screen_stack:
        for widget in screen.query("*"):
            if hasattr(widget, "cursor_blink"):
                widget.cursor_blink = False  # type: ignore[attr-defined]


async def wait_for(
    pilot: Pilot[None], predicate: Callable[[], bool], what: str, timeout: float = 20.0
) -> None:
    """Wait until ``predicate()`` holds and the app's workers are idle; fail if it never does."""
    app = pilot.app
    for _ in range(int(timeout / 0.05)):
        await pilot.pause(0.05)
        if predicate() and not any(worker.is_running for worker in app.workers):
            freeze_cursors(app)
            await pilot.pause(0.1)
            if predicate():
                return
    raise AssertionError(f"timed out waiting for {what}")


async def _settle(pilot: Pilot[None], room: str | None = None) -> None:
    """Wait until the chat screen shows ``room`` (or any room), synced, and drop toasts."""
    app = pilot.app
    assert isinstance(app, TuiClientApp)

    def ready() -> bool:
        chat = app.chat_screen
        return (
            app.is_connected
            and chat is not None
            and chat.view is not None
            and (room is None or chat.current_room == room)
            and bool(chat.query_one(TimelineView).items)
        )

    await wait_for(pilot, ready, f"the room {room or 'list'} to be shown")
    app.clear_notifications()
    await pilot.pause(0.1)


async def show_general(pilot: Pilot[None]) -> None:
    """Settle on General, the room most snapshots show, with Bob's DM (the room shown
    first) left unread. A room in front with the terminal's focus for READ_DELAY (a second)
    is marked read, and a busy machine takes that long to settle: Bob's unread count went
    missing from the snapshots. So the terminal has no focus until General is asked for.
    (Giving it back once General is in front moved the room list's cursor to General when
    the blur had caught the room list focused: the snapshots have it on Bob's DM.)"""
    app = pilot.app
    assert isinstance(app, TuiClientApp)
    app.app_focus = False
    await _settle(pilot)
    app.open_room(GENERAL)
    app.app_focus = True
    await _settle(pilot, GENERAL)


def test_chat_screen(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """The chat screen on the busiest room: replies, edits, reactions, threads, a deletion."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await show_general(pilot)
        save_screenshot("chat", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_room_switcher(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """Ctrl+K: the fuzzy room switcher, filtered."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        await pilot.press("ctrl+k", "s", "e")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, RoomSwitcher) and app.screen.query_one(Input).value == "se"
            ),
            "the switcher",
        )
        save_screenshot("switcher", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_members_and_invite(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """An invite with accept/reject, and the member list (F2) of the group room."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await show_general(pilot)
        await pilot.press("f2")
        members = app.screen.query_one(MemberList)
        await wait_for(
            pilot, lambda: bool(members.display) and members.option_count >= 6, "the member list"
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """F1: keys and commands."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        save_screenshot("help", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_login_screen(snap_compare, tmp_path: Path, memory_keyring: None) -> None:
    """The login screen of a fresh install."""
    app = TuiClientApp(base_dir=tmp_path, transport=FakeHomeserver().transport())

    async def run_before(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
        save_screenshot("login", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def _open_thread(pilot: Pilot[None], app: TuiClientApp) -> ThreadPanel:
    """General's thread (ideas for the next sprint) opened with t on its root."""
    await show_general(pilot)
    timeline = app.screen.query_one("#timeline", TimelineView)
    root = next(item.event_id for item in timeline.items if item.thread_count)
    assert root is not None and timeline.select_event(root)
    timeline.focus()
    await pilot.press("t")
    await wait_for(pilot, lambda: bool(app.screen.query(ThreadPanel)), "the thread panel")
    panel = app.screen.query_one(ThreadPanel)
    thread = panel.query_one("#thread-timeline", TimelineView)
    await wait_for(pilot, lambda: len(thread.items) == 4, "the thread's messages")
    return panel


def test_thread_panel(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """t on a message with replies: the thread beside the timeline, its own composer."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await _open_thread(pilot, app)
        save_screenshot("thread", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_thread_list(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """Ctrl+T: the room's threads with their latest reply and count, one unread."""
    app = _app(fake_profile, fake_server)

    async def run_before(pilot: Pilot[None]) -> None:
        await show_general(pilot)
        await pilot.press("ctrl+t")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ThreadListScreen) and bool(app.screen.threads),
            "the thread list",
        )
        listing = app.screen
        assert isinstance(listing, ThreadListScreen) and app.client is not None
        # As sync says of a thread with replies we have not read (unread_thread_notifications).
        root = listing.threads[0].root_id
        app.client.threads.on_commit(IngestResult("s2", thread_counts={GENERAL: {root: (2, 0)}}))
        await wait_for(
            pilot,
            lambda: "●" in str(listing.query_one(OptionList).get_option_at_index(0).prompt),
            "the unread mark",
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
