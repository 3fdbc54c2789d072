"""The verification dialog: one flow, from the request to verified (or why not).

It shows whom it verifies, where the flow is, our QR code while the other side can scan
it (then asks whether the other device says it scanned), the seven emoji large with their names
(the spec's table) and the three numbers as the alternative, the time left, and the
buttons that make sense now: accept or decline a request, start comparing, confirm
or report a mismatch, cancel. A cancellation is explained in our own words; a reason
the other side gave is untrusted text, shown only after :func:`clean_line`.

The dialog is bound to one verification ID: several flows at once never mix. Escape
hides it without cancelling (the security bar of the chat screen shows it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ...crypto.verification import QR_SHOW_METHOD, Verification, VerificationState
from ...engine.devices import UserTrust
from ...protocol.sanitize import clean_line
from ..widgets.qr_code import QrCodeView

if TYPE_CHECKING:
    from ...engine.client import MatrixClient

_STATE_TEXT = {
    VerificationState.CREATED: "Sending the request…",
    VerificationState.REQUESTED: "Waiting for the other side to accept the request…",
    VerificationState.INCOMING: "Accept to compare emoji with them. Only accept if you expected this.",
    VerificationState.READY: "Both sides are ready. Start comparing emoji (or wait for the other side to).",
    VerificationState.QR_SCANNED: "The other device scanned the code. Does it show a shield (✓) or say it verified?",
    VerificationState.STARTED: "Exchanging keys…",
    VerificationState.KEYS_EXCHANGED: "Compare these emoji with the ones shown on the other device, in the same order:",
    VerificationState.CONFIRMED: "You confirmed. Waiting for the other side to confirm…",
    VerificationState.WAITING_FOR_DONE: "Waiting for the other side to finish…",
    VerificationState.DONE: "✓ Verified.",
    VerificationState.CANCELLED: "The verification did not complete.",
}

_AUTO_START_TEXT = "Both sides are ready. Starting to compare emoji…"
_QR_OWN_TEXT = "Scan this code with your other device (in Element: “Scan QR code”)."
_QR_OTHER_TEXT = "Ask them to scan this code with their device (in Element: “Scan QR code”)."
_QR_WAIT_TEXT = "Both sides are ready. The QR code shows once this device knows their keys…"

# Which buttons each state offers.
_BUTTONS: dict[VerificationState, tuple[str, ...]] = {
    VerificationState.CREATED: ("cancel",),
    VerificationState.REQUESTED: ("cancel",),
    VerificationState.INCOMING: ("accept", "decline"),
    VerificationState.READY: ("start", "cancel"),
    VerificationState.QR_SCANNED: ("qr_yes", "qr_no"),
    VerificationState.STARTED: ("cancel",),
    VerificationState.KEYS_EXCHANGED: ("match", "mismatch", "cancel"),
    VerificationState.CONFIRMED: ("cancel",),
    VerificationState.WAITING_FOR_DONE: ("cancel",),
    VerificationState.DONE: ("close",),
    VerificationState.CANCELLED: ("close",),
}


def describe_other(own_user: str, flow: Verification, device_name: str | None = None) -> str:
    """Whom a flow verifies, in plain words (all of it sanitised)."""
    device = clean_line(flow.other_device_id) if flow.other_device_id else None
    named = f"{device} “{clean_line(device_name, 40)}”" if device and device_name else device
    if flow.other_user_id == own_user:
        return f"your session {named}" if named else "your other sessions"
    user = clean_line(flow.other_user_id)
    if flow.in_room or named is None:
        return user
    return f"{user} (device {named})"


def trust_note(trust: UserTrust | None, flow: Verification) -> str:
    """How far we trust whoever asks, for the Accept step (empty while it is not known)."""
    if trust is None:
        return ""
    if trust.needs_attention:
        return "Their identity changed: accept only if you expected this."
    device = flow.other_device_id
    if flow.in_room or device is None:
        return "You verified them before." if trust.verified else "They are not verified yet."
    if device in trust.verified_devices:
        return "That device is already verified."
    return "That device is not verified yet."


def time_left(flow: Verification, now_ms: int) -> str:
    """``times out in 9:41`` (empty once the flow is over)."""
    if flow.is_final:
        return ""
    seconds = max(0, (flow.expires_ms - now_ms) // 1000)
    return f"Times out in {seconds // 60}:{seconds % 60:02d}"


#: The cells every emoji of the dialog takes.
EMOJI_CELLS = 2

_VARIATION_SELECTOR_16 = "\ufe0f"


def emoji_glyph(symbol: str) -> str:
    """An emoji drawn in :data:`EMOJI_CELLS` cells, the same on every terminal.

    Terminals disagree on the width of a character followed by the emoji variation
    selector U+FE0F (☎️ ✏️ ☂️): one cell on some, two on others (and in Rich's count),
    which pushes the cards' borders out of line. Without the selector each of these
    characters is one cell everywhere; it is padded to the slot's width (room for a
    font that draws it wide).
    """
    glyph = symbol.replace(_VARIATION_SELECTOR_16, "")
    return glyph + " " * max(0, EMOJI_CELLS - cell_len(glyph))


def emoji_card(symbol: str, name: str) -> Text:
    """One emoji of the short authentication string, with its name under it."""
    text = Text(justify="center")
    text.append(emoji_glyph(symbol) + "\n", style=Style(bold=True))
    text.append(name)
    return text


class VerificationDialog(ModalScreen[None]):
    """One verification flow (see the module documentation)."""

    # Nothing is focused at first (unless the user opened it): a dialog popping up while
    # the user types must not take an Enter meant for the composer as an answer.
    AUTO_FOCUS = ""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "hide", "Hide")]

    DEFAULT_CSS = """
    VerificationDialog #verification-box {
        width: 92;
        max-width: 98%;
        height: auto;
        max-height: 95%;
        padding: 1 2;
        border: thick $primary;
        background: $surface;
    }
    VerificationDialog #verification-status, VerificationDialog #verification-detail {
        height: auto;
        margin-bottom: 1;
    }
    VerificationDialog #emoji-row {
        height: auto;
        margin-bottom: 1;
    }
    VerificationDialog .emoji-card {
        width: 12;
        height: 4;
        border: round $primary;
        content-align: center middle;
        text-align: center;
    }
    VerificationDialog #verification-decimals, VerificationDialog #verification-timer {
        height: auto;
    }
    VerificationDialog #verification-timer {
        color: $text-muted;
    }
    VerificationDialog #verification-body, VerificationDialog #verification-main {
        height: auto;
    }
    VerificationDialog #verification-qr {
        display: none;
    }
    /* Showing a QR code: the whole screen, the code on the left (45x23 fits 80x24). */
    VerificationDialog #verification-box.-qr {
        width: 100%;
        max-width: 100%;
        height: 100%;
        max-height: 100%;
        border: none;
        padding: 0 1;
    }
    VerificationDialog .-qr #verification-body {
        height: 1fr;
    }
    VerificationDialog .-qr #verification-qr {
        display: block;
        height: 1fr;
        margin-right: 2;
    }
    VerificationDialog .-qr #verification-main {
        width: 1fr;
    }
    VerificationDialog .-qr .dialog-buttons {
        layout: vertical;
    }
    VerificationDialog.-showing-qr Toast {
        display: none;
    }
    """

    #: Milliseconds now (snapshot tests freeze it).
    clock: Callable[[], int] = staticmethod(lambda: int(time.time() * 1000))

    def __init__(
        self,
        client: MatrixClient,
        flow: Verification,
        *,
        device_name: str | None = None,
        focus: bool = False,
    ) -> None:
        super().__init__()
        self.client = client
        self.flow = flow
        self.device_name = device_name
        self._focus = focus

    @property
    def verification_id(self) -> str:
        """The flow this dialog shows."""
        return self.flow.id

    def compose(self) -> ComposeResult:
        with Vertical(id="verification-box"):
            yield Label(self._title(), id="verification-title", classes="dialog-title")
            with Horizontal(id="verification-body"):
                yield QrCodeView(id="verification-qr")
                with Vertical(id="verification-main"):
                    yield Static(id="verification-status")
                    with Horizontal(id="emoji-row"):
                        for n in range(7):
                            yield Static(id=f"emoji-{n}", classes="emoji-card")
                    yield Static(id="verification-decimals")
                    yield Static(id="verification-detail")
                    yield Static(id="verification-timer")
                    with Horizontal(classes="dialog-buttons"):
                        yield Button("Accept", variant="primary", id="accept")
                        yield Button("Decline", variant="error", id="decline")
                        yield Button("Start comparing emoji", variant="primary", id="start")
                        yield Button("They match", variant="success", id="match")
                        yield Button("They don't match", variant="error", id="mismatch")
                        yield Button("Yes, it says verified", variant="success", id="qr_yes")
                        yield Button("No", variant="error", id="qr_no")
                        yield Button("Cancel verification", id="cancel")
                        yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self._show()
        self.set_interval(1.0, self._tick)
        if self.device_name is None and self.flow.other_device_id and not self.flow.in_room:
            self.run_worker(
                self._learn_device_name(), group="verification-name", exit_on_error=False
            )
        if self._focus:
            visible = [b for b in self.query(Button) if b.display]
            if visible:
                visible[0].focus()

    def _title(self) -> Text:
        flow = self.flow
        who = describe_other(self.client.user_id, flow, self.device_name)
        if flow.state is not VerificationState.INCOMING:
            return Text(f"Verify {who}")
        if flow.other_user_id == self.client.user_id:
            return Text(f"{who[0].upper()}{who[1:]} wants to verify this session")
        return Text(f"{who} wants to verify you")

    async def _learn_device_name(self) -> None:
        flow = self.flow
        if flow.other_device_id is None:
            return
        name = await self.client.devices.device_name(flow.other_user_id, flow.other_device_id)
        if name:
            self.device_name = name
            self.query_one("#verification-title", Label).update(self._title())

    def update_flow(self, flow: Verification) -> None:
        """A newer snapshot of the flow (ignored if it is another flow's)."""
        if flow.id != self.flow.id:
            return
        self.flow = flow
        if self.is_mounted:
            self._show()

    def _tick(self) -> None:
        self.query_one("#verification-timer", Static).update(
            Text(time_left(self.flow, self.clock()))
        )

    def _show(self) -> None:
        flow = self.flow
        self.query_one("#verification-title", Label).update(self._title())
        self.query_one("#verification-status", Static).update(Text(_STATE_TEXT[flow.state]))
        compare = flow.state is VerificationState.KEYS_EXCHANGED
        row = self.query_one("#emoji-row")
        row.display = compare and flow.emoji is not None
        if flow.emoji is not None:
            for n, emoji in enumerate(flow.emoji[:7]):
                self.query_one(f"#emoji-{n}", Static).update(emoji_card(emoji.symbol, emoji.name))
        decimals = self.query_one("#verification-decimals", Static)
        decimals.display = compare and flow.decimals is not None
        if flow.decimals is not None:
            numbers = "  ".join(str(n) for n in flow.decimals)
            intro = (
                "Or compare these numbers: "
                if flow.emoji is not None
                else "Compare these numbers: "
            )
            decimals.update(Text(intro) + Text(numbers, style=Style(bold=True)))
        detail = self._detail()
        shown = self.query_one("#verification-detail", Static)
        shown.update(detail)
        shown.display = bool(detail.plain)
        self._tick()
        wanted = set(_BUTTONS[flow.state])
        if self._auto_starting():
            # This client starts comparing by itself: a second start would only fail.
            wanted.discard("start")
            self.query_one("#verification-status", Static).update(Text(_AUTO_START_TEXT))
        for button in self.query(Button):
            button.display = button.id in wanted
        self._show_qr()

    def _show_qr(self) -> None:
        """Our QR code, while the other side can scan it (SAS is the button beside it)."""
        flow = self.flow
        code = flow.qr_code if flow.state is VerificationState.READY else None
        self.query_one("#verification-qr", QrCodeView).show(code)
        self.query_one("#verification-box").set_class(code is not None, "-qr")
        # A notification drawn over the code (bottom right, over its corner at 80x24) makes
        # it unreadable: none while it shows (they show again after, if not expired).
        self.set_class(code is not None, "-showing-qr")
        # (The app's .dialog-title margin wins over this screen's CSS: set here. A row more
        # for the code lets its quiet zone grow on a 24-row terminal.)
        self.query_one("#verification-title").styles.margin = (
            0,
            0,
            0 if code is not None else 1,
            0,
        )
        start = self.query_one("#start", Button)
        start.label = "Compare emoji instead" if code is not None else "Start comparing emoji"
        if flow.state is not VerificationState.READY or QR_SHOW_METHOD not in flow.methods:
            return
        mine = flow.other_user_id == self.client.user_id
        text = _QR_WAIT_TEXT if code is None else _QR_OWN_TEXT if mine else _QR_OTHER_TEXT
        self.query_one("#verification-status", Static).update(Text(text))

    def _auto_starting(self) -> bool:
        flow = self.flow
        return flow.state is VerificationState.READY and self.client.verification.auto_starting(
            flow.id
        )

    def _detail(self) -> Text:
        flow = self.flow
        if flow.state is VerificationState.KEYS_EXCHANGED:
            return Text(
                "If they differ, someone may be intercepting: choose “They don't match”.",
                style=Style(dim=True),
            )
        if flow.state is VerificationState.INCOMING:
            return Text(trust_note(self.client.devices.trust(flow.other_user_id), flow))
        if flow.state is VerificationState.QR_SCANNED:
            return Text(
                "Answer yes only if the other device says so: this trusts it.",
                style=Style(dim=True),
            )
        if flow.state is VerificationState.DONE:
            mine = flow.other_user_id == self.client.user_id
            what = (
                "This session and that one now trust each other."
                if mine
                else "Their messages now show as verified (✓)."
            )
            return Text(what)
        cancellation = flow.cancellation
        if flow.state is not VerificationState.CANCELLED or cancellation is None:
            return Text("")
        text = Text(cancellation.explanation, style=Style(bold=True))
        if not cancellation.by_us and cancellation.reason:
            text.append("\nTheir reason: ", style=Style(dim=True))
            text.append(clean_line(cancellation.reason, 200), style=Style(dim=True, italic=True))
        text.append(f"\n({clean_line(cancellation.code, 60)})", style=Style(dim=True))
        return text

    # -- the user's answers ----------------------------------------------------------

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        action = event.button.id or ""
        if action == "close":
            self.dismiss(None)
            return
        service = self.client.verification
        verification_id = self.flow.id
        calls = {
            "accept": service.accept,
            "decline": service.cancel,
            "start": service.start_sas,
            "match": service.confirm,
            "mismatch": service.mismatch,
            "qr_yes": service.confirm_qr_scanned,
            "qr_no": service.qr_not_scanned,
            "cancel": service.cancel,
        }
        call = calls.get(action)
        if call is None:
            return

        async def run() -> None:
            try:
                await call(verification_id)
            except Exception as error:  # the engine says why in its message
                self.notify(clean_line(f"Verification: {error}"), severity="error", markup=False)

        self.run_worker(run(), group="verification", exit_on_error=False)
        if action == "decline":
            self.dismiss(None)

    def action_hide(self) -> None:
        """Close the dialog; the flow goes on (the chat screen's bar brings it back)."""
        self.dismiss(None)
