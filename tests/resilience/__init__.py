"""Issue 19: the client in the real world (kill -9 while sending, TLS, a full disk, a damaged
cache, a flaky network, long runs, a skewed clock).

Long scenarios run in a short form in ``make test``; ``make soak`` sets ``TUI_CLIENT_SOAK=1``
for their full form.
"""

from __future__ import annotations

import os

SOAK = os.environ.get("TUI_CLIENT_SOAK") == "1"


def scale(short: int, full: int) -> int:
    """``short`` in ``make test``, ``full`` in ``make soak``."""
    return full if SOAK else short
