"""The garbage-collector policy: what it freezes, and that frozen cycles are not kept for ever."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_client.engine import gc_policy, method_cache


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def clean_collector() -> Iterator[None]:
    gc_policy.reset()
    yield
    gc_policy.reset()


def test_configure_raises_the_young_threshold() -> None:
    gc_policy.configure()
    assert gc.get_threshold()[0] == gc_policy.GEN0_THRESHOLD


def test_settle_puts_live_objects_out_of_the_collectors_sight() -> None:
    keep = [Node() for _ in range(1000)]
    before = gc.get_freeze_count()
    gc_policy.settle(compact=False)
    assert gc.get_freeze_count() >= before + 1000
    meter = gc_policy.PauseMeter()
    with meter:
        gc.collect()
    assert meter.passes[2] == 1
    assert keep


def test_a_big_paused_block_freezes_its_survivors_and_a_small_one_does_not() -> None:
    assert gc.get_freeze_count() == 0
    with gc_policy.paused():
        small = [[] for _ in range(100)]
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    with gc_policy.paused():
        big = [[] for _ in range(gc_policy.BIG_LOAD + 10)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= gc_policy.BIG_LOAD
    assert small and big


def test_compaction_frees_cycles_that_were_frozen() -> None:
    _in_a_fresh_process("_compaction_frees_cycles_that_were_frozen")


def _compaction_frees_cycles_that_were_frozen() -> None:
    gc_policy.COMPACT_STEP = 100  # (a process of its own)
    filler = [Node() for _ in range(200)]
    assert gc_policy.settle() is False  # the first settle: nothing to compare with yet
    dropped = [Node() for _ in range(150)]
    ref = weakref.ref(dropped[0])
    assert gc_policy.settle() is False
    del dropped
    gc.collect()
    assert ref() is not None  # frozen: a full collection does not see it
    assert gc_policy.settle() is True  # 150 frozen cycles: past the step
    assert ref() is None
    assert gc_policy.settle() is False  # no new frozen garbage since
    assert filler


def test_frozen_garbage_stays_within_a_fixed_step_of_a_large_heap() -> None:
    _in_a_fresh_process("_frozen_garbage_stays_within_a_fixed_step_of_a_large_heap")


def _frozen_garbage_stays_within_a_fixed_step_of_a_large_heap() -> None:
    """Room after room, something alive at the freeze dies in a cycle afterwards. The
    garbage frozen that way is bounded by the step, not by the heap's size (the rule was
    "when the frozen set doubled": a heap of 2,000 objects could hold 2,000 more of it)."""
    gc_policy.COMPACT_STEP = 300  # (a process of its own)
    heap = [Node() for _ in range(2000)]
    gc_policy.settle()
    dead: list[weakref.ref[Node]] = []
    compactions = 0
    for _ in range(40):
        in_flight = [Node() for _ in range(50)]  # alive at the room switch, then dropped
        dead.extend(weakref.ref(node) for node in in_flight)
        compactions += gc_policy.settle(sweep=True)
        del in_flight
        kept = sum(ref() is not None for ref in dead)  # dropped, frozen, not freed yet
        assert kept <= 300 + 50, kept
    assert compactions >= 4
    assert heap


def test_a_sweeping_settle_frees_old_cycles_instead_of_freezing_them() -> None:
    """A room switch: what the previous room made is garbage by then, some of it old
    enough to have left the youngest generation. Frozen, it stayed until a compaction."""
    gc_policy.settle(compact=False)
    kept = [Node() for _ in range(50)]
    dropped = Node()
    ref = weakref.ref(dropped)
    gc.collect(1)  # survived young collections: in the oldest generation now
    del dropped
    frozen = gc.get_freeze_count()
    assert gc_policy.settle(compact=False, sweep=True) is False
    assert ref() is None
    assert gc.get_freeze_count() - frozen >= 50  # what is alive is frozen still
    assert kept


def test_full_collections_wait_until_the_user_is_idle() -> None:
    gc_policy.configure()
    gc_policy.settle(compact=False)
    dropped = Node()
    ref = weakref.ref(dropped)
    del dropped
    with gc_policy.PauseMeter() as meter:
        # ~40 generation-1 passes: CPython's default threshold (10) would run full ones.
        survivors = [[] for _ in range(300_000)]
    assert meter.passes[1] >= 20
    assert meter.passes[2] == 0
    assert gc.get_count()[2] > 0
    assert gc_policy.collect_when_idle(0.0) is False  # the user is typing: not now
    with gc_policy.PauseMeter() as meter:
        assert gc_policy.collect_when_idle(gc_policy.IDLE_SECONDS) is True
    assert meter.passes[2] == 1
    assert ref() is None
    assert gc_policy.collect_when_idle(gc_policy.IDLE_SECONDS) is False  # nothing held back now
    assert survivors


def test_held_full_collections_still_run_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc_policy, "HELD_GEN2_THRESHOLD", 5)
    gc_policy.configure()
    gc_policy.settle(compact=False)
    with gc_policy.PauseMeter() as meter:
        survivors = [[] for _ in range(300_000)]
    assert meter.passes[2] >= 1  # memory stays bounded without any idle moment
    assert survivors


def test_no_idle_collection_before_full_collections_are_held() -> None:
    """Before :func:`settle` (the start, still importing and mounting) the idle timer
    never runs a full pass: CPython's own thresholds are in force then."""
    gc_policy.reset()
    gc_policy.configure()
    survivors = [[] for _ in range(300_000)]
    gc.collect(1)
    assert gc.get_count()[2] > 0
    with gc_policy.PauseMeter() as meter:
        assert gc_policy.collect_when_idle(10 * gc_policy.IDLE_SECONDS) is False
    assert meter.passes[2] == 0
    gc_policy.settle(compact=False)
    gc.collect(1)
    assert gc_policy.collect_when_idle(10 * gc_policy.IDLE_SECONDS) is True
    assert survivors


