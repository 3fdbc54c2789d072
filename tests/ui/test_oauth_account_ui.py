"""After an OAuth login through the UI: the palette opens the account management page
(with ``action=``), and a cross-signing reset the server guards with ``m.oauth`` shows
the page's address, waits for the user to approve it there, and goes through."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot

from tui_client.devtools.oauth_server import AuthServer
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.oauth import OAuthLogin
from tui_client.engine.updates import SyncStatus
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.dialogs import ConfirmDialog

from .test_login_errors import screen_text, until
from .test_oauth_login_ui import _device_screen

Homeserver = tuple[SynapseServer, AuthServer]


def _recording_browser(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$BROWSER: notes each address it is asked to open."""
    opened = folder / "opened.txt"
    script = folder / "browser.py"
    script.write_text(f"import sys\nopen({str(opened)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    monkeypatch.setenv("BROWSER", f"{sys.executable} {script}")
    return opened


async def _logged_in(pilot: Pilot[None], homeserver: Homeserver, localpart: str) -> MatrixClient:
    synapse, auth = homeserver
    app = pilot.app
    assert isinstance(app, TuiClientApp)
    device = await _device_screen(pilot, synapse)
    assert device.grant is not None
    await asyncio.to_thread(auth.approve, device.grant.user_code, localpart)
    await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")
    assert app.client is not None
    return app.client


async def _palette(pilot: Pilot[None], words: str) -> None:
    app = pilot.app
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
    await pilot.press(*words)
    await until(
        pilot, lambda: app.screen.query_one(CommandList).highlighted is not None, "the results"
    )
    await pilot.press("enter")


async def test_palette_opens_the_account_page(
    oauth_homeserver: Homeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, auth = oauth_homeserver
    auth.interval = 0.2
    opened = _recording_browser(tmp_path, monkeypatch)
    app = TuiClientApp(base_dir=tmp_path / "profile", start_sync=False)
    async with app.run_test(size=(100, 30)) as pilot:
        client = await _logged_in(pilot, oauth_homeserver, "pal-user")
        await _palette(pilot, "Account page: sessions")
        await until(pilot, lambda: opened.exists(), "the browser to be started")
        assert opened.read_text().split() == [f"{auth.url}account/?action=org.matrix.devices_list"]
        await until(
            pilot, lambda: any("Opened" in n.message for n in app._notifications), "the notice"
        )
        assert client.account_page("profile") == f"{auth.url}account/?action=org.matrix.profile"


async def test_cross_signing_reset_waits_for_approval_on_the_account_page(
    oauth_homeserver: Homeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, auth = oauth_homeserver
    auth.interval = 0.2
    opened = _recording_browser(tmp_path, monkeypatch)
    app = TuiClientApp(base_dir=tmp_path / "profile", start_sync=True)
    async with app.run_test(size=(100, 30)) as pilot:
        client = await _logged_in(pilot, oauth_homeserver, "reset-user")
        await until(
            pilot,
            lambda: (
                client.cross_signing.state is not None
                and client.cross_signing.state.status.complete
            ),
            "the first identity",
        )
        outcome: list[Any] = []

        async def reset() -> None:
            for _ in range(200):
                try:
                    outcome.append(await client.cross_signing.bootstrap(reset=True))
                    return
                except Exception as error:  # our own keys may be outdated by a sync: retry
                    if type(error).__name__ != "OwnKeysNotQueried":
                        outcome.append(error)
                        return
                    await asyncio.sleep(0.05)

        task = asyncio.create_task(reset())
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the approval dialog")
        await until(
            pilot, lambda: "approve this on your account" in screen_text(app), "the dialog's words"
        )
        text = screen_text(app)
        assert "Approved, go on" in text
        await until(pilot, lambda: opened.exists(), "the browser to be started")
        assert "action=org.matrix.cross_signing_reset" in opened.read_text()
        await asyncio.to_thread(auth.approve_cross_signing_reset, "reset-user")
        await pilot.click("#yes")
        await task
        assert outcome and not isinstance(outcome[0], Exception), outcome
        assert outcome[0].published and outcome[0].has_master


async def test_session_ended_on_the_account_page_is_said(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    synapse, auth = oauth_homeserver
    auth.interval = 0.2
    # Logged in with a short long-poll, so the end is seen within a second.
    flow = await OAuthLogin.prepare("", synapse.base_url)
    grant = await flow.start_device_login()
    await asyncio.to_thread(auth.approve, grant.user_code, "ended-user")
    tokens = await flow.wait_device_login()
    client = await MatrixClient.login_oauth(
        flow, tokens, base_dir=tmp_path / "profile", long_poll_ms=500
    )
    await flow.aclose()
    app = TuiClientApp(client=client, base_dir=tmp_path / "profile", start_sync=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")
        await until(
            pilot, lambda: client.sync_state.status is SyncStatus.CONNECTED, "the first sync"
        )
        await asyncio.to_thread(auth.end_session, client.device_id)
        # The refused token is refreshed once; the refresh token is refused too: logged out.
        await until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", "the login screen")
        await until(pilot, lambda: "session was ended" in screen_text(app), "the reason")
        assert client.secrets.get("refresh_token") is None
        assert client.secrets.get("access_token") is None


async def test_logout_revokes_the_tokens(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    _, auth = oauth_homeserver
    auth.interval = 0.2
    app = TuiClientApp(base_dir=tmp_path / "profile", start_sync=False)
    async with app.run_test(size=(100, 30)) as pilot:
        client = await _logged_in(pilot, oauth_homeserver, "logout-user")
        device = client.device_id
        await _palette(pilot, "Log out")
        if isinstance(app.screen, ConfirmDialog):
            await pilot.click("#yes")
        await until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", "the login screen")
        [session] = [s for s in auth.sessions() if s.device_id == device]
        assert session.revoked
        assert MatrixClient.restore(base_dir=tmp_path / "profile") is None
