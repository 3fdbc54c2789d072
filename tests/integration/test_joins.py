"""Joining and room management against the real Synapse: aliases, room IDs (v12),
matrix.to links and matrix: URIs, invites, creating rooms, DMs, kick and ban, forget."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.joins import JoinFailed
from tui_client.protocol.commands import CommandError
from tui_client.protocol.ids import MatrixLink
from tui_client.protocol.room_create import MEGOLM, RoomCreateOptions

from ..engine.support import ClientPool, create_room, join, login, room_path, wait_until


def _state(
    synapse: SynapseServer, token: str, room_id: str, event_type: str, state_key: str = ""
) -> tuple[int, dict[str, Any]]:
    path = f"/_matrix/client/v3/rooms/{room_path(room_id)}/state/{urllib.parse.quote(event_type)}/{urllib.parse.quote(state_key)}"
    return synapse.request_json("GET", path, token=token)


def _joined_rooms(synapse: SynapseServer, token: str) -> set[str]:
    status, body = synapse.request_json("GET", "/_matrix/client/v3/joined_rooms", token=token)
    assert status == 200, body
    return set(body["joined_rooms"])


async def test_join_by_alias_room_id_matrix_to_and_matrix_uri(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    owner = make_user("host")
    hs = synapse.server_name
    by_alias = create_room(
        synapse,
        owner,
        preset="public_chat",
        name="By alias",
        room_alias_name=f"byalias-{owner.localpart}",
    )
    # Room version 12: the room ID has no server part, so joining it needs `via`.
    v12 = create_room(synapse, owner, preset="public_chat", name="Version 12", room_version="12")
    assert ":" not in v12
    by_link = create_room(
        synapse,
        owner,
        preset="public_chat",
        name="By link",
        room_alias_name=f"bylink-{owner.localpart}",
    )
    by_uri = create_room(synapse, owner, preset="public_chat", name="By URI", room_version="12")
    by_composer = create_room(
        synapse,
        owner,
        preset="public_chat",
        name="By composer",
        room_alias_name=f"composer-{owner.localpart}",
    )
    user = make_user("joiner")
    client = pool.add(await login(synapse, user, tmp_path))

    assert await client.joins.join(f"#byalias-{owner.localpart}:{hs}") == by_alias
    assert await client.joins.join(v12, [hs]) == v12
    link = MatrixLink("room_alias", f"#bylink-{owner.localpart}:{hs}").to_matrix_to()
    assert link.startswith("https://matrix.to/#/%23bylink")
    assert await client.joins.join(link) == by_link
    uri = f"matrix:roomid/{urllib.parse.quote(by_uri[1:])}?via={hs}&action=join"
    job = client.joins.enqueue(uri)
    assert job.via == (hs,) and job.identifier == by_uri
    assert await job.wait() == by_uri
    answer = await client.submit(None, f"/join #composer-{owner.localpart}:{hs}")
    assert answer == f"Joined #composer-{owner.localpart}:{hs}"

    expected = {by_alias, v12, by_link, by_uri, by_composer}
    assert expected <= _joined_rooms(synapse, user.access_token)
    await wait_until(
        lambda: all(
            client.rooms.get(r) is not None and client.rooms[r].membership == "join"
            for r in expected
        ),
        what="joins synced",
    )
    assert client.rooms[v12].display_name == "Version 12"
    assert await client.joins.wait_for_room(by_uri, timeout=5)
    progress = client.joins.progress()
    assert progress.failed == 0 and not progress.busy


async def test_joins_that_cannot_work_say_why(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    owner = make_user("host")
    private = create_room(synapse, owner, name="Invite only")
    client = pool.add(await login(synapse, make_user("joiner"), tmp_path, start=False))
    with pytest.raises(JoinFailed, match="No alias #nowhere-to-be-found:localhost was found"):
        await client.joins.join(f"#nowhere-to-be-found:{synapse.server_name}")
    with pytest.raises(JoinFailed, match="not allowed to join") as refused:
        await client.joins.join(private)
    assert refused.value.required == ()
    with pytest.raises(CommandError, match="is a user, not a room"):
        client.joins.enqueue(owner.user_id)
    with pytest.raises(CommandError):
        client.joins.enqueue("general")
    progress = client.joins.progress()
    assert (progress.failed, progress.joined) == (
        1,
        0,
    )  # one batch per idle queue: the last failure
    (status,) = progress.jobs
    assert status.state == "failed" and status.error is not None and "not allowed" in status.error


async def test_accept_and_reject_invites(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    host = make_user("host", displayname="Host")
    guest_user = make_user("guest")
    accept = create_room(synapse, host, name="Accept me", invite=[guest_user.user_id])
    reject = create_room(synapse, host, name="Reject me", invite=[guest_user.user_id])
    guest = pool.add(await login(synapse, guest_user, tmp_path))
    await wait_until(lambda: {accept, reject} <= set(guest.rooms), what="both invites")
    for room in (accept, reject):
        summary = guest.rooms[room]
        assert (summary.membership, summary.inviter) == ("invite", host.user_id)
    assert guest.rooms[accept].display_name == "Accept me"

    assert await guest.joins.join(accept) == accept
    await guest.leave(reject)
    await wait_until(lambda: guest.rooms[accept].membership == "join", what="accepted")
    await wait_until(lambda: guest.rooms[reject].membership == "leave", what="rejected")
    status, member = _state(synapse, host.access_token, reject, "m.room.member", guest_user.user_id)
    assert status == 200 and member["membership"] == "leave"
    assert accept in _joined_rooms(synapse, guest_user.access_token)
    assert reject not in _joined_rooms(synapse, guest_user.access_token)


async def test_create_public_and_private_rooms(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    user = make_user("creator")
    friend = make_user("friend")
    client = pool.add(await login(synapse, user, tmp_path))
    alias = f"lobby-{user.localpart}"
    public = await client.admin.create_room(
        RoomCreateOptions(name="Lobby", topic="All welcome", alias_localpart=alias, public=True)
    )
    private = await client.admin.create_room(
        RoomCreateOptions(name="Plans", invite=(friend.user_id,))
    )

    # The public room: in the directory, its alias resolves, not encrypted.
    browser = client.browse_directory(search=alias)
    await browser.load_until(100)
    assert [r.room_id for r in browser.rooms] == [public]
    assert browser.rooms[0].name == "Lobby" and browser.rooms[0].topic == "All welcome"
    status, resolved = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/directory/room/{room_path(f'#{alias}:{synapse.server_name}')}",
        token=user.access_token,
    )
    assert status == 200 and resolved["room_id"] == public
    assert _state(synapse, user.access_token, public, "m.room.encryption")[0] == 404
    # The private room: encrypted from its creation, not published, friend invited.
    status, encryption = _state(synapse, user.access_token, private, "m.room.encryption")
    assert status == 200 and encryption["algorithm"] == MEGOLM
    status, rules = _state(synapse, user.access_token, private, "m.room.join_rules")
    assert rules["join_rule"] == "invite"
    status, visibility = synapse.request_json(
        "GET", f"/_matrix/client/v3/directory/list/room/{room_path(private)}"
    )
    assert visibility["visibility"] == "private"
    status, invited = _state(synapse, user.access_token, private, "m.room.member", friend.user_id)
    assert invited["membership"] == "invite"

    await wait_until(
        lambda: public in client.rooms and private in client.rooms, what="both rooms synced"
    )
    await wait_until(
        lambda: client.rooms[private].encrypted, what="the private room known as encrypted"
    )
    assert not client.rooms[public].encrypted

    # A DM: encrypted, the invite marked direct, recorded in m.direct (and reused).
    dm = await client.admin.create_dm(friend.user_id)
    status, direct = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/user/{room_path(user.user_id)}/account_data/m.direct",
        token=user.access_token,
    )
    assert status == 200 and direct == {friend.user_id: [dm]}
    status, invite = _state(synapse, user.access_token, dm, "m.room.member", friend.user_id)
    assert invite["is_direct"] is True
    assert _state(synapse, user.access_token, dm, "m.room.encryption")[1]["algorithm"] == MEGOLM
    await wait_until(
        lambda: dm in client.rooms and client.rooms[dm].is_dm, what="the DM synced as a DM"
    )
    join(synapse, friend, dm)
    await wait_until(lambda: client.rooms[dm].joined_count == 2, what="friend joined the DM")
    assert await client.admin.create_dm(friend.user_id) == dm


async def test_kick_ban_and_permissions(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    admin_user = make_user("admin")
    member_user = make_user("member")
    room = create_room(synapse, admin_user, preset="public_chat", name="Moderated")
    admin = pool.add(await login(synapse, admin_user, tmp_path / "admin"))
    member = pool.add(await login(synapse, member_user, tmp_path / "member"))
    await member.joins.join(room)
    await wait_until(
        lambda: room in admin.rooms and admin.rooms[room].joined_count == 2,
        what="the member joined",
    )
    await wait_until(lambda: room in member.rooms, what="the member's sync")

    mine = await admin.admin.permissions(room)
    theirs = await member.admin.permissions(room)
    assert (mine.kick, mine.ban, mine.set_topic, mine.set_name) == (True, True, True, True)
    assert (theirs.kick, theirs.ban, theirs.set_topic, theirs.invite) == (
        False,
        False,
        False,
        False,
    )
    with pytest.raises(CommandError, match="not allowed to kick"):
        await member.submit(room, f"/kick {admin_user.user_id}")
    with pytest.raises(CommandError, match="power level is not below yours"):
        await admin.admin.kick(room, admin_user.user_id)

    assert (
        await admin.submit(room, f"/kick {member_user.user_id} too loud")
        == f"Removed {member_user.user_id}"
    )
    status, kicked = _state(
        synapse, admin_user.access_token, room, "m.room.member", member_user.user_id
    )
    assert status == 200 and (kicked["membership"], kicked.get("reason")) == ("leave", "too loud")
    await member.joins.join(room)
    await admin.submit(room, f"/ban {member_user.user_id} spam")
    status, banned = _state(
        synapse, admin_user.access_token, room, "m.room.member", member_user.user_id
    )
    assert status == 200 and (banned["membership"], banned.get("reason")) == ("ban", "spam")
    with pytest.raises(JoinFailed, match="not allowed to join"):
        await member.joins.join(room)
    await admin.submit(room, f"/unban {member_user.user_id}")
    assert await member.joins.join(room) == room


async def test_leave_and_forget(
    synapse: SynapseServer, make_user: Any, pool: ClientPool, tmp_path: Path
) -> None:
    owner = make_user("host")
    room = create_room(synapse, owner, preset="public_chat", name="Passing through")
    user = make_user("visitor")
    client = pool.add(await login(synapse, user, tmp_path))
    await client.joins.join(room)
    await wait_until(
        lambda: room in client.rooms and client.rooms[room].membership == "join", what="joined"
    )
    assert await client.submit(room, "/forget") == "Left and forgot the room"
    assert room not in client.rooms
    assert room not in _joined_rooms(synapse, user.access_token)
    stored = await client.db.run(
        client.cache.execute_readonly, "SELECT COUNT(*) FROM events WHERE room_id = ?", (room,)
    )
    assert stored == [(0,)]
