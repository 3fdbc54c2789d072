"""Issue 19: a ``/keys/claim`` whose answer the network lost (after the server took the
one-time key) or held up must not cost the other device its room key.

The client used to hold that device back for ``claim_retry_ms`` (5 minutes) after any
failed claim, so the message's retry shared the room key without it (``m.no_olm``) and
the message could never be read there: the flaky-network test's lost keys. And while one
claim for a device was in flight, a second room encrypting at once did not claim it
again and shared its key without it (``m.no_olm``) instead of waiting for that answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from tui_client.devtools.fault_proxy import DROP, PASS, Exchange, Fault, FaultProxy
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.protocol import requests as api

from ..integration.e2ee_support import encrypted_room, join
from ..support.waiting import until
from .support import saved_login


class LoseFirstClaimAnswer:
    """Drops the server's answer to the first ``/keys/claim`` (the server has done it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dropped = 0

    def __call__(self, exchange: Exchange, phase: str) -> Fault:
        with self.lock:
            if phase == "response" and exchange.path.endswith("/keys/claim") and not self.dropped:
                self.dropped += 1
                return DROP
            return PASS


async def _client(base: Path) -> MatrixClient:
    client = MatrixClient.restore(base_dir=base, long_poll_ms=2000)
    assert client is not None
    await client.set_sliding_sync(False)
    await client.open()
    client.start()
    await client.wait_synced()
    return client


async def test_a_lost_key_claim_answer_loses_no_room_key(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    policy = LoseFirstClaimAnswer()
    alice_user, bob_user = make_user("alice"), make_user("bob")
    with FaultProxy(synapse.base_url, policy) as proxy:
        for user, name in ((alice_user, "alice"), (bob_user, "bob")):
            await saved_login(user.user_id, user.password, tmp_path / name, proxy.base_url)
        alice, bob = await _client(tmp_path / "alice"), await _client(tmp_path / "bob")
        try:
            room = await encrypted_room(alice, "lost claim", [bob_user.user_id])
            await join(bob, room)
            await until(lambda: alice.rooms[room].joined_count == 2, "bob in the room")
            await alice.send_message(room, "after a lost claim")

            await _reads(bob, alice, room, "after a lost claim")
            assert policy.dropped == 1, "the claim's answer was not lost: the test tested nothing"
        finally:
            await alice.close()
            await bob.close()


async def _reads(reader: MatrixClient, sender: MatrixClient, room: str, body: str) -> None:
    """Wait (up to a minute) until ``reader`` has decrypted ``sender``'s ``body`` in ``room``."""

    async def found() -> bool:
        stored, _gap = await reader.db.run(reader.cache.load_before, room, None, 1000)
        ids = [
            s.event["event_id"]
            for s in stored
            if s.event.get("type") == "m.room.encrypted" and s.event.get("sender") == sender.user_id
        ]
        clear = await reader.db.run(reader.encryption.store.decrypted, ids)
        return any(form[0].get("content", {}).get("body") == body for form in clear.values())

    deadline = time.monotonic() + 60
    while not await found():
        assert time.monotonic() < deadline, f"{reader.user_id} never decrypted {body!r}"
        await asyncio.sleep(0.25)


class HoldFirstClaimAnswer:
    """Holds the server's answer to the first ``/keys/claim`` for ``seconds`` (once armed)."""

    def __init__(self, seconds: float) -> None:
        self.lock = threading.Lock()
        self.seconds = seconds
        self.armed = False
        self.held = 0
        self.withheld: list[bytes] = []

    def __call__(self, exchange: Exchange, phase: str) -> Fault:
        with self.lock:
            if phase == "request" and "/sendToDevice/m.room_key.withheld/" in exchange.path:
                self.withheld.append(exchange.request_body)
            if (
                self.armed
                and phase == "response"
                and exchange.path.endswith("/keys/claim")
                and not self.held
            ):
                self.held += 1
                return Fault.delay(self.seconds)
            return PASS


async def test_two_rooms_encrypting_at_once_wait_for_the_same_claim(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    """Room A's claim for bob's device is answered late; room B, encrypting meanwhile,
    used to share its key without that device (``m.no_olm``): bob could never read it."""
    policy = HoldFirstClaimAnswer(3.0)
    alice_user, bob_user = make_user("alice"), make_user("bob")
    with FaultProxy(synapse.base_url, policy) as proxy:
        for user, name in ((alice_user, "alice"), (bob_user, "bob")):
            await saved_login(user.user_id, user.password, tmp_path / name, proxy.base_url)
        alice, bob = await _client(tmp_path / "alice"), await _client(tmp_path / "bob")
        try:
            rooms = [await encrypted_room(alice, f"room {n}", [bob_user.user_id]) for n in "AB"]
            for room in rooms:
                await join(bob, room)
                await until(lambda r=room: alice.rooms[r].joined_count == 2, "bob in the room")
            policy.armed = True

            # Two rooms encrypting at once (the send queue and an in-room verification do).
            contents = await asyncio.gather(
                *(
                    alice.encryption.encrypt(room, "m.room.message", {"body": f"in {room}"})
                    for room in rooms
                )
            )
            for n, (room, content) in enumerate(zip(rooms, contents, strict=True)):
                await alice.connection.send(
                    api.send_event(room, "m.room.encrypted", f"at-once-{n}", content)
                )
            for room in rooms:
                await _reads(bob, alice, room, f"in {room}")
            assert policy.held == 1, "no claim's answer was held: the test tested nothing"
            assert policy.withheld == [], "a room key was withheld from bob's device"
        finally:
            await alice.close()
            await bob.close()
