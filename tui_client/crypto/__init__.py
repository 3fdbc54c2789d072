"""End-to-end encryption: a sans-I/O Olm/Megolm machine over swappable primitives.

- :mod:`.machine`: :class:`OlmMachine`, the push/pull state machine.
- :mod:`.store_api`: the :class:`CryptoStore` Protocol it keeps all state in
  (:mod:`.memory_store` implements it in memory; ``store/`` in SQLite).
- :mod:`.backend`: the primitive interface; :mod:`.vodozemac_backend` (the
  default) and :mod:`.olm_backend` (python-olm, libolm: deprecated upstream)
  implement it. Only those two modules import ``olm``/``vodozemac`` (an
  import-linter contract). :mod:`.migration` moves a python-olm store to vodozemac.
- :mod:`.key_export`: the room key export file format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backend import CryptoBackend
from .errors import CryptoStoreMismatch, EncryptionError
from .requests import (
    KeysClaimRequest,
    KeysQueryRequest,
    KeysUploadRequest,
    OutgoingRequest,
    ToDeviceRequest,
)
from .store_api import CryptoStore
from .types import (
    DecryptedEvent,
    DecryptionFailure,
    EncryptionSettings,
    FailureReason,
    MachineConfig,
    SyncChanges,
)

__all__ = [
    "BACKENDS",
    "CryptoBackend",
    "CryptoStore",
    "CryptoStoreMismatch",
    "DecryptedEvent",
    "DecryptionFailure",
    "EncryptionError",
    "EncryptionSettings",
    "FailureReason",
    "KeysClaimRequest",
    "KeysQueryRequest",
    "KeysUploadRequest",
    "MachineConfig",
    "OlmMachine",
    "OutgoingRequest",
    "SyncChanges",
    "ToDeviceRequest",
    "load_backend",
]

BACKENDS = ("olm", "vodozemac")

if TYPE_CHECKING:
    from .machine import OlmMachine


def __getattr__(name: str) -> object:
    # The machine (Olm, Megolm, gossip, verification host) is imported when first
    # used, not by everything that names a crypto type: start-up does not need it.
    if name == "OlmMachine":
        from .machine import OlmMachine

        return OlmMachine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_backend(name: str = "vodozemac") -> CryptoBackend:
    """The backend called ``name`` (``vodozemac``, the default, or ``olm``), imported on demand."""
    if name == "olm":
        from .olm_backend import OlmBackend

        return OlmBackend()
    if name == "vodozemac":
        from .vodozemac_backend import VodozemacBackend

        return VodozemacBackend()
    raise ValueError(f"unknown crypto backend {name!r} (choose from {', '.join(BACKENDS)})")
