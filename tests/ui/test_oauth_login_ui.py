"""The OAuth 2.0 login through the UI, driven with Pilot against a real Synapse that
delegates authentication to our test authorization server: the login screen offers
only what the server supports, the device code screen shows the address, the code and
the QR code, and every way it can fail is said on screen."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from tui_client.devtools.oauth_server import AuthServer
from tui_client.devtools.synapse import SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.login import LoginScreen
from tui_client.ui.screens.oauth_login import OAuthLoginScreen
from tui_client.ui.widgets.qr_code import MAX_QUIET, half_block_rows, qr_matrix

from .conftest import save_screenshot
from .test_login_errors import screen_text, until
from .test_verification_qr import decode

Homeserver = tuple[SynapseServer, AuthServer]


@pytest.fixture(autouse=True)
def _quick(oauth_homeserver: Homeserver) -> None:
    _, auth = oauth_homeserver
    auth.interval = 0.2
    auth.access_token_lifetime = 300.0
    auth.device_code_lifetime = 600.0
    auth.slow_down_polls = 0
    auth.browser_user = None


async def _login_screen(pilot: Pilot[None], homeserver: str) -> LoginScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
    screen = app.screen
    assert isinstance(screen, LoginScreen)
    screen.query_one("#homeserver", Input).value = homeserver
    screen.query_one("#homeserver", Input).focus()
    await pilot.pause()
    screen.query_one("#user-id", Input).focus()  # leaving the field asks the server what it offers
    return screen


async def _device_screen(pilot: Pilot[None], synapse: SynapseServer) -> OAuthLoginScreen:
    app = pilot.app
    screen = await _login_screen(pilot, synapse.base_url)
    await until(
        pilot, lambda: not screen.query_one("#password").display, "the password field to go"
    )
    await until(pilot, lambda: "No password here" in screen_text(app), "the note")
    screen.query_one("#login-oauth", Button).press()
    await until(pilot, lambda: isinstance(app.screen, OAuthLoginScreen), "the device login screen")
    device = app.screen
    assert isinstance(device, OAuthLoginScreen)
    await until(pilot, lambda: device.grant is not None, "the user code")
    grant = device.grant
    assert grant is not None
    await until(pilot, lambda: grant.user_code in screen_text(app), "the code on screen")
    return device


def _status(screen: OAuthLoginScreen) -> str:
    """The status line ("" while the screen is still being composed)."""
    found = screen.query("#oauth-status")
    return str(found.first(Static).render()) if found else ""


def _drawn_qr(app: Any) -> list[list[bool]]:
    """The QR code as drawn on the terminal: each half-block cell back to two modules."""
    screen = app.screen
    widget = screen.query_one("#oauth-qr")
    region = widget.content_region
    rows: list[list[bool]] = []
    strips = screen._compositor.render_strips()
    for y in range(region.y, region.bottom):
        top: list[bool] = []
        bottom: list[bool] = []
        x = 0
        for segment in strips[y]:
            for char in segment.text:
                if region.x <= x < region.right:
                    assert char == "▀", f"not a half-block at {x},{y}: {char!r}"
                    style = segment.style
                    assert (
                        style is not None and style.color is not None and style.bgcolor is not None
                    )
                    top.append(style.color.triplet == (0, 0, 0))
                    bottom.append(style.bgcolor.triplet == (0, 0, 0))
                x += 1
        rows += [top, bottom]
    return rows


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
async def test_device_code_login_through_the_ui(
    oauth_homeserver: Homeserver, tmp_path: Path, size: tuple[int, int]
) -> None:
    synapse, auth = oauth_homeserver
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=size) as pilot:
        device = await _device_screen(pilot, synapse)
        grant = device.grant
        assert grant is not None and grant.verification_uri_complete
        text = screen_text(app)
        assert grant.user_code in text, text
        assert grant.verification_uri in text
        # The QR code on screen is the complete address, module for module.
        drawn = _drawn_qr(app)
        cells = half_block_rows(qr_matrix(grant.verification_uri_complete), MAX_QUIET)
        expected = [row for pair in cells for row in ([t for t, _ in pair], [b for _, b in pair])]
        assert drawn == expected
        # And a QR decoder reads the complete address back from the screen.
        assert decode(drawn) == [grant.verification_uri_complete.encode()]
        if size == (80, 24):
            save_screenshot("oauth_device_login", app.export_screenshot(title="tui_client"))
        localpart = f"ui-{grant.user_code.lower()}"
        await asyncio.to_thread(auth.approve, grant.user_code, localpart)
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")
        assert app.client is not None and app.client.user_id == f"@{localpart}:localhost"


async def test_refused_then_a_new_code(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    synapse, auth = oauth_homeserver
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _device_screen(pilot, synapse)
        first = device.grant
        assert first is not None
        await asyncio.to_thread(auth.deny, first.user_code)
        await until(pilot, lambda: "refused" in _status(device), "the refusal")
        await until(
            pilot,
            lambda: "The login was refused on the other" in screen_text(app),
            "The login was refused on the other",
        )
        assert device.query_one("#oauth-restart").display
        await pilot.click("#oauth-restart")
        await until(pilot, lambda: device.grant is not first, "a new code")
        await pilot.pause(0.1)
        grant = device.grant
        assert grant is not None
        await until(pilot, lambda: grant.user_code in screen_text(app), "the new code")
        assert "refused" not in screen_text(app)


async def test_expired_code_is_said(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    synapse, auth = oauth_homeserver
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _device_screen(pilot, synapse)
        auth.expire_device_codes()
        await until(pilot, lambda: "expired" in _status(device), "the expiry")
        await until(
            pilot,
            lambda: "The code expired before it was" in screen_text(app),
            "The code expired before it was",
        )
        await until(pilot, lambda: "New code" in screen_text(app), "New code")


async def test_slow_down_is_said_and_obeyed(oauth_homeserver: Homeserver, tmp_path: Path) -> None:
    synapse, auth = oauth_homeserver
    auth.slow_down_polls = 1  # for the grants made from now on
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _device_screen(pilot, synapse)
        await until(pilot, lambda: "slow down" in _status(device), "the slow_down notice")
        await until(pilot, lambda: "checking every 5 s" in screen_text(app), "checking every 5 s")
        assert device.flow.device_login is not None and device.flow.device_login.interval >= 5


async def test_cancel_returns_to_the_login_screen(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    synapse, _ = oauth_homeserver
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _device_screen(pilot, synapse)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen again")


async def test_a_password_on_an_oauth_only_server_is_explained(
    oauth_homeserver: Homeserver, tmp_path: Path
) -> None:
    synapse, _ = oauth_homeserver
    app = TuiClientApp(base_dir=tmp_path, start_sync=False, transport=None)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _login_screen(pilot, "")
        # Typed before the screen could ask the server: the server's own refusal is explained.
        screen.query_one("#homeserver", Input).value = synapse.base_url
        screen.query_one("#user-id", Input).value = "@someone:localhost"
        screen.query_one("#password", Input).value = "secret"
        screen._options = None
        screen.query_one("#password", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: "no password" in screen_text(app), "the explanation")
        await until(pilot, lambda: "Sign in with a code" in screen_text(app), "Sign in with a code")


def _fake_browser(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$BROWSER: fetches the address and follows the redirects, as a user's browser would."""
    browser = folder / "browser.py"
    browser.write_text(
        "import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=30).read()\n"
    )
    monkeypatch.setenv("BROWSER", f"{sys.executable} {browser}")


