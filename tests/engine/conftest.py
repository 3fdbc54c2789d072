"""Fixtures of the engine tests (shared with the integration tests)."""

from __future__ import annotations

from .support import pool, wire

__all__ = ["pool", "wire"]
