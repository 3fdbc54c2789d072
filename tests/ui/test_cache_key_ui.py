"""A cache that does not open with this device's key, seen on screen (Pilot): the app says
so, offers to log in again on a fresh cache (the unreadable one kept aside, F7 pointed
to for the recovery key), or quits without touching anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tui_client.engine.cache_key import CACHE_KEY
from tui_client.engine.client import CACHE_FILE, SESSION_FILE
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore
from tui_client.store.cache import Cache
from tui_client.store.encrypted_db import is_plain_sqlite, new_key
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.dialogs import ConfirmDialog
from tui_client.ui.screens.login import LoginScreen

from ..support.waiting import pilot_until
from .fake_world import ME, make_profile


def _screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _text(app: Any) -> str:
    """The screen's text with its line breaks folded, so wrapped sentences can be matched."""
    lines = (line.strip(" █▀▄▁▔") for line in _screen_text(app).splitlines())
    return " ".join(" ".join(lines).split())


async def _until(pilot: Pilot[None], predicate: Any, what: str) -> None:
    await pilot_until(
        pilot,
        predicate,
        what,
        10.0,
        describe=lambda: f"the screen shows:\n{_screen_text(pilot.app)}",
    )


def _encrypted_profile(base: Path, stored_key: bytes | None) -> Path:
    """A saved session whose cache is encrypted with one key, and ``stored_key`` (or none) kept."""
    folder = make_profile(base)
    Cache(folder / CACHE_FILE, key=new_key()).close()
    assert not is_plain_sqlite(folder / CACHE_FILE)
    if stored_key is not None:
        SecretStore(folder, ME).set(CACHE_KEY, stored_key.hex())
    return folder


async def test_wrong_key_is_said_and_a_fresh_login_keeps_the_cache_aside(
    tmp_path: Path, memory_keyring: None
) -> None:
    folder = _encrypted_profile(tmp_path, new_key())
    original = (folder / CACHE_FILE).read_bytes()
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
        text = _text(app)
        assert "The cache cannot be opened with this device's key" in text
        assert "the key is not the cache's" in text
        assert "press F7 and restore your keys from your recovery key" in text
        assert app.chat_screen is None
        await pilot.click("#yes")
        await _until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
        text = _text(app)
        assert "Log in again to start a new cache" in text
        assert "press F7 to restore your keys from your recovery key" in text
        assert not any(isinstance(s, ChatScreen) for s in app.screen_stack)
    aside = [p for p in folder.iterdir() if p.name.startswith("cache.unreadable-")]
    assert len(aside) == 1 and aside[0].read_bytes() == original
    assert not (folder / CACHE_FILE).exists()
    assert not (folder / SESSION_FILE).exists()
    secrets = SecretStore(folder, ME)
    assert secrets.get("access_token") is None and secrets.get(CACHE_KEY) is None


async def test_missing_key_is_said_and_cancel_quits_changing_nothing(
    tmp_path: Path, memory_keyring: None
) -> None:
    folder = _encrypted_profile(tmp_path, None)
    before = sorted(p.name for p in folder.iterdir())
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the dialog")
        text = _text(app)
        assert "The cache cannot be opened with this device's key" in text
        assert "missing from the system keyring" in text
        await pilot.click("#no")
        await _until(pilot, lambda: not app.is_running, "the app to quit")
    assert sorted(p.name for p in folder.iterdir()) == before
    assert SecretStore(profile_dir("default", tmp_path), ME).get("access_token") == "secret-token"
