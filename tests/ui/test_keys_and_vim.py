"""Key bindings from the config file and the vim mode, on the real app (fake homeserver)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tui_client.ui.app import TuiClientApp
from tui_client.ui.keymap import resolve
from tui_client.ui.screens.command_line import CommandLine
from tui_client.ui.screens.help import HelpScreen
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.status_bar import StatusBar
from tui_client.ui.widgets.timeline import TimelineView

from .conftest import save_screenshot
from .fake_world import FakeHomeserver
from .test_first_minutes import screen_lines, toast_texts
from .test_snapshots import GENERAL, _settle, wait_for


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("TUI_CLIENT_CONFIG", str(path))


def _app(base_dir: Path, server: FakeHomeserver) -> TuiClientApp:
    return TuiClientApp(base_dir=base_dir, transport=server.transport())


async def _ready(pilot: Pilot[None]) -> TuiClientApp:
    await _settle(pilot)
    app = pilot.app
    assert isinstance(app, TuiClientApp)
    return app


def test_resolve_reports_unknown_actions_and_conflicts() -> None:
    settings = resolve(
        {
            "timeline": {"reply": "e", "frobnicate": "z"},
            "global": {"ctrl+g": "switch_room"},
            "nowhere": {"x": "y"},
            "composer": {"send": "ctrl+s"},
        }
    )
    assert settings.keymap["timeline.reply"] == "e"
    assert settings.keymap["global.switch_room"] == "ctrl+g"  # "key" = "action" works too
    assert settings.composer_keys()["ctrl+s"] == "send"
    assert "enter" not in settings.composer_keys()
    problems = "\n".join(settings.problems)
    assert "keys.timeline.frobnicate: unknown action" in problems
    assert "keys.nowhere: unknown context" in problems
    assert "key conflict: e is bound to timeline.edit and timeline.reply" in problems
    # The same key on two screens that are never in force together is no conflict.
    assert resolve({"dialogs": {"close": "escape"}}).problems == []


async def test_a_rebound_key_shows_in_help_and_footer_and_works(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, '[keys.timeline]\nreply = "y"\n\n[keys.global]\nhelp = "f12"\n')
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        timeline = app.screen.query_one(TimelineView)
        timeline.focus()
        await pilot.press("up")  # select the newest message
        await pilot.pause(0.2)
        footer = screen_lines(pilot)[-1]
        assert "y Reply" in footer and "r Reply" not in footer
        assert "f12 Help" in footer
        await pilot.press("r")  # the old key does nothing now
        await pilot.pause(0.2)
        assert not app.screen.query_one("#mode-banner").display
        await pilot.press("y")
        await wait_for(
            pilot, lambda: app.screen.query_one("#mode-banner").display, "the reply banner"
        )
        assert "Replying to" in " ".join(screen_lines(pilot))
        await pilot.press("f1")  # F1 is no longer the help key
        await pilot.pause(0.2)
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f12")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        help_text = str(app.screen.query_one("#help-text", Static).render())
        reply_line = next(line for line in help_text.splitlines() if " reply " in line)
        assert reply_line.split()[0] == "y", reply_line
        help_line = next(line for line in help_text.splitlines() if " help " in line)
        assert help_line.split()[0] == "f12", help_line


async def test_conflicts_and_unknown_actions_are_named_in_a_toast(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, '[keys.timeline]\nreply = "d"\nfly = "f"\n')
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await wait_for(pilot, lambda: bool(toast_texts(pilot)), "a toast")
        toasts = " ".join(toast_texts(pilot))
        assert "keys.timeline.fly: unknown action 'fly' in timeline" in toasts
        assert "key conflict: d is bound to timeline.delete and timeline.reply" in toasts


async def test_vim_mode_in_the_composer_type_esc_dd_u_send(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "[keys]\nvim = true\n")
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        composer = app.screen.query_one(Composer)
        status = app.screen.query_one(StatusBar)
        assert composer.has_focus
        assert status.vim_mode == "INSERT"
        assert screen_lines(pilot)[-2].startswith(" INSERT ")
        await pilot.press(*"hello vim world")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert status.vim_mode == "NORMAL"
        assert screen_lines(pilot)[-2].startswith(" NORMAL ")
        await pilot.press("b", "d", "w")  # hello vim |world -> hello vim
        assert composer.text == "hello vim "
        await pilot.press("d", "d")
        assert composer.text == ""
        await pilot.press("u")
        assert composer.text == "hello vim "
        await pilot.press("u")
        assert composer.text == "hello vim world"
        await pilot.press("0", "w", "c", "i", "w", *"there", "escape")
        assert composer.text == "hello there world"
        assert not fake_server.sent  # nothing sent by the keys of normal mode
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(fake_server.sent), "the message sent")
        assert fake_server.sent[-1]["body"] == "hello there world"
        assert composer.text == ""


async def test_vim_dot_repeat_and_visual_mode_in_the_composer(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "[keys]\nvim = true\n")
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        composer = app.screen.query_one(Composer)
        status = app.screen.query_one(StatusBar)
        await pilot.press(*"one two three four", "escape", "0")
        # . repeats dw, then a count replaces its own.
        await pilot.press("d", "w", ".")
        assert composer.text == "three four"
        await pilot.press("u")
        assert composer.text == "two three four"
        # . repeats a change with what insert mode typed.
        await pilot.press("c", "w", *"2", "escape", "w", ".")
        assert composer.text == "2 2 four"
        # v: a character selection, shown in the composer and the status line.
        await pilot.press("0", "v", "l", "l")
        await pilot.pause(0.1)
        assert status.vim_mode == "VISUAL"
        assert screen_lines(pilot)[-2].startswith(" VISUAL ")
        assert composer.selected_text == "2 2"
        await pilot.press("y", "$", "p")
        assert status.vim_mode == "NORMAL" and composer.text == "2 2 four2 2"
        await pilot.press("0", "v", "e", "c", *"two", "escape")
        assert composer.text == "two four2 2"  # e went on to the next word's end
        # V: whole lines; d takes them, . takes as many again.
        await pilot.press(
            "o", *"line b", "escape", "o", *"line c", "escape", "o", *"line d", "escape"
        )
        assert composer.text == "two four2 2\nline b\nline c\nline d"
        await pilot.press("g", "g", "j", "V")
        await pilot.pause(0.1)
        assert status.vim_mode == "VISUAL LINE"
        assert screen_lines(pilot)[-2].startswith(" VISUAL LINE ")
        assert composer.selected_text == "line b"
        save_screenshot("vim", app.export_screenshot(title="tui_client"))
        await pilot.press("d")
        assert composer.text == "two four2 2\nline c\nline d"
        await pilot.press(".")
        assert composer.text == "two four2 2\nline d"
        await pilot.press("V", "k", "y")
        assert composer.text == "two four2 2\nline d" and not fake_server.sent
        await pilot.press("P")
        assert composer.text == "two four2 2\nline d\ntwo four2 2\nline d"


async def test_vim_command_line_me_sends_an_emote_and_q_quits(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "[keys]\nvim = true\n")
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await _ready(pilot)
        await pilot.press("escape")  # insert -> normal
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandLine), "the command line")
        await pilot.press(*"me waves", "enter")
        await wait_for(pilot, lambda: bool(fake_server.sent), "the emote sent")
        assert fake_server.sent[-1]["msgtype"] == "m.emote"
        assert fake_server.sent[-1]["body"] == "waves"
        await pilot.press("colon", *"nosuch", "enter")
        await wait_for(
            pilot,
            lambda: any("unknown command /nosuch" in t for t in toast_texts(pilot)),
            "the error",
        )
        await pilot.press("colon", "q", "enter")
        await pilot.pause(0.3)
        assert not app.is_running


async def test_vim_j_k_gg_G_in_the_timeline(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "[keys]\nvim = true\n")
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 18)) as pilot:
        await _ready(pilot)
        app.open_room(GENERAL)
        chat = app.chat_screen
        assert chat is not None
        await wait_for(
            pilot, lambda: chat.view is not None and chat.view.room_id == GENERAL, "General"
        )
        timeline = app.screen.query_one(TimelineView)
        timeline.focus()
        keys = [item.key for item in timeline.items]
        assert len(keys) >= 4
        await pilot.pause(0.2)
        assert timeline.max_scroll_y > 0  # gg and G have somewhere to go
        await pilot.press("k")
        assert timeline.selected_key == keys[-1]
        await pilot.press("k", "k")
        assert timeline.selected_key == keys[-3]
        await pilot.press("j")
        assert timeline.selected_key == keys[-2]
        await pilot.press("g", "g")
        await pilot.pause(0.2)
        assert timeline.scroll_y == 0
        await pilot.press("G")
        await pilot.pause(0.2)
        assert timeline.scroll_y == timeline.max_scroll_y
        await pilot.press("ctrl+u")
        await pilot.pause(0.2)
        assert timeline.scroll_y < timeline.max_scroll_y


async def test_vim_mode_is_off_by_default(fake_profile: Path, fake_server: FakeHomeserver) -> None:
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        composer = app.screen.query_one(Composer)
        assert composer.vim is None and app.screen.query_one(StatusBar).vim_mode == ""
        await pilot.press("escape")  # back to the timeline, as always
        timeline = app.screen.query_one(TimelineView)
        assert timeline.has_focus
        await pilot.press("k")
        assert timeline.selected_key is None


async def test_the_composer_keys_come_from_the_config(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, '[keys.composer]\nsend = "ctrl+s"\n')
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        composer = app.screen.query_one(Composer)
        assert "^s Send" in screen_lines(pilot)[-1]
        await pilot.press("a", "enter", "b")
        assert composer.text == "a\nb"  # Enter is no longer the send key
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: bool(fake_server.sent), "the message sent")
        assert fake_server.sent[-1]["body"] == "a\nb"


async def test_vim_slash_in_normal_mode_opens_the_search(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_client.ui.screens.search import SearchScreen

    _config(tmp_path, monkeypatch, "[keys]\nvim = true\n")
    app = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        await pilot.press("slash")  # insert mode: a slash in the text
        assert app.screen.query_one(Composer).text == "/"
        await pilot.press("escape", "x", "slash")
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
