"""QR code verification in the app, against a real Synapse: the code drawn on an 80x24 screen
is read back (half blocks to modules to a QR decoder), another client of ours scans it and
reciprocates, and the user confirms; and what the user sees when it goes wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import zxingcpp
from PIL import Image
from rich.color import Color
from textual.widgets import Static

from tui_client.crypto.types import MachineConfig
from tui_client.crypto.verification import VerificationConfig, VerificationState
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.verification import VerificationDialog
from tui_client.ui.widgets.qr_code import half_block_rows, qr_matrix
from tui_client.ui.widgets.security_bar import SecurityBar

from ..integration.verification_support import cross_signing_complete, incoming, reach
from .conftest import save_screenshot
from .test_snapshots import wait_for

MakeUser = Callable[..., RegisteredUser]
SIZE = (80, 24)
#: The other side: a client of ours that reads codes (as a phone's camera would).
SCANNER = MachineConfig(
    verification=VerificationConfig(
        methods=("m.sas.v1", "m.qr_code.show.v1", "m.qr_code.scan.v1", "m.reciprocate.v1")
    )
)


async def scanner_client(
    synapse: SynapseServer, user: RegisteredUser, folder: Path
) -> MatrixClient:
    client = await MatrixClient.login(
        user.user_id, user.password, homeserver=synapse.base_url, base_dir=folder, long_poll_ms=500
    )
    client.encryption.config = SCANNER
    await client.open()
    client.start()
    await client.wait_synced()
    return client


async def _app_client(
    synapse: SynapseServer, user: RegisteredUser, folder: Path, config: MachineConfig | None = None
) -> MatrixClient:
    client = await MatrixClient.login(
        user.user_id, user.password, homeserver=synapse.base_url, base_dir=folder, long_poll_ms=500
    )
    client.encryption.config = config
    return client


def _dialog(app: TuiClientApp) -> VerificationDialog:
    screen = app.screen
    assert isinstance(screen, VerificationDialog), screen
    return screen


def _text(app: TuiClientApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _dark(color: Color | None, default: bool) -> bool:
    if color is None or color.is_default:
        return default
    r, g, b = color.get_truecolor()
    return (0.299 * r + 0.587 * g + 0.114 * b) < 128


def screen_modules(app: TuiClientApp) -> list[list[bool]]:
    """The screen as a camera sees it, two modules per cell (``True``: dark).

    A half block's upper module has the cell's foreground colour, the lower one its
    background; a blank has the background in both; any other character counts as its
    background (text is thin).
    """
    rows: list[list[bool]] = []
    for strip in app.screen._compositor.render_strips():
        upper: list[bool] = []
        lower: list[bool] = []
        for segment in strip:
            style = segment.style
            fg = _dark(style.color if style else None, default=False)
            bg = _dark(style.bgcolor if style else None, default=True)
            if style is not None and style.reverse:
                fg, bg = bg, fg
            for char in segment.text:
                top, bottom = {"▀": (fg, bg), "▄": (bg, fg), "█": (fg, fg)}.get(char, (bg, bg))
                upper.append(top)
                lower.append(bottom)
        rows += [upper, lower]
    return rows


def decode(modules: list[list[bool]], scale: int = 4) -> list[bytes]:
    """Every QR code a decoder finds in the module grid."""
    height, width = len(modules), max(len(row) for row in modules)
    image = Image.new("L", (width * scale, height * scale), 255)
    pixels = image.load()
    assert pixels is not None
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    for dx in range(scale):
                        pixels[x * scale + dx, y * scale + dy] = 0
    return [bytes(result.bytes) for result in zxingcpp.read_barcodes(image)]


def test_the_drawing_reads_back() -> None:
    """Half blocks from segno's modules, read by an independent decoder: the same bytes."""
    data = b"MATRIX\x02\x02\x00\x18" + bytes(range(24 + 64 + 8))
    matrix = qr_matrix(data)
    assert len(matrix) == 37  # version 5: 45x23 cells with a 4-module quiet zone
    rows = half_block_rows(matrix, 4)
    assert len(rows) == 23 and all(len(row) == 45 for row in rows)
    modules = [m for row in rows for m in ([top for top, _ in row], [bottom for _, bottom in row])]
    assert decode(modules) == [data]
    # With a one-module quiet zone on a dark surround (a small terminal), too.
    rows = half_block_rows(matrix, 1)
    modules = [
        [True] * 4 + line + [True] * 4
        for row in rows
        for line in ([t for t, _ in row], [b for _, b in row])
    ]
    assert decode([[True] * len(modules[0])] * 4 + modules + [[True] * len(modules[0])] * 4) == [
        data
    ]


