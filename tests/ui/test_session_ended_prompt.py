"""The password prompt after the server ended the session (a soft logout), at 80x24: an
error said while it is up is not drawn over its question or its buttons, and is shown
once it closes."""

from __future__ import annotations

from pathlib import Path

import httpx

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import PromptDialog

from ..support.waiting import pilot_until
from .fake_world import FakeHomeserver
from .test_first_minutes import screen_lines, toast_texts


async def test_an_error_toast_does_not_cover_the_password_prompt(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    syncs = {"n": 0}

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            syncs["n"] += 1
            if syncs["n"] > 1:  # the first batch, then the server wants the password
                error = {
                    "errcode": "M_UNKNOWN_TOKEN",
                    "error": "Token expired",
                    "soft_logout": True,
                }
                return httpx.Response(401, json=error)
        return await fake_server.handle(request)

    app = TuiClientApp(base_dir=fake_profile, transport=httpx.MockTransport(handle))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot_until(pilot, lambda: isinstance(app.screen, PromptDialog), "the prompt", 15)
        long_error = (
            "Could not send your message to General: the server is unreachable (connection "
            "refused); it is sent again once the connection is back."
        )
        app.notify(long_error, severity="error", markup=False)
        await pilot_until(
            pilot,
            lambda: any(n.message == long_error for n in app._notifications),
            "the error posted",
            10,
        )
        await pilot.pause()
        shown = " ".join(" ".join(screen_lines(pilot)).split())
        assert "Password for @alice:example.org:" in shown, shown
        assert "OK" in shown and "Cancel" in shown, shown
        assert "unreachable" not in shown, shown
        await pilot.press("escape")
        await pilot_until(
            pilot,
            lambda: any("unreachable" in t for t in toast_texts(pilot)),
            "the error shown once the prompt closed",
            10,
        )
