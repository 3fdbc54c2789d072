"""Issue 19: a ``/keys/claim`` whose answer the network lost (after the server took the
one-time key) must not cost the other device its room key.

The client used to hold that device back for ``claim_retry_ms`` (5 minutes) after any
failed claim, so the message's retry shared the room key without it (``m.no_olm``) and
the message could never be read there: the flaky-network test's lost keys.
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

            async def bob_reads() -> bool:
                stored, _gap = await bob.db.run(bob.cache.load_before, room, None, 1000)
                ids = [
                    s.event["event_id"]
                    for s in stored
                    if s.event.get("type") == "m.room.encrypted"
                    and s.event.get("sender") == alice.user_id
                ]
                clear = await bob.db.run(bob.encryption.store.decrypted, ids)
                return any(
                    form[0].get("content", {}).get("body") == "after a lost claim"
                    for form in clear.values()
                )

            deadline = time.monotonic() + 60
            while not await bob_reads():
                assert time.monotonic() < deadline, "bob never decrypted alice's message"
                await asyncio.sleep(0.25)
            assert policy.dropped == 1, "the claim's answer was not lost: the test tested nothing"
        finally:
            await alice.close()
            await bob.close()
