"""When the automatic cross-signing setup of a first login fails for good, the security
bar says why and offers Retry, and Retry sets it up: the app against a real Synapse,
with the failure made at the transport."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from textual.pilot import Pilot
from textual.widgets import Button, Static

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import PromptDialog
from tui_client.ui.widgets.security_bar import SecurityBar

from ..engine.support import Wire, json_response
from ..integration.test_first_login_cross_signing import _server_identity
from ..support.users import MakeUser
from ..support.waiting import pilot_until

SIZE = (120, 36)


def _bar(app: TuiClientApp) -> SecurityBar:
    return app.screen_stack[1].query_one(SecurityBar)


def _bar_text(app: TuiClientApp) -> str:
    bar = _bar(app)
    return str(bar.query_one("#security-text", Static).render()) if bar.display else ""


async def _until(pilot: Pilot[None], predicate: Callable[[], bool], what: str) -> None:
    await pilot_until(pilot, predicate, what, 30.0, describe=lambda: str(pilot.app.screen_stack))


def _password_wanted(_request: httpx.Request) -> httpx.Response:
    return json_response(
        401,
        {"flows": [{"stages": ["m.login.password"]}], "params": {}, "session": "first-try"},
    )


async def test_a_setup_that_failed_for_good_is_retried_from_the_bar(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    user = make_user("first")
    wire = Wire()
    # The first identity upload is answered with a password challenge; the user declines it.
    wire.inject(lambda r: r.url.path.endswith("/keys/device_signing/upload"), _password_wanted)
    client = await MatrixClient.login(
        user.user_id,
        user.password,
        homeserver=synapse.base_url,
        base_dir=tmp_path / "app",
        transport=wire.transport(),
        long_poll_ms=500,
    )
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: isinstance(app.screen, PromptDialog), "the password prompt")
            await pilot.press("escape")
            await _until(pilot, lambda: "could not be set up" in _bar_text(app), "the failure")
            assert _bar_text(app) == (
                "Cross-signing could not be set up: cancelled: the password was not given"
            )
            buttons = {str(b.label): b for b in _bar(app).query(Button)}
            assert list(buttons) == ["Retry", "Later"]
            assert not _server_identity(synapse, user, client.device_id)

            await pilot.click(buttons["Retry"])
            await _until(pilot, lambda: not _bar(app).display, "the bar to go")
            state = client.cross_signing.state
            assert state is not None and state.error is None and not state.needs_verification
            await _until(
                pilot,
                lambda: _server_identity(synapse, user, client.device_id),
                "the identity and this session's signature on the server",
            )
            assert not isinstance(app.screen, PromptDialog)  # no password the second time
    finally:
        await wire.aclose()


async def test_a_transient_failure_is_shown_and_mended_without_the_user(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    user = make_user("first")
    wire = Wire()
    wire.inject(
        lambda r: r.url.path.endswith("/keys/device_signing/upload"),
        lambda _r: json_response(502, {"errcode": "M_UNKNOWN", "error": "Bad gateway"}),
    )
    client = await MatrixClient.login(
        user.user_id,
        user.password,
        homeserver=synapse.base_url,
        base_dir=tmp_path / "app",
        transport=wire.transport(),
        long_poll_ms=500,
    )
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    shown: list[str] = []

    def bar_seen() -> bool:
        text = _bar_text(app)
        if text and text not in shown:
            shown.append(text)
        return bool(shown)

    def bar_gone() -> bool:
        bar_seen()  # every text it showed on the way
        return not _bar(app).display

    try:
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, bar_seen, "the failure in the bar")
            await _until(pilot, bar_gone, "the bar to go by itself")
            assert len(shown) == 1 and shown[0].startswith(
                "Cross-signing could not be set up: M_UNKNOWN (502): Bad gateway (trying again in "
            ), shown
            await _until(
                pilot,
                lambda: _server_identity(synapse, user, client.device_id),
                "the identity and this session's signature on the server",
            )
            state = client.cross_signing.state
            assert state is not None and state.error is None and not state.needs_verification
            assert len(wire.requests_to("/keys/device_signing/upload", "POST")) == 2
    finally:
        await wire.aclose()
