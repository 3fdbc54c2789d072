"""Logging in: user ID, password, and an optional homeserver URL; or through the
server's OAuth 2.0 sign-in (a code entered on another device, or a browser here).

Once the user ID (or homeserver) is typed, the server is asked how it lets us log in
(``GET /login`` and its auth metadata), and the screen offers only that: the password
where allowed, "Sign in with a code" where OAuth is offered, and says why when neither.

A failed login is said on one short line in the box, above the "Log in" button: what
failed and what to do. The user ID and homeserver stay as typed; the password is
cleared, and the field to fix next gets the focus. The box fits an 80x24 terminal.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static

from ...engine.client import LoginError, MatrixClient
from ...engine.oauth import LoginOptions, OAuthLogin
from ...net.discovery import DiscoveryError
from ...net.http import certificate_problem
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.ids import InvalidIdentifier, is_user_id, server_name_of
from ...protocol.sanitize import clean_line
from ..widgets.key_footer import KeyFooter
from .oauth_login import OAuthLoginScreen

BUSY = "Logging in…"


@dataclass(frozen=True, slots=True)
class LoginProblem:
    """Why a login failed, in words for the user, and the field to fix (its widget id)."""

    text: str
    field: str


def format_wait(seconds: float) -> str:
    """A wait in words: ``45 s``, ``2 min``, ``1 min 40 s`` (rounded up to a second)."""
    total = max(1, math.ceil(seconds))
    minutes, rest = divmod(total, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def explain_login_failure(error: BaseException, *, user_id: str, homeserver: str) -> LoginProblem:
    """Say why ``error`` (from :meth:`MatrixClient.login`) ended the login, and what to do."""
    chain = _chain(error)
    network = next((e for e in chain if isinstance(e, NetworkError)), None)
    matrix = next((e for e in chain if isinstance(e, MatrixError)), None)
    discovery = next((e for e in chain if isinstance(e, DiscoveryError)), None)
    where = homeserver or _server_of(user_id)
    if network is not None:
        return _network_problem(network, where, chain)
    if discovery is not None:
        if matrix is not None:
            text = (
                f"{where} is not a Matrix homeserver (HTTP {matrix.status} for its version list). "
                "Check the homeserver URL."
            )
        else:
            text = f"{_sentence(clean_line(str(discovery), 160))} Check the homeserver URL."
        return LoginProblem(text, "homeserver")
    if matrix is not None:
        return _refusal(matrix)
    if isinstance(error, LoginError):
        return LoginProblem(clean_line(str(error), 160), "password")
    # A bug must still end in a message, not a hang.
    return LoginProblem(
        clean_line(f"Login failed: {type(error).__name__}: {error}", 160), "password"
    )


def _server_of(user_id: str) -> str:
    try:
        return server_name_of(user_id)
    except InvalidIdentifier:
        return "your server"


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _network_problem(error: NetworkError, where: str, chain: list[BaseException]) -> LoginProblem:
    if error.kind == "connect":
        text = f"Cannot connect to {where}: the server is down or the URL is wrong. Check the URL, or try again later."
    elif error.kind == "dns":
        text = f"Cannot find the server {where} (unknown host). Check the homeserver URL and your user ID."
    elif error.kind == "tls":
        text = _tls_problem(where, chain)
    elif error.kind == "timeout":
        text = f"{where} did not answer in time. Try again later, or check the homeserver URL."
    elif error.kind == "decode":
        text = f"{where} is not a Matrix homeserver (it answered with a web page or other data). Check the homeserver URL."
    else:
        text = f"{_sentence(clean_line(str(error), 100))} Try again later."
    return LoginProblem(text, "homeserver")


def _tls_problem(where: str, chain: list[BaseException]) -> str:
    certificate = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if certificate is not None:
        problem = certificate_problem(certificate)
        if problem is not None:
            return f"The TLS certificate of {where} is not trusted: {problem}"
        reason = clean_line(certificate.verify_message or "verification failed", 60)
        return f"The TLS certificate of {where} is not trusted ({reason}). Check the URL, or ask the server's admin."
    handshake = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    reason = clean_line(handshake.reason, 40) if handshake is not None and handshake.reason else ""
    said = f" ({reason})" if reason else ""
    return f"No secure (TLS) connection to {where}{said}. Should the URL start with http:// instead of https://?"


def _refusal(error: MatrixError) -> LoginProblem:
    if error.is_rate_limit:
        wait = format_wait(error.retry_after) if error.retry_after is not None else "a minute"
        return LoginProblem(
            f"Too many login attempts. Please wait {wait}, then try again.", "password"
        )
    if error.errcode == "M_FORBIDDEN":
        return LoginProblem(
            "Wrong user ID or password (or no such user). Check both and try again.", "password"
        )
    if error.errcode == "M_USER_DEACTIVATED":
        return LoginProblem(
            "This account has been deactivated and can no longer log in. Ask your server's admin.",
            "user-id",
        )
    if error.errcode == "M_UNRECOGNIZED" and error.status in (404, 405):
        return LoginProblem(
            "This server takes no password here: it signs you in on its own web page. "
            "Choose 'Sign in with a code'.",
            "password",
        )
    if error.errcode == "M_USER_LOCKED":
        return LoginProblem(
            "This account is locked. Ask your server's admin to unlock it.", "user-id"
        )
    if error.status >= 500:
        return LoginProblem(
            f"The server failed (HTTP {error.status}). Try again later.", "password"
        )
    said = clean_line(error.message, 80)
    code = clean_line(error.errcode, 40)
    reason = f"{said} ({code})" if said else code
    return LoginProblem(f"The server refused the login: {reason}", "password")


class LoginScreen(Screen[None]):
    """The first screen when there is no saved session (or after a logout)."""

    BINDINGS = [
        # Priority: the focus moves before the keys typed after Tab are handed out (a
        # password manager types user, Tab, password, Enter in one burst).
        Binding("tab", "app.focus_next", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", show=False, priority=True),
    ]

    class LoggedIn(Message):
        """Login succeeded."""

        def __init__(self, client: MatrixClient) -> None:
            super().__init__()
            self.client = client

    def __init__(
        self,
        *,
        profile: str,
        base_dir: Path | None,
        transport: Any = None,
        user_id: str = "",
        homeserver: str = "",
        message: str = "",
    ) -> None:
        super().__init__()
        self._profile = profile
        self._base_dir = base_dir
        self._transport = transport
        self._user_id = user_id
        self._homeserver = homeserver
        self._message = message
        #: What the server last asked about offers (keyed by the server typed), once known.
        self._options: tuple[str, LoginOptions] | None = None

    def compose(self) -> ComposeResult:
        # Not inside a Center: a percentage max-height there resolves against the box's
        # own auto height and clipped away the button and the error line.
        with VerticalScroll(id="login-box", classes="dialog") as box:
            box.border_title = "tui_client"
            box.can_focus = False
            yield Label("Log in to your Matrix account", id="login-subtitle")
            yield Input(value=self._user_id, placeholder="@you:example.org", id="user-id")
            yield Input(placeholder="password", password=True, id="password")
            yield Input(
                value=self._homeserver,
                placeholder="homeserver URL (optional: found from your user ID)",
                id="homeserver",
            )
            yield Static(id="login-note", markup=False)
            yield Static(id="login-error", markup=False)
            yield Button("Log in", variant="primary", id="login")
            yield Button("Sign in with a code (OAuth)", id="login-oauth")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._show_status(self._message, error=True)
        target = "#password" if self._user_id else "#user-id"
        self.query_one(target, Input).focus()
        if self._user_id or self._homeserver:
            self._check_server(self._user_id, self._homeserver)

    # -- what the server offers ---------------------------------------------------------

    @on(Input.Blurred, "#user-id, #homeserver")
    def _server_may_have_changed(self) -> None:
        user_id = self.query_one("#user-id", Input).value.strip()
        homeserver = self.query_one("#homeserver", Input).value.strip()
        if user_id and not is_user_id(user_id):
            return  # said when the user logs in, before anything is sent
        if homeserver or user_id:
            key = homeserver or _server_of(user_id)
            if self._options is None or self._options[0] != key:
                self._check_server(user_id, homeserver)

    @work(exclusive=True, exit_on_error=False, group="login-options")
    async def _check_server(self, user_id: str, homeserver: str) -> None:
        try:
            flow = await OAuthLogin.prepare(user_id, homeserver or None, transport=self._transport)
        except Exception:
            # Said when the user tries to log in; the screen offers both meanwhile.
            return
        await flow.aclose()
        self.post_message(_OptionsKnown(homeserver or _server_of(user_id), flow.options))

    def on__options_known(self, message: _OptionsKnown) -> None:
        self._options = (message.key, message.options)
        self._offer(message.options)

    def _offer(self, options: LoginOptions) -> None:
        offers_oauth = options.oauth is not None
        self.query_one("#password").display = options.password or not offers_oauth
        self.query_one("#login").display = options.password or not offers_oauth
        self.query_one("#login-oauth").display = offers_oauth
        note = self.query_one("#login-note", Static)
        if options.why_none():
            note.display = False
            self._show_status(options.why_none(), error=True)
        elif not options.password:
            note.update(Text("No password here: this server signs you in on its web page."))
            note.display = True
            if self.query_one("#password", Input).has_focus or self.focused is None:
                self.query_one("#login-oauth", Button).focus()
        else:
            note.display = False

    # -- OAuth ------------------------------------------------------------------------------

    @on(Button.Pressed, "#login-oauth")
    def _oauth_pressed(self) -> None:
        if self.query_one("#login-oauth", Button).disabled:
            return
        user_id = self.query_one("#user-id", Input).value.strip()
        homeserver = self.query_one("#homeserver", Input).value.strip()
        if not homeserver and not user_id:
            self._problem(
                LoginProblem("Enter your user ID (or the homeserver URL) first.", "user-id")
            )
            return
        if not homeserver and not is_user_id(user_id):
            self._problem(
                LoginProblem("Write your user ID in full, like @name:example.org.", "user-id")
            )
            return
        self._show_status("Asking the server…", error=False)
        self._busy(True)
        self._start_oauth(user_id, homeserver)

    @work(exclusive=True, exit_on_error=False, group="login")
    async def _start_oauth(self, user_id: str, homeserver: str) -> None:
        try:
            flow = await OAuthLogin.prepare(user_id, homeserver or None, transport=self._transport)
        except Exception as error:
            problem = explain_login_failure(error, user_id=user_id, homeserver=homeserver)
            self.post_message(
                _LoginFailed(LoginProblem(problem.text, "homeserver" if homeserver else "user-id"))
            )
            return
        if flow.options.oauth is None:
            await flow.aclose()
            text = (
                flow.options.why_none()
                or "This server does not offer OAuth sign-in: log in with your password."
            )
            self.post_message(
                _LoginFailed(LoginProblem(text, "password" if flow.options.password else "user-id"))
            )
            return
        self.post_message(_OpenOAuth(flow, user_id))

    def on__open_oauth(self, message: _OpenOAuth) -> None:
        self._busy(False)
        self._show_status("", error=False)

        def done(client: MatrixClient | None) -> None:
            if client is not None:
                self.post_message(self.LoggedIn(client))

        self.app.push_screen(
            OAuthLoginScreen(
                message.flow,
                profile=self._profile,
                base_dir=self._base_dir,
                user_hint=message.user_id,
            ),
            done,
        )

    def _busy(self, busy: bool) -> None:
        self.query_one("#login", Button).disabled = busy
        self.query_one("#login-oauth", Button).disabled = busy

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        if event.input.id == "user-id":
            self.query_one("#password", Input).focus()
        else:
            self._submit()

    @on(Button.Pressed, "#login")
    def _submit(self) -> None:
        if self.query_one("#login", Button).disabled:
            return
        user_id = self.query_one("#user-id", Input).value.strip()
        password = self.query_one("#password", Input).value
        homeserver = self.query_one("#homeserver", Input).value.strip()
        if not user_id:
            self._problem(LoginProblem("Enter your user ID, like @name:example.org.", "user-id"))
            return
        if not is_user_id(user_id):
            self._problem(
                LoginProblem("Write your user ID in full, like @name:example.org.", "user-id")
            )
            return
        if (
            self._options is not None
            and not self._options[1].password
            and self._options[1].oauth is not None
        ):
            self._problem(
                LoginProblem(
                    "This server takes no password here: choose 'Sign in with a code'.", "user-id"
                )
            )
            return
        if not password:
            self._problem(LoginProblem("Enter your password.", "password"))
            return
        self._show_status(BUSY, error=False)
        self.query_one("#login", Button).disabled = True
        self._login(user_id, password, homeserver)

    @work(exclusive=True, exit_on_error=False, group="login")
    async def _login(self, user_id: str, password: str, homeserver: str) -> None:
        try:
            client = await MatrixClient.login(
                user_id,
                password,
                homeserver=homeserver or None,
                profile=self._profile,
                base_dir=self._base_dir,
                transport=self._transport,
            )
        except Exception as error:
            self.post_message(
                _LoginFailed(explain_login_failure(error, user_id=user_id, homeserver=homeserver))
            )
            return
        self.post_message(self.LoggedIn(client))

    def on__login_failed(self, message: _LoginFailed) -> None:
        self._busy(False)
        self.query_one("#password", Input).value = ""
        self._problem(message.problem)

    def _problem(self, problem: LoginProblem) -> None:
        self._show_status(problem.text, error=True)
        field = self.query_one(f"#{problem.field}", Input)
        if field.display:
            field.focus()

    def _show_status(self, text: str, *, error: bool) -> None:
        status = self.query_one("#login-error", Static)
        # Server text is untrusted: a plain Text, one line of it, never markup.
        status.update(Text(clean_line(text)))
        status.display = bool(text)
        status.set_class(error, "-error")


class _LoginFailed(Message):
    def __init__(self, problem: LoginProblem) -> None:
        super().__init__()
        self.problem = problem


class _OptionsKnown(Message):
    def __init__(self, key: str, options: LoginOptions) -> None:
        super().__init__()
        self.key = key
        self.options = options


class _OpenOAuth(Message):
    def __init__(self, flow: OAuthLogin, user_id: str) -> None:
        super().__init__()
        self.flow = flow
        self.user_id = user_id
