"""The app as its screens, widgets and flows see it: the client, and where to go next.

:class:`ClientApp` is the base of :class:`~.app.TuiClientApp`; a screen reaches it with
:func:`client_app` (typed, no ``type: ignore``). This module imports no other module of
the UI, so none of them needs to import :mod:`.app` (which imports them all).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from textual.app import App
from textual.dom import DOMNode

from ..engine.client import MatrixClient
from ..engine.joins import JoinJob
from ..engine.updates import SessionEnded
from ..protocol.directory import PublicRoom

__all__ = ["ClientApp", "JoinRequests", "SecurityRequests", "client_app"]


class JoinRequests(Protocol):
    """Joining rooms with progress shown (:class:`~.join_flow.JoinFlow`)."""

    def join(
        self, target: str, via: Sequence[str] = (), *, label: str = "", open_after: bool = False
    ) -> JoinJob | None: ...

    def join_many(self, targets: Sequence[tuple[str, Sequence[str]]]) -> list[JoinJob]: ...


class SecurityRequests(Protocol):
    """Verification, devices and the security bar (:class:`~.security_flow.SecurityFlow`)."""

    def refresh_bar(self) -> None: ...

    def bar_action(self, action: str, key: str) -> None: ...

    def verify_user(self, user_id: str, room_id: str | None = None) -> None: ...

    def verify_device(self, user_id: str, device_id: str) -> None: ...

    def acknowledge(self, user_id: str) -> None: ...

    def show_devices(self, user_id: str | None = None) -> None: ...


class ClientApp(App[None]):
    """What every screen of tui_client may ask of the app it runs in."""

    #: The logged-in account in front (``None`` before login and after logout).
    client: MatrixClient | None
    join_flow: JoinRequests
    security: SecurityRequests
    #: Where the accounts' data lives (``profile_dir(profile, base_dir)``), and the
    #: HTTP transport the clients are made with (tests give a fake one).
    profile: str
    base_dir: Path | None
    transport: Any
    #: Stops the front account's updates reaching the app (the account manager swaps it).
    _unsubscribe: Any

    #: The accounts of this window (ui/accounts.py's AccountManager).
    accounts: Any

    async def _drop_client(self, message: str) -> None:
        """Close the front account (``message``: why, for the login screen; empty: quietly)."""
        raise NotImplementedError

    def _show_login(self, message: str = "", user_id: str = "") -> None:
        """The login screen."""
        raise NotImplementedError

    def action_logout(self) -> None:
        """Log out, once confirmed."""
        raise NotImplementedError

    async def _start(self, client: MatrixClient) -> None:
        """Show ``client``'s chat screen and start it (the account manager starts added accounts)."""
        raise NotImplementedError

    def _session_ended(self, update: SessionEnded) -> None:
        """The server ended the front account's session: ask for the password, or log in again."""
        raise NotImplementedError

    def open_room(self, room_id: str) -> None:
        """Open a room in the chat screen."""
        raise NotImplementedError

    def show_room(self, room_id: str) -> None:
        """Back to the chat screen, showing ``room_id``."""
        raise NotImplementedError

    def show_space(self, space_id: str, via: Sequence[str] = ()) -> None:
        """The space view of ``space_id`` (joined or not)."""
        raise NotImplementedError

    def preview_room(
        self, target: str, via: Sequence[str] = (), known: PublicRoom | None = None
    ) -> None:
        """Preview a room, then join, open or explore it as the user chooses."""
        raise NotImplementedError

    def open_directory(self, servers: str = "") -> None:
        """The room directory (of ``servers``, comma-separated; ours by default)."""
        raise NotImplementedError

    def account_count(self) -> int:
        """How many accounts the window holds (one unless more were added)."""
        return 1

    def save_settings(self) -> None:
        """Write the settings changed in the client back to the config file."""
        raise NotImplementedError


def client_app(node: DOMNode) -> ClientApp:
    """The app ``node`` runs in, as a :class:`ClientApp`."""
    app = node.app
    if not isinstance(app, ClientApp):
        raise TypeError(
            f"{type(node).__name__} runs only in tui_client's app, not in {type(app).__name__}"
        )
    return app
