"""When the cyclic garbage collector runs (it is process-wide: UI, engine and DB thread).

A full collection walks every tracked object. A client with a big room open or a
thousand rooms loaded holds 100,000+ long-lived objects (summaries, events, widgets),
so a full collection landing while the user pages costs 50-160 ms: a visible stutter.
Almost none of those objects ever become cyclic garbage, so after a big load they are
moved out of the collector's sight with :func:`gc.freeze` (the permanent generation):
objects in it are still freed by reference counting, only cycles among them wait.

- :func:`starting` before the client's modules are imported: young collections held
  back while ~550 modules load (what they make lives for the whole run: walking it
  again and again finds nothing; ~10% of the imports' CPU, issue 13), until
  :func:`configure`.
- :func:`configure` at start: the generation thresholds. Kept at CPython's 700:
  a larger generation-0 threshold (10,000 was tried) makes every tenth young pass a
  generation-1 pass over up to ten times as many objects (one took 148 ms while
  paging the 100,000-event room), worse than many short passes.
- :func:`settle` after start and after a big load (a room opened, a large sync
  batch): freezes what is alive. Now and then it first unfreezes and runs one full
  collection (a compaction), so cycles frozen along the way are not kept for ever; that
  happens at a load, never while paging. What was frozen alive and died in a cycle since
  is bounded by a fixed number of objects (:data:`COMPACT_STEP`), not by the size of the
  heap: with a rule of "when the frozen set doubled", a long run (bench/soak.py) swung
  between 120k and 250k frozen objects, 12 MB of garbage at its peaks, and since pymalloc
  gives an arena back only once it is empty, the RSS kept each higher peak.
- :func:`paused` for a block that allocates a lot and makes no cyclic garbage (the
  ingest of a sync batch): the collector is off meanwhile, and a large batch's
  survivors are frozen at the end instead of being walked by the next collection.
- Full (generation-2) collections wait for idleness: :func:`settle` raises the
  generation-2 threshold to :data:`HELD_GEN2_THRESHOLD`, and the UI calls
  :func:`collect_when_idle` from a timer, which runs the full collection once no key
  or mouse event came for :data:`IDLE_SECONDS`. Memory stays bounded: the raised
  threshold is a cap (about 700 * 10 * 100 = 700,000 net new container objects),
  past which CPython collects anyway, idle or not. Paging the 100,000-event room
  otherwise met a full pass of ~100 ms in the middle of a key press.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Generation-0 threshold (CPython's default; see :func:`configure`).
GEN0_THRESHOLD = 700
#: Generation-0 threshold while the client's modules are imported (see :func:`starting`).
START_GEN0_THRESHOLD = 50_000
#: A paused block that leaves more new objects than this freezes them at its end.
BIG_LOAD = 50_000
#: Compact (unfreeze, one full collection, freeze) when the frozen set grew by this
#: many objects over its low point since the last compaction. Frozen garbage is what was
#: alive at a freeze and then died in a cycle (Textual's workers, a cancelled request's
#: connection, widgets: ~20 objects a room switch in the soak once the screen's lines and
#: the closed room views were no longer cycles; ~165 bytes an object there, so the bound
#: is about 4 MB). A room's window (600 items at most) is well under it, so switching
#: between a small and a big room does not compact each time; a compaction is one full
#: collection (tens of ms) at a room switch, every ~15 min in the soak's 2 switches/s.
COMPACT_STEP = 25_000
#: Generation-2 threshold once settled: generation-1 passes before a full collection
#: runs regardless of idleness (CPython's default is 10; see :func:`collect_when_idle`).
HELD_GEN2_THRESHOLD = 100
#: No input for this long counts as idle: a full collection may run then.
IDLE_SECONDS = 0.5

_DEFAULT_THRESHOLD = gc.get_threshold()

_lock = threading.Lock()
#: The frozen set's size after the last compaction, or lower since (None: no settle yet).
_frozen_low: int | None = None


def starting() -> None:
    """Before the client's modules are imported (``__main__``): a generation-0 threshold
    of :data:`START_GEN0_THRESHOLD`, so the imports run a few young collections instead
    of hundreds (and their generation-1 and full passes); :func:`configure` ends it when
    the app mounts."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(START_GEN0_THRESHOLD, gen1, gen2)


