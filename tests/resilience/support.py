"""Helpers of the real-world tests."""

from __future__ import annotations

import json
from pathlib import Path

from tui_client.engine.client import MatrixClient


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
