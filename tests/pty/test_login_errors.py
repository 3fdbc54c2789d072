"""The real app on a pseudo-terminal: a failed login says why, beside a visible Log in
button, at the smallest and at a large terminal size; the user ID stays, the password goes."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from .app import PtyApp

SIZES = [(80, 24), (200, 60)]
SIZE_IDS = ["80x24", "200x60"]


def _button_visible(screen: str) -> bool:
    """A 'Log in' that is the button, not the 'Log in to your Matrix account' label."""
    return any(re.search(r"Log in(?! to)", line) for line in screen.splitlines())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_a_wrong_password_is_said_and_the_button_stays_visible(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    size: tuple[int, int],
) -> None:
    alice = make_user("alice")
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
        size=size,
    ) as app:
        app.wait_for(_button_visible, timeout=60)
        app.write("not-the-password\r")
        screen = app.wait_for("Wrong user ID or password", timeout=60)
        assert _button_visible(screen), screen
        assert alice.user_id in screen, screen
        # The password field was emptied: another try starts from nothing.
        app.write(alice.password + "\r")
        app.wait_for("connected", timeout=60)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_a_server_that_is_down_is_said(tmp_path: Path, size: tuple[int, int]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with PtyApp.for_account(
        str(tmp_path / "data"),
        url,
        "@someone:localhost",
        size=size,
    ) as app:
        app.wait_for(_button_visible, timeout=60)
        app.write("a-password\r")
        screen = app.wait_for("Cannot connect", timeout=60)
        assert _button_visible(screen), screen
        assert "@someone:localhost" in screen, screen
