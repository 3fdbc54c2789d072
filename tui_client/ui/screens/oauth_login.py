"""Signing in through the homeserver's OAuth 2.0 server, from a terminal.

The device code login (RFC 8628) first: the screen shows the web address, the code to
enter there, and the complete address as a QR code to scan with a phone; it polls
until the login is approved, refused or the code expires, and says which on the status
line. Where the server offers it, one button opens a browser on this computer instead
(authorization code with PKCE, the browser coming back to a loopback listener).

Dismissed with the logged-in client, or ``None`` when the user cancels. Fits 80x24:
the QR code (37x19) on the left, the words on the right.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Label, Static

from ...engine.client import LoginError, MatrixClient
from ...engine.oauth import OAuthLogin, OAuthLoginError
from ...engine.opener import HandlerError, open_with_handler
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.oauth import DeviceAuthorization, TokenResponse
from ...protocol.sanitize import clean_line
from ..widgets.key_footer import KeyFooter
from ..widgets.qr_code import QrCodeView

__all__ = ["OAuthLoginScreen"]

WAITING = "Waiting for you to approve the login…"


class OAuthLoginScreen(Screen[MatrixClient | None]):
    """The device code login (and the browser login), for one homeserver."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, flow: OAuthLogin, *, profile: str, base_dir: Path | None, user_hint: str = ""
    ) -> None:
        super().__init__()
        self.flow = flow
        self._profile = profile
        self._base_dir = base_dir
        self._user_hint = user_hint
        self.grant: DeviceAuthorization | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="oauth-body"):
            yield QrCodeView(id="oauth-qr")
            with Vertical(id="oauth-side"):
                yield Label("Sign in on another device", id="oauth-title")
                yield Static(id="oauth-steps", markup=False)
                yield Static(WAITING, id="oauth-status", markup=False)
                yield Button("New code", id="oauth-restart", variant="primary")
                yield Button("Use a browser here", id="oauth-browser")
                yield Button("Cancel", id="oauth-cancel")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#oauth-restart").display = False
        metadata = self.flow.options.oauth
        self.query_one("#oauth-browser").display = (
            metadata is not None and metadata.offers_code_with_pkce
        )
        self.query_one("#oauth-qr").display = False
        if self.flow.options.device_code:
            self._device_login()
        else:
            self._show_steps(
                Text("This server offers no login with a code; use a browser on this computer.")
            )
            self._status("", error=False)

    # -- the device code login -------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="oauth")
    async def _device_login(self) -> None:
        async def tokens() -> TokenResponse:
            grant = await self.flow.start_device_login()
            self.post_message(_Granted(grant))

            def say(text: str) -> None:
                self.post_message(_Status(text))

            return await self.flow.wait_device_login(say)

        await self._log_in(tokens())

    async def _log_in(self, tokens: Awaitable[TokenResponse]) -> None:
        """Wait for the tokens, open the account; say on the status line what failed."""
        try:
            answer = await tokens
            self.post_message(_Status("Approved: opening your account…"))
            client = await MatrixClient.login_oauth(
                self.flow, answer, profile=self._profile, base_dir=self._base_dir
            )
        except HandlerError as error:
            text = f"Cannot open a browser here ({error}). Use the code instead."
            self.post_message(_Failed(text, restart=True))
            return
        except OAuthLoginError as error:
            self.post_message(_Failed(str(error), restart=True))
            return
        except (LoginError, MatrixError, NetworkError) as error:
            self.post_message(_Failed(f"The login failed: {error}", restart=True))
            return
        self.post_message(_Done(client))

    def on__granted(self, message: _Granted) -> None:
        grant = message.grant
        self.grant = grant
        qr = self.query_one("#oauth-qr", QrCodeView)
        qr.show(grant.verification_uri_complete or grant.verification_uri)
        qr.display = True
        steps = Text()
        steps.append("1. On your phone or computer, open\n")
        steps.append(f"   {clean_line(grant.verification_uri, 200)}\n", style="bold underline")
        steps.append("2. Enter the code\n")
        steps.append(f"   {clean_line(grant.user_code, 40)}\n", style="bold reverse")
        steps.append("or scan the QR code with your phone.")
        self._show_steps(steps)
        self.query_one("#oauth-restart").display = False
        self._status(WAITING, error=False)

    def on__status(self, message: _Status) -> None:
        self._status(message.text, error=False)

    def on__failed(self, message: _Failed) -> None:
        self._status(message.text, error=True)
        restart = self.query_one("#oauth-restart", Button)
        restart.display = message.restart and self.flow.options.device_code
        if restart.display:
            restart.focus()

    def on__done(self, message: _Done) -> None:
        self.dismiss(message.client)

    @on(Button.Pressed, "#oauth-restart")
    def _restart(self) -> None:
        self.query_one("#oauth-restart").display = False
        self._status("Asking for a new code…", error=False)
        self._device_login()

    # -- the browser on this computer ------------------------------------------------------

    @on(Button.Pressed, "#oauth-browser")
    def _use_browser(self) -> None:
        self.workers.cancel_group(self, "oauth")
        self._status("Opening the browser: finish the login there…", error=False)
        self._browser_login()

    @work(exclusive=True, exit_on_error=False, group="oauth")
    async def _browser_login(self) -> None:
        await self._log_in(self.flow.browser_login(open_with_handler, self._user_hint or None))

    # -- leaving -------------------------------------------------------------------------

    @on(Button.Pressed, "#oauth-cancel")
    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "oauth")
        self.dismiss(None)

    async def on_unmount(self) -> None:
        await self.flow.aclose()

    def _show_steps(self, text: Text) -> None:
        self.query_one("#oauth-steps", Static).update(text)

    def _status(self, text: str, *, error: bool) -> None:
        status = self.query_one("#oauth-status", Static)
        # The sign-in service's words are untrusted: plain Text, never markup.
        status.update(Text(clean_line(text, 300)))
        status.set_class(error, "-error")


class _Granted(Message):
    def __init__(self, grant: DeviceAuthorization) -> None:
        super().__init__()
        self.grant = grant


class _Status(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class _Failed(Message):
    def __init__(self, text: str, *, restart: bool) -> None:
        super().__init__()
        self.text = text
        self.restart = restart


class _Done(Message):
    def __init__(self, client: MatrixClient) -> None:
        super().__init__()
        self.client = client
