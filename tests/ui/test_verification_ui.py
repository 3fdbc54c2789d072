"""Verification and devices in the UI: snapshots of the emoji dialog and the devices
screen (deterministic: a fixed flow, a fixed device list from the fake homeserver),
and what untrusted text becomes on screen."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.cells import cell_len, get_character_cell_size
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tui_client.crypto import load_backend
from tui_client.crypto.sas import EMOJI
from tui_client.crypto.signing import sign_json
from tui_client.crypto.types import LocalTrust
from tui_client.crypto.verification import Cancellation, Verification, VerificationState
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.devices import DevicesScreen
from tui_client.ui.screens.verification import VerificationDialog

from ..support.verification import verification
from .conftest import save_screenshot
from .fake_world import BASE_TS, DEVICES, ME, FakeHomeserver
from .test_snapshots import SIZE, _settle, wait_for

BOB = "@bob:example.org"
DM = "!dmwithbob000000000000000000000000000000000002"


def _flow(**changes: Any) -> Verification:
    return verification(
        **{
            "id": "flow-1",
            "flow_id": "$request",
            "room_id": DM,
            "other_user_id": BOB,
            "other_device_id": "BOBPHONE",
            "state": VerificationState.KEYS_EXCHANGED,
            "created_ms": BASE_TS,
            "expires_ms": BASE_TS + 600_000,
            "emoji": tuple(EMOJI[n] for n in (0, 13, 21, 29, 41, 50, 63)),
            "decimals": (1234, 5678, 9012),
            "keys": {"ed25519:BOBPHONE": "key"},
            **changes,
        }
    )


def _dialog(app: TuiClientApp, flow: Verification) -> VerificationDialog:
    assert app.client is not None
    dialog = VerificationDialog(app.client, flow)
    dialog.clock = lambda: BASE_TS + 18_000  # type: ignore[method-assign]
    return dialog


def test_emoji_dialog(snap_compare, fake_profile: Path, fake_server: FakeHomeserver) -> None:
    """The seven emoji large, with their names, the numbers, the time left, the buttons."""
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())

    async def run_before(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        await app.push_screen(_dialog(app, _flow()))
        await wait_for(pilot, lambda: isinstance(app.screen, VerificationDialog), "the dialog")
        dialog = app.screen
        assert "Times out in 9:42" in str(dialog.query_one("#verification-timer", Static).render())
        save_screenshot("verification", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# Two ways terminals draw an emoji followed by the variation selector U+FE0F: two cells
# wide (as Rich counts it), or as its character alone, one cell (U+FE0F ignored).
_TERMINAL_WIDTHS: dict[str, Callable[[str], int]] = {
    "U+FE0F makes it two cells": cell_len,
    "U+FE0F ignored": lambda text: sum(get_character_cell_size(c) for c in text),
}


def _columns(line: str, characters: str, width: Callable[[str], int]) -> list[int]:
    """The terminal columns where ``characters`` are drawn on ``line``."""
    return [width(line[:n]) for n, c in enumerate(line) if c in characters]


async def test_emoji_with_a_variation_selector_keep_the_dialog_in_line(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """The spec's emoji written with U+FE0F: every border stays in its column on any terminal."""
    selected = tuple(e for e in EMOJI if "\ufe0f" in e.symbol)
    assert [e.name for e in selected] == [
        "Cloud",
        "Heart",
        "Umbrella",
        "Pencil",
        "Scissors",
        "Telephone",
        "Aeroplane",
    ]
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        dialog = _dialog(app, _flow(emoji=selected))
        await app.push_screen(dialog)
        await wait_for(pilot, lambda: dialog.query_one("#emoji-row").display, "the emoji")
        await pilot.pause(0.1)
        lines = [strip.text for strip in app.screen._compositor.render_strips()]
    box = [line for line in lines if "█" in line]
    cards_top = next(n for n, line in enumerate(lines) if "╭" in line)
    cards = lines[cards_top : cards_top + 4]
    assert all(e.name in cards[2] for e in selected)
    assert all(e.symbol.replace("\ufe0f", "") in cards[1] for e in selected)
    for terminal, width in _TERMINAL_WIDTHS.items():
        right_borders = {_columns(line, "█", width)[-1] for line in box}
        assert len(right_borders) == 1, (terminal, box)
        card_borders = [_columns(line, "╭╮│╰╯", width) for line in cards]
        assert len(card_borders[0]) == 14 and all(
            columns == card_borders[0] for columns in card_borders
        ), (terminal, cards)


