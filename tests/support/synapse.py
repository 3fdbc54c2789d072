"""A homeserver of a test module's own, for what the shared one must not do (be stopped,
other rate limits)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tui_client.devtools.synapse import SynapseServer

__all__ = ["own_synapse"]


def own_synapse(
    tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any
) -> Iterator[SynapseServer]:
    """Start a Synapse in a new temporary folder ``name``; stop it when the fixture ends.

    Use as the body of a module fixture: ``yield from own_synapse(tmp_path_factory, "x")``.
    """
    with SynapseServer(tmp_path_factory.mktemp(name), **options) as server:
        yield server
