"""Cold start as whole processes: interpreter start to a painted room list, then exit.

Run each mode as its own process and time it from outside (``/usr/bin/time``, or any
tool that times one command against another over several runs)::

    python -m bench.start_process prepare DIR   # once: a warm profile of 1,000 rooms in DIR
    python -m bench.start_process ours DIR      # TuiClientApp restores it, paints the room list, exits
    python -m bench.start_process bare DIR      # a bare Textual app paints the same names, exits
    python -m bench.start_process pair DIR [N]  # N (7) pairs in turn: the first-paint marks, ratios
    python -m bench.start_process               # all of it in a temporary folder (``python -m bench``)

Each mode prints ``painted cpu=S wall=S``: the process's CPU time (all threads, interpreter
start included) and the seconds since the process started, at the first frame Textual
writes with the room list filled. The whole process goes on until the app is idle (what
ours does after the first paint: the crypto machine, sync start) and exits; an outside
timer sees that too, the mark does not.

The bare mode imports only Textual and the cache's SQLCipher connection (the names
are read from the same encrypted cache, with the key ``prepare`` wrote to
``DIR/key.hex``), so the ratio ours / bare is what our imports, restore, engine and
screens cost on top of starting Textual. Both run headless (Textual's test driver).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The first frame written with the room list filled: (CPU seconds, seconds since start).
_painted: list[tuple[float, float]] = []


def _since_start() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere since this module loaded)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _LOADED


_LOADED = time.monotonic()


def _mark_first_paint(filled: Callable[[Any], bool]) -> None:
    """Note the first frame Textual writes once ``filled(app)`` holds."""
    from textual.app import App

    display = App._display

    def marked(app: Any, screen: Any, renderable: Any) -> None:
        display(app, screen, renderable)
        if renderable is not None and not _painted and filled(app):
            _painted.append((time.process_time(), _since_start()))

    App._display = marked  # type: ignore[method-assign]


def _report() -> None:
    cpu, wall = _painted[0] if _painted else (float("nan"), float("nan"))
    print(f"painted cpu={cpu:.4f} wall={wall:.4f}", flush=True)


def _prepare(folder: Path) -> None:
    from .cold_start import cache_key_of, prepare_warm_profile

    profile = prepare_warm_profile(folder)
    key = cache_key_of(profile)
    (folder / "key.hex").write_text(key.hex())
    (folder / "profile.txt").write_text(str(profile))


class _NeverAnswers:
    """A transport whose requests never end (the fake homeserver), without importing httpx:
    as on a real start, httpx is imported when the first request is made, after the first
    paint (httpx takes any object with these methods as its transport)."""

    async def handle_async_request(self, request: Any) -> Any:
        await asyncio.sleep(3600)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> _NeverAnswers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _ours(folder: Path) -> None:
    import os

    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    from tui_client.engine import gc_policy, method_cache

    gc_policy.starting()  # as ``python -m tui_client`` does before importing the app
    method_cache.install(folder / "dataclass-methods.bin")  # (the bench's own tables)
    from tui_client.ui import css_cache

    css_cache.install(folder / "css-rules.bin")
    from tui_client.ui.app import TuiClientApp
    from tui_client.ui.widgets.room_list import RoomList

    def filled(app: Any) -> bool:
        chat = app.chat_screen
        return chat is not None and app.screen is chat and chat.query_one(RoomList).option_count > 0

    _mark_first_paint(filled)
    profile = Path((folder / "profile.txt").read_text())
    app = TuiClientApp(profile=profile.name, base_dir=profile.parent, transport=_NeverAnswers())
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

    _mark_first_paint(lambda app: app.query_one(OptionList).option_count > 0)
    app = Bare()
    async with app.run_test(size=(120, 40)) as pilot:
        while app.query_one(OptionList).option_count == 0:
            await asyncio.sleep(0.001)
        await pilot.pause()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(mode: str, folder: Path) -> tuple[float, float, float]:
    """One process of ``mode``: its first-paint mark (CPU, wall) and its whole CPU time."""
    before = _children_cpu()
    done = subprocess.run(
        [sys.executable, "-m", "bench.start_process", mode, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    whole = _children_cpu() - before
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("painted ")][-1]
    cpu, wall = (float(part.split("=")[1]) for part in line.split()[1:])
    return cpu, wall, whole


def _pair(folder: Path, runs: int, *, warm_up: bool = True) -> None:
    """``runs`` pairs in turn (a warm-up first): each mode's marks and the ratio, pair by pair."""
    if warm_up:
        _run("ours", folder), _run("bare", folder)
    ours, bare = [], []
    for _ in range(runs):
        ours.append(_run("ours", folder))
        bare.append(_run("bare", folder))
    for index, name in (
        (0, "first paint, CPU"),
        (1, "first paint, wall"),
        (2, "whole process (to idle, then exit), CPU"),
    ):
        ratios = [o[index] / b[index] for o, b in zip(ours, bare, strict=True)]
        print(
            f"{name}: ours {statistics.median(o[index] for o in ours):.3f} s, "
            f"bare {statistics.median(b[index] for b in bare):.3f} s; ratio median "
            f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}, "
            f"{runs} pairs)"
        )


def _bench() -> None:
    """``python -m bench`` runs this: a warm profile in a temporary folder, then pairs."""
    from ._harness import quick, sized
    from .synthetic import DEFAULT_ROOMS

    # Issue 13's target: ours at most 1.5x the bare app, to the first painted room list.
    print(f"start_process: process start to the painted room list, {DEFAULT_ROOMS:,} cached rooms")
    print("  (ours: TuiClientApp from the cache; bare: a Textual OptionList of the same names;")
    print("   CPU from the process's own clock, interpreter start included; target <= 1.5x)")
    with tempfile.TemporaryDirectory(prefix="tui-bench-start-") as tmp:
        folder = Path(tmp)
        _prepare(folder)
        _pair(folder, sized(7, 1), warm_up=not quick())


def main(argv: list[str] | None = None) -> int:
    """``prepare|ours|bare DIR``, ``pair DIR [RUNS]``; no arguments: :func:`_bench`."""
    args = argv if argv is not None else sys.argv[1:]
    if not args:
        _bench()
        return 0
    mode, folder = args[:2]
    path = Path(folder)
    if mode == "prepare":
        path.mkdir(parents=True, exist_ok=True)
        _prepare(path)
    elif mode == "ours":
        asyncio.run(_ours(path))
        _report()
    elif mode == "bare":
        asyncio.run(_bare(path))
        _report()
    elif mode == "pair":
        _pair(path, int(args[2]) if len(args) > 2 else 7)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
