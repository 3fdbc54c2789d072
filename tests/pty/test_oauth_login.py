"""The real app on a pseudo-terminal, against the Synapse that delegates to our OAuth
server: the login offers only the code sign-in (its button has the focus), Enter shows
the code and the QR code, and approving it on "the phone" opens the account."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tui_client.devtools.oauth_server import AuthServer
from tui_client.devtools.synapse import SynapseServer

from .app import PtyApp

SIZES = [(80, 24), (200, 60)]
CODE = re.compile(r"\b([B-Z]{4}-[B-Z]{4})\b")


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "200x60"])
def test_device_code_login_in_a_terminal(
    oauth_homeserver: tuple[SynapseServer, AuthServer], tmp_path: Path, size: tuple[int, int]
) -> None:
    synapse, auth = oauth_homeserver
    auth.interval = 0.5
    localpart = f"pty-{size[0]}"
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        f"@{localpart}:localhost",
        size=size,
    ) as app:
        app.wait_for("No password here", timeout=60)
        app.wait_for("Sign in with a code", timeout=60)
        app.write("\r")  # the focused button
        screen = app.wait_for(lambda text: CODE.search(text) is not None, timeout=60)
        assert "Enter the code" in screen, screen
        assert "▀" * 20 in screen, screen  # the QR code's quiet zone
        code = CODE.search(screen)
        assert code is not None
        auth.approve(code.group(1), localpart)
        app.wait_for("connected", timeout=60)
