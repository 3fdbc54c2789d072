"""Failed logins, driven with Pilot: the login box says what failed and what to do, keeps
the user ID and homeserver (clears the password), and its "Log in" button stays on screen
at every size from 80x24 up.

Credentials are refused by a real Synapse (wrong password, unknown user, a locked account,
and rate limiting on a Synapse of its own with a strict ``rc_login``); a closed loopback
port, a loopback server that answers with HTML and TLS failures are real sockets; only
answers Synapse cannot give (a deactivated account that still has its password, hostile
error text) come from an ``httpx.MockTransport``.
"""

from __future__ import annotations

import datetime
import http.server
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from tui_client.devtools.synapse import SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.login import LoginScreen
from tui_client.ui.widgets.key_footer import KeyFooter

from ..support.synapse import own_synapse
from ..support.users import MakeUser
from ..support.waiting import pilot_until
from .test_snapshots import freeze_cursors

SIZES = [(80, 24), (120, 40), (120, 60), (200, 80)]
_EASY = {"per_second": 1000, "burst_count": 1000}


# -- helpers -----------------------------------------------------------------------------


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], what: str, timeout: float = 30.0
) -> None:
    """Wait for a condition of the running app; fail with ``what`` if it never holds."""
    await pilot_until(
        pilot,
        predicate,
        what,
        timeout,
        describe=lambda: f"the screen shows:\n{screen_text(pilot.app)}",
    )


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def status_of(screen: LoginScreen) -> str:
    return str(screen.query_one("#login-error", Static).render())


def assert_fully_visible(app: Any, widget: Widget) -> None:
    """The whole widget is drawn: inside the screen, not clipped by its box, not under the footer."""
    screen = app.screen
    visible = screen._compositor.visible_widgets
    assert widget in visible, f"{widget!r} is not drawn at all:\n{screen_text(app)}"
    region, clip = visible[widget]
    assert region.height > 0 and region.width > 0, f"{widget!r} has no size"
    assert screen.region.contains_region(region), (
        f"{widget!r} at {region} is outside the screen {screen.region}"
    )
    assert clip.contains_region(region), (
        f"{widget!r} at {region} is clipped to {clip}:\n{screen_text(app)}"
    )
    footer = screen.query_one(KeyFooter).region
    assert not region.overlaps(footer), f"{widget!r} at {region} is under the footer"


async def open_login(pilot: Pilot[None]) -> LoginScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
    screen = app.screen
    assert isinstance(screen, LoginScreen)
    return screen


async def attempt(pilot: Pilot[None], user_id: str, password: str, homeserver: str) -> LoginScreen:
    """Type into the three fields, press Enter in the password field, wait for the answer."""
    screen = await open_login(pilot)
    screen.query_one("#user-id", Input).value = user_id
    screen.query_one("#homeserver", Input).value = homeserver
    password_input = screen.query_one("#password", Input)
    password_input.value = password
    password_input.focus()
    await pilot.press("enter")
    await settled(pilot, screen)
    return screen


async def settled(pilot: Pilot[None], screen: LoginScreen) -> None:
    def done() -> bool:
        running = any(w.is_running for w in pilot.app.workers if w.group == "login")
        return (
            not running
            and not screen.query_one("#login", Button).disabled
            and "Logging in" not in status_of(screen)
        )

    await until(pilot, done, "the login attempt to end")
    await pilot.pause(0.05)


def assert_failed_login(
    pilot: Pilot[None],
    screen: LoginScreen,
    *,
    user_id: str,
    homeserver: str,
    phrase: str,
    focus: str,
    password: str = "",
) -> str:
    """The error is shown with the button, the typed fields are kept, the password is cleared
    (kept only when nothing was sent)."""
    app = pilot.app
    text = status_of(screen)
    assert phrase.lower() in text.lower(), text
    # The first words of the message are on screen (the rest may wrap onto the next line).
    assert " ".join(text.split()[:3]) in screen_text(app), screen_text(app)
    assert_fully_visible(app, screen.query_one("#login-error", Static))
    button = screen.query_one("#login", Button)
    assert_fully_visible(app, button)
    assert "Log in" in screen_text(app)
    assert screen.query_one("#user-id", Input).value == user_id
    assert screen.query_one("#homeserver", Input).value == homeserver
    assert screen.query_one("#password", Input).value == password
    assert app.focused is screen.query_one(f"#{focus}", Input)
    return text


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def _answer(self) -> None:
        body = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _NotFoundHtmlHandler(_HtmlHandler):
    status = 404


