"""Recording what a client publishes."""

from __future__ import annotations

import time
from typing import Any

from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import SyncState, Update

__all__ = ["Recorder"]


class Recorder:
    """Every update a client published, with the time it was published (subscribe before acting)."""

    def __init__(self, client: MatrixClient) -> None:
        self.updates: list[tuple[float, Update]] = []
        self.unsubscribe = client.subscribe(lambda u: self.updates.append((time.time(), u)))

    def of(self, kind: type) -> list[Any]:
        """The updates of one type, in order."""
        return [u for _, u in self.updates if isinstance(u, kind)]

    def states(self) -> list[tuple[float, SyncState]]:
        """The sync states, with their times."""
        return [(t, u) for t, u in self.updates if isinstance(u, SyncState)]
