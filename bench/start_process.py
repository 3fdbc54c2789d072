"""Cold start as whole processes: interpreter start to a painted room list, then exit.

Run each mode as its own process and time it from outside (``/usr/bin/time``, or any
tool that times one command against another over several runs)::

    python -m bench.start_process prepare DIR   # once: a warm profile of 1,000 rooms in DIR
    python -m bench.start_process ours DIR      # TuiClientApp restores it, paints the room list, exits
    python -m bench.start_process bare DIR      # a bare Textual app paints the same names, exits

The bare mode imports only Textual and the cache's SQLCipher connection (the names
are read from the same encrypted cache, with the key ``prepare`` wrote to
``DIR/key.hex``), so the ratio ours / bare is what our imports, restore, engine and
screens cost on top of starting Textual. Both run headless (Textual's test driver).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def _prepare(folder: Path) -> None:
    from .cold_start import cache_key_of, prepare_warm_profile

    profile = prepare_warm_profile(folder)
    key = cache_key_of(profile)
    (folder / "key.hex").write_text(key.hex())
    (folder / "profile.txt").write_text(str(profile))


async def _ours(folder: Path) -> None:
    import os

    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import httpx

    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.widgets.room_list import RoomList

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        return httpx.Response(500)

    profile = Path((folder / "profile.txt").read_text())
    app = TuiClientApp(
        profile=profile.name, base_dir=profile.parent, transport=httpx.MockTransport(never)
    )
    async with app.run_test(size=(120, 40)) as pilot:
        while True:
            chat = app.chat_screen
            if chat is not None and chat.query_one(RoomList).option_count > 0:
                break
            await asyncio.sleep(0.001)
        await pilot.pause()


async def _bare(folder: Path) -> None:
    import json

    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.widgets import OptionList
    from textual.widgets.option_list import Option

    from tui_client.store.encrypted_db import connect

    profile = Path((folder / "profile.txt").read_text())
    key = bytes.fromhex((folder / "key.hex").read_text())

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            db = connect(profile / "cache.sqlite3", key)
            names = [
                json.loads(s)["display_name"] for (s,) in db.execute("SELECT summary FROM rooms")
            ]
            db.close()
            yield OptionList(*[Option(Text(name)) for name in names], markup=False)

    app = Bare()
    async with app.run_test(size=(120, 40)) as pilot:
        while app.query_one(OptionList).option_count == 0:
            await asyncio.sleep(0.001)
        await pilot.pause()


def main(argv: list[str] | None = None) -> int:
    """``prepare|ours|bare DIR``."""
    mode, folder = (argv if argv is not None else sys.argv[1:])[:2]
    path = Path(folder)
    if mode == "prepare":
        path.mkdir(parents=True, exist_ok=True)
        _prepare(path)
    elif mode == "ours":
        asyncio.run(_ours(path))
    elif mode == "bare":
        asyncio.run(_bare(path))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
