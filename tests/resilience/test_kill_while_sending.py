"""Messages pending when the client is killed (SIGKILL) are sent exactly once after restart.

A loopback proxy in front of Synapse holds back the server's answer to one send, after
the server committed the event; the client process is killed in that window, restarted,
and must resend what was pending with the same transaction IDs (Synapse deduplicates by
them). Half the rounds send into an encrypted room (the message is encrypted again on
resend, the transaction ID still decides). ``make test``: 5 rounds; ``make soak``: 50.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

from tui_client.devtools.fault_proxy import HOLD, PASS, Exchange, Fault, FaultProxy
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient

from ..engine.support import create_room, join
from . import scale
from .support import saved_login

ROUNDS = scale(5, 50)
ROOT = Path(__file__).resolve().parents[2]


class HoldNthSend:
    """Holds the server's answer to the n-th send of a round (after the server has it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed_at = 0
        self.seen: list[str] = []
        self.held: str | None = None
        self.held_event = threading.Event()

    def arm(self, n: int) -> None:
        with self.lock:
            self.armed_at, self.seen, self.held = n, [], None
            self.held_event.clear()

    def disarm(self) -> None:
        with self.lock:
            self.armed_at = 0

    def __call__(self, exchange: Exchange, phase: str) -> Fault:
        if phase != "response" or not exchange.is_send or exchange.status != 200:
            return PASS
        with self.lock:
            if not self.armed_at or self.held is not None:
                return PASS
            assert exchange.txn_id is not None
            if exchange.txn_id not in self.seen:
                self.seen.append(exchange.txn_id)
            if len(self.seen) == self.armed_at:
                self.held = exchange.txn_id
                self.held_event.set()
                return HOLD
        return PASS


def _child(mode: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.resilience.send_child", mode, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _server_txns(synapse: SynapseServer, token: str, room_id: str) -> Counter[str]:
    """How many events of the room carry each of our transaction IDs (as our device sees
    them: Synapse shows the transaction ID only to the device that sent the event)."""
    path = urllib.parse.quote(room_id, safe="")
    status, body = synapse.request_json(
        "GET", f"/_matrix/client/v3/rooms/{path}/messages?dir=b&limit=1000", token=token
    )
    assert status == 200, body
    found: Counter[str] = Counter()
    for event in body["chunk"]:
        txn = event.get("unsigned", {}).get("transaction_id")
        if isinstance(txn, str):
            found[txn] += 1
    return found


def _queued(log: Path) -> dict[str, str]:
    lines = log.read_text(errors="replace").splitlines()
    return {
        parts[1]: parts[2]
        for parts in (line.split(" ", 2) for line in lines if line.startswith("queued "))
    }


async def test_sends_pending_at_kill_9_arrive_exactly_once(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    plain = create_room(synapse, alice, invite=[bob.user_id], name="plain")
    encrypted = create_room(
        synapse,
        alice,
        invite=[bob.user_id],
        name="encrypted",
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    join(synapse, bob, plain)
    join(synapse, bob, encrypted)
    policy = HoldNthSend()
    base = tmp_path / "alice"
    rng = random.Random(19)
    with FaultProxy(synapse.base_url, policy) as proxy:
        device_token = await saved_login(alice.user_id, alice.password, base, proxy.base_url)
        client = MatrixClient.restore(base_dir=base, long_poll_ms=1000)
        assert client is not None
        await client.open()
        client.start()
        await client.wait_synced()
        await client.close()
        expected: dict[str, dict[str, str]] = {plain: {}, encrypted: {}}
        reused = 0
        for round_no in range(ROUNDS):
            room = (plain, encrypted)[round_no % 2]
            count = rng.randint(1, 3)
            hold_at = rng.randint(1, count)
            bodies = [f"round {round_no} message {i}" for i in range(count)]
            log = tmp_path / f"round-{round_no}.log"
            policy.arm(hold_at)
            sender = _child("send", str(base), room, *bodies, log=log)
            try:
                assert policy.held_event.wait(20), (
                    f"no send was held:\n{log.read_text()}\n"
                    + "\n".join(
                        f"{e.method} {e.path[:90]} {e.status} {e.faults}"
                        for e in proxy.history()[-30:]
                    )
                )
            finally:
                os.kill(sender.pid, signal.SIGKILL)
                sender.wait(30)
            assert sender.returncode == -signal.SIGKILL
            policy.disarm()
            held = policy.held
            queued = _queued(log)
            assert sorted(queued.values()) == sorted(bodies), log.read_text()
            expected[room].update(queued)
            before = len(proxy.history())
            drainer = _child("drain", str(base), log=log)
            assert drainer.wait(90) == 0, log.read_text()
            # What was pending went out again under its own transaction IDs, the held
            # message first, unless the restarted client learned from its first sync
            # that the server had it (the echo carries the transaction ID).
            resent = [e.txn_id for e in proxy.history()[before:] if e.is_send]
            assert set(resent) <= set(queued), (resent, queued)
            if resent[:1] == [held]:
                reused += 1
            # Every message of every round so far: on the server exactly once.
            on_server = _server_txns(synapse, device_token, room)
            assert {txn: on_server[txn] for txn in expected[room]} == dict.fromkeys(
                expected[room], 1
            )
    print(
        f"{ROUNDS} kills: the held message resent under its transaction ID {reused} times, "
        f"known from the sync echo {ROUNDS - reused} times"
    )
