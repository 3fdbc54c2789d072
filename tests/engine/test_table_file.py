"""The tables kept between starts (engine/table_file.py): a table grown past its bound
keeps the entries this run used, the most recently used first, so it cannot grow without
end (each theme tried adds its stylesheets, each upgrade its dataclass texts)."""

from __future__ import annotations

from pathlib import Path

from tui_client.engine.table_file import KeptTable, read_table


def test_a_table_past_its_bound_keeps_what_this_run_used_last(tmp_path: Path) -> None:
    path = tmp_path / "table.bin"
    old = KeptTable(".t.", max_entries=100)
    old.open(path, b"head\n")
    for number in range(10):
        old.add(b"old-%d" % number, b"x")
    assert old.save()
    assert len(read_table(path, b"head\n")) == 10  # within its bound: all kept

    table = KeptTable(".t.", max_entries=3)
    table.open(path, b"head\n")
    table.read()
    for key in (b"old-1", b"new-a", b"old-2", b"new-b", b"old-1"):
        if key not in table.entries:
            table.add(key, b"y")
        table.use(key, hit=key.startswith(b"old"))
    assert table.stats() == {"hits": 3, "misses": 2, "added": 2, "entries": 12}
    assert table.save()
    assert set(read_table(path, b"head\n")) == {b"old-1", b"new-b", b"old-2"}
