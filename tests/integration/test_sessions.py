"""Sessions against the real Synapse: two clients talking, restoring from the cache,
logging out, where secrets live, and how the token travels."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import CACHE_FILE, SESSION_FILE, MatrixClient
from tui_client.engine.updates import Notice, RoomListChanged, SessionEnded, TimelineUpdated
from tui_client.protocol.sliding_sync import decode_token
from tui_client.protocol.timeline import SendState

from ..engine.support import ClientPool, Wire, login, wait_until
from ..support.updates import Recorder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_bob_sees_alice_live(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    alice_user, bob_user = (
        make_user("alice", displayname="Alice"),
        make_user("bob", displayname="Bob"),
    )
    alice = pool.add(await login(synapse, alice_user, tmp_path / "alice"))
    bob = pool.add(await login(synapse, bob_user, tmp_path / "bob"))
    bob_updates = Recorder(bob)

    room_id = await alice.create_room(
        {"name": "Live", "preset": "private_chat", "invite": [bob_user.user_id]}
    )
    await wait_until(lambda: room_id in bob.rooms, what="bob sees the invite")
    invite = bob.rooms[room_id]
    assert (invite.membership, invite.inviter, invite.display_name) == (
        "invite",
        alice_user.user_id,
        "Live",
    )
    assert any(
        isinstance(u, RoomListChanged) and room_id in u.changed
        for u in bob_updates.of(RoomListChanged)
    )

    await bob.join(room_id)
    await wait_until(lambda: bob.rooms[room_id].membership == "join", what="bob joined")
    bob_view = await bob.open_room(room_id)
    alice_view = await alice.open_room(room_id)
    # Wait until alice sees bob's join, so her window is live.
    await wait_until(
        lambda: any(i.body == "Bob joined" for i in alice_view.model.items),
        what="alice sees the join",
    )

    entry = await alice.send_message(room_id, "hello [bold]bob[/bold] \x1b[31mred")
    (echo,) = [i for i in alice_view.model.items if i.is_local_echo]
    assert echo.send_state is SendState.PENDING and echo.txn_id == entry.txn_id

    def bob_has_it() -> bool:
        return any(i.body.startswith("hello") for i in bob_view.model.items)

    await wait_until(bob_has_it, what="bob sees the message")
    (seen,) = [i for i in bob_view.model.items if i.body.startswith("hello")]
    assert seen.sender == alice_user.user_id
    assert bob_view.display_name(seen.sender) == "Alice"
    # Markup is text; escape sequences never reach the terminal.
    assert seen.body == "hello [bold]bob[/bold] red"
    assert not seen.is_local_echo
    # The update stream carried it too, as a diff of bob's open room.
    assert any(
        isinstance(u, TimelineUpdated)
        and u.room_id == room_id
        and any(d.item is not None and d.item.key == seen.key for d in u.diffs)
        for u in bob_updates.of(TimelineUpdated)
    )
    # On alice's side the echo was replaced by the server's event (same event ID as bob's).
    await wait_until(
        lambda: not any(i.is_local_echo for i in alice_view.model.items), what="echo replaced"
    )
    (mine,) = [i for i in alice_view.model.items if i.body.startswith("hello")]
    assert mine.key == seen.key and mine.send_state is SendState.SENT


async def test_restore_shows_the_cache_before_any_request(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    user = make_user("restorer")
    client = pool.add(await login(synapse, user, tmp_path / "data"))
    room_id = await client.create_room({"name": "Kept", "preset": "private_chat"})
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    view = await client.open_room(room_id)
    for n in range(3):
        await client.send_message(room_id, f"remember {n}")
    await wait_until(
        lambda: (
            [
                i.body
                for i in view.model.items
                if not i.is_local_echo and i.body.startswith("remember")
            ]
            == ["remember 0", "remember 1", "remember 2"]
        ),
        what="messages synced",
    )
    await client.close()
    pool.forget(client)

    wire = Wire()
    try:
        restored = MatrixClient.restore(
            base_dir=tmp_path / "data", transport=wire.transport(), long_poll_ms=1000
        )
        assert restored is not None
        pool.add(restored)
        assert restored.user_id == user.user_id
        updates = Recorder(restored)
        await restored.open()
        (listed,) = updates.of(RoomListChanged)
        assert room_id in {r.room_id for r in listed.rooms}
        assert [r.display_name for r in restored.room_list()] == ["Kept"]
        restored_view = await restored.open_room(room_id)
        assert [i.body for i in restored_view.model.items if i.body.startswith("remember")] == [
            "remember 0",
            "remember 1",
            "remember 2",
        ]
        # All of that came from the cache: not one request went out, sync never started.
        assert wire.requests == []
        assert restored.sync_loop is None

        # The position the cache kept, as the source in use sends it (v2's since, or
        # sliding sync's pos: which runs was remembered, not asked before the room list).
        token = restored.sync_token
        assert token is not None
        expected = (
            ("pos", decode_token(token)[0])
            if restored.sync_mode == "sliding sync"
            else ("since", token)
        )
        restored.start()
        await restored.wait_synced()
        first_sync = next(r for r in wire.requests if r.path.endswith("/sync"))
        assert first_sync.url.params[expected[0]] == expected[1]
    finally:
        await pool.close_all()
        await wire.aclose()


async def test_logout_invalidates_the_token_and_removes_local_data(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, pool: ClientPool
) -> None:
    user = make_user("leaver")
    client = pool.add(await login(synapse, user, tmp_path / "data"))
    folder = client.folder
    token = client.connection.access_token
    assert token
    assert (
        (folder / SESSION_FILE).exists()
        and (folder / CACHE_FILE).exists()
        and (folder / "secrets.json").exists()
    )
    status, _ = synapse.request_json("GET", "/_matrix/client/v3/account/whoami", token=token)
    assert status == 200
    updates = Recorder(client)

    await client.logout()
    pool.forget(client)

    status, body = synapse.request_json("GET", "/_matrix/client/v3/account/whoami", token=token)
    assert (status, body.get("errcode")) == (401, "M_UNKNOWN_TOKEN")
    for name in (
        SESSION_FILE,
        CACHE_FILE,
        CACHE_FILE + "-wal",
        CACHE_FILE + "-shm",
        "secrets.json",
    ):
        assert not (folder / name).exists(), name
    assert MatrixClient.restore(base_dir=tmp_path / "data") is None
    assert MatrixClient.saved_session(base_dir=tmp_path / "data") is None
    assert [e.soft for e in updates.of(SessionEnded)] == [False]


async def test_secrets_fall_back_to_a_private_file_and_the_token_stays_in_headers(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    user = make_user("secretive")
    client = await MatrixClient.login(
        user.user_id,
        user.password,
        homeserver=synapse.base_url,
        base_dir=tmp_path / "data",
        transport=wire.transport(),
        long_poll_ms=1000,
    )
    pool.add(client)
    folder = client.folder
    secrets_file = folder / "secrets.json"
    # conftest forces the "fail" keyring backend: no system keyring.
    assert client.secrets.uses_keyring is False
    assert _mode(folder) == 0o700
    assert _mode(secrets_file) == 0o600
    assert _mode(folder / SESSION_FILE) == 0o600
    assert client.secrets.warning is not None and str(secrets_file) in client.secrets.warning
    assert "No system keyring" in client.secrets.warning
    updates = Recorder(client)
    await client.open()
    assert [n.text for n in updates.of(Notice) if n.level == "warning"] == [client.secrets.warning]

    client.start()
    await client.wait_synced()
    room_id = await client.create_room({"name": "Headers", "preset": "private_chat"})
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    view = await client.open_room(room_id)
    await client.send_message(room_id, "token check")
    await wait_until(
        lambda: any(i.body == "token check" and not i.is_local_echo for i in view.model.items),
        what="sent",
    )
    await wait_until(lambda: len(wire.requests_to("/sync")) >= 3, what="a few syncs")

    token = client.connection.access_token
    assert token and token in secrets_file.read_text()
    assert {"/login", "/sync", "/createRoom"} <= {
        "/" + r.path.rsplit("/", 1)[-1] for r in wire.requests
    }
    assert any("/send/" in r.path for r in wire.requests)
    for request in wire.requests:
        url = str(request.url)
        assert "access_token" not in url
        assert token not in url
        if request.path.endswith(("/login", "/versions")):
            assert "authorization" not in request.headers
        else:
            assert request.headers["authorization"] == f"Bearer {token}", request.path
    # Nor in the body of anything but the login answer (which is not a request).
    assert not any(token.encode() in r.body for r in wire.requests)
