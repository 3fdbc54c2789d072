"""Two clients of ours chat in an encrypted room through a network that drops, delays
(2-30 s), resets and truncates at random, before or after the server has the request.

At the end (faults off) every message is on both sides exactly once and decrypted, and
the status line told the truth all along: each sync request the network broke was
followed at once by a "retrying"/"offline" state of that client, and both end connected.
Room keys are replaced along the way (each sender drops its Megolm session every 12
messages), so new keys travel through the faults too. ``make test``: 60 s of faults;
``make soak``: 10 minutes; each over sliding sync (the default) and over /sync v2.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.fault_proxy import DROP, PASS, RESET, TRUNCATE, Exchange, Fault, FaultProxy
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.room_view import RoomView
from tui_client.engine.updates import SyncStatus

from ..integration.e2ee_support import encrypted_room, join, until
from ..support.updates import Recorder
from . import scale
from .support import saved_login

SECONDS = int(os.environ.get("TUI_CLIENT_FLAKY_SECONDS", scale(60, 600)))
BROKEN = ("drop", "reset", "truncate")


class RandomFaults:
    """The network's misbehaviour, seeded; records each fault with its time and token."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.active = False
        # time, token, path, phase, kind, and whether the client may have given up on the
        # request already: it was held up before (its timeout said so, not this fault), or
        # it had left (a sliding sync long-poll it gave up when a room was opened).
        self.log: list[tuple[float, str, str, str, str, bool]] = []
        #: Faults on sync requests whose client had left (given up) before the answer.
        self.syncs_given_up = 0

    def __call__(self, exchange: Exchange, phase: str) -> Fault:
        with self.lock:
            if not self.active:
                return PASS
            r = self.rng.random()
            if phase == "request":
                fault = (
                    DROP
                    if r < 0.05
                    else RESET
                    if r < 0.08
                    else Fault.delay(self.rng.uniform(2, 30))
                    if r < 0.12
                    else PASS
                )
            else:
                fault = (
                    DROP
                    if r < 0.05
                    else RESET
                    if r < 0.08
                    else TRUNCATE
                    if r < 0.12
                    else Fault.delay(self.rng.uniform(2, 30))
                    if r < 0.17
                    else PASS
                )
            if fault is not PASS:
                token = exchange.headers.get("authorization", "").removeprefix("Bearer ")
                held_up = exchange.client_gone or any("delay" in f for f in exchange.faults)
                self.syncs_given_up += int(exchange.client_gone and exchange.is_sync_request)
                self.log.append(
                    (time.time(), token, exchange.path.split("?", 1)[0], phase, fault.kind, held_up)
                )
            return fault


def _bodies(view: RoomView) -> list[str]:
    return [
        i.body
        for i in view.model.items
        if not i.is_local_echo and i.body.startswith(("alice ", "bob "))
    ]


async def _delivered(
    client: MatrixClient, view: RoomView, room: str, sent: list[str]
) -> tuple[list[str], int, str]:
    """The bodies of the room's messages in the client's cache, decrypted, once every sent
    message is there or three minutes passed; how many of our messages are in the room
    (decrypted or not); why those not decrypted are not. Gaps a delayed sync left (a
    limited timeline) are filled by paginating back, as a user scrolling up would."""
    deadline = time.monotonic() + 180
    while True:
        while await client.db.run(client.cache.gaps, room) and time.monotonic() < deadline:
            if not await view.paginate_back(200):
                await asyncio.sleep(1)
        stored, _gap = await client.db.run(client.cache.load_before, room, None, 1_000_000)
        ours = [
            s.event
            for s in stored
            if s.event.get("type") == "m.room.encrypted"
            and s.event.get("sender") in SENDERS[client]
        ]
        encrypted = [e["event_id"] for e in ours]
        clear = await client.db.run(client.encryption.store.decrypted, encrypted)
        bodies = [clear[e][0].get("content", {}).get("body", "") for e in encrypted if e in clear]
        got = [b for b in bodies if b.startswith(("alice ", "bob "))]
        undecrypted = [e for e in ours if e["event_id"] not in clear]
        if (set(got) >= set(sent) and not undecrypted) or time.monotonic() > deadline:
            why = str(await client.db.run(_why, client, undecrypted)) if undecrypted else ""
            return got, len(ours), why
        await asyncio.sleep(1)


