"""Typing notices against Synapse: what one user writes shows the other "typing", no more
often than needed, and stops when the draft is sent, emptied, or left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.typing_notices import RESEND_AFTER

from ..engine.support import ClientPool, Wire, login, wait_until


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_other_side_sees_us_typing_until_we_stop(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool, wire: Wire
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = pool.add(await login(synapse, alice_user, tmp_path / "alice", wire=wire))
    bob = pool.add(await login(synapse, bob_user, tmp_path / "bob"))
    room = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
    await wait_until(lambda: room in bob.rooms, what="the invite", timeout=30)
    await bob.join(room)
    await wait_until(
        lambda: alice.rooms.get(room) is not None and alice.rooms[room].joined_count == 2,
        what="bob in",
        timeout=30,
    )
    view = await bob.open_room(room)
    clock = _Clock()
    alice.typing._clock = clock

    def typing_puts() -> list[Any]:
        return [r for r in wire.requests if r.method == "PUT" and "/typing/" in r.path]

    # Every keystroke reports the draft; one notice goes out.
    for draft in ("h", "he", "hel", "hello"):
        alice.typing.composing(room, draft)
    await wait_until(
        lambda: view.typing == (alice_user.user_id,), what="bob sees alice typing", timeout=30
    )
    assert len(typing_puts()) == 1
    # Still typing after a while: renewed once, not per key.
    clock.now += RESEND_AFTER + 1
    alice.typing.composing(room, "hello b")
    alice.typing.composing(room, "hello bo")
    await wait_until(lambda: len(typing_puts()) == 2, what="the renewal", timeout=30)
    # A command is not a message being written; sending stops the notice.
    await alice.send_message(room, "hello bob")
    await wait_until(lambda: view.typing == (), what="alice stopped", timeout=30)
    assert len(typing_puts()) == 3
    alice.typing.composing(room, "/topic")
    alice.typing.composing(room, "")
    assert len(typing_puts()) == 3
    # Turned off: nothing is sent.
    alice.typing.enabled = False
    alice.typing.composing(room, "secret draft")
    assert len(typing_puts()) == 3
