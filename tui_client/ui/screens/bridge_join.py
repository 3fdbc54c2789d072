"""Join a bridged channel, or find a bridged user, the way the bridge asks: the
protocol's location fields (for IRC: network and channel) looked up through
``/thirdparty/location`` to the alias to join, or its user fields (network and
nickname) through ``/thirdparty/user`` to the Matrix user to talk to. The dialog stays
open and says why when nothing is found."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ...engine.client import MatrixClient
from ...engine.directory import lookup_location, lookup_users
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ...protocol.thirdparty import ProtocolInstance, ThirdPartyLocation, ThirdPartyProtocol


class BridgeJoinDialog(ModalScreen[ThirdPartyLocation | str | None]):
    """Ask for a protocol's location fields (or, with ``users``, its user fields);
    dismisses with the room found (or the user ID found), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        client: MatrixClient,
        protocol: ThirdPartyProtocol,
        instance: ProtocolInstance | None = None,
        *,
        users: bool = False,
    ) -> None:
        super().__init__()
        self.client = client
        self.protocol = protocol
        self.users = users
        self.wanted = protocol.user_fields if users else protocol.location_fields
        self.preset = dict(instance.fields) if instance is not None else {}
        self.looking = False

    def compose(self) -> ComposeResult:
        name = clean_line(self.protocol.name, 40)
        with Vertical(classes="dialog"):
            title = f"Find a {name} user to talk to" if self.users else f"Join a {name} channel"
            yield Label(Text(title), classes="dialog-title")
            for field in self.wanted:
                kind = self.protocol.field_types.get(field)
                yield Label(Text(clean_line(field, 40)))
                yield Input(
                    value=self.preset.get(field, ""),
                    placeholder=clean_line(kind.placeholder, 60) if kind is not None else "",
                    id=f"bridge-field-{_safe_id(field)}",
                    classes="bridge-field",
                )
            yield Static(id="bridge-join-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    "Find and talk" if self.users else "Find and join", variant="primary", id="ok"
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        empty = [i for i in self.query(".bridge-field").results(Input) if not i.value]
        if empty:
            empty[0].focus()

    def fields(self) -> dict[str, str]:
        """The values typed, by field name."""
        return {
            field: self.query_one(f"#bridge-field-{_safe_id(field)}", Input).value.strip()
            for field in self.wanted
        }

    def _say(self, message: str) -> None:
        self.query_one("#bridge-join-status", Static).update(
            Text(clean_line(message, 300), style=Style(color="#e5c07b"))
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _accept(self) -> None:
        if self.looking:
            return
        values = self.fields()
        for field, value in values.items():
            kind = self.protocol.field_types.get(field)
            if not value:
                self._say(f"Fill in {field}.")
                return
            if kind is not None and not kind.accepts(value):
                hint = f" (like {kind.placeholder})" if kind.placeholder else ""
                self._say(f"That {field} does not look right{hint}.")
                return
        self.looking = True
        self.query_one("#bridge-join-status", Static).update(
            Text("Looking it up…", style=Style(dim=True, italic=True))
        )
        self._lookup(values)

    @work(group="bridge-lookup", exit_on_error=False)
    async def _lookup(self, values: dict[str, str]) -> None:
        try:
            found: list[ThirdPartyLocation] | list[str]
            if self.users:
                found = await lookup_users(self.client, self.protocol.name, values)
            else:
                found = await lookup_location(self.client, self.protocol.name, values)
        except (MatrixError, NetworkError, TimeoutError) as error:
            self.looking = False
            self._say(f"The lookup failed: {error or type(error).__name__}")
            return
        self.looking = False
        if not found:
            shown = ", ".join(f"{k} {v}" for k, v in values.items())
            what = "user" if self.users else "channel"
            self._say(f"The {self.protocol.name} bridge knows no {what} {shown}.")
            return
        self.dismiss(found[0])

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without joining."""
        self.dismiss(None)


def _safe_id(field: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in field) or "_"
