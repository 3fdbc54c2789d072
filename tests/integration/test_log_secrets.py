"""What the client's log holds after a real session at DEBUG: no credential, no key, no body.

A login (whose answer carries the access token), the first key upload and the
cross-signing set-up (which sends the password again, for the server's interactive
auth), a message in a plain room and one in an encrypted room, against Synapse, with
every logger of the process (ours, httpx, httpcore, asyncio...) at DEBUG into the
file the client writes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MakeUser
from tui_client.__main__ import configure_logging
from tui_client.devtools.synapse import SynapseServer

from .e2ee_support import client_for, encrypted_room, until


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "client.log"
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(path, debug=True)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


def _own_device_keys_on_server(
    synapse: SynapseServer, token: str, user_id: str
) -> dict[str, object]:
    status, body = synapse.request_json(
        "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: []}}, token
    )
    assert status == 200, body
    devices = body.get("device_keys", {})
    assert isinstance(devices, dict)
    return dict(devices.get(user_id, {}))


async def test_a_debug_log_of_login_keys_and_sends_holds_no_secret(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, debug_log: Path
) -> None:
    user = make_user("logged")
    plain_body = "plain words for the room 7f3a9c"
    secret_body = "encrypted words for the room 91be04"
    client = await client_for(synapse, user, tmp_path / "data")
    try:
        token = client.connection.access_token
        assert token
        await until(
            lambda: bool(
                _own_device_keys_on_server(synapse, user.access_token, user.user_id).get(
                    client.device_id
                )
            ),
            "our device keys on the server",
        )
        plain = await client.create_room({"name": "plain", "preset": "private_chat"})
        await client.send_message(plain, plain_body)
        secret = await encrypted_room(client, "secret", [])
        await until(
            lambda: secret in client.rooms and client.rooms[secret].encrypted,
            "the room to be encrypted",
        )
        await client.send_message(secret, secret_body)
        view = await client.open_room(secret)
        await until(
            lambda: any(
                item.body == secret_body and not item.is_local_echo for item in view.model.items
            ),
            "our encrypted message back from the server",
        )
        await until(lambda: client.cross_signing.state is not None, "cross-signing to settle")
        pickle_key = client.encryption.pickle_key
        assert pickle_key
    finally:
        await client.close()
    text = debug_log.read_text(encoding="utf-8")
    # The log was really written at DEBUG, by the HTTP stack and by us.
    assert "/_matrix/client/v3/login" in text
    assert "/_matrix/client/v3/keys/upload" in text
    assert " DEBUG " in text
    for secret_text in (
        user.password,
        token,
        plain_body,
        secret_body,
        base64.b64encode(pickle_key).decode(),
        pickle_key.hex(),
    ):
        assert secret_text not in text, f"the log holds {secret_text!r}"
