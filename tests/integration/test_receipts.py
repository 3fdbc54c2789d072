"""Read receipts against Synapse: a message shows who has read it, and the mark moves on
as they read further; our own receipts are not listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.updates import ReceiptsChanged

from ..engine.support import ClientPool, login, wait_until, wait_until_async
from ..support.updates import Recorder


async def test_who_has_read_what_follows_their_receipts(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = pool.add(await login(synapse, alice_user, tmp_path / "alice"))
    bob = pool.add(await login(synapse, bob_user, tmp_path / "bob"))
    room = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
    await wait_until(lambda: room in bob.rooms, what="the invite", timeout=30)
    await bob.join(room)
    await wait_until(
        lambda: alice.rooms.get(room) is not None and alice.rooms[room].joined_count == 2,
        what="bob in",
        timeout=30,
    )
    view = await alice.open_room(room)
    updates = Recorder(alice)

    first = await alice.send_message(room, "first")
    await wait_until(
        lambda: any(
            i.body == "first" and i.event_id and not i.is_local_echo for i in view.model.items
        ),
        what="sent",
        timeout=30,
    )
    first_id = next(
        i.event_id for i in view.model.items if i.body == "first" and not i.is_local_echo
    )
    bob_view = await bob.open_room(room)
    await wait_until(
        lambda: any(i.event_id == first_id for i in bob_view.model.items),
        what="bob has it",
        timeout=30,
    )
    await bob.mark_read(room, _newest(bob, room))
    await wait_until(
        lambda: view.read_by().get(first_id) == (bob_user.user_id,),
        what="bob's receipt",
        timeout=30,
    )
    assert updates.of(ReceiptsChanged)
    assert first.txn_id

    # Alice's next message is unread until bob reads it; then his mark moves down.
    await alice.send_message(room, "second")
    await wait_until(
        lambda: any(i.body == "second" and not i.is_local_echo for i in view.model.items),
        what="sent",
        timeout=30,
    )
    second_id = next(
        i.event_id for i in view.model.items if i.body == "second" and not i.is_local_echo
    )
    assert view.read_by() == {first_id: (bob_user.user_id,)}
    await wait_until(
        lambda: any(i.event_id == second_id for i in bob_view.model.items),
        what="bob has it",
        timeout=30,
    )
    await bob.mark_read(room, _newest(bob, room))
    await wait_until(
        lambda: view.read_by() == {second_id: (bob_user.user_id,)}, what="bob read on", timeout=30
    )
    # Alice's own receipts (she reads bob's reply) never list her.
    await bob.send_message(room, "reply")
    await wait_until(
        lambda: any(i.body == "reply" for i in view.model.items), what="the reply", timeout=30
    )
    await alice.mark_read(room, _newest(alice, room))
    assert all(alice_user.user_id not in users for users in view.read_by().values())

    # A receipt on an event that is not shown (bob's reaction) marks the message before it.
    reply_id = next(
        i.event_id for i in view.model.items if i.body == "reply" and not i.is_local_echo
    )
    await bob.send_reaction(room, reply_id, "👍")
    reaction_id: list[str] = []

    def reacted() -> bool:
        return any(item.event_id == reply_id and item.reactions for item in view.model.items)

    await wait_until(reacted, what="the reaction", timeout=30)
    status, body = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room, safe='')}/messages?dir=b&limit=1",
        None,
        bob_user.access_token,
    )
    assert status == 200 and body["chunk"][0]["type"] == "m.reaction"
    assert view.read_by() == {second_id: (bob_user.user_id,)}
    reaction_id.append(body["chunk"][0]["event_id"])
    status, body = synapse.request_json(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room, safe='')}/receipt/m.read/{quote(reaction_id[0], safe='')}",
        {},
        bob_user.access_token,
    )
    assert status == 200, body
    await wait_until(
        lambda: view.read_by().get(reply_id) == (bob_user.user_id,),
        what="the mark under the reply",
        timeout=30,
    )


async def test_the_new_messages_line_follows_our_fully_read_marker(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = pool.add(await login(synapse, alice_user, tmp_path / "alice"))
    bob = pool.add(await login(synapse, bob_user, tmp_path / "bob"))
    room = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
    await wait_until(lambda: room in bob.rooms, what="the invite", timeout=30)
    await bob.join(room)
    await wait_until(
        lambda: alice.rooms.get(room) is not None and alice.rooms[room].joined_count == 2,
        what="bob in",
        timeout=30,
    )
    await bob.send_message(room, "read this")
    view = await alice.open_room(room)
    await wait_until(
        lambda: any(i.body == "read this" and not i.is_local_echo for i in view.model.items),
        what="the message",
        timeout=30,
    )
    read_id = next(i.event_id for i in view.model.items if i.body == "read this")
    await alice.mark_read(room, _newest(alice, room))
    # The marker comes back as room account data, into the cache.
    await wait_until_async(
        lambda: _marker(alice, room, read_id), what="the fully-read marker synced", timeout=30
    )
    alice.close_room(room)

    await bob.send_message(room, "new one")
    await wait_until(
        lambda: alice.rooms[room].last_ts > 0 and alice.rooms[room].notification_count > 0,
        what="unread",
        timeout=30,
    )
    view = await alice.open_room(room)
    await wait_until(
        lambda: any(i.body == "new one" for i in view.model.items),
        what="the new message",
        timeout=30,
    )
    assert view.fully_read_at_open == read_id
    assert view.new_messages_after() == read_id
    # Only our own messages after the marker: no line.
    await alice.mark_read(room, _newest(alice, room))
    await wait_until_async(
        lambda: _marker(alice, room, view.model.last_event_id()),
        what="the marker moved",
        timeout=30,
    )
    alice.close_room(room)
    await alice.send_message(room, "mine")
    view = await alice.open_room(room)
    await wait_until(
        lambda: any(i.body == "mine" and not i.is_local_echo for i in view.model.items),
        what="ours",
        timeout=30,
    )
    assert view.new_messages_after() is None


async def _marker(client: Any, room: str, event_id: str | None) -> bool:
    marker = await client.db.run(client.cache.account_data, "m.fully_read", room)
    return bool(marker) and marker.get("event_id") == event_id


def _newest(client: Any, room: str) -> str:
    event_id = client.views[room].model.last_event_id()
    assert event_id is not None
    return str(event_id)
