"""Logging in: user ID, password, and an optional homeserver URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from ...engine.client import LoginError, MatrixClient


class LoginScreen(Screen[None]):
    """The first screen when there is no saved session (or after a logout)."""

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

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="login-box", classes="dialog"):
            yield Static(Text("tui_client", style="bold"), id="login-title")
            yield Label("Log in to your Matrix account")
            yield Input(value=self._user_id, placeholder="@you:example.org", id="user-id")
            yield Input(placeholder="password", password=True, id="password")
            yield Input(
                value=self._homeserver,
                placeholder="homeserver URL (optional: found from your user ID)",
                id="homeserver",
            )
            yield Button("Log in", variant="primary", id="login")
            yield Static(Text(self._message), id="login-error")
        yield Footer()

    def on_mount(self) -> None:
        target = "#password" if self._user_id else "#user-id"
        self.query_one(target, Input).focus()

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        if event.input.id == "user-id":
            self.query_one("#password", Input).focus()
        else:
            self._submit()

    @on(Button.Pressed, "#login")
    def _submit(self) -> None:
        user_id = self.query_one("#user-id", Input).value.strip()
        password = self.query_one("#password", Input).value
        homeserver = self.query_one("#homeserver", Input).value.strip() or None
        if not user_id or not password:
            self._show_error("Enter your user ID and password.")
            return
        self._show_error("Logging in…")
        self.query_one("#login", Button).disabled = True
        self._login(user_id, password, homeserver)

    @work(exclusive=True, exit_on_error=False, group="login")
    async def _login(self, user_id: str, password: str, homeserver: str | None) -> None:
        try:
            client = await MatrixClient.login(
                user_id,
                password,
                homeserver=homeserver,
                profile=self._profile,
                base_dir=self._base_dir,
                transport=self._transport,
            )
        except LoginError as error:
            self.post_message(_LoginFailed(str(error)))
            return
        except Exception as error:  # a bug must still end in a message, not a hang
            self.post_message(_LoginFailed(f"Login failed: {type(error).__name__}: {error}"))
            return
        self.post_message(self.LoggedIn(client))

    def on__login_failed(self, message: _LoginFailed) -> None:
        self.query_one("#login", Button).disabled = False
        self._show_error(message.text)
        self.query_one("#password", Input).focus()

    def _show_error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(Text(text))


class _LoginFailed(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
