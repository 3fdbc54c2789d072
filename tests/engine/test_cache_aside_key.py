"""A cache set aside as unreadable keeps its key beside it: a damaged file's right key is
not thrown away with the session."""

from __future__ import annotations

import json
from pathlib import Path

from tui_client.engine.cache_key import CACHE_KEY, aside_key_name, set_aside_unreadable_cache
from tui_client.engine.secrets import SecretStore


def test_the_key_of_a_cache_set_aside_is_kept_under_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "cache.sqlite3").write_bytes(b"\x00" * 4096)
    (folder / "cache.sqlite3-wal").write_bytes(b"wal")
    (folder / "session.json").write_text(json.dumps({"user_id": "@a:example.org"}))
    secrets = SecretStore(folder, "@a:example.org", use_keyring=False)
    secrets.set(CACHE_KEY, "ab" * 32)
    secrets.set("access_token", "token")

    aside = set_aside_unreadable_cache(folder, "cache.sqlite3", "session.json")

    assert aside is not None and aside.exists() and not (folder / "cache.sqlite3").exists()
    assert (folder / (aside.name + "-wal")).read_bytes() == b"wal"
    again = SecretStore(folder, "@a:example.org", use_keyring=False)
    assert again.get(CACHE_KEY) is None and again.get("access_token") is None
    assert again.get(aside_key_name(aside)) == "ab" * 32
    assert not (folder / "session.json").exists()
