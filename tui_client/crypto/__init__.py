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

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import CryptoBackend
    from .errors import CryptoStoreMismatch, EncryptionError
    from .machine import OlmMachine
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

# Where each name lives. Importing the package (as ``crypto.attachments`` or
# ``crypto.errors`` do) imports none of them: each is imported when first named (issue 13:
# the machine, the crypto types and the verification flows are not needed to paint the
# room list).
_LAZY = {
    "CryptoBackend": "backend",
    "CryptoStoreMismatch": "errors",
    "EncryptionError": "errors",
    "OlmMachine": "machine",
    "KeysClaimRequest": "requests",
    "KeysQueryRequest": "requests",
    "KeysUploadRequest": "requests",
    "OutgoingRequest": "requests",
    "ToDeviceRequest": "requests",
    "CryptoStore": "store_api",
    "DecryptedEvent": "types",
    "DecryptionFailure": "types",
    "EncryptionSettings": "types",
    "FailureReason": "types",
    "MachineConfig": "types",
    "SyncChanges": "types",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def load_backend(name: str = "vodozemac") -> CryptoBackend:
    """The backend called ``name`` (``vodozemac``, the default, or ``olm``), imported on demand."""
    if name == "olm":
        from .olm_backend import OlmBackend

        return OlmBackend()
    if name == "vodozemac":
        from .vodozemac_backend import VodozemacBackend

        return VodozemacBackend()
    raise ValueError(f"unknown crypto backend {name!r} (choose from {', '.join(BACKENDS)})")