def test_a_settle_counts_the_frozen_set_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting the frozen set walks all of it (gc_list_size): ~9 ms for the 110k objects
    of the app after a first sync of 1,000 rooms, a frame's worth at each room switch."""
    keep = [Node() for _ in range(300)]
    gc_policy.settle()
    counted: list[int] = []
    count = gc.get_freeze_count

    def counting() -> int:
        counted.append(1)
        return count()

    monkeypatch.setattr(gc, "get_freeze_count", counting)
    gc_policy.settle()
    gc_policy.settle(sweep=True)
    assert len(counted) == 2  # once each (was twice)
    assert keep


def test_starting_holds_young_collections_until_the_app_configures_them() -> None:
    gc_policy.starting()
    assert gc.get_threshold()[0] == gc_policy.START_GEN0_THRESHOLD
    gc_policy.configure()
    assert gc.get_threshold()[0] == gc_policy.GEN0_THRESHOLD


def test_the_client_starts_holding_young_collections_before_importing_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tui_client.__main__ as entry
    import tui_client.engine.opener as opener
    import tui_client.ui.app as app
    from tui_client.ui import css_cache

    seen: list[int] = []
    monkeypatch.setattr(app, "run_app", lambda **_options: seen.append(gc.get_threshold()[0]))
    monkeypatch.setenv("TUI_CLIENT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setattr(entry, "configure_logging", lambda *_args, **_kw: None)
    monkeypatch.setattr(opener, "remove_stale_folders", lambda: None)
    monkeypatch.setattr(method_cache, "install", lambda: None)  # (not in the test process)
    monkeypatch.setattr(css_cache, "install", lambda: None)
    try:
        entry.main(["--data-dir", str(tmp_path)])
    finally:
        gc_policy.configure()  # (the app that would have ended the hold is stubbed)
    assert seen == [gc_policy.START_GEN0_THRESHOLD]


def test_a_settle_after_a_big_load_that_stays_does_not_compact() -> None:
    _in_a_fresh_process("_a_settle_after_a_big_load_that_stays_does_not_compact")


def _a_settle_after_a_big_load_that_stays_does_not_compact() -> None:
    """A first sync's rooms: the frozen set grows by live data past the step. Compacting
    then is a full collection of the whole heap for nothing; the low point moves up instead,
    and frozen garbage made after it is compacted as before."""
    gc_policy.COMPACT_STEP = 100  # (a process of its own)
    heap = [Node() for _ in range(200)]
    gc_policy.settle()
    with gc_policy.paused():  # the batch's ingest
        rooms = [Node() for _ in range(500)]
    gc.freeze()  # (what paused() does past BIG_LOAD)
    meter = gc_policy.PauseMeter()
    with meter:
        assert gc_policy.settle(loaded=True) is False
        assert gc_policy.settle() is False  # the first room opened: no compaction either
    assert meter.passes[2] == 0
    # Garbage frozen after the load is still bounded by the step.
    dropped = [Node() for _ in range(150)]
    ref = weakref.ref(dropped[0])
    gc_policy.settle()
    del dropped
    assert gc_policy.settle() is True
    assert ref() is None
    assert heap and rooms


def _in_a_fresh_process(name: str) -> None:
    """Run one of the counting tests above in a process of its own: the collector is
    process-wide, and in the suite's process other threads (the directory world's seeding,
    a previous test's leftovers) freeze and free objects meanwhile, moving the counts
    these tests compare (one failed once in a full run)."""
    code = f"from tests.engine import test_gc_policy as t; t.gc_policy.reset(); t.{name}()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
