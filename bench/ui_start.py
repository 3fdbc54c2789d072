"""Cold start, UI part: app start to the first painted room list, with 1,000 cached rooms.

Ours: ``TuiClientApp`` restores the session of a warm profile (the synthetic initial
sync of 1,000 rooms already in its cache), loads the room list and paints it; the
fake homeserver never answers, so the list comes from the cache alone. Timed from
constructing the app to the first frame after the room list has its rows.

Baseline, in the same run: a bare Textual app that paints an ``OptionList`` of the
same 1,000 room names, read with one ``SELECT`` from the same cache. The ratio is
what our restore, engine and screens cost on top of Textual itself.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tui_client.store.encrypted_db import connect

from ._harness import sized
from .cold_start import cache_key_of, prepare_warm_profile
from .synthetic import DEFAULT_ROOMS

ROUNDS = sized(5, 1)


async def _never(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(3600)
    return httpx.Response(500)


async def ours(base_dir: Path, profile: str) -> float:
    """Seconds from constructing the app to the painted room list."""
    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.widgets.room_list import RoomList

    began = time.perf_counter()
    app = TuiClientApp(profile=profile, base_dir=base_dir, transport=httpx.MockTransport(_never))
    async with app.run_test(size=(120, 40)) as pilot:
        while True:
            chat = app.chat_screen
            if chat is not None and chat.query_one(RoomList).option_count > 0:
                break
            await asyncio.sleep(0.001)
        await pilot.pause()  # the frame that paints it
        return time.perf_counter() - began


async def bare(cache_file: Path) -> float:
    """Seconds for a bare Textual app to paint the same names in an OptionList."""
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.widgets import OptionList
    from textual.widgets.option_list import Option

    began = time.perf_counter()

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            db = connect(cache_file, cache_key_of(cache_file.parent))
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
        return time.perf_counter() - began


def run(rounds: int = ROUNDS) -> dict[str, float]:
    """Alternate ours and the baseline; medians and the median of paired ratios."""
    with tempfile.TemporaryDirectory(prefix="tui-bench-ui-") as tmp:
        folder = prepare_warm_profile(Path(tmp))
        cache_file = folder / "cache.sqlite3"
        ours_s, bare_s, ratios = [], [], []
        for round_no in range(rounds):
            if round_no % 2:
                b = asyncio.run(bare(cache_file))
                o = asyncio.run(ours(folder.parent, folder.name))
            else:
                o = asyncio.run(ours(folder.parent, folder.name))
                b = asyncio.run(bare(cache_file))
            ours_s.append(o)
            bare_s.append(b)
            ratios.append(o / b)
    return {
        "ours_ms": statistics.median(ours_s) * 1000,
        "bare_ms": statistics.median(bare_s) * 1000,
        "ratio": statistics.median(ratios),
    }


def main() -> None:
    """Print the UI cold-start benchmark."""
    report = run()
    print(
        f"cold start to first painted room list, {DEFAULT_ROOMS:,} cached rooms (headless Textual driver)"
    )
    print(f"  tui_client     {report['ours_ms']:8.1f} ms")
    print(f"  bare Textual   {report['bare_ms']:8.1f} ms   (OptionList of the same names)")
    print(f"  ratio          {report['ratio']:8.2f}")


if __name__ == "__main__":
    main()
