"""Read back from Synapse: a completed mention is a pill only where it was completed,
after a command (/me) or the // escape moved the text, never inside code; and what is
typed is sent without control characters or escape sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.formatting import Pill

from ..engine.support import ClientPool, join, login, wait_until
from .test_formatting_send import _content, _wait_sent


async def test_pills_stay_where_they_were_completed_and_text_is_sent_clean(
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
    token, bob_id = alice_user.access_token, bob_user.user_id
    pill = f'<a href="https://matrix.to/#/{bob_id}">Bob</a>'

    # /me: the pill completed at offset 10 of the composer line is the first Bob of
    # the emote; the second, inside code, is code.
    line = "/me pings Bob, not `Bob`"
    await alice.submit(room, line, pills=[Pill("Bob", bob_id, line.index("Bob"))])
    emote = _content(synapse, token, room, await _wait_sent(alice, room, "pings Bob, not `Bob`"))
    assert emote["msgtype"] == "m.emote"
    assert emote["formatted_body"] == f"pings {pill}, not <code>Bob</code>"
    assert emote["m.mentions"] == {"user_ids": [bob_id]}

    # //: the escape goes, the pill (the second Bob) moves with the text.
    line = "//Bob said hi to Bob"
    await alice.submit(room, line, pills=[Pill("Bob", bob_id, line.rindex("Bob"))])
    escaped = _content(synapse, token, room, await _wait_sent(alice, room, "/Bob said hi to Bob"))
    assert escaped["formatted_body"] == f"/Bob said hi to {pill}"

    # Control characters and escape sequences typed (or pasted) are not sent.
    line = "hey\x1b[31m Bob\x07, see \x9b2J**this**\x00"
    await alice.submit(room, line, pills=[Pill("Bob", bob_id, line.index("Bob"))])
    clean = _content(synapse, token, room, await _wait_sent(alice, room, "hey Bob, see 2J**this**"))
    assert clean["body"] == "hey Bob, see 2J**this**"
    assert clean["formatted_body"] == f"hey {pill}, see 2J<strong>this</strong>"
    assert clean["m.mentions"] == {"user_ids": [bob_id]}
