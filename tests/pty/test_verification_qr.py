"""The real app on a pseudo-terminal shows a QR code that reads back from the terminal's own
cells (pyte: the characters and their colours): "Verify this session" from the palette,
another client of ours scans the code and reciprocates, the user answers from the keyboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tui_client.crypto.verification import VerificationState
from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from ..integration.verification_support import cross_signing_complete, incoming, reach
from ..ui.test_verification_qr import decode, scanner_client
from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room
from .test_graphics import Loop

T = TypeVar("T")

_NAMED_DARK = {"black", "default-bg"}


def _dark(color: str, default: bool) -> bool:
    if color == "default":
        return default
    if len(color) == 6 and all(c in "0123456789abcdefABCDEF" for c in color):
        r, g, b = (int(color[n : n + 2], 16) for n in (0, 2, 4))
        return (0.299 * r + 0.587 * g + 0.114 * b) < 128
    return color in _NAMED_DARK


def terminal_modules(app: PtyApp) -> list[list[bool]]:
    """The terminal as a camera sees it (a dark terminal): two modules per cell."""
    screen = app.screen
    rows: list[list[bool]] = []
    with app._lock:
        for y in range(screen.lines):
            upper: list[bool] = []
            lower: list[bool] = []
            line = screen.buffer[y]
            for x in range(screen.columns):
                char = line[x]
                fg, bg = _dark(char.fg, default=False), _dark(char.bg, default=True)
                if char.reverse:
                    fg, bg = bg, fg
                top, bottom = {"▀": (fg, bg), "▄": (bg, fg), "█": (fg, fg)}.get(char.data, (bg, bg))
                upper.append(top)
                lower.append(bottom)
            rows += [upper, lower]
    return rows


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_a_phone_scans_the_terminal(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    size: tuple[int, int],
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    make_room(synapse, bob, "QR room", alice)
    loop = Loop()
    phone = loop.run(scanner_client(synapse, alice, tmp_path / "phone"))
    loop.run(cross_signing_complete(phone))
    try:
        with PtyApp.for_account(
            str(tmp_path / "data"),
            synapse.base_url,
            alice.user_id,
            size=size,
        ) as app:
            log_in_on_pty(app, alice, "QR room")
            app.wait_for("This session is not verified", timeout=60)
            app.write(b"\x10")  # Ctrl+P: the palette
            app.wait_for("Search for commands")
            app.write("Verify this session")
            app.wait_for(
                lambda s: (
                    s.count("Verify this session") >= 1 and "Ask one of your other sessions" in s
                )
            )
            app.write(b"\r")
            request = loop.run(incoming(phone, timeout=60))
            loop.run(phone.verification.accept(request.id))
            app.wait_for("Scan this code", timeout=60)
            app.wait_for("Compare emoji instead")
            found: list[bytes] = []

            def readable(_: str) -> bool:
                # (The terminal may still be painting the frame that replaced the palette.)
                found[:] = decode(terminal_modules(app))
                return bool(found)

            app.wait_for(readable, timeout=20)
            assert len(found) == 1 and found[0].startswith(b"MATRIX\x02\x02"), found  # mode 0x02
            loop.run(phone.verification.scan_qr(request.id, found[0]))
            app.wait_for("scanned the code", timeout=60)
            app.write(b"\t")  # the first button: "Yes, it says verified"
            app.write(b"\r")
            app.wait_for("✓ Verified.", timeout=60)
            loop.run(reach(phone, request.id, VerificationState.DONE))
    finally:
        loop.run(phone.close())
        loop.stop()
