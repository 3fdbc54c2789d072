"""Screen lines that reference counting frees: Textual's ``Strip.divide`` without a cycle.

Textual's compositor divides every line of every widget at each frame
(``strip.divide(cuts)``, textual/_compositor.py), and a :class:`Strip` memoizes the
result: with no cut inside the line the result is ``[strip]`` itself, kept in the strip's
own ``_divide_cache`` (textual 8.2.8, strip.py). So every line on screen is a reference
cycle, and once a widget repaints, its previous lines are cyclic garbage: freed only by
the collector. Worse, engine/gc_policy.py freezes what is alive at each room switch, the
lines on screen included; those that die afterwards wait in the permanent generation for
a compaction. In the soak (bench/soak.py) that was most of the frozen garbage: about 65
strips a switch (their 7 memo caches each, segments), 12 MB between compactions, and the
arenas' high-water mark (the RSS) rose with it.

:func:`install` wraps ``Strip.divide`` so that the no-cut case returns ``[strip]`` without
memoizing it (a one-item list is cheaper to make than to look up); every other case is
Textual's own, its cache included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.strip import Strip

_textual_divide = Strip.divide


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    cuts = list(cuts)
    length = self.cell_length
    if [cut for cut in cuts if cut <= length] == [length]:
        return [self]
    return _textual_divide(self, cuts)


def install() -> None:
    """Replace ``Strip.divide`` (once; idempotent)."""
    Strip.divide = _divide  # type: ignore[method-assign]
