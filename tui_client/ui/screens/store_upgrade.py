""" "Upgrading encryption store…": shown while a python-olm store moves to vodozemac.

The move happens when the crypto machine opens, just after the room list is first painted
from the cache, and can take seconds on a big store; the engine says so with
:class:`CryptoStoreUpgrade` once it has run over a moment. The update is handled as it is
published (:func:`show_upgrade`): this screen is pushed over the chat and its count kept
current, then popped when the move is done, with a toast saying so.
"""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ...engine.updates import CryptoStoreUpgrade

__all__ = ["StoreUpgradeScreen", "show_upgrade"]

TITLE = "Upgrading encryption store…"


def _progress(migrated: int) -> str:
    return (
        f"{migrated:,} keys moved to vodozemac so far. This happens once, after using\n"
        "python-olm; please wait."
    )


class StoreUpgradeScreen(ModalScreen[None]):
    """A box over the starting screen: the title and how many keys are done."""

    DEFAULT_CSS = """
    StoreUpgradeScreen { align: center middle; }
    StoreUpgradeScreen > Vertical {
        width: 72; max-width: 100%; height: auto; padding: 1 2; border: round $accent;
        background: $surface;
    }
    StoreUpgradeScreen #upgrade-title { text-style: bold; }
    """

    def __init__(self, migrated: int) -> None:
        super().__init__()
        self._migrated = migrated

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(TITLE, id="upgrade-title", markup=False)
            yield Static(_progress(self._migrated), id="upgrade-progress", markup=False)

    def show_count(self, migrated: int) -> None:
        """The keys moved so far."""
        self._migrated = migrated
        if self.is_mounted:
            self.query_one("#upgrade-progress", Static).update(_progress(migrated))


def show_upgrade(app: App[Any], update: CryptoStoreUpgrade) -> None:
    """Show, advance or close the upgrade screen of ``app`` for ``update``."""
    screen = next((s for s in app.screen_stack if isinstance(s, StoreUpgradeScreen)), None)
    if not update.done:
        if screen is None:
            app.push_screen(StoreUpgradeScreen(update.migrated))
        else:
            screen.show_count(update.migrated)
        return
    if screen is not None and app.screen is screen:
        app.pop_screen()
    app.notify(
        f"Encryption store upgraded: {update.migrated:,} keys moved from python-olm to vodozemac.",
        title="Encryption",
        markup=False,
    )
