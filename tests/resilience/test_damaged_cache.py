"""A damaged cache found at open: a page of zeros, a truncated file, a schema from a newer
release, a torn WAL. The client detects it (``PRAGMA quick_check``, the schema version),
keeps the crypto store and the unsent messages when they read back, rebuilds the rest
with a sync from scratch, and tells the user what was lost; a torn WAL is no damage.
The damage is done to a real client's encrypted cache between two runs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import Notice
from tui_client.store.schema import SCHEMA_VERSION
from tui_client.ui.app import TuiClientApp

from ..integration.e2ee_support import bodies, client_for, encrypted_room, join, shown, until
from ..support.updates import Recorder
from ..ui.synapse_login import until as ui_until


async def _prepared(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> tuple[MatrixClient, str, Any]:
    """Alice and bob in an encrypted room with a message each; alice's client is open and
    has one message queued but not sent (its send queue stopped)."""
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    room = await encrypted_room(alice, "damaged", [bob_user.user_id])
    await join(bob, room)
    await until(lambda: alice.rooms[room].joined_count == 2, "bob in the room")
    await alice.send_message(room, "alice's old secret")
    await bob.send_message(room, "bob's old secret")
    await shown(await alice.open_room(room), "bob's old secret")
    # Alice's own message answered by the server (not still on its way when she stops).
    for _ in range(600):
        if not await alice.db.run(alice.cache.outbox, None, ("pending",)):
            break
        await asyncio.sleep(0.05)
    await alice.stop()
    await alice.send_message(room, "queued before the damage")
    await bob.close()
    return alice, room, bob_user


def _cache_file(client: MatrixClient) -> Path:
    return client.cache.path


async def _restored(tmp_path: Path) -> tuple[MatrixClient, Recorder]:
    client = MatrixClient.restore(base_dir=tmp_path / "alice", long_poll_ms=500)
    assert client is not None
    recorder = Recorder(client)
    await client.open()
    client.start()
    await client.wait_synced()
    return client, recorder


def _zero_page(path: Path, page: int, page_size: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\0" * page_size)


async def _damage(alice: MatrixClient, how: str) -> None:
    """The cache as a crash leaves it (the files copied while the client runs: it was not
    closed cleanly), then damaged ``how``."""
    db = alice.cache._db  # the test reaches into the cache on purpose
    path = _cache_file(alice)
    page = int(
        await alice.db.run(
            lambda: db.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = 'events'"
            ).fetchone()[0]
        )
    )
    page_size = int(await alice.db.run(lambda: db.execute("PRAGMA page_size").fetchone()[0]))
    if how == "newer-schema":
        await alice.db.run(lambda: db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}"))
    await alice.db.run(lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    if how == "torn-wal":
        # A crash mid-write: a transaction half in the WAL.
        await alice.db.run(
            lambda: db.execute("INSERT INTO meta (key, value) VALUES ('torn', ?)", ("x" * 50_000,))
        )
    copies = {
        ending: Path(f"{path}{ending}").read_bytes()
        for ending in ("", "-wal")
        if Path(f"{path}{ending}").exists()
    }
    await alice.close()
    for ending in ("", "-wal", "-shm"):
        Path(f"{path}{ending}").unlink(missing_ok=True)
    path.write_bytes(copies[""])
    if how == "torn-wal":
        Path(f"{path}-wal").write_bytes(copies["-wal"][: len(copies["-wal"]) * 2 // 3])
    elif how == "page-of-zeros":
        _zero_page(path, page, page_size)
    elif how == "truncated":
        os.truncate(path, path.stat().st_size - 3 * page_size)


@pytest.mark.parametrize("how", ["page-of-zeros", "truncated", "newer-schema", "torn-wal"])
async def test_damaged_cache_is_rebuilt_keeping_keys_and_unsent_messages(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, how: str
) -> None:
    alice, room, _bob = await _prepared(synapse, make_user, tmp_path)
    path = _cache_file(alice)
    await _damage(alice, how)
    restored, recorder = await _restored(tmp_path)
    try:
        report = restored.cache_repair
        notices = [n.text for n in recorder.of(Notice)]
        if how == "torn-wal":
            # Not damage: the uncommitted frames are ignored, the cache opens as it was.
            assert report is None, report
            assert not any("damaged" in n for n in notices)
        else:
            assert report is not None, f"{how} was not detected"
            assert any("damaged" in n and "rebuilt" in n for n in notices), notices
            assert report.set_aside.exists() and report.set_aside.parent == path.parent
            if (
                how != "truncated"
            ):  # zeros in the events table, a newer schema: all that matters reads back
                assert report.crypto_intact, report
                assert report.unsent == 1 and "1 unsent message kept" in report.describe()
        # The room is back (rebuilt from the server), the old messages decrypt with the
        # kept keys, the queued message goes out once.
        await until(lambda: room in restored.rooms, "the room back")
        view = await restored.open_room(room)
        if report is None or report.crypto_intact:
            await shown(view, "bob's old secret")
            await shown(view, "alice's old secret")
        if report is None or report.unsent:
            await shown(view, "queued before the damage")
            await until(lambda: bodies(view).count("queued before the damage") == 1, "sent once")
    finally:
        await restored.close()


async def test_damage_is_said_on_screen(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice, room, _bob = await _prepared(synapse, make_user, tmp_path)
    await _damage(alice, "page-of-zeros")
    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await ui_until(
            pilot,
            lambda: any(
                "damaged" in n.message and "encryption keys were kept" in n.message
                for n in app._notifications
            ),
            "the damage said",
        )
        await ui_until(
            pilot, lambda: app.chat_screen is not None and room in app.client.rooms, "the room back"
        )  # type: ignore[union-attr]
    shutil.rmtree(tmp_path / "alice", ignore_errors=True)
