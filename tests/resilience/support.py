"""Helpers of the real-world tests."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tui_client.devtools.fault_proxy import PASS, RESET, Exchange, Fault, Policy
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.status_bar import StatusBar

from ..ui.test_login_errors import screen_text


def pin_session(base: Path, homeserver: str) -> None:
    """Point a saved session at ``homeserver`` (Synapse's login answer names its own URL
    as ``well_known``, which the client follows; the tests want their endpoint in between)."""
    (session_file,) = base.glob("*/session.json")
    data = json.loads(session_file.read_text())
    data["homeserver"] = homeserver
    session_file.write_text(json.dumps(data))


async def saved_login(user_id: str, password: str, base: Path, homeserver: str) -> str:
    """Log in (saving the session under ``base``) and close; the device's access token."""
    client = await MatrixClient.login(user_id, password, homeserver=homeserver, base_dir=base)
    token = client.secrets.get("access_token")
    assert token
    await client.close()
    pin_session(base, homeserver)
    return token


def reset_next_sync(armed: threading.Event) -> Policy:
    """A fault policy: once ``armed`` is set, the next ``/sync`` request's connection is
    reset (and ``armed`` cleared); everything else passes."""

    def policy(exchange: Exchange, phase: str) -> Fault:
        if phase == "request" and "/sync" in exchange.path and armed.is_set():
            armed.clear()
            return RESET
        return PASS

    return policy


def status_line(app: TuiClientApp) -> str:
    """The status line as the terminal shows it ("" until the status bar is on screen)."""
    lines = [line for line in screen_text(app).splitlines() if " ● " in line]
    return lines[-1] if lines and app.screen.query(StatusBar) else ""
