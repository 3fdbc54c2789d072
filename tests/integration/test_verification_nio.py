"""SAS against an independent implementation over a real Synapse: matrix-nio 0.26's client.

nio's SAS as shipped does not interoperate with Element's crypto (a hex commitment,
emoji misread from vodozemac, the v2 MAC for ``hkdf-hmac-sha256``). The spec is the
reference: the nio peer is patched on those three points exactly as in
tests/crypto/test_interop_nio_sas.py (its ``patched_nio`` fixture, reused here); our
code is not. nio 0.26 also lacks the request/ready framework, so when we ask, the
test plays that part for nio (the ``ready`` and the final ``done``).

Each side starts once: nio with its bare to-device ``start``, we with a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, AsyncClientConfig
from nio.event_builders import ToDeviceMessage

from tui_client.crypto.verification import VerificationState
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient

from ..crypto.test_interop_nio_sas import patched_nio
from ..support.users import MakeUser
from .e2ee_support import client_for, encrypted_room, until
from .verification_support import reach

__all__ = ["patched_nio"]


class NioPeer:
    """A nio client syncing in the background, sending what its SAS queues."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        nio = self.client
        while not self.stop.is_set():
            await nio.sync(timeout=300)
            if nio.should_upload_keys:
                await nio.keys_upload()
            if nio.should_query_keys:
                await nio.keys_query()
            if nio.should_claim_keys:
                await nio.keys_claim(nio.get_users_for_key_claiming())
            if nio.outgoing_to_device_messages:
                await nio.send_to_device_messages()

    def sas(self, transaction_id: str) -> Any:
        return self.client.key_verifications.get(transaction_id)

    async def send(self, recipient: MatrixClient, event_type: str, content: dict[str, Any]) -> None:
        message = ToDeviceMessage(event_type, recipient.user_id, recipient.device_id, content)
        answer = await self.client.to_device(message)
        assert getattr(answer, "transaction_id", None) is not None or not hasattr(
            answer, "message"
        ), answer


@pytest.fixture
async def peers(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, patched_nio: None
) -> AsyncIterator[tuple[MatrixClient, NioPeer]]:
    alice_user, nio_user = make_user("alice"), make_user("niouser")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    store = tmp_path / "nio-store"
    store.mkdir()
    nio = AsyncClient(
        synapse.base_url,
        nio_user.user_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True),
    )
    await nio.login(nio_user.password, device_name="nio test peer")
    peer = NioPeer(nio)
    peer.task = asyncio.ensure_future(peer.run())
    try:
        # An encrypted room in common: each side tracks the other's devices.
        room = await encrypted_room(alice, "interop", [nio_user.user_id])
        await until(lambda: room in nio.invited_rooms, "nio's invite")
        await nio.join(room)
        await until(lambda: alice.rooms[room].joined_count == 2, "nio's join at alice")
        await until(lambda: alice.user_id in nio.device_store.users, "nio knowing alice's devices")
        await alice.devices.await_queried([nio_user.user_id])
        yield alice, peer
    finally:
        peer.stop.set()
        if peer.task is not None:
            await asyncio.wait_for(peer.task, 10)
        await nio.close()
        await alice.close()


def _emoji(sas: Any) -> list[str]:
    return [symbol for symbol, _name in sas.get_emoji()]


async def test_nio_starts_and_both_end_verified(peers: tuple[MatrixClient, NioPeer]) -> None:
    alice, peer = peers
    nio = peer.client
    device = nio.device_store[alice.user_id][alice.device_id]
    await nio.start_key_verification(device)
    [transaction_id] = list(nio.key_verifications)
    await until(lambda: bool(alice.verification.active()), "nio's start at alice")
    [flow] = alice.verification.active()
    assert flow.flow_id == transaction_id and not flow.we_requested
    # Its bare start waits for our user's answer, like a request.
    assert flow.state is VerificationState.INCOMING
    await alice.verification.accept(flow.id)
    shown = await reach(alice, flow.id, VerificationState.KEYS_EXCHANGED)
    sas = peer.sas(transaction_id)
    await until(lambda: getattr(sas, "their_sas_key", None) is not None, "nio to have our SAS key")
    assert shown.emoji is not None
    assert [e.symbol for e in shown.emoji] == _emoji(sas)
    assert shown.decimals == tuple(sas.get_decimals())
    await nio.confirm_short_auth_string(transaction_id)
    await alice.verification.confirm(flow.id)
    await reach(alice, flow.id, VerificationState.DONE)
    await until(lambda: sas.verified, "nio to verify our device")
    assert sas.verified_devices == [alice.device_id]
    trust = await alice.devices.refresh_trust([nio.user_id])
    assert nio.device_id in trust[nio.user_id].verified_devices
    assert nio.device_store[alice.user_id][alice.device_id].verified


async def test_we_start_and_both_end_verified(peers: tuple[MatrixClient, NioPeer]) -> None:
    alice, peer = peers
    nio = peer.client
    asked = await alice.verification.verify_device(nio.user_id, nio.device_id)
    assert asked.flow_id is not None
    # The framework part nio lacks: its ready. Our side then starts SAS by itself.
    ready = {"from_device": nio.device_id, "methods": ["m.sas.v1"], "transaction_id": asked.flow_id}
    await peer.send(alice, "m.key.verification.ready", ready)
    await until(lambda: peer.sas(asked.flow_id) is not None, "our start at nio")
    sas = peer.sas(asked.flow_id)
    assert not sas.canceled, sas.cancel_reason
    await nio.accept_key_verification(asked.flow_id)
    shown = await reach(alice, asked.id, VerificationState.KEYS_EXCHANGED)
    await until(lambda: getattr(sas, "their_sas_key", None) is not None, "nio to have our SAS key")
    assert shown.emoji is not None and [e.symbol for e in shown.emoji] == _emoji(sas)
    assert shown.decimals == tuple(sas.get_decimals())
    await alice.verification.confirm(asked.id)
    await nio.confirm_short_auth_string(asked.flow_id)
    await until(lambda: sas.verified, "nio to verify our device")
    await reach(alice, asked.id, VerificationState.WAITING_FOR_DONE)
    await peer.send(alice, "m.key.verification.done", {"transaction_id": asked.flow_id})
    await reach(alice, asked.id, VerificationState.DONE)
    trust = await alice.devices.refresh_trust([nio.user_id])
    assert nio.device_id in trust[nio.user_id].verified_devices
