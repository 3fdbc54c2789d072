"""A local clock hours off (both our clients; Synapse keeps the right time): sending,
read receipts, an in-room verification request (whose age is judged by the server's
``origin_server_ts``) and Megolm key rotation still work, because the client runs on
the server's time learnt from events' ``origin_server_ts`` + ``unsigned.age``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import SynapseServer

from ..integration.e2ee_support import client_for, join, shown, until
from ..integration.verification_support import compare_and_confirm, cross_signing_complete, incoming

HOUR = 3600.0


@pytest.mark.parametrize("skew", [5 * HOUR, -3 * HOUR], ids=["5h-ahead", "3h-behind"])
async def test_a_wrong_local_clock_breaks_nothing(
    synapse: SynapseServer,
    make_user: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    skew: float,
) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew)
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        await cross_signing_complete(alice)
        await cross_signing_complete(bob)
        room = await bob.admin.create_dm(alice_user.user_id)
        await join(alice, room)
        await until(lambda: bob.rooms[room].joined_count == 2, "alice in the DM")
        # The server's time is known (within seconds) despite the local clock.
        for client in (alice, bob):
            await until(
                lambda c=client: abs(c.server_clock.now_ms() - real() * 1000) < 10_000,
                f"{client.user_id} to learn the server's time",
            )

        # Sending and receipts.
        await bob.send_message(room, "the clock is wrong")
        view = await alice.open_room(room)
        await shown(view, "the clock is wrong")
        event_id = next(i.event_id for i in view.model.items if i.body == "the clock is wrong")
        assert event_id is not None
        await alice.mark_read(room, event_id)
        bob_view = await bob.open_room(room)
        await until(
            lambda: alice_user.user_id in bob_view.read_by().get(event_id, ()),
            "alice's receipt at bob",
        )

        # Key rotation: no new session for a second message (the session is not judged
        # hours old or young), a new one once the user's device list says so.
        await alice.send_message(room, "one")
        await alice.send_message(room, "two")
        await shown(await bob.open_room(room), "two")
        sessions = {
            i.body: (await bob.db.run(bob.cache.load_events, [i.event_id]))[i.event_id]["content"][
                "session_id"
            ]
            for i in (await bob.open_room(room)).model.items
            if i.body in ("one", "two") and i.event_id
        }
        assert sessions["one"] == sessions["two"]

        # An in-room verification request: its age is origin_server_ts against the server's now.
        asked = await bob.verification.verify_user(alice_user.user_id)
        assert asked.room_id == room
        request = await incoming(alice)
        assert request.in_room
        await alice.verification.accept(request.id)
        await compare_and_confirm(bob, asked.id, alice, request.id)
    finally:
        await alice.close()
        await bob.close()


def test_the_server_clock_learns_from_ages_and_ignores_nonsense() -> None:
    from tui_client.engine.server_clock import ServerClock

    local = [1_000.0]
    clock = ServerClock(lambda: local[0])
    assert clock.now_ms() == 1_000_000  # nothing learnt yet: the local clock
    # The server is 2 h behind; the youngest event of a batch counts.
    server_now = 1_000_000 - 7_200_000
    clock.observe(
        [
            {"origin_server_ts": server_now - 5_000, "unsigned": {"age": 5_000}},
            {"origin_server_ts": 1, "unsigned": {"age": 10**9}},
        ]
    )
    assert clock.offset_ms == -7_200_000
    # Malformed ages and timestamps are skipped; one outlier batch does not move the median.
    clock.observe(
        [
            {"origin_server_ts": "x", "unsigned": {"age": 1}},
            {"origin_server_ts": 5, "unsigned": {"age": -3}},
            {"origin_server_ts": 5, "unsigned": {"age": True}},
            {"origin_server_ts": True, "unsigned": {"age": 2}},
            {"unsigned": True},
        ]
    )
    clock.observe([{"origin_server_ts": server_now, "unsigned": {"age": 0}}])
    clock.observe([{"origin_server_ts": server_now + 9_000_000, "unsigned": {"age": 0}}])
    assert clock.offset_ms == -7_200_000
    local[0] += 60
    assert clock.now_ms() == server_now + 60_000
