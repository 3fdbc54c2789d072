"""Fixtures of the integration tests: the engine tests' wire and client pool, and the
long room (see :mod:`.long_room`)."""

from __future__ import annotations

from ..engine.support import pool, wire
from .long_room import _seed_long_room_early, long_room

__all__ = ["_seed_long_room_early", "long_room", "pool", "wire"]
