"""The list of ignored users (``m.ignored_user_list``): Enter stops ignoring one."""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from ...engine.client import MatrixClient
from ...engine.updates import RoomListChanged, Update
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from .dialogs import ConfirmDialog

EMPTY_TEXT = "You are not ignoring anyone. Ignore someone with /ignore @name:server or from the member list (F2)."


class IgnoredUsersScreen(ModalScreen[None]):
    """Everyone the user ignores; Enter asks, then shows that user again."""

    BINDINGS = [Binding("escape", "close", "Close")]

    DEFAULT_CSS = """
    IgnoredUsersScreen #ignored-list {
        height: auto;
        max-height: 16;
    }
    IgnoredUsersScreen #ignored-hint {
        color: $text-muted;
    }
    """

    def __init__(self, client: MatrixClient) -> None:
        super().__init__()
        self._client = client
        self._unsubscribe: Callable[[], None] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text("Ignored users"), classes="dialog-title")
            yield Static(Text(EMPTY_TEXT, style=Style(italic=True)), id="ignored-empty")
            yield OptionList(markup=False, id="ignored-list")
            yield Label(Text("Enter: stop ignoring · Escape: close"), id="ignored-hint")

    def on_mount(self) -> None:
        self.show_users()
        # Changes made elsewhere (another client, the composer) come with the room list.
        self._unsubscribe = self._client.subscribe(self._engine_update)

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _engine_update(self, update: Update) -> None:
        if isinstance(update, RoomListChanged) and self.is_mounted:
            self.call_later(self.show_users)

    def users(self) -> list[str]:
        """The ignored users as listed."""
        return sorted(self._client.notifications.ignored)

    def show_users(self) -> None:
        """List the ignored users now (or say there are none)."""
        users = self.users()
        listing = self.query_one("#ignored-list", OptionList)
        shown = [str(option.id) for option in listing.options]
        if shown != users:
            listing.set_options(Option(Text(clean_line(user, 200)), id=user) for user in users)
            if users:
                listing.highlighted = 0
        listing.display = bool(users)
        self.query_one("#ignored-empty").display = not users
        self.query_one("#ignored-hint").display = bool(users)
        if users:
            listing.focus()

    @on(OptionList.OptionSelected, "#ignored-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        user_id = event.option.id
        if not user_id:
            return
        self.app.push_screen(
            ConfirmDialog(
                f"Stop ignoring {clean_line(user_id, 200)}? Their messages and invites will show again.",
                "Stop ignoring",
            ),
            lambda yes: self._unignore(user_id) if yes else None,
        )

    def _unignore(self, user_id: str) -> None:
        async def work() -> None:
            try:
                await self._client.notifications.unignore(user_id)
            except (MatrixError, NetworkError) as error:
                self.notify(
                    f"Could not stop ignoring {clean_line(user_id, 80)}: {clean_line(str(error), 200)}",
                    severity="error",
                    markup=False,
                )
                return
            self.notify(f"No longer ignoring {clean_line(user_id, 80)}", markup=False)
            self.show_users()

        self.run_worker(work(), exit_on_error=False)

    def action_close(self) -> None:
        """Back to where the user was."""
        self.dismiss(None)
