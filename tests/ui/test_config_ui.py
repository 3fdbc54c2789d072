"""The config file in the app: themes (user, bad, light, high contrast), problems shown
at start, settings written back, NO_COLOR, named layout widths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tui_client.config import load_config
from tui_client.ui.app import TuiClientApp

from .conftest import save_screenshot
from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, SIZE, _settle, show_general, wait_for

USER_THEME = {
    "name": "my-sunset",
    "dark": True,
    "primary": "#ff8800",
    "background": "#201018",
    "foreground": "#ffeedd",
}


def _config(folder: Path, text: str) -> Path:
    path = folder / "cfg" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _app(base_dir: Path, server: FakeHomeserver, config_file: Path) -> TuiClientApp:
    return TuiClientApp(
        base_dir=base_dir, transport=server.transport(), config=load_config(config_file)
    )


def _toasts(app: TuiClientApp) -> list[str]:
    """The notifications' messages; each shown as plain text (markup off)."""
    assert all(not note.markup for note in app._notifications)
    return [note.message for note in app._notifications]


async def test_user_theme_is_loaded_applied_and_a_bad_one_named(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path
) -> None:
    path = _config(tmp_path, '[appearance]\ntheme = "my-sunset"\n')
    themes = path.parent / "themes"
    themes.mkdir()
    (themes / "sunset.json").write_text(json.dumps(USER_THEME))
    (themes / "broken.json").write_text('{"name": "broken", "primary": "#12"}')
    (themes / "garbled.json").write_text('{"name": "x",\n "primary": }')
    app = _app(fake_profile, fake_server, path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen is not None, "the chat screen")
        await pilot.pause(0.3)
        assert app.theme == "my-sunset"
        assert app.current_theme.primary == "#ff8800"
        # The screen is drawn in the user's background colour.
        assert "#201018" in app.export_screenshot()
        toasts = "\n".join(_toasts(app))
        assert f"Theme {themes / 'broken.json'}: 'primary' is not a colour: '#12'" in toasts
        assert (
            f"Theme {themes / 'garbled.json'}: is not valid JSON: Expecting value at line 2"
            in toasts
        )
        assert "broken" not in app.available_themes


async def test_config_problems_are_toasted_at_start_with_their_line(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path
) -> None:
    path = _config(
        tmp_path,
        '# mine\n[appearance]\ntheme = "no-such-theme"\ntime_format = "13h"\n[privacy]\nshout = true\n',
    )
    app = _app(fake_profile, fake_server, path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen is not None, "the chat screen")
        await pilot.pause(0.3)
        toasts = "\n".join(_toasts(app))
        assert (
            f'{path} line 4: appearance.time_format must be one of "locale", "24h", "12h"' in toasts
        )
        assert f"{path} line 6: unknown setting privacy.shout" in toasts
        assert "Theme 'no-such-theme' not found" in toasts
        # Markup is off: the square brackets of "[privacy]" are shown as written.
        assert "known in [privacy]" in toasts
        assert app.theme == "tui-dark"


async def test_settings_changed_in_the_app_are_written_back_keeping_comments(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path
) -> None:
    original = (
        '# my settings\n[appearance]\ntheme = "tui-light"  # for daytime\n\n'
        "[privacy]\n# I like them\ntyping_notices = true\npresence = false\n"
    )
    path = _config(tmp_path, original)
    app = _app(fake_profile, fake_server, path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        client = app.client
        assert client is not None
        # The file is the source of truth for what it names: presence off, though the cache said on.
        assert client.presence.enabled is False
        await app.action_toggle_typing()
        app.theme = "tui-high-contrast"
        await pilot.pause(0.2)
        assert path.read_text() == original.replace("true\n", "false\n").replace(
            '"tui-light"', '"tui-high-contrast"'
        )
        await app.action_toggle_private_receipts()
        text = path.read_text()
        assert text.startswith(
            '# my settings\n[appearance]\ntheme = "tui-high-contrast"  # for daytime\n'
        )
        assert "private_read_receipts = true" in text
        assert client.receipts.private is True
    config = load_config(path)
    assert (config.theme, config.typing_notices, config.presence) == (
        "tui-high-contrast",
        False,
        False,
    )


async def test_named_layout_widths(
    fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path
) -> None:
    path = _config(tmp_path, "[layout]\nroom_list_width = 44\n")
    app = _app(fake_profile, fake_server, path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        chat = app.chat_screen
        assert chat is not None
        assert chat.query_one("#rooms").outer_size.width == 44


#: Rich's SVG export adds these itself: the window buttons and its terminal theme's default
#: foreground and dim text; none is the app's drawing.
SVG_FRAME = {"#ff5f57", "#febc2e", "#28c840", "#c5c8c6", "#868887"}


def _colours(svg: str) -> set[str]:
    return {c.lower() for c in re.findall(r"#[0-9a-fA-F]{6}\b", svg)}


def _is_grey(colour: str) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return r == g == b


@pytest.mark.parametrize("no_color", [False, True])
async def test_no_color_draws_without_colours(
    no_color: bool,
    fake_profile: Path,
    fake_server: FakeHomeserver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)
        svg = app.export_screenshot()
    hues = {c for c in _colours(svg) if not _is_grey(c)} - SVG_FRAME
    if no_color:
        assert hues == set(), hues
    else:
        assert len(hues) > 3  # the same screen is in colour without NO_COLOR


def test_light_theme_snapshot(
    snap_compare, fake_profile: Path, fake_server: FakeHomeserver, tmp_path: Path
) -> None:
    """The chat screen in the light theme, chosen in the config file (README screenshot)."""
    path = _config(tmp_path, '[appearance]\ntheme = "tui-light"\n')
    app = _app(fake_profile, fake_server, path)

    async def run_before(pilot: Pilot[None]) -> None:
        await show_general(pilot)
        save_screenshot("chat_light", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
