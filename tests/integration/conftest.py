"""Fixtures of the integration tests: the engine tests' wire and client pool, and the
long room (see :mod:`.long_room`). The seeded directory (:mod:`.directory_world`) is a
session fixture of the top-level conftest, so that its seeding starts with the session."""

from __future__ import annotations

from ..engine.support import pool, wire
from .long_room import _seed_long_room_early, long_room

__all__ = ["_seed_long_room_early", "long_room", "pool", "wire"]
