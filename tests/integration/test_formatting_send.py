"""What we send, read back from Synapse: markdown as formatted_body (none for plain text),
pills and m.mentions, @room only with the power to notify the room, edits with both
bodies in m.new_content, replies without a fallback, and a reaction toggled off."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.formatting import Pill

from ..engine.support import ClientPool, join, login, server_messages, wait_until


def _sent(client: MatrixClient, room: str, body: str) -> str:
    view = client.views[room]
    for item in view.model.items:
        if item.body == body and item.event_id and not item.is_local_echo:
            return item.event_id
    return ""


async def _wait_sent(client: MatrixClient, room: str, body: str) -> str:
    await wait_until(lambda: bool(_sent(client, room, body)), what=f"{body!r} sent", timeout=30)
    return _sent(client, room, body)


def _content(synapse: SynapseServer, token: str, room: str, event_id: str) -> dict[str, Any]:
    status, event = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room, safe='')}/event/{quote(event_id, safe='')}",
        token=token,
    )
    assert status == 200, event
    content = event["content"]
    assert isinstance(content, dict)
    return content


async def test_formatted_messages_mentions_edits_replies_and_reactions_read_back(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = (
        make_user("alice", displayname="Alice"),
        make_user("bob", displayname="Bob"),
    )
    alice = pool.add(await login(synapse, alice_user, tmp_path / "alice"))
    room = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
    join(synapse, bob_user, room)
    await wait_until(
        lambda: alice.rooms.get(room) is not None and alice.rooms[room].joined_count == 2,
        what="bob in",
        timeout=30,
    )
    await alice.open_room(room)
    token = alice_user.access_token
    bob_id = bob_user.user_id

    # Markdown and a completed mention: a pill in formatted_body, the name in body.
    await alice.submit(room, "**hi** Bob, see `code`", pills=[Pill("Bob", bob_id)])
    first = await _wait_sent(alice, room, "**hi** Bob, see `code`")
    content = _content(synapse, token, room, first)
    assert content["format"] == "org.matrix.custom.html"
    assert (
        content["formatted_body"]
        == f'<strong>hi</strong> <a href="https://matrix.to/#/{bob_id}">Bob</a>, see <code>code</code>'
    )
    assert content["m.mentions"] == {"user_ids": [bob_id]}

    # Plain text: no formatted_body, and an empty m.mentions all the same.
    await alice.submit(room, "hello")
    plain = _content(synapse, token, room, await _wait_sent(alice, room, "hello"))
    assert plain == {"msgtype": "m.text", "body": "hello", "m.mentions": {}}

    # Typed HTML is text; /plain sends markdown literally.
    await alice.submit(room, "<b>not bold</b>")
    typed = _content(synapse, token, room, await _wait_sent(alice, room, "<b>not bold</b>"))
    assert "formatted_body" not in typed
    await alice.submit(room, "/plain **as is**")
    literal = _content(synapse, token, room, await _wait_sent(alice, room, "**as is**"))
    assert "formatted_body" not in literal and literal["m.mentions"] == {}

    # /html: sent as written once sanitised, with a plain body made from it.
    await alice.submit(
        room,
        f'/html <h1>Title</h1> <script>alert(1)</script><a href="https://matrix.to/#/{bob_id}">Bob</a>',
    )
    raw = _content(synapse, token, room, await _wait_sent(alice, room, "Title\nBob"))
    assert raw["formatted_body"] == f'<h1>Title</h1> <a href="https://matrix.to/#/{bob_id}">Bob</a>'
    assert raw["m.mentions"] == {"user_ids": [bob_id]}

    # @room: the creator (100) may notify the room; bob (0, below notifications.room 50) may not.
    await alice.submit(room, "@room lunch")
    assert _content(synapse, token, room, await _wait_sent(alice, room, "@room lunch"))[
        "m.mentions"
    ] == {"room": True}
    bob = pool.add(await login(synapse, bob_user, tmp_path / "bob"))
    await bob.open_room(room)
    assert alice.may_mention_room(room) and not bob.may_mention_room(room)
    await bob.submit(room, "@room me too")
    bob_event = await _wait_sent(bob, room, "@room me too")
    assert _content(synapse, bob_user.access_token, room, bob_event)["m.mentions"] == {}

    # An edit: both bodies in m.new_content, the "* " fallback outside.
    await alice.send_edit(room, first, "**hello** Bob", pills=[Pill("Bob", bob_id)])
    await wait_until(
        lambda: any(i.event_id == first and i.edited for i in alice.views[room].model.items),
        what="edit",
        timeout=30,
    )
    edits = [
        e
        for e in server_messages(synapse, token, room)
        if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    ]
    assert len(edits) == 1
    edit = edits[0]["content"]
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": first}
    assert edit["m.new_content"]["body"] == "**hello** Bob"
    assert (
        edit["m.new_content"]["formatted_body"]
        == f'<strong>hello</strong> <a href="https://matrix.to/#/{bob_id}">Bob</a>'
    )
    assert edit["m.new_content"]["m.mentions"] == {"user_ids": [bob_id]}
    assert edit["body"] == "* **hello** Bob" and edit["formatted_body"].startswith(
        "* <strong>hello</strong>"
    )
    assert edit["m.mentions"] == {}  # bob was already mentioned by the original

    # A reply carries the relation and no fallback.
    await alice.submit(room, "an *answer*", reply_to=first)
    reply = _content(synapse, token, room, await _wait_sent(alice, room, "an *answer*"))
    assert reply["m.relates_to"] == {"m.in_reply_to": {"event_id": first}}
    assert reply["body"] == "an *answer*" and reply["formatted_body"] == "an <em>answer</em>"
    assert "mx-reply" not in reply["formatted_body"]

    # A reaction pressed twice: sent, then taken back; the server has none left.
    view = alice.views[room]
    assert await alice.toggle_reaction(room, first, "👍") is True

    def mine() -> bool:
        return any(
            i.event_id == first and any(r.mine for r in i.reactions) for i in view.model.items
        )

    await wait_until(mine, what="our reaction", timeout=30)
    assert await alice.toggle_reaction(room, first, "👍") is False
    await wait_until(lambda: not mine(), what="our reaction gone", timeout=30)
    status, relations = synapse.request_json(
        "GET",
        f"/_matrix/client/v1/rooms/{quote(room, safe='')}/relations/{quote(first, safe='')}/m.annotation",
        token=token,
    )
    assert status == 200, relations
    assert relations["chunk"] == []