async def test_browser_login_through_the_ui(
    oauth_homeserver: Homeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synapse, auth = oauth_homeserver
    _fake_browser(tmp_path, monkeypatch)
    auth.browser_user = "browser-user"
    app = TuiClientApp(base_dir=tmp_path / "profile", start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _device_screen(pilot, synapse)
        assert device.query_one("#oauth-browser").display
        await pilot.click("#oauth-browser")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")
        assert app.client is not None and app.client.user_id == "@browser-user:localhost"


async def test_browser_refusal_is_said(
    oauth_homeserver: Homeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synapse, auth = oauth_homeserver
    _fake_browser(tmp_path, monkeypatch)
    auth.browser_user = None  # the user refuses in the browser
    app = TuiClientApp(base_dir=tmp_path / "profile", start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _device_screen(pilot, synapse)
        await pilot.click("#oauth-browser")
        await until(pilot, lambda: "refused in the browser" in _status(device), "the refusal")
        await until(
            pilot,
            lambda: "The login was refused in the" in screen_text(app),
            "The login was refused in the",
        )


def _legacy_server(flows: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_matrix/client/versions":
            return httpx.Response(200, json={"versions": ["v1.11"]})
        if request.url.path.endswith("/login") and request.method == "GET":
            return httpx.Response(200, json={"flows": [{"type": t} for t in flows]})
        return httpx.Response(
            404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        )

    return httpx.MockTransport(handle)


async def test_neither_password_nor_oauth_is_said(tmp_path: Path) -> None:
    app = TuiClientApp(
        base_dir=tmp_path,
        transport=_legacy_server(["m.login.sso", "m.login.token"]),
        start_sync=False,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await _login_screen(pilot, "https://matrix.example.org")
        await until(
            pilot, lambda: "neither password nor OAuth" in screen_text(app), "the explanation"
        )
        await until(pilot, lambda: "m.login.sso" in screen_text(app), "m.login.sso")


async def test_password_only_server_hides_oauth(tmp_path: Path) -> None:
    app = TuiClientApp(
        base_dir=tmp_path, transport=_legacy_server(["m.login.password"]), start_sync=False
    )
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _login_screen(pilot, "https://matrix.example.org")
        await until(
            pilot, lambda: not screen.query_one("#login-oauth").display, "the OAuth button to go"
        )
        assert screen.query_one("#password").display
        assert "Sign in with a code" not in screen_text(app)


# -- faults the real servers cannot be made to give, from an httpx MockTransport ----------------

MOCK_HS = "https://matrix.example.org"
MOCK_ISSUER = "https://auth.example.org/"


def _oauth_mock(
    *,
    metadata: dict[str, Any] | None = None,
    registration: httpx.Response | None = None,
    token_down: bool = False,
) -> httpx.MockTransport:
    """A homeserver without /login whose OAuth server misbehaves as told."""
    good = {
        "issuer": MOCK_ISSUER,
        "authorization_endpoint": f"{MOCK_ISSUER}authorize",
        "token_endpoint": f"{MOCK_ISSUER}token",
        "registration_endpoint": f"{MOCK_ISSUER}register",
        "device_authorization_endpoint": f"{MOCK_ISSUER}device",
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "code_challenge_methods_supported": ["S256"],
    }

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/_matrix/client/versions":
            return httpx.Response(200, json={"versions": ["v1.15"]})
        if path.endswith("/auth_metadata"):
            return httpx.Response(200, json=metadata if metadata is not None else good)
        if request.url.host == "auth.example.org":
            if path == "/register":
                return registration or httpx.Response(201, json={"client_id": "c1"})
            if path == "/device":
                return httpx.Response(
                    200,
                    json={
                        "device_code": "d",
                        "user_code": "WDJB-MJHT",
                        "verification_uri": f"{MOCK_ISSUER}link",
                        "expires_in": 600,
                        "interval": 0.01,
                    },
                )
            if path == "/token":
                if token_down:
                    raise httpx.ConnectError("connection refused", request=request)
                return httpx.Response(400, json={"error": "authorization_pending"})
        return httpx.Response(
            404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        )

    return httpx.MockTransport(handle)


async def _open_oauth(pilot: Pilot[None], homeserver: str) -> OAuthLoginScreen:
    """The login screen for ``homeserver``, once it offers only OAuth: its button pressed."""
    app = pilot.app
    screen = await _login_screen(pilot, homeserver)
    await until(
        pilot, lambda: not screen.query_one("#password").display, "the password field to go"
    )
    screen.query_one("#login-oauth", Button).press()
    await until(pilot, lambda: isinstance(app.screen, OAuthLoginScreen), "the device login screen")
    device = app.screen
    assert isinstance(device, OAuthLoginScreen)
    return device


async def test_unusable_auth_metadata_is_said(tmp_path: Path) -> None:
    bad = {"issuer": "http://auth.example.org/", "token_endpoint": "http://auth.example.org/token"}
    app = TuiClientApp(base_dir=tmp_path, transport=_oauth_mock(metadata=bad), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _login_screen(pilot, MOCK_HS)
        await until(
            pilot, lambda: "sign-in service cannot be used" in screen_text(app), "the explanation"
        )
        assert "not an https URL" in " ".join(screen_text(app).split())


async def test_registration_refused_is_said(tmp_path: Path) -> None:
    refusal = httpx.Response(
        400,
        json={"error": "invalid_client_metadata", "error_description": "client_uri is not allowed"},
    )
    app = TuiClientApp(
        base_dir=tmp_path, transport=_oauth_mock(registration=refusal), start_sync=False
    )
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _open_oauth(pilot, MOCK_HS)
        await until(pilot, lambda: "refused to register" in _status(device), "the refusal")
        await until(
            pilot,
            lambda: "The sign-in service refused to" in screen_text(app),
            "The sign-in service refused to",
        )
        assert device.query_one("#oauth-restart").display


async def test_sign_in_service_unreachable_while_waiting_is_said(tmp_path: Path) -> None:
    app = TuiClientApp(base_dir=tmp_path, transport=_oauth_mock(token_down=True), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _open_oauth(pilot, MOCK_HS)
        await until(pilot, lambda: "Lost the sign-in service" in _status(device), "the loss")
        await until(
            pilot,
            lambda: "Lost the sign-in service" in screen_text(app),
            "Lost the sign-in service",
        )
        await until(pilot, lambda: "New code" in screen_text(app), "New code")


async def test_no_browser_here_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER", str(tmp_path / "no-such-browser"))
    app = TuiClientApp(base_dir=tmp_path, transport=_oauth_mock(), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        device = await _open_oauth(pilot, MOCK_HS)
        await until(pilot, lambda: device.grant is not None, "the user code")
        await pilot.pause(0.1)
        await pilot.click("#oauth-browser")
        await until(
            pilot, lambda: "Cannot open a browser here" in _status(device), "the explanation"
        )
        await until(
            pilot,
            lambda: "Cannot open a browser here" in screen_text(app),
            "Cannot open a browser here",
        )
