"""Create a room or a space: name, topic, alias, public or private, encryption, invitees."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from ...protocol.ids import InvalidIdentifier, is_user_id
from ...protocol.room_create import RoomCreateOptions, validate_alias_localpart
from ...protocol.sanitize import clean_line


class CreateRoomDialog(ModalScreen[RoomCreateOptions | None]):
    """Dismisses with the options of the room to create, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, *, server_name: str, space: bool = False, parent: tuple[str, str] | None = None
    ) -> None:
        super().__init__()
        self._server_name = server_name
        self._space = space
        self._parent_space = parent
        self._encryption_touched = False

    def compose(self) -> ComposeResult:
        kind = "space" if self._space else "room"
        with VerticalScroll(classes="dialog create-room"):
            yield Label(Text(f"Create a {kind}", style=Style(bold=True)), classes="dialog-title")
            yield Input(placeholder="Name", id="create-name")
            yield Input(placeholder="Topic (optional)", id="create-topic")
            with Horizontal(classes="create-alias"):
                yield Label("#", classes="create-affix")
                yield Input(placeholder="address (optional, for public rooms)", id="create-alias")
                yield Label(Text(":" + clean_line(self._server_name)), classes="create-affix")
            with RadioSet(id="create-visibility", compact=True):
                yield RadioButton("Private: invite only", value=True, id="create-private")
                yield RadioButton("Public: anyone can find and join it", id="create-public")
            yield Checkbox(
                "End-to-end encrypted",
                value=not self._space,
                id="create-encrypted",
                disabled=self._space,
                compact=True,
            )
            if not self._space:
                yield Input(
                    placeholder="Invite (user IDs, separated by commas)", id="create-invite"
                )
            if self._parent_space is not None:
                yield Checkbox(
                    Text(f"Add to {clean_line(self._parent_space[1], 40)}"),
                    value=True,
                    id="create-parent",
                    compact=True,
                )
            yield Static(id="create-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#create-name", Input).focus()

    @on(RadioSet.Changed)
    def _visibility(self, event: RadioSet.Changed) -> None:
        # Private rooms are encrypted by default, public ones not (their history is
        # for anyone anyway), unless the user chose.
        if not self._encryption_touched and not self._space:
            checkbox = self.query_one("#create-encrypted", Checkbox)
            checkbox.value = event.pressed.id == "create-private"
            self._encryption_touched = False

    @on(Checkbox.Changed, "#create-encrypted")
    def _encryption(self, event: Checkbox.Changed) -> None:
        public = self.query_one("#create-public", RadioButton).value
        if event.value != (not public):
            self._encryption_touched = True

    @on(Input.Submitted)
    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        error = self.query_one("#create-error", Static)
        try:
            options = self._options()
        except InvalidIdentifier as problem:
            error.update(Text(clean_line(str(problem), 200), style=Style(color="#e06c75")))
            return
        self.dismiss(options)

    def _options(self) -> RoomCreateOptions:
        name = self.query_one("#create-name", Input).value.strip()
        if not name:
            raise InvalidIdentifier("give it a name")
        alias = self.query_one("#create-alias", Input).value.strip()
        if alias:
            alias = validate_alias_localpart(alias)
        invite: tuple[str, ...] = ()
        if not self._space:
            raw = self.query_one("#create-invite", Input).value.replace(",", " ").split()
            for user in raw:
                if not is_user_id(user):
                    raise InvalidIdentifier(f"{user!r} is not a user ID (@name:server)")
            invite = tuple(raw)
        parent = None
        if self._parent_space is not None and self.query_one("#create-parent", Checkbox).value:
            parent = self._parent_space[0]
        public = self.query_one("#create-public", RadioButton).value
        return RoomCreateOptions(
            name=name,
            topic=self.query_one("#create-topic", Input).value,
            alias_localpart=alias,
            public=public,
            encrypted=self.query_one("#create-encrypted", Checkbox).value
            if not self._space
            else False,
            invite=invite,
            space=self._space,
            parent_space=parent,
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without creating anything."""
        self.dismiss(None)
