"""The config file's ``sync.source`` chooses the sync a session runs, against Synapse."""

from __future__ import annotations

from pathlib import Path

from tui_client.config import parse_config
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.settings import account_values, apply_config

from ..conftest import MakeUser
from ..engine.support import ClientPool, login


async def test_sliding_sync_by_default_and_the_config_forces_v2_and_back(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, pool: ClientPool
) -> None:
    client = pool.add(
        await login(synapse, make_user("alice"), tmp_path / "alice", long_poll_ms=500)
    )
    # The default where the server offers it: sliding sync.
    assert client.sync_mode == "sliding sync" and account_values(client)["sync_source"] == "sliding"

    changed = await apply_config(client, parse_config('[sync]\nsource = "v2"\n'))
    assert changed == ["sync_source"]
    assert client.sync_mode == "sync v2" and not client.sliding_sync_allowed
    assert account_values(client)["sync_source"] == "v2"

    # A file that does not name it changes nothing; one that says sliding goes back.
    assert await apply_config(client, parse_config("")) == []
    assert client.sync_mode == "sync v2"
    assert await apply_config(client, parse_config('[sync]\nsource = "sliding"\n')) == [
        "sync_source"
    ]
    assert client.sync_mode == "sliding sync" and client.sliding_sync_allowed
