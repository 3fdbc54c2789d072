"""The login screen for one more account in the window (ui/accounts.py), imported when first
shown (issue 13: the first painted room list needs no login screen)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.widgets import Label

from .login import LoginProblem, LoginScreen, _LoginFailed

__all__ = ["AddAccountScreen"]


class AddAccountScreen(LoginScreen):
    """The login screen for one more account: Escape goes back to the accounts open."""

    BINDINGS = [Binding("escape", "cancel", "Back", id="dialogs.cancel")]

    def __init__(self, *, open_ids: Iterable[str], **options: Any) -> None:
        super().__init__(**options)
        self._open_ids = frozenset(open_ids)

    def on_mount(self) -> None:
        self.query_one("#login-subtitle", Label).update(
            "Add an account (Escape goes back): it runs beside the others"
        )

    def _login(self, user_id: str, password: str, homeserver: str) -> None:  # type: ignore[override]
        if user_id in self._open_ids:
            problem = LoginProblem(
                f"{user_id} is already open in this window (F9 switches to it).", "user-id"
            )
            self.post_message(_LoginFailed(problem))
            return
        super()._login(user_id, password, homeserver)

    def on_login_screen_logged_in(self, message: LoginScreen.LoggedIn) -> None:
        message.stop()
        self.dismiss(message.client)  # type: ignore[arg-type]

    def action_cancel(self) -> None:
        """Back to the accounts open, nothing changed."""
        self.dismiss(None)
