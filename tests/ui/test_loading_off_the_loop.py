"""What the app loads after its first paint is imported on a thread, not on the UI loop
(issue 13: the cache-damage and recovery dialogs' modules, ~45 ms of imports, were the
longest frame of a first start, with the first sync streaming in). At 80x24."""

from __future__ import annotations

import sys
import threading
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

import tui_client.ui
from tui_client.ui.app import TuiClientApp

from .fake_world import FakeHomeserver
from .test_login_errors import screen_text
from .test_snapshots import _settle

MODULE = "tui_client.ui.cache_damage"


class _Spy:
    """A finder that only notes which thread asked for the module (the others find it)."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == MODULE:
            self.threads.append(threading.current_thread())
        return None


async def test_the_dialogs_after_opening_are_imported_off_the_ui_loop(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy()
    monkeypatch.setattr(sys, "meta_path", [spy, *sys.meta_path])
    if MODULE in sys.modules:
        monkeypatch.delitem(sys.modules, MODULE)
        monkeypatch.delattr(tui_client.ui, "cache_damage", raising=False)
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot, None)
        assert MODULE in sys.modules
        assert "General" in screen_text(app)
    assert spy.threads and threading.main_thread() not in spy.threads


async def test_an_empty_security_bar_imports_no_verification_screen(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar is refreshed at each identity and cross-signing update of a first sync;
    with nothing to show it needs none of the verification screen (~5 ms to import, then
    on the UI loop, in a first sync's frame)."""
    screen = "tui_client.ui.screens.verification"
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot, None)
        client = app.client
        assert client is not None and client.encryption.available
        assert not client.verification.incoming() and not client.devices.warnings
        asked: list[str] = []

        class Spy:
            def find_spec(self, name: str, path: object = None, target: object = None) -> None:
                asked.append(name)

        monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
        monkeypatch.delitem(sys.modules, screen, raising=False)
        app.security.refresh_bar()
        assert screen not in asked
        assert "General" in screen_text(app)
