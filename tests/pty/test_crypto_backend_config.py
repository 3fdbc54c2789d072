"""The encryption library chosen in the config file, in the real app on a pseudo-terminal:
``[encryption] backend = "olm"`` opens the account on python-olm (F7 names it), and
``TUI_CLIENT_CRYPTO_BACKEND`` in the environment wins over the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room


@pytest.mark.parametrize(
    ("environment", "shown"),
    [("", "✗ Encryption library: python-olm"), ("vodozemac", "✓ Encryption library: vodozemac")],
    ids=["config", "environment-wins"],
)
def test_the_config_files_encryption_library_is_used(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    environment: str,
    shown: str,
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    make_room(synapse, bob, "Library room", alice)
    config = tmp_path / "config.toml"
    config.write_text('[encryption]\nbackend = "olm"\n', encoding="utf-8")
    env = {"TUI_CLIENT_CONFIG": str(config), "TUI_CLIENT_CRYPTO_BACKEND": environment}
    with PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
        size=(160, 50),
        env=env,
    ) as app:
        log_in_on_pty(app, alice, "Library room")
        app.write("\x1b[18~")  # F7
        app.wait_for("Encryption library", timeout=30)
        assert shown in app.text(), app.text()