@pytest.fixture(params=[_HtmlHandler, _NotFoundHtmlHandler], ids=["200", "404"])
def html_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A loopback web server answering every path with an HTML page (200 or 404): ``http://host:port``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTPS server whose certificate nobody trusts: ``https://127.0.0.1:port``."""
    cert, key = _self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def mock_server(login_answer: httpx.Response) -> httpx.MockTransport:
    """A homeserver at https://matrix.example.org whose /login answers ``login_answer``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_matrix/client/versions":
            return httpx.Response(200, json={"versions": ["v1.11"]})
        if request.url.path.endswith("/login"):
            return login_answer
        return httpx.Response(
            404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        )

    return httpx.MockTransport(handle)


MOCK_HS = "https://matrix.example.org"
MOCK_USER = "@alice:example.org"


# -- against Synapse -----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_wrong_password_is_said_with_the_button_on_screen(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, size: tuple[int, int]
) -> None:
    alice = make_user("alice")
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=size) as pilot:
        screen = await attempt(pilot, alice.user_id, "not-the-password", synapse.base_url)
        assert_failed_login(
            pilot,
            screen,
            user_id=alice.user_id,
            homeserver=synapse.base_url,
            phrase="wrong user ID or password",
            focus="password",
        )


async def test_unknown_user_is_said(synapse: SynapseServer, tmp_path: Path) -> None:
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    nobody = f"@nobody-here:{synapse.server_name}"
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await attempt(pilot, nobody, "whatever", synapse.base_url)
        assert_failed_login(
            pilot,
            screen,
            user_id=nobody,
            homeserver=synapse.base_url,
            phrase="wrong user ID or password",
            focus="password",
        )


async def test_five_wrong_passwords_then_the_right_one_logs_in(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice = make_user("alice")
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for n in range(5):
            screen = await attempt(pilot, alice.user_id, f"wrong-{n}", synapse.base_url)
            assert_failed_login(
                pilot,
                screen,
                user_id=alice.user_id,
                homeserver=synapse.base_url,
                phrase="wrong user ID or password",
                focus="password",
            )
        # Only the password is typed again; the button (clicked, so it must be on screen) logs in.
        await pilot.press(*alice.password)
        await pilot.click("#login")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen")


async def test_locked_account_is_said(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    carol = make_user("carol")
    path = f"/_synapse/admin/v2/users/{carol.user_id}"
    status, body = synapse.request_json("PUT", path, {"locked": True}, synapse.admin_token)
    assert status == 200, body
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, carol.user_id, carol.password, synapse.base_url)
        text = assert_failed_login(
            pilot,
            screen,
            user_id=carol.user_id,
            homeserver=synapse.base_url,
            phrase="account is locked",
            focus="user-id",
        )
        assert "admin" in text


@pytest.fixture(scope="module")
def strict_login_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A Synapse that refuses a user's third failed login in a row for about 100 s."""
    yield from own_synapse(
        tmp_path_factory,
        "strict-login-synapse",
        extra_config={
            "rc_login": {
                "address": _EASY,
                "account": _EASY,
                "failed_attempts": {"per_second": 0.01, "burst_count": 2},
            }
        },
    )


async def test_rate_limited_login_says_how_long_to_wait(
    strict_login_synapse: SynapseServer, tmp_path: Path
) -> None:
    server = strict_login_synapse
    dave = server.register_user("dave", "password-dave")
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for n in range(2):
            screen = await attempt(pilot, dave.user_id, f"wrong-{n}", server.base_url)
            assert_failed_login(
                pilot,
                screen,
                user_id=dave.user_id,
                homeserver=server.base_url,
                phrase="wrong user ID or password",
                focus="password",
            )
        # The third is refused at once (not waited out behind "Logging in…"), with the wait.
        screen = await attempt(pilot, dave.user_id, "wrong-2", server.base_url)
        text = assert_failed_login(
            pilot,
            screen,
            user_id=dave.user_id,
            homeserver=server.base_url,
            phrase="too many login attempts",
            focus="password",
        )
        wait = re.search(r"wait (?:(\d+) min)? ?(?:(\d+) s)?", text)
        assert wait and (wait.group(1) or wait.group(2)), text
        seconds = int(wait.group(1) or 0) * 60 + int(wait.group(2) or 0)
        assert 30 <= seconds <= 110, text


# -- servers that are down, not Matrix, or not trusted ------------------------------------------


async def test_connection_refused_is_said(tmp_path: Path) -> None:
    homeserver = f"http://127.0.0.1:{closed_port()}"
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "@alice:localhost", "secret", homeserver)
        text = assert_failed_login(
            pilot,
            screen,
            user_id="@alice:localhost",
            homeserver=homeserver,
            phrase="cannot connect to",
            focus="homeserver",
        )
        assert homeserver in text and "down" in text and "try again" in text