SENDERS: dict[MatrixClient, set[str]] = {}


def _why(client: MatrixClient, events: list[dict[str, Any]]) -> list[tuple[str, str, int, bool]]:
    """Sender, session, index and whether the room key is held, per event not decrypted."""
    db = client.cache._db
    found = []
    for event in events:
        content = event.get("content", {})
        session = content.get("session_id", "")
        held = db.execute(
            "SELECT 1 FROM crypto_inbound_sessions WHERE session_id = ?", (session,)
        ).fetchone()
        found.append(
            (event.get("sender", ""), session, len(content.get("ciphertext", "")), held is not None)
        )
    return found


async def _client(base: Path, sliding: bool) -> MatrixClient:
    client = MatrixClient.restore(base_dir=base, long_poll_ms=2000)
    assert client is not None
    await client.set_sliding_sync(sliding)
    await client.open()
    client.start()
    await client.wait_synced()
    return client


@pytest.mark.parametrize("sliding", [True, False], ids=["sliding", "v2"])
async def test_chat_through_a_flaky_network(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, sliding: bool
) -> None:
    faults = RandomFaults(seed=19)
    alice_user, bob_user = make_user("alice"), make_user("bob")
    with FaultProxy(synapse.base_url, faults) as proxy:
        tokens = {
            "alice": await saved_login(
                alice_user.user_id, alice_user.password, tmp_path / "alice", proxy.base_url
            ),
            "bob": await saved_login(
                bob_user.user_id, bob_user.password, tmp_path / "bob", proxy.base_url
            ),
        }
        alice = await _client(tmp_path / "alice", sliding)
        bob = await _client(tmp_path / "bob", sliding)
        assert alice.sync_mode == bob.sync_mode == ("sliding sync" if sliding else "sync v2")
        clients = {"alice": alice, "bob": bob}
        try:
            room = await encrypted_room(alice, "flaky", [bob_user.user_id])
            await join(bob, room)
            await until(lambda: alice.rooms[room].joined_count == 2, "bob in the room")
            views = {name: await c.open_room(room) for name, c in clients.items()}
            recorders = {name: Recorder(c) for name, c in clients.items()}

            faults.active = True
            sent: list[str] = []
            deadline = time.monotonic() + SECONDS
            n = 0
            while time.monotonic() < deadline:
                name = ("alice", "bob")[n % 2]
                if n % 24 in (22, 23):  # each sender replaces its room key now and then
                    client = clients[name]
                    await client.encryption.call(
                        lambda c=client: c.encryption.machine.invalidate_group_session(room)  # type: ignore[union-attr]
                    )
                body = f"{name} {n}"
                await clients[name].send_message(room, body)
                sent.append(body)
                n += 1
                await asyncio.sleep(0.75)
            faults.active = False
            for client in clients.values():  # what a "network is back" signal does
                assert client.sync_loop is not None
                client.sync_loop.retry_now()
                client.send_queue.wake()
                client.encryption.wake()

            for client in clients.values():
                SENDERS[client] = {alice.user_id, bob.user_id}
            undecryptable: list[str] = []
            for name, client in clients.items():
                got, present, why = await _delivered(client, views[name], room, sent)
                # Every message is there exactly once (as the server stored it)...
                assert present == len(sent), (
                    f"{name} has {present} of our events for {len(sent)} messages"
                )
                assert len(got) == len(set(got)) and set(got) <= set(sent), (
                    f"{name} has duplicates or strangers"
                )
                # ...and decrypted, which fails now and then: see below.
                if len(got) != len(sent):
                    undecryptable.append(f"{name} cannot decrypt {len(sent) - len(got)}: {why}")
            for name, client in clients.items():
                await until(
                    lambda c=client: c.sync_state.status is SyncStatus.CONNECTED,
                    f"{name} connected",
                )
                assert await client.db.run(client.cache.outbox, None, ("pending", "failed")) == []

            # The status line told the truth: every sync the network broke was followed by a
            # retrying/offline state of that client within a few seconds.
            broken_syncs = [
                (t, token, f"{phase} {kind}")
                for t, token, path, phase, kind, held_up in faults.log
                if path.endswith("/sync") and kind in BROKEN and not held_up
            ]
            assert broken_syncs, "no sync request was broken: the test tested nothing"
            by_token = {tokens[name]: name for name in clients}
            for t, token, fault in broken_syncs:
                states = recorders[by_token[token]].states()
                around = [
                    f"{when - t:+.2f}s {s.status.value} {s.detail}"
                    for when, s in states
                    if t - 5 <= when <= t + 30
                ]
                assert any(
                    t - 0.5 <= when <= t + 5
                    and s.status in (SyncStatus.BACKING_OFF, SyncStatus.OFFLINE)
                    for when, s in states
                ), (
                    f"{by_token[token]}'s status did not say the broken sync ({fault}) at {t}: {around}"
                )
            # Issue 19: a room key now and then did not reach the other side whole (held at
            # a later index, or not at all): a /keys/claim whose answer was lost held the
            # device back for 5 minutes, and the key was shared without it (m.no_olm).
            # Fixed (test_lost_key_claim.py); no room key may be lost.
            assert not undecryptable, "; ".join(undecryptable)
            kinds = sorted({entry[4] for entry in faults.log})
            print(
                f"{alice.sync_mode}: {faults.syncs_given_up} sync faults met a request given up; "
                f"{SECONDS}s, {len(sent)} messages, {len(faults.log)} faults ({', '.join(kinds)}), "
                f"{len(broken_syncs)} broken syncs each said in the status"
            )
        finally:
            faults.active = False
            for client in clients.values():
                await client.close()


