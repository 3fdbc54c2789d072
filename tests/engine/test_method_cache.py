"""The methods ``@dataclass`` writes are compiled once and read back by the next start
(engine/method_cache.py, issue 13): the classes are the same, the compiling is not."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# Every kind of class the client makes: frozen with slots, defaults and factories,
# keyword-only, ordered, a plain one; what each does is printed for the two runs to compare.
PROGRAM = """
import json, sys
from pathlib import Path
from tui_client.engine import method_cache
method_cache.install(Path(sys.argv[1]))
from dataclasses import FrozenInstanceError, dataclass, field, fields, replace

@dataclass(frozen=True, slots=True)
class Frozen:
    room_id: str
    diffs: tuple[int, ...] = ()
    changed: frozenset[str] = field(default_factory=frozenset)

@dataclass(order=True, kw_only=True)
class Ordered:
    a: int
    b: list[int] = field(default_factory=list)

@dataclass
class Plain:
    x: int
    def double(self) -> int:
        return self.x * 2

f = Frozen("!r", (1, 2))
try:
    f.room_id = "other"
    frozen = False
except FrozenInstanceError:
    frozen = True
out = {
    "repr": [repr(f), repr(Ordered(a=1)), repr(Plain(3))],
    "eq": [f == Frozen("!r", (1, 2)), f == Frozen("!s"), hash(f) == hash(Frozen("!r", (1, 2)))],
    "frozen": frozen,
    "slots": hasattr(Frozen, "__slots__") and not hasattr(f, "__dict__"),
    "order": Ordered(a=1) < Ordered(a=2),
    "factory": Ordered(a=1).b is not Ordered(a=1).b,
    "fields": [x.name for x in fields(Frozen)],
    "replace": repr(replace(f, room_id="!x")),
    "method": Plain(4).double(),
    "init": str(__import__("inspect").signature(Frozen)),
}
print(json.dumps(out))
print(json.dumps(method_cache.stats()))
"""


def _run(table: Path) -> tuple[dict[str, object], dict[str, int]]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(table)], capture_output=True, text=True, check=True
    )
    behaviour, stats = done.stdout.splitlines()
    return json.loads(behaviour), json.loads(stats)


def test_a_second_start_compiles_nothing_and_makes_the_same_classes(tmp_path: Path) -> None:
    table = tmp_path / "cache" / "methods.bin"
    first, first_stats = _run(table)
    assert first_stats["misses"] > 0 and first_stats["hits"] == 0
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    second, second_stats = _run(table)
    assert second_stats["misses"] == 0 and second_stats["hits"] == first_stats["misses"]
    assert second == first
    assert first["eq"] == [True, False, True]
    assert first["frozen"] is True and first["slots"] is True and first["order"] is True
    assert (
        first["init"]
        == "(room_id: str, diffs: tuple[int, ...] = (), changed: frozenset[str] = <factory>) -> None"
    )


def test_a_damaged_table_is_ignored_and_written_anew(tmp_path: Path) -> None:
    table = tmp_path / "methods.bin"
    _run(table)
    table.write_bytes(table.read_bytes()[:200] + b"\x00garbage")
    again, stats = _run(table)
    assert stats["hits"] == 0 and stats["misses"] > 0
    assert again["frozen"] is True
    _behaviour, fixed = _run(table)
    assert fixed["misses"] == 0


def test_nothing_new_writes_nothing(tmp_path: Path) -> None:
    table = tmp_path / "methods.bin"
    _run(table)
    before = table.stat().st_mtime_ns
    _run(table)
    assert table.stat().st_mtime_ns == before


def test_the_client_reads_the_table_before_importing_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tui_client.__main__ as entry
    import tui_client.engine.opener as opener
    import tui_client.ui.app as app
    from tui_client.engine import gc_policy, method_cache
    from tui_client.ui import css_cache

    order: list[str] = []
    monkeypatch.setattr(method_cache, "install", lambda: order.append("install"))
    monkeypatch.setattr(css_cache, "install", lambda: order.append("css rules"))
    monkeypatch.setattr(app, "run_app", lambda **_options: order.append("run_app"))
    monkeypatch.setenv("TUI_CLIENT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setattr(entry, "configure_logging", lambda *_args, **_kw: None)
    monkeypatch.setattr(opener, "remove_stale_folders", lambda: None)
    entry.main(["--data-dir", str(tmp_path)])
    gc_policy.configure()  # (main held young collections back for the app)
    # And Textual's parsed stylesheets, before the app's classes are made (ui/css_cache.py).
    assert order == ["install", "css rules", "run_app"]