async def test_a_web_page_is_not_a_matrix_server(html_server: str, tmp_path: Path) -> None:
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "@alice:localhost", "secret", html_server)
        text = assert_failed_login(
            pilot,
            screen,
            user_id="@alice:localhost",
            homeserver=html_server,
            phrase="is not a Matrix homeserver",
            focus="homeserver",
        )
        assert html_server in text and "check the homeserver url" in text.lower()


@pytest.mark.parametrize("html_server", [_HtmlHandler], ids=["200"], indirect=True)
async def test_plain_http_behind_an_https_url_is_a_tls_error(
    html_server: str, tmp_path: Path
) -> None:
    homeserver = html_server.replace("http://", "https://")
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "@alice:localhost", "secret", homeserver)
        text = assert_failed_login(
            pilot,
            screen,
            user_id="@alice:localhost",
            homeserver=homeserver,
            phrase="no secure (TLS) connection",
            focus="homeserver",
        )
        assert homeserver in text


async def test_untrusted_certificate_is_said(self_signed_server: str, tmp_path: Path) -> None:
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "@alice:localhost", "secret", self_signed_server)
        text = assert_failed_login(
            pilot,
            screen,
            user_id="@alice:localhost",
            homeserver=self_signed_server,
            phrase="certificate",
            focus="homeserver",
        )
        assert "not trusted" in text and "self-signed" in text.lower()


# -- answers Synapse cannot give -------------------------------------------------------------


async def test_deactivated_account_is_said(tmp_path: Path) -> None:
    answer = httpx.Response(
        403, json={"errcode": "M_USER_DEACTIVATED", "error": "This account has been deactivated"}
    )
    app = TuiClientApp(base_dir=tmp_path, transport=mock_server(answer), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, MOCK_USER, "secret", MOCK_HS)
        assert_failed_login(
            pilot,
            screen,
            user_id=MOCK_USER,
            homeserver=MOCK_HS,
            phrase="account has been deactivated",
            focus="user-id",
        )


async def test_rate_limit_from_a_header_alone(tmp_path: Path) -> None:
    answer = httpx.Response(
        429,
        headers={"Retry-After": "7"},
        json={"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests"},
    )
    app = TuiClientApp(base_dir=tmp_path, transport=mock_server(answer), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, MOCK_USER, "secret", MOCK_HS)
        text = assert_failed_login(
            pilot,
            screen,
            user_id=MOCK_USER,
            homeserver=MOCK_HS,
            phrase="wait 7 s",
            focus="password",
        )
        assert "too many login attempts" in text.lower()


async def test_unknown_host_is_said(tmp_path: Path) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    app = TuiClientApp(base_dir=tmp_path, transport=httpx.MockTransport(handle), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "@alice:nowhere.example", "secret", "")
        text = assert_failed_login(
            pilot,
            screen,
            user_id="@alice:nowhere.example",
            homeserver="",
            phrase="cannot find the server",
            focus="homeserver",
        )
        assert "nowhere.example" in text


async def test_server_error_text_is_shown_as_text_not_markup(tmp_path: Path) -> None:
    hostile = "[bold red]pwned[/] \x1b[31mred\x1b[0m [link=https://evil.example]click[/link]"
    answer = httpx.Response(400, json={"errcode": "M_WEIRD", "error": hostile})
    app = TuiClientApp(base_dir=tmp_path, transport=mock_server(answer), start_sync=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await attempt(pilot, MOCK_USER, "secret", MOCK_HS)
        text = assert_failed_login(
            pilot,
            screen,
            user_id=MOCK_USER,
            homeserver=MOCK_HS,
            phrase="refused the login",
            focus="password",
        )
        assert "[bold red]pwned[/]" in text and "M_WEIRD" in text
        assert "\x1b" not in text


async def test_a_user_id_that_is_not_one_is_said_before_any_request(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    app = TuiClientApp(base_dir=tmp_path, transport=httpx.MockTransport(handle), start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "alice", "secret", MOCK_HS)
        assert_failed_login(
            pilot,
            screen,
            user_id="alice",
            homeserver=MOCK_HS,
            phrase="@name:example.org",
            focus="user-id",
            password="secret",
        )
    assert requests == []


# -- snapshots ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_login_error_snapshot(
    snap_compare: Any, tmp_path: Path, memory_keyring: None, size: tuple[int, int]
) -> None:
    """The login box after a refused password: the error line and the button, fields kept."""
    answer = httpx.Response(
        403, json={"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}
    )
    app = TuiClientApp(base_dir=tmp_path, transport=mock_server(answer), start_sync=False)

    async def run_before(pilot: Pilot[None]) -> None:
        screen = await attempt(pilot, MOCK_USER, "not-the-password", MOCK_HS)
        assert_failed_login(
            pilot,
            screen,
            user_id=MOCK_USER,
            homeserver=MOCK_HS,
            phrase="wrong user ID or password",
            focus="password",
        )
        freeze_cursors(app)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