class BreakSyncAnswers:
    """Drops the answer of the sliding sync long-poll in flight when armed (the one a room's
    opening makes the client give up), then, once ``live`` is set, the next sync answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed = False
        self.live = False
        self.before: set[int] = set()
        self.dropped: list[tuple[float, Exchange]] = []

    def __call__(self, exchange: Exchange, phase: str) -> Fault:
        with self.lock:
            sync = exchange.path.split("?", 1)[0].endswith("/sync")
            if not sync:
                return PASS
            if phase == "request" and not self.armed:
                self.before.add(id(exchange))
            if phase != "response":
                return PASS
            stale = id(exchange) in self.before and "timeout=0" not in exchange.path
            if (self.armed and stale and not self.dropped) or (
                self.live and len(self.dropped) == 1
            ):
                self.dropped.append((time.time(), exchange))
                return DROP
            return PASS


async def test_a_long_poll_given_up_is_not_a_broken_sync(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    """Opening a room makes sliding sync ask again at once (its longer timeline), giving up
    the long-poll in flight. The network breaking that answer reaches nobody: the client
    stays connected, truthfully. The flaky-network test, opening its rooms just before the
    faults began, counted such a fault as a broken sync the status line had to say (over
    sliding sync, a run in 6 failed so): the proxy now marks the client gone
    (``Exchange.client_gone``). A sync the client waits for and loses is said at once."""
    policy = BreakSyncAnswers()
    user = make_user("alice")
    with FaultProxy(synapse.base_url, policy) as proxy:
        await saved_login(user.user_id, user.password, tmp_path / "alice", proxy.base_url)
        client = await _client(tmp_path / "alice", True)
        assert client.sync_mode == "sliding sync"
        try:
            room = await encrypted_room(client, "given up", [])
            await until(lambda: room in client.rooms, "the room synced")
            await asyncio.sleep(3)  # long-polling by now
            recorder = Recorder(client)
            policy.armed = True
            await client.open_room(room)
            await until(lambda: len(policy.dropped) == 1, "the given-up long-poll answered")
            t, given_up = policy.dropped[0]
            assert given_up.client_gone, "the client was still waiting for it"
            await asyncio.sleep(3)
            assert not [s for _, s in recorder.states() if s.status is not SyncStatus.CONNECTED]
            assert client.sync_state.status is SyncStatus.CONNECTED

            policy.live = True
            await until(lambda: len(policy.dropped) == 2, "a live sync broken")
            t, live = policy.dropped[1]
            assert not live.client_gone
            await until(
                lambda: any(
                    s.status is SyncStatus.BACKING_OFF and when >= t - 0.5
                    for when, s in recorder.states()
                ),
                "the broken sync said",
                timeout=5,
            )
            assert [e for e in proxy.history() if e.faults] == [given_up, live]
        finally:
            await client.close()
