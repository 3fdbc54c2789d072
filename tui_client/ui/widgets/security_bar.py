"""A bar under the room header for what needs the user about security: a verification
request to answer, a contact whose identity changed, this session waiting to be
verified, a verification in progress behind a hidden dialog.

It shows the most urgent item (and how many more wait), with its buttons; the app's
:class:`~tui_client.ui.security_flow.SecurityFlow` decides the items and acts on the
buttons. Its text is built from ``Text`` with every name sanitised.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.containers import Horizontal
from textual.widgets import Button, Static

from ..app_interface import client_app


@dataclass(frozen=True, slots=True)
class BarItem:
    """One thing to show: what it is about (``key``), its text, its buttons."""

    key: str
    text: Text
    #: ``(action, label, variant)`` of each button.
    actions: tuple[tuple[str, str, str], ...]


class SecurityBar(Horizontal):
    """See the module documentation."""

    DEFAULT_CSS = """
    SecurityBar {
        height: 3;
        padding: 0 1;
        background: $warning 15%;
    }
    SecurityBar #security-text {
        width: 1fr;
        height: 3;
        content-align: left middle;
    }
    SecurityBar Button {
        margin-left: 1;
        min-width: 10;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.item: BarItem | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="security-text")

    def on_mount(self) -> None:
        self.display = self.item is not None

    def show_item(self, item: BarItem | None) -> None:
        """Show ``item`` (``None``: hide the bar). Buttons are rebuilt only when they change."""
        if item == self.item:
            return
        previous = self.item
        self.item = item
        self.display = item is not None
        if item is None:
            return
        self.query_one("#security-text", Static).update(item.text)
        if previous is not None and previous.actions == item.actions:
            return
        self.query(Button).remove()
        self.mount_all(
            [
                Button(
                    label,
                    variant=variant,  # type: ignore[arg-type]
                    name=action,
                    classes="security-action",
                )
                for action, label, variant in item.actions
            ]
        )

    @on(Button.Pressed, ".security-action")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.item is not None and event.button.name:
            client_app(self).security.bar_action(event.button.name, self.item.key)
