"""The homeserver's time, as this device can tell it: for a local clock that is hours off.

Each event a sync batch brings has ``origin_server_ts`` and, in ``unsigned.age``, how
long ago the server says that was when it sent the event (spec: "Room Events",
``unsigned.age``): ``origin_server_ts + age`` is the server's clock at the time we
received the batch. The offset from the local clock is the median of the last few such
samples (one per batch); :meth:`ServerClock.now_ms` is the local clock plus it. The
crypto machine runs on this clock, so a request's age (verification requests older than
10 minutes or more than 5 in the future are ignored), flow timeouts and Megolm session
rotation are judged against the server's time, not a wrong local one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["ServerClock"]


class ServerClock:
    """Local time plus the offset learnt from the server's events."""

    def __init__(self, local: Callable[[], float] | None = None, *, samples: int = 9) -> None:
        self._local = local or time.time
        self._samples: deque[int] = deque(maxlen=samples)
        self.offset_ms = 0

    def local_ms(self) -> int:
        return int(self._local() * 1000)

    def now_ms(self) -> int:
        """The server's time now, in milliseconds (local time until a batch was seen)."""
        return self.local_ms() + self.offset_ms

    def observe(self, events: Iterable[dict[str, Any]], received_ms: int | None = None) -> None:
        """Learn from a batch's events (the newest one with an ``age`` counts)."""
        received = self.local_ms() if received_ms is None else received_ms
        best: int | None = None
        sample = 0
        # This runs over every event of a first sync: type() is int (not a bool) for speed,
        # and only an event younger than the best so far is looked at further.
        for event in events:
            unsigned = event.get("unsigned")
            if type(unsigned) is not dict:
                continue
            age = unsigned.get("age")
            if type(age) is not int or age < 0 or (best is not None and age >= best):
                continue
            ts = event.get("origin_server_ts")
            if type(ts) is not int:
                continue
            # The youngest event is the least stale sample.
            best = age
            sample = ts + age - received
        if best is not None:
            import statistics  # (with the first sample, not at start-up)

            self._samples.append(sample)
            self.offset_ms = int(statistics.median(self._samples))
