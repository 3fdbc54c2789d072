"""Search against a real Synapse: the local index for encrypted rooms (never asked of the
server), the server's /search for plain rooms, redactions, jumping to a result, and
indexing a room's older history."""

from __future__ import annotations

import json
from pathlib import Path

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.search import IndexProgress

from ..engine.support import Wire, create_room, join, login, seed_messages, send_text
from ..support.users import MakeUser
from .e2ee_support import client_for, encrypted_room, shown, until
from .e2ee_support import join as join_encrypted


def _search_bodies(wire: Wire) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in wire.requests_to("/search", "POST")]


async def test_an_encrypted_message_is_found_locally_and_never_asked_of_the_server(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, wire: Wire
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob", transport=wire.transport())
    try:
        secret = await encrypted_room(alice, "vault", [bob_user.user_id])
        plain = create_room(synapse, alice_user, invite=[bob_user.user_id])
        await join_encrypted(bob, secret)
        await bob.join(plain)
        view = await bob.open_room(secret)
        await alice.send_message(secret, "the treasure lies under the old oak")
        await shown(view, "the treasure lies under the old oak")

        in_room = await bob.search.search("treasure oak", room_id=secret)
        assert [(r.body, r.source) for r in in_room.results] == [
            ("the treasure lies under the old oak", "local")
        ]
        assert _search_bodies(wire) == []  # an encrypted room: no /search at all

        everywhere = await bob.search.search("treasure")
        assert [r.room_id for r in everywhere.results] == [secret]
        asked = _search_bodies(wire)
        assert asked, "the plain room is searched on the server"
        for body in asked:
            rooms = body["search_categories"]["room_events"]["filter"]["rooms"]  # type: ignore[index]
            assert rooms == [plain]
        # The server itself cannot find it: it only holds ciphertext.
        status, answer = synapse.request_json(
            "POST",
            "/_matrix/client/v3/search",
            {"search_categories": {"room_events": {"search_term": "treasure"}}},
            token=bob_user.access_token,
        )
        assert status == 200 and answer["search_categories"]["room_events"]["results"] == []
    finally:
        await alice.close()
        await bob.close()


async def test_server_search_finds_history_we_do_not_hold_and_jumps_to_it(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    room = create_room(synapse, bob_user, invite=[alice_user.user_id], preset="public_chat")
    join(synapse, alice_user, room)
    send_text(synapse, bob_user, room, "the pineapple protocol starts at noon", "first")
    await seed_messages(synapse, bob_user, room, [f"filler {n}" for n in range(80)], concurrency=4)
    alice = await login(synapse, alice_user, tmp_path)
    try:
        assert (
            await alice.search.search("pineapple", server=False)
        ).results == ()  # not synced: too old
        found = await alice.search.search("pineapple protocol")
        assert [(r.body, r.source) for r in found.results] == [
            ("the pineapple protocol starts at noon", "server")
        ]
        assert "pineapple" in found.highlights
        hit = found.results[0]
        context = await alice.search.context(room, hit.event_id, limit=4)
        assert context.event is not None and context.event["event_id"] == hit.event_id
        assert len(context.after) == 2 and all(
            e["content"]["body"].startswith("filler") for e in context.after
        )

        view = await alice.open_room(room)
        assert hit.event_id not in [i.event_id for i in view.model.items]
        assert await view.jump_to(hit.event_id)
        assert hit.event_id in [i.event_id for i in view.model.items]
        assert not view.at_live_end
        # Fetched on the way, it is now in the local index too.
        local = await alice.search.search("pineapple", server=False)
        assert [r.event_id for r in local.results] == [hit.event_id]
    finally:
        await alice.close()


async def test_a_redacted_message_disappears_from_results(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    alice = await login(synapse, alice_user, tmp_path)
    try:
        room = create_room(synapse, alice_user)
        await until(lambda: room in alice.rooms, "room synced")
        event_id = send_text(synapse, alice_user, room, "an embarrassing tpyo here", "t1")
        send_text(synapse, alice_user, room, "a fine tpyo-free line", "t2")
        await until(
            lambda: alice.cache is not None and alice.db.call(alice.cache.indexed_count, room) == 2,
            "indexed",
        )
        before = await alice.search.search("embarrassing")
        assert [r.event_id for r in before.results] == [event_id]
        await alice.redact(room, event_id)
        await until(lambda: alice.db.call(alice.cache.indexed_count, room) == 1, "redaction synced")
        after = await alice.search.search("embarrassing")
        assert after.results == ()
        assert [r.body for r in (await alice.search.search("tpyo")).results] == [
            "a fine tpyo-free line"
        ]
    finally:
        await alice.close()


async def test_index_older_messages_pages_back_with_progress(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    room = create_room(synapse, alice_user)
    send_text(synapse, alice_user, room, "the oldest words of all", "old")
    await seed_messages(
        synapse, alice_user, room, [f"later {n}" for n in range(150)], concurrency=4
    )
    alice = await login(synapse, alice_user, tmp_path)
    try:
        assert (await alice.search.search("oldest", server=False)).results == ()
        seen: list[IndexProgress] = []
        final = await alice.search.index_older(room, page_size=60, progress=seen.append)
        assert final.done and final.error is None
        assert len(seen) >= 3 and [p.indexed for p in seen] == sorted(p.indexed for p in seen)
        assert final.indexed >= 100
        found = await alice.search.search("oldest", server=False)
        assert [r.body for r in found.results] == ["the oldest words of all"]
    finally:
        await alice.close()