def configure() -> None:
    """Set the thresholds; call once at start (ends :func:`starting`'s)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def settle(*, compact: bool = True, sweep: bool = False, loaded: bool = False) -> bool:
    """Freeze the objects alive now. Returns True if it compacted first.

    ``sweep``: first free the cyclic garbage made since the last freeze (a room switch:
    the previous room's lines and widgets), with a full collection, which walks only what
    is not frozen yet, so it costs what was made since. Without it that garbage was frozen
    at every switch and kept until a compaction: the frozen set swung between 120k and
    240k objects in a long run (bench/soak.py), 12 MB of Python heap, and the arenas'
    high-water mark (the RSS) crept up with each swing.

    ``loaded``: after a big load that stays (a first sync's rooms and rows): the frozen
    set grew by live data, not by garbage, so no compaction, and its low point moves up to
    what is frozen now. Without it the 25-38k objects of a 1,000-room first sync passed
    :data:`COMPACT_STEP` and the settle after it compacted: a full collection of the
    whole heap (60-100 ms) in the middle of the first sync's frames."""
    global _frozen_low
    with _lock:
        if loaded:
            gc.collect(0)
            gc.freeze()
            # (Counted after the freeze: a sliced ingest leaves its survivors young.)
            _frozen_low = gc.get_freeze_count()
            _hold_full_collections()
            return False
        frozen = gc.get_freeze_count()
        if compact and _frozen_low is not None and frozen > _frozen_low + COMPACT_STEP:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            _frozen_low = gc.get_freeze_count()
            _hold_full_collections()
            return True
        # The youngest only (at most GEN0_THRESHOLD objects), or everything not frozen.
        gc.collect(2 if sweep else 0)
        gc.freeze()
        # Frozen objects freed by reference counting leave the set: its low point is
        # what is alive plus the frozen garbage at that moment, as counted on the way in
        # (a count walks the whole frozen set: ~9 ms for 110k objects in the app's heap,
        # so once a settle, not twice; the very first settle counts what it froze).
        _frozen_low = gc.get_freeze_count() if _frozen_low is None else min(_frozen_low, frozen)
        _hold_full_collections()
        return False


def _hold_full_collections() -> None:
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, HELD_GEN2_THRESHOLD)


def _held() -> bool:
    return gc.get_threshold()[2] == HELD_GEN2_THRESHOLD


def collect_when_idle(idle_for: float) -> bool:
    """Run the full collection that was held back, if the user has been idle long enough.

    ``idle_for`` is the seconds since the last input event. Returns True if it collected.
    Nothing to do when no generation-1 pass ran since the last full collection, nor before
    :func:`settle` held full collections back: until then CPython runs them itself, and a
    start still importing and mounting (the room list not painted yet) is not idle: full
    passes there cost ~50 ms each and delayed the first paint.
    """
    if idle_for < IDLE_SECONDS or not _held() or gc.get_count()[2] == 0 or not gc.isenabled():
        return False
    with _lock:
        gc.collect(2)
    return True


@contextmanager
def paused() -> Iterator[None]:
    """Turn the collector off for a block; freeze a big block's survivors at its end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_count()[0] > BIG_LOAD:
                with _lock:
                    gc.freeze()
            gc.enable()


def reset() -> None:
    """Undo :func:`configure` and every freeze (benchmarks between rounds, tests)."""
    global _frozen_low
    with _lock:
        gc.unfreeze()
        gc.collect()
        gc.set_threshold(*_DEFAULT_THRESHOLD)
        _frozen_low = None


class PauseMeter:
    """Times the collector's passes while installed (``gc.callbacks``): count and worst, per generation."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.worst_ms = [0.0, 0.0, 0.0]
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        generation = info["generation"]
        self.passes[generation] += 1
        self.worst_ms[generation] = max(
            self.worst_ms[generation], (time.perf_counter() - self._began) * 1000
        )

    def __enter__(self) -> PauseMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
