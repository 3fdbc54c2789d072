"""The cache at rest, against Synapse, read the way an attacker reads a disk: every file
of the data folder, raw. Also: a plain cache of the previous release is encrypted on
first start with rooms, messages and the crypto identity intact; logout leaves nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MakeUser
from tui_client.__main__ import configure_logging
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine import client as client_module
from tui_client.engine.cache_key import CACHE_KEY
from tui_client.engine.client import CACHE_FILE, MatrixClient
from tui_client.engine.secrets import SecretStore
from tui_client.store.encrypted_db import PLAIN_HEADER, is_plain_sqlite

from .e2ee_support import bodies, client_for, encrypted_room, join, restore, shown, until


def _readable(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    """For each needle, the files under ``folder`` whose raw bytes contain it (UTF-8 or UTF-16)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    found: dict[str, list[str]] = {}
    for needle in needles:
        forms = (needle.encode(), needle.encode("utf-16-le"))
        hits = [
            str(p.relative_to(folder)) for p in files if any(f in p.read_bytes() for f in forms)
        ]
        if hits:
            found[needle] = hits
    return found


@pytest.fixture
def debug_log_in(tmp_path: Path) -> Iterator[Path]:
    """Every logger at DEBUG into a log file inside alice's data folder (scanned with it)."""
    folder = tmp_path / "alice" / "default"
    folder.mkdir(parents=True)
    path = folder / "client.log"
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(path, debug=True)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


async def test_no_message_text_in_any_file_of_the_data_folder(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, debug_log_in: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    secret_mine = "my encrypted words wombat 5f1e"
    secret_theirs = "their encrypted words narwhal 0c9d"
    plain_mine = "plain room words pangolin 77a2"
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        room = await encrypted_room(alice, "secret", [bob_user.user_id])
        await join(bob, room)
        alice_view, bob_view = await alice.open_room(room), await bob.open_room(room)
        await alice.send_message(room, secret_mine)
        await shown(bob_view, secret_mine)
        await bob.send_message(room, secret_theirs)
        await shown(alice_view, secret_theirs)
        plain = await alice.create_room({"name": "plain", "preset": "private_chat"})
        plain_view = await alice.open_room(plain)
        await alice.send_message(plain, plain_mine)
        await shown(plain_view, plain_mine)
        folder = alice.folder
        assert debug_log_in.parent == folder
        # While running: the WAL holds the newest pages.
        assert (folder / (CACHE_FILE + "-wal")).exists()
        needles = [secret_mine, secret_theirs, plain_mine]
        assert _readable(folder, needles) == {}
        assert _readable(bob.folder, needles) == {}
    finally:
        await alice.close()
        await bob.close()
    assert _readable(folder, [*needles, PLAIN_HEADER.decode()]) == {}
    assert (folder / CACHE_FILE).read_bytes()[:16] != PLAIN_HEADER

    # And the same data is there for the owner of the key.
    again = await restore(tmp_path / "alice")
    try:
        view = await again.open_room(room)
        await until(lambda: secret_theirs in bodies(view), "the decrypted message from the cache")
    finally:
        await again.close()


async def test_a_plain_cache_of_the_previous_release_is_encrypted_on_start(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    before_body = "said before the upgrade quetzal 31d0"
    after_body = "said after the upgrade axolotl 8e42"
    plain_body = "plain room before the upgrade ibis 12cc"
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    # The previous release: the cache opened with plain sqlite3 and no cache key.
    with monkeypatch.context() as patch:
        patch.setattr(client_module, "cache_key", lambda secrets, path: None)
        alice = await client_for(synapse, alice_user, tmp_path / "alice")
    folder = alice.folder
    try:
        room = await encrypted_room(alice, "secret", [bob_user.user_id])
        await join(bob, room)
        await bob.send_message(room, before_body)
        alice_view = await alice.open_room(room)
        await shown(alice_view, before_body)
        plain = await alice.create_room({"name": "plain", "preset": "private_chat"})
        await alice.send_message(plain, plain_body)
        await shown(await alice.open_room(plain), plain_body)
        machine = alice.encryption.machine
        assert machine is not None
        identity = (
            machine.identity_keys.ed25519,
            machine.identity_keys.curve25519,
            alice.device_id,
        )
    finally:
        await alice.close()
    assert is_plain_sqlite(folder / CACHE_FILE)
    assert before_body in _readable(folder, [before_body])
    assert SecretStore(folder, alice_user.user_id).get(CACHE_KEY) is None

    alice = await restore(tmp_path / "alice")
    try:
        assert not is_plain_sqlite(folder / CACHE_FILE)
        assert {room, plain} <= set(alice.rooms)
        machine = alice.encryption.machine
        assert machine is not None
        assert (
            machine.identity_keys.ed25519,
            machine.identity_keys.curve25519,
            alice.device_id,
        ) == identity
        view = await alice.open_room(room)
        await until(
            lambda: before_body in bodies(view),
            "the old message, decrypted from the migrated cache",
        )
        # The Megolm session kept in the migrated crypto store still decrypts bob's new messages.
        await bob.send_message(room, after_body)
        await shown(view, after_body)
    finally:
        await alice.close()
        await bob.close()
    assert _readable(folder, [before_body, after_body, plain_body]) == {}
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(CACHE_FILE)) == [CACHE_FILE]


async def test_logout_leaves_nothing_readable(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    user = make_user("leaver")
    body = "last words before logout tapir 4b7e"
    client = await client_for(synapse, user, tmp_path / "data")
    folder = client.folder
    secrets = SecretStore(folder, user.user_id)
    assert secrets.get(CACHE_KEY)
    room = await encrypted_room(client, "secret", [])
    await until(
        lambda: room in client.rooms and client.rooms[room].encrypted, "the room to be encrypted"
    )
    await client.send_message(room, body)
    await shown(await client.open_room(room), body)

    await client.logout()

    assert secrets.get(CACHE_KEY) is None
    assert secrets.get("pickle_key") is None
    leftovers = [p for p in folder.rglob("*") if p.is_file()]
    assert leftovers == []
    assert MatrixClient.restore(base_dir=tmp_path / "data") is None
