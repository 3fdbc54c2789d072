"""The first login of a new account sets up cross-signing by itself, every time.

Twenty fresh users in a row, each a fresh data dir and a fresh password login through
the engine (as the app does it), against Synapse. Each login meets the conditions that
made about one first login in four end with "our own keys have not been queried yet":
the change of our own device list that Synapse reports after our first key upload lands
between the wait for our keys and the setup (forced for every login, in the machine, at
the moment the sync ingest would apply it). Some logins also meet transient faults at the
transport: a slow first key query, a ``502`` or a refused connection on the identity
upload. All must end, without a password prompt, with an identity on the server and this
session signed by its self-signing key, read from the server's ``/keys/query``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tui_client.crypto.cross_signing import CrossSigningError
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient

from ..engine.support import LONG_POLL_MS, Wire, json_response
from ..support.users import MakeUser
from ..support.waiting import until as _until

LOGINS = 20


def _is_identity_upload(request: httpx.Request) -> bool:
    return request.url.path.endswith("/keys/device_signing/upload")


def _is_key_query(request: httpx.Request) -> bool:
    return request.url.path.endswith("/keys/query")


async def _slowly(_request: httpx.Request) -> None:
    await asyncio.sleep(0.5)  # then let it through


def _server_error(_request: httpx.Request) -> httpx.Response:
    return json_response(502, {"errcode": "M_UNKNOWN", "error": "Bad gateway"})


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


#: The transport faults some logins meet besides the race (by login number modulo 4).
FAULTS: dict[int, tuple[Callable[[httpx.Request], bool], Callable[[httpx.Request], Any]]] = {
    1: (_is_key_query, _slowly),
    2: (_is_identity_upload, _server_error),
    3: (_is_identity_upload, _refused),
}


def _own_keys_change_lands_before_the_first_setup(client: MatrixClient) -> list[str]:
    """Make the first setup find our keys outdated, as when the sync batch reporting our
    device list change is applied between the wait for our keys and the setup; returns
    the errors the machine raised for it."""
    machine = client.encryption.machine
    assert machine is not None
    bootstrap = machine.bootstrap_cross_signing
    raised: list[str] = []

    def racing(*, reset: bool = False) -> Any:
        if not raised:
            machine.receive_sync_changes(changed_users=[client.user_id])
            try:
                return bootstrap(reset=reset)
            except CrossSigningError as error:
                raised.append(str(error))
                raise
        return bootstrap(reset=reset)

    machine.bootstrap_cross_signing = racing  # type: ignore[method-assign]
    return raised


def _server_identity(synapse: SynapseServer, user: RegisteredUser, device_id: str) -> bool:
    """The server holds the user's identity and ``device_id`` signed by its self-signing key."""
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {user.user_id: []}},
        token=user.access_token,
    )
    assert status == 200, body
    master = body.get("master_keys", {}).get(user.user_id)
    self_signing = body.get("self_signing_keys", {}).get(user.user_id)
    device = body.get("device_keys", {}).get(user.user_id, {}).get(device_id)
    if not (master and self_signing and device):
        return False
    [master_id] = master["keys"]
    [self_signing_id] = self_signing["keys"]
    return master_id in self_signing.get("signatures", {}).get(
        user.user_id, {}
    ) and self_signing_id in device.get("signatures", {}).get(user.user_id, {})


async def _first_login(
    synapse: SynapseServer, user: RegisteredUser, folder: Path, n: int, prompts: list[str]
) -> None:
    """Log in for the first time (login ``n`` of the series) and check the setup."""

    async def ask_password(prompt: str) -> str | None:
        prompts.append(prompt)
        return None

    wire = Wire()
    if n % 4 in FAULTS:
        matches, fault = FAULTS[n % 4]
        wire.inject(matches, fault)
    client = await MatrixClient.login(
        user.user_id,
        user.password,
        homeserver=synapse.base_url,
        base_dir=folder,
        transport=wire.transport(),
        long_poll_ms=LONG_POLL_MS,
    )
    try:
        client.ask_password = ask_password
        await client.open()
        raced = _own_keys_change_lands_before_the_first_setup(client)
        client.start()
        await client.wait_synced()

        def set_up() -> bool:
            state = client.cross_signing.state
            return state is not None and state.status.complete and state.error is None

        await _until(
            set_up, lambda: f"login {n}: cross-signing set up ({client.cross_signing.state})", 20
        )
        state = client.cross_signing.state
        assert state is not None and not state.needs_verification
        assert raced == ["our own keys have not been queried yet"], f"login {n}: no race"
        assert wire.pending_faults == 0, f"login {n}: the transport fault was not met"
        await _until(
            lambda: _server_identity(synapse, user, client.device_id),
            lambda: f"login {n}: the identity and this session's signature on the server",
            15,
        )
        uploads = wire.requests_to("/keys/device_signing/upload", "POST")
        assert len(uploads) == (2 if FAULTS.get(n % 4, (None,))[0] is _is_identity_upload else 1)
    finally:
        await client.close()
        await wire.aclose()


async def test_twenty_first_logins_in_a_row_all_set_up_cross_signing(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    prompts: list[str] = []
    for n in range(LOGINS):
        await _first_login(synapse, make_user("first"), tmp_path / f"login{n}", n, prompts)
    assert prompts == [], f"the password was asked for: {prompts}"
