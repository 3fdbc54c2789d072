"""A python-olm store moving to vodozemac at start, seen on screen (Pilot): the room list
is painted from the cache first (the machine opens after the first paint, issue 13); while
the move runs past a moment the app says "Upgrading encryption store…" over it with the
keys moved so far (instead of a frozen window), then the notice goes and a toast says it
is done."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tui_client.engine import encryption
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.store_upgrade import StoreUpgradeScreen

from ..support.waiting import pilot_until
from .fake_world import FakeHomeserver


def _screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_a_long_store_upgrade_is_said_on_screen_then_the_chat_opens(
    fake_profile: Path, fake_server: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    olm = MatrixClient.restore(
        base_dir=fake_profile, transport=fake_server.transport(), crypto_backend="olm"
    )
    assert olm is not None
    await olm.open()
    await olm.close()

    monkeypatch.setattr(encryption, "UPGRADE_NOTICE_AFTER", 0.05)
    client = MatrixClient.restore(
        base_dir=fake_profile, transport=fake_server.transport(), crypto_backend="vodozemac"
    )
    assert client is not None
    app = TuiClientApp(client=client, start_sync=False)
    seen: list[str] = []

    def hold(_kind: str) -> None:
        # The database thread, inside the move: wait (as a big store's move would) until
        # the screen has painted the notice, and keep what it showed.
        def painted() -> bool:
            text = _screen_text(app) if isinstance(app.screen, StoreUpgradeScreen) else ""
            if "Upgrading encryption store…" in text:
                seen.append(text)
            return bool(seen)

        for _ in range(200):
            if app.call_from_thread(painted):
                return
            threading.Event().wait(0.05)

    client.encryption.migration_step = hold
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot_until(
            pilot,
            lambda: any(
                "Encryption store upgraded: 1 keys moved" in str(n.message)
                for n in app._notifications
            ),
            "the done toast",
            15.0,
        )
        [text] = seen
        assert "1 keys moved to vodozemac so far" in " ".join(text.split())
        assert isinstance(app.screen, ChatScreen)
        assert not any(isinstance(s, StoreUpgradeScreen) for s in app.screen_stack)
        machine = client.encryption.machine
        assert machine is not None and machine.backend.name == "vodozemac"