async def test_a_cancellation_is_explained_and_their_reason_stays_plain_text(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=fake_server.transport())
    reason = "[bold]click[/bold] [@click=app.quit]here[/] \x1b[31mred\u202e"
    cancelled = _flow(
        state=VerificationState.CANCELLED,
        cancellation=Cancellation(
            "m.mismatched_sas",
            reason,
            False,
            "The other side reported that the emoji did not match.",
        ),
    )
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        dialog = _dialog(app, _flow())
        await app.push_screen(dialog)
        await wait_for(pilot, lambda: dialog.query_one("#emoji-row").display, "the emoji")
        dialog.update_flow(cancelled)
        await pilot.pause(0.1)
        detail = dialog.query_one("#verification-detail", Static).render()
        shown = str(detail)
        assert "The other side reported that the emoji did not match." in shown
        assert "[bold]click[/bold] [@click=app.quit]here[/]" in shown
        assert "\x1b" not in shown and "\u202e" not in shown
        assert not dialog.query_one("#emoji-row").display
        buttons = [b.id for b in dialog.query("Button") if b.display]
        assert buttons == ["close"]
        # Another flow's snapshot never reaches this dialog.
        dialog.update_flow(_flow(id="flow-2", state=VerificationState.DONE))
        assert dialog.flow.state is VerificationState.CANCELLED


class _KeysServer(FakeHomeserver):
    """The fake homeserver, answering key queries with real signed keys for our sessions."""

    def __init__(self) -> None:
        super().__init__()
        backend = load_backend("olm")
        self.device_keys: dict[str, dict[str, Any]] = {}
        for device_id in ("PHONEDEVICE", "TABLETDEVICE"):
            account = backend.create_account()
            keys = {
                "user_id": ME,
                "device_id": device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {
                    f"curve25519:{device_id}": account.identity_keys.curve25519,
                    f"ed25519:{device_id}": account.identity_keys.ed25519,
                },
            }
            self.device_keys[device_id] = sign_json(keys, ME, f"ed25519:{device_id}", account.sign)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/keys/upload"):
            body = json.loads(request.content)
            if "device_keys" in body:
                self.device_keys["TESTDEVICE"] = body["device_keys"]
        if path.endswith("/keys/query"):
            self.requests.append(request)
            return httpx.Response(200, json={"device_keys": {ME: self.device_keys}, "failures": {}})
        return await super().handle(request)


def test_devices_screen(snap_compare, fake_profile: Path) -> None:
    """F6: our sessions, this one marked, one verified, one not, one whose keys are unknown."""
    server = _KeysServer()
    app = TuiClientApp(base_dir=fake_profile, transport=server.transport())

    async def run_before(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        client = app.client
        assert client is not None and client.encryption.machine is not None
        machine = client.encryption.machine
        await wait_for(
            pilot, lambda: client.cross_signing.state is not None, "the cross-signing check"
        )
        await client.devices.await_queried([ME])
        await client.encryption.call(
            lambda: machine.set_local_trust(ME, "PHONEDEVICE", LocalTrust.VERIFIED)
        )
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, DevicesScreen), "the devices screen")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == len(DEVICES), "the device list")
        rows = [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]
        assert rows[0][0] == "▶" and rows[0][2] == "TESTDEVICE" and rows[0][5] == "✓ verified"
        trust = {row[2]: row[5] for row in rows}
        assert trust == {
            "TESTDEVICE": "✓ verified",
            "PHONEDEVICE": "✓ verified",
            "TABLETDEVICE": "not verified",
            "OLDLAPTOP": "keys unknown",
        }
        assert "[bold]Old[/bold] laptop" in rows[3][1] and "\x1b" not in rows[3][1]
        app.clear_notifications()
        save_screenshot("devices", app.export_screenshot(title="tui_client"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
