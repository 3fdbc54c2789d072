"""Measuring against a baseline in the same run: rounds in rotating order, paired ratios.

A benchmark is a set of named cases. Each case is a function that gets a fresh
empty folder, does its untimed setup, and returns a :class:`Sample` of what it
timed (wall clock and process CPU time, with named parts). One *round* runs every
case once; the order rotates from round to round so that no case always runs
first (cold caches) or last (a warmer machine). The ratio of a case to the
baseline is taken within each round, from neighbouring measurements, and the
median of those paired ratios is reported: on a shared machine whose load drifts
that is far steadier than a ratio of two independent medians.

CPU time (``time.process_time``: user and system time of this process, all
threads) is reported next to wall time. It does not count waiting for the disk,
but it does not count waiting for a CPU taken by another process either, so when
the machine is busy it is the better guide to what the code costs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tui_client.engine import gc_policy

__all__ = [
    "QUICK_ENV",
    "CaseResult",
    "Sample",
    "Stopwatch",
    "fmt_ms",
    "print_table",
    "quick",
    "run_rounds",
    "sized",
]

QUICK_ENV = "TUI_CLIENT_BENCH_QUICK"
"""Set to ``1`` by ``python -m bench --quick`` (and inherited by the benchmarks it runs apart)."""


def quick() -> bool:
    """Whether this is a quick run: tiny sizes, one round, to show every benchmark still runs."""
    return os.environ.get(QUICK_ENV) == "1"


def sized(full: int, tiny: int) -> int:
    """``full`` normally, ``tiny`` in a quick run (read once, when a benchmark module loads)."""
    return tiny if quick() else full


@dataclass(slots=True)
class Sample:
    """One timed run of a case: totals and named parts, in seconds."""

    wall: float = 0.0
    cpu: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)


class Stopwatch:
    """Times consecutive parts of one run into a :class:`Sample`."""

    def __init__(self) -> None:
        self.sample = Sample()

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time a block (wall and CPU); parts add up to the sample's totals."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent_wall = time.perf_counter() - wall
            self.sample.wall += spent_wall
            self.sample.cpu += time.process_time() - cpu
            self.sample.parts[name] = self.sample.parts.get(name, 0.0) + spent_wall


Case = Callable[[Path], Sample]


@dataclass(slots=True)
class CaseResult:
    """All samples of one case, and its ratios to the baseline."""

    name: str
    samples: list[Sample]
    wall_ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)

    @property
    def wall_median(self) -> float:
        """Median wall time (s)."""
        return statistics.median(s.wall for s in self.samples)

    @property
    def wall_min(self) -> float:
        """Best wall time (s)."""
        return min(s.wall for s in self.samples)

    @property
    def cpu_median(self) -> float:
        """Median CPU time (s)."""
        return statistics.median(s.cpu for s in self.samples)

    @property
    def wall_ratio(self) -> float:
        """Median of the per-round wall-time ratios to the baseline."""
        return statistics.median(self.wall_ratios) if self.wall_ratios else float("nan")

    @property
    def cpu_ratio(self) -> float:
        """Median of the per-round CPU-time ratios to the baseline."""
        return statistics.median(self.cpu_ratios) if self.cpu_ratios else float("nan")

    def part_medians(self) -> dict[str, float]:
        """Median wall time of each named part (s), in the order the parts ran."""
        names: dict[str, None] = {}
        for sample in self.samples:
            names.update(dict.fromkeys(sample.parts))
        return {n: statistics.median(s.parts.get(n, 0.0) for s in self.samples) for n in names}


def run_rounds(
    cases: dict[str, Case],
    baseline: str,
    rounds: int,
    *,
    sparse: dict[str, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, CaseResult]:
    """Run ``rounds`` rounds of every case (rotating order) and pair each with the baseline.

    ``sparse`` maps slow cases to how many rounds they take part in (the first ones);
    their ratios are still paired with the baseline of the same round.
    """
    sparse = sparse or {}
    names = list(cases)
    samples: dict[str, list[Sample | None]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        root = Path(tmp)
        for round_no in range(rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                if round_no >= sparse.get(name, rounds):
                    samples[name].append(None)
                    continue
                folder = root / f"{round_no}-{name.replace(' ', '_').replace('/', '_')}"
                folder.mkdir()
                # The same collector state for every case: nothing frozen by an
                # earlier case (the client freezes after big loads), default
                # thresholds, the heap collected.
                gc_policy.reset()
                sample = cases[name](folder)
                samples[name].append(sample)
                if progress is not None:
                    progress(f"  round {round_no + 1}/{rounds} {name}: {fmt_ms(sample.wall)}")
    results: dict[str, CaseResult] = {}
    base = samples[baseline]
    for name in names:
        result = CaseResult(name, [s for s in samples[name] if s is not None])
        for mine, theirs in zip(samples[name], base, strict=True):
            if mine is not None and theirs is not None:
                result.wall_ratios.append(mine.wall / theirs.wall)
                result.cpu_ratios.append(mine.cpu / theirs.cpu if theirs.cpu > 0 else float("nan"))
        results[name] = result
    return results


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds, for tables."""
    return f"{seconds * 1000:,.1f} ms"


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """A plain aligned text table (first column left-aligned, others right-aligned)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
