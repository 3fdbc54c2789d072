"""A full disk while the client runs: said, waited out, and nothing committed is lost.

The client's data folder is a small tmpfs (disk_faults.py), filled to the last byte while a sync batch
brings new messages and a new room key, and while the user sends: the client says the
disk is full, stops storing (sync pauses with its token unchanged), refuses a new
message with the reason (the text is kept), still reads the cache; once space is back
it carries on by itself and every message arrives, decrypted, once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.storage import FULL, StorageUnavailable
from tui_client.engine.updates import StorageChanged

from ..integration.e2ee_support import bodies, client_for, encrypted_room, join, shown, until
from ..support.updates import Recorder
from .disk_faults import fill_now, free, small_disk


async def test_full_disk_pauses_and_resumes_without_loss(
    synapse: SynapseServer, make_user: object, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")  # type: ignore[operator]
    with small_disk(tmp_path / "disk") as disk:
        await _scenario(synapse, alice_user, bob_user, disk, tmp_path)


async def _scenario(
    synapse: SynapseServer, alice_user: Any, bob_user: Any, disk: Path, tmp_path: Path
) -> None:
    alice = await client_for(synapse, alice_user, disk / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        alice.storage.interval = 0.5
        room = await encrypted_room(bob, "full disk", [alice_user.user_id])
        await join(alice, room)
        await until(lambda: bob.rooms[room].joined_count == 2, "alice in the room")
        await bob.send_message(room, "before")
        view = await alice.open_room(room)
        await shown(view, "before")
        recorder = Recorder(alice)

        await fill_now(disk, alice)
        # A new room key (bob's session is replaced) and messages, in batches alice cannot store.
        await bob.encryption.call(lambda: bob.encryption.machine.invalidate_group_session(room))  # type: ignore[union-attr]
        for n in range(3):
            await bob.send_message(room, f"during {n}")
        await until(lambda: alice.storage.problem == FULL, "the full disk noticed")
        await until(
            lambda: "the disk is full" in alice.sync_state.detail, "sync paused", timeout=10
        )
        # Writes stop: sync waits, its token does not move (a batch is stored whole or not at all).
        token = alice.sync_token
        await asyncio.sleep(2)
        assert alice.sync_token == token
        assert not any(b.startswith("during") for b in bodies(view))
        # A message typed now cannot be queued: refused with the reason (the UI keeps the text).
        with pytest.raises(StorageUnavailable, match="the disk is full"):
            await alice.send_message(room, "typed while full")
        # What is cached still reads.
        other = await alice.open_room(room)
        assert "before" in bodies(other)

        free(disk)
        await until(
            lambda: alice.storage.problem is None, "the probe to see space again", timeout=15
        )
        for n in range(3):
            await shown(view, f"during {n}", timeout=30)
        assert [b for b in bodies(view) if b.startswith(("before", "during"))] == [
            "before",
            "during 0",
            "during 1",
            "during 2",
        ]
        await alice.send_message(room, "after")
        await shown(await bob.open_room(room), "after")
        problems = [u.problem for u in recorder.of(StorageChanged)]
        assert problems == [FULL, None]
    finally:
        free(disk)
        await alice.close()
        await bob.close()


def test_a_full_disk_during_a_migration_is_not_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from tui_client.store import cache as cache_module
    from tui_client.store.cache import Cache
    from tui_client.store.repair import open_checked

    Cache(tmp_path / "cache.sqlite3").close()
    before = (tmp_path / "cache.sqlite3").read_bytes()

    def full(connection: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(cache_module, "migrate", full)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        open_checked(tmp_path / "cache.sqlite3")
    # Not set aside, not rebuilt: the file is as it was.
    assert (
        sorted(p.name for p in tmp_path.iterdir() if "damaged" in p.name or "rebuilding" in p.name)
        == []
    )
    assert (tmp_path / "cache.sqlite3").read_bytes() == before


async def test_the_app_says_it_cannot_open_the_cache_on_a_full_disk(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from tui_client.store import cache as cache_module
    from tui_client.ui.app import TuiClientApp

    alice = await client_for(synapse, make_user("alice"), tmp_path / "alice")
    await alice.close()

    def full(connection: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(cache_module, "migrate", full)
    app = TuiClientApp(base_dir=tmp_path / "alice")
    messages: list[str] = []
    leave = app.exit

    def exit_saying(*args: Any, **kwargs: Any) -> None:
        messages.append(str(kwargs.get("message")))
        leave(*args, **kwargs)

    app.exit = exit_saying  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.return_code is not None:
                break
            await pilot.pause(0.05)
    assert app.return_code == 1
    said = " ".join(messages)
    assert "the disk is full" in said and "nothing was lost" in said, said
