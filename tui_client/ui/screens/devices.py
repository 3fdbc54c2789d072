"""The devices screen: our sessions (or another user's devices) and how far we trust them.

For us: every session the server lists (name, ID, last seen time and IP), which are
verified, this one marked; rename one, sign another out (the password is asked),
verify one, and the key-sharing setting. For another user: their identity (master
key) state and their devices, each verified or not; verify them, or acknowledge that
their identity changed. Names and IDs come from other people: they are shown as
sanitised plain text, never markup. A verification request that arrives meanwhile is
shown at the top, in the security bar, with its Accept and Decline buttons.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...engine.devices import DeviceInfo, IdentityState, UserTrust
from ...engine.updates import CrossSigningChanged, TrustChanged, Update
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ..app_interface import client_app
from ..widgets.key_footer import KeyFooter
from ..widgets.security_bar import SecurityBar
from .dialogs import ConfirmDialog, PromptDialog
from .follows import DevicesView

if TYPE_CHECKING:
    from ...engine.client import MatrixClient

_TRUST_TEXT = {
    "verified": ("✓ verified", "green"),
    "unverified": ("not verified", "yellow"),
    "blocked": ("blocked", "red"),
    "unknown": ("keys unknown", "bright_black"),
}

_IDENTITY_TEXT = {
    IdentityState.NONE: "has no cross-signing identity: each device must be verified on its own",
    IdentityState.UNVERIFIED: "is not verified",
    IdentityState.VERIFIED: "is verified ✓",
    IdentityState.CHANGED: "changed since you first saw it (they reset it, or someone is impersonating them)",
    IdentityState.VIOLATION: "CHANGED since you verified it: verify again before trusting their messages",
}


def fingerprint(key: str | None) -> str:
    """A public key in groups of four characters (easier to compare aloud)."""
    if not key:
        return "—"
    clean = clean_line(key, 64)
    return " ".join(clean[i : i + 4] for i in range(0, len(clean), 4))


def last_seen(ts: int | None) -> str:
    """``2026-11-27 08:20`` in local time, or a dash."""
    if not ts:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts / 1000))


class DevicesScreen(DevicesView, Screen[None]):
    """Sessions and devices (see the module documentation)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("v", "verify", "Verify"),
        Binding("r", "rename", "Rename"),
        Binding("s,delete", "sign_out", "Sign out"),
        Binding("u", "verify_user", "Verify user"),
        Binding("a", "acknowledge", "Acknowledge change"),
        Binding("k", "toggle_sharing", "Key sharing"),
        Binding("f5", "reload", "Refresh"),
    ]

    DEFAULT_CSS = """
    DevicesScreen #devices-title {
        height: auto;
        padding: 0 1;
        background: $boost;
        text-style: bold;
    }
    DevicesScreen #devices-identity, DevicesScreen #devices-status {
        height: auto;
        padding: 0 1;
        margin: 1 0 0 0;
    }
    DevicesScreen #device-table {
        height: 1fr;
        margin: 1 1 0 1;
    }
    """

    def __init__(self, client: MatrixClient, user_id: str | None = None) -> None:
        super().__init__()
        self.client = client
        self.user_id = user_id or client.user_id
        self.devices: list[DeviceInfo] = []
        self.trust: UserTrust | None = None

    @property
    def own(self) -> bool:
        """Showing our own sessions."""
        return self.user_id == self.client.user_id

    def compose(self) -> ComposeResult:
        title = "Your sessions" if self.own else f"Devices of {clean_line(self.user_id)}"
        yield Static(Text(title), id="devices-title")
        yield SecurityBar(id="security-bar")
        yield Static(id="devices-identity")
        table: DataTable[Text] = DataTable(id="device-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="devices-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        if self.own:
            table.add_columns("", "Name", "Session ID", "Last seen", "IP address", "Trust")
        else:
            table.add_columns("Name", "Device ID", "Trust", "Fingerprint (Ed25519)")
        self._status("Loading…")
        self.reload()
        table.focus()
        client_app(self).security.refresh_bar()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only what applies to whose devices these are."""
        if action in ("rename", "sign_out", "toggle_sharing"):
            return self.own
        if action in ("verify_user", "acknowledge"):
            return not self.own
        return True

    # -- loading ---------------------------------------------------------------------

    @work(group="devices", exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        """Fetch the list again."""
        try:
            if self.own:
                devices = await self.client.devices.own_devices()
                trust = self.client.devices.trust(self.user_id)
            else:
                trust, devices = await self.client.devices.user_devices(self.user_id)
        except (MatrixError, NetworkError, RuntimeError) as error:
            self._status(f"Could not load the devices: {error}", error=True)
            return
        state = self.client.cross_signing.state
        self.show(devices, trust, state)

    def action_reload(self) -> None:
        """F5."""
        self.reload()

    def show(
        self,
        devices: list[DeviceInfo],
        trust: UserTrust | None,
        state: CrossSigningChanged | None = None,
    ) -> None:
        """Fill the table and the identity line."""
        self.devices = devices
        self.trust = trust
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for device in devices:
            label, colour = _TRUST_TEXT.get(device.trust, (device.trust, "white"))
            name = Text(clean_line(device.display_name or "", 40) or "(no name)")
            trust_cell = Text(label, style=Style(color=colour))
            if self.own:
                table.add_row(
                    Text("▶" if device.is_current else " ", style=Style(bold=True)),
                    name,
                    Text(clean_line(device.device_id, 40)),
                    Text("this session" if device.is_current else last_seen(device.last_seen_ts)),
                    Text(clean_line(device.last_seen_ip or "—", 40)),
                    trust_cell,
                    key=device.device_id,
                )
            else:
                table.add_row(
                    name,
                    Text(clean_line(device.device_id, 40)),
                    trust_cell,
                    Text(fingerprint(device.ed25519)),
                    key=device.device_id,
                )
        if devices:
            table.move_cursor(row=min(max(row, 0), len(devices) - 1))
        self.query_one("#devices-identity", Static).update(self._identity_text(trust, state))
        self._status(self._hint())

    def _identity_text(self, trust: UserTrust | None, state: CrossSigningChanged | None) -> Text:
        text = Text()
        if self.own:
            if state is None:
                text.append("Cross-signing: checking…", style=Style(dim=True))
            elif not state.status.published:
                text.append("Cross-signing is not set up", style=Style(color="yellow", bold=True))
                if state.error:
                    text.append(f": {clean_line(state.error, 200)}")
            elif state.needs_verification:
                text.append(
                    "This session is not verified. ", style=Style(color="yellow", bold=True)
                )
                text.append("Verify it from another of your sessions (select it and press v).")
            else:
                text.append(
                    "Cross-signing is set up and this session is verified ✓",
                    style=Style(color="green"),
                )
            sharing = (
                "only your verified devices and others' verified devices"
                if self.client.devices.only_verified
                else "every device of the room's members"
            )
            text.append(
                f"\nRoom keys are shared with {sharing} (k to change).", style=Style(dim=True)
            )
            return text
        if trust is None:
            return Text("Identity: unknown yet", style=Style(dim=True))
        colour = {"verified": "green", "changed": "yellow", "violation": "red"}.get(
            trust.state.value
        )
        text.append("Identity ", style=Style(bold=True))
        text.append(_IDENTITY_TEXT[trust.state], style=Style(color=colour) if colour else Style())
        if trust.master_key:
            text.append(f"\nMaster key: {fingerprint(trust.master_key)}", style=Style(dim=True))
        if trust.device_id_collision:
            text.append(
                "\nOne of their device IDs equals a cross-signing key: never trusted.",
                style=Style(color="red"),
            )
        return text

    def _hint(self) -> str:
        if self.own:
            return "v verify · r rename · s sign out · k key sharing · F5 refresh · Esc back"
        extra = (
            " · a acknowledge the change"
            if self.trust is not None and self.trust.needs_attention
            else ""
        )
        return f"u verify this user (in your DM) · v verify the selected device{extra} · F5 refresh · Esc back"

    def _status(self, message: str, *, error: bool = False) -> None:
        self.query_one("#devices-status", Static).update(
            Text(clean_line(message, 300), style=Style(color="red") if error else Style(dim=True))
        )

    def handle_update(self, update: Update) -> None:
        """Follow trust changes of the user shown."""
        mine = isinstance(update, TrustChanged) and self.user_id in update.user_ids
        if mine or (isinstance(update, CrossSigningChanged) and self.own):
            self.reload()

    # -- actions -------------------------------------------------------------------------

    def _selected(self) -> DeviceInfo | None:
        table = self.query_one(DataTable)
        if not self.devices or table.cursor_row < 0 or table.cursor_row >= len(self.devices):
            return None
        return self.devices[table.cursor_row]

    def action_close(self) -> None:
        """Back."""
        self.dismiss(None)

    def action_verify(self) -> None:
        """Verify the selected device (for us: this session asks that one)."""
        device = self._selected()
        if device is None:
            return
        if device.is_current:
            self.notify(
                "This is the session you are using: select another one to verify with.",
                markup=False,
            )
            return
        client_app(self).security.verify_device(device.user_id, device.device_id)

    def action_verify_user(self) -> None:
        """Verify the user (in our DM with them)."""
        client_app(self).security.verify_user(self.user_id)

    def action_acknowledge(self) -> None:
        """Accept that the user's identity changed (they stay unverified)."""
        if self.trust is None or not self.trust.needs_attention:
            self.notify("Nothing to acknowledge.", markup=False)
            return
        client_app(self).security.acknowledge(self.user_id)

    def action_rename(self) -> None:
        """Rename the selected session."""
        device = self._selected()
        if device is None:
            return

        def chosen(name: str | None) -> None:
            if name is None or not name.strip():
                return

            async def run() -> None:
                try:
                    await self.client.devices.rename(device.device_id, name)
                except (MatrixError, NetworkError) as error:
                    self.notify(
                        clean_line(f"Could not rename it: {error}"), severity="error", markup=False
                    )
                    return
                self.reload()

            self.run_worker(run(), group="device-action", exit_on_error=False)

        self.app.push_screen(
            PromptDialog(
                f"New name for {clean_line(device.device_id)}",
                value=clean_line(device.display_name or ""),
            ),
            chosen,
        )

    def action_sign_out(self) -> None:
        """Sign the selected session out (asks for the password)."""
        device = self._selected()
        if device is None:
            return
        if device.is_current:
            self.notify("To end this session, log out (Ctrl+P, Log out).", markup=False)
            return
        name = clean_line(device.display_name or device.device_id, 40)

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return

            async def run() -> None:
                try:
                    await self.client.devices.sign_out([device.device_id])
                except Exception as error:  # UIA refusals, server errors: say why
                    self.notify(
                        clean_line(f"Not signed out: {error}"), severity="error", markup=False
                    )
                    return
                self.notify(f"Signed out {name}.", markup=False)
                self.reload()

            self.run_worker(run(), group="device-action", exit_on_error=False)

        self.app.push_screen(
            ConfirmDialog(
                f"Sign out {name} ({clean_line(device.device_id)})? It loses access to your messages.",
                "Sign out",
                danger=True,
            ),
            confirmed,
        )

    def action_toggle_sharing(self) -> None:
        """Share room keys with every device, or only with verified ones."""
        value = not self.client.devices.only_verified

        async def run() -> None:
            await self.client.devices.set_only_verified(value)
            save = getattr(self.app, "save_settings", None)
            if save is not None:
                save()
            self.notify(
                "Room keys now go only to verified devices."
                if value
                else "Room keys now go to every device in the room.",
                markup=False,
            )
            self.show(self.devices, self.trust, self.client.cross_signing.state)

        self.run_worker(run(), group="device-action", exit_on_error=False)