async def test_a_phone_scans_this_session_on_an_80x24_terminal(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    alice_user = make_user("alice")
    phone = await scanner_client(synapse, alice_user, tmp_path / "phone")
    await cross_signing_complete(phone)
    client = await _app_client(synapse, alice_user, tmp_path / "app")
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:

            def bar_text() -> str:
                bar = app.screen_stack[1].query_one(SecurityBar)
                return str(bar.query_one("#security-text", Static).render()) if bar.display else ""

            await wait_for(
                pilot, lambda: "This session is not verified" in bar_text(), "the bar", timeout=40
            )
            await pilot.click("#security-bar .security-action")  # "Verify this session"
            await wait_for(pilot, lambda: isinstance(app.screen, VerificationDialog), "the dialog")
            request = await incoming(phone)
            await phone.verification.accept(request.id)
            await wait_for(
                pilot, lambda: _dialog(app).flow.qr_code is not None, "the QR code", timeout=30
            )
            dialog = _dialog(app)
            # Not started by itself: the code is shown, SAS a button away.
            assert dialog.flow.state is VerificationState.READY
            screen = _text(app)
            assert "Scan this code" in screen and "Compare emoji instead" in screen
            save_screenshot("verification_qr", app.export_screenshot(title="tui_client"))
            # The code on the screen is the flow's code, and it fits: every row of it is on screen.
            # A notification while it shows does not cover it (it waits until the code goes).
            app.notify(
                "A long notification that would cover the corner of the code " * 3, timeout=60
            )
            await pilot.pause(0.5)
            assert "long notification" not in _text(app)
            found = decode(screen_modules(app))
            assert found == [dialog.flow.qr_code]
            # The phone reads it and reciprocates; the app asks its user.
            await phone.verification.scan_qr(request.id, found[0])
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.QR_SCANNED,
                "the question",
                timeout=30,
            )
            screen = _text(app)
            assert "scanned the code" in screen and "Yes, it says verified" in screen
            assert "long notification" in screen  # the code is gone: notifications show again
            assert (
                client.cross_signing.state is None
                or not client.cross_signing.state.status.master_trusted
            )
            await pilot.click("#qr_yes")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.DONE,
                "verified",
                timeout=30,
            )
            assert "✓ Verified." in _text(app)
            await reach(phone, request.id, VerificationState.DONE)
            # The master key trusted, the secrets came from the phone: the bar goes away.
            await cross_signing_complete(client)
            await pilot.click("#close")
            await wait_for(
                pilot,
                lambda: not app.screen_stack[1].query_one(SecurityBar).display,
                "the bar to go",
            )
    finally:
        await phone.close()


async def test_what_goes_wrong_is_said_on_screen(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    """The other side cancelling, a wrong secret (an attack), the user answering no, a timeout:
    each on screen."""
    alice_user = make_user("alice")
    phone = await scanner_client(synapse, alice_user, tmp_path / "phone")
    await cross_signing_complete(phone)
    quick = MachineConfig(verification=VerificationConfig(timeout_ms=20_000, inactivity_ms=20_000))
    client = await _app_client(synapse, alice_user, tmp_path / "app", quick)
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(
                pilot,
                lambda: client.verification is not None and client.encryption.machine is not None,
                "the machine",
                timeout=40,
            )

            async def shown() -> str:
                asked = await client.verification.verify_own_devices([phone.device_id])
                await wait_for(
                    pilot,
                    lambda: (
                        isinstance(app.screen, VerificationDialog)
                        and _dialog(app).flow.id == asked.id
                    ),
                    "the dialog",
                )
                request = await incoming(phone)
                await phone.verification.accept(request.id)
                await wait_for(
                    pilot, lambda: _dialog(app).flow.qr_code is not None, "the QR code", timeout=30
                )
                found = decode(screen_modules(app))
                assert found == [_dialog(app).flow.qr_code]
                return request.id

            # 0. The other side gives up while the code shows.
            request_id = await shown()
            await phone.verification.cancel(request_id)
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.CANCELLED,
                "their cancel",
                timeout=30,
            )
            assert "declined or cancelled" in _text(app) and "m.user" in _text(app)
            await pilot.click("#close")
            # SAS is a button away: the emoji replace the code.
            request_id = await shown()
            await pilot.click("#start")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.KEYS_EXCHANGED,
                "the emoji",
                timeout=30,
            )
            theirs = await reach(phone, request_id, VerificationState.KEYS_EXCHANGED)
            assert theirs.emoji == _dialog(app).flow.emoji and "Scan this code" not in _text(app)
            assert not decode(screen_modules(app))
            await pilot.click("#cancel")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.CANCELLED,
                "our cancel",
                timeout=30,
            )
            await pilot.click("#close")
            # 1. Someone answers with the wrong secret.
            request_id = await shown()
            code = _dialog(app).flow.qr_code
            assert code is not None
            await phone.verification.scan_qr(request_id, code[:-1] + bytes([code[-1] ^ 1]))
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.CANCELLED,
                "the cancel",
                timeout=30,
            )
            assert "its secret did not match" in _text(app) and "m.key_mismatch" in _text(app)
            await pilot.click("#close")
            # 2. The phone scanned, but the user says it did not confirm.
            request_id = await shown()
            await phone.verification.scan_qr(request_id, decode(screen_modules(app))[0])
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.QR_SCANNED,
                "the question",
                timeout=30,
            )
            await pilot.click("#qr_no")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.CANCELLED,
                "the cancel",
                timeout=30,
            )
            assert "did not confirm the scan" in _text(app)
            await reach(phone, request_id, VerificationState.CANCELLED)
            await pilot.click("#close")
            # 3. The phone scanned, and nobody answers: the flow times out.
            request_id = await shown()
            await phone.verification.scan_qr(request_id, decode(screen_modules(app))[0])
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.QR_SCANNED,
                "the question",
                timeout=30,
            )
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.CANCELLED,
                "the timeout",
                timeout=40,
            )
            assert "timed out" in _text(app)
            assert (
                client.cross_signing.state is None
                or not client.cross_signing.state.status.master_trusted
            )
    finally:
        await phone.close()
