"""The machine's errors, importable without the machine (engine and UI catch them)."""

from __future__ import annotations


class EncryptionError(RuntimeError):
    """A room event cannot be encrypted yet (no shared, unexpired room key): share first."""


class CryptoStoreMismatch(RuntimeError):
    """The store holds the account of another user or device than the machine was built for."""
