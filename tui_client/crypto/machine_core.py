"""What every part of the crypto machine shares: who we are, the store, the clock.

The machine (:mod:`.machine`) is built from parts, each owning one concern's state
(:mod:`.account_keys`, :mod:`.devices`, :mod:`.olm_sessions`, :mod:`.megolm_outbound`,
:mod:`.megolm_inbound`, :mod:`.gossip`, :mod:`.own_identity`). They all reach the
store, the backend, the pickle key and the clock through one :class:`MachineCore`,
which also keeps the queue of to-device messages waiting to be sent (in the store,
so it commits or rolls back with the caller's transaction).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from .backend import CryptoBackend, check_pickle_key
from .cross_signing import CROSS_SIGNING_SECRET_NAMES, CrossSigningTrustPolicy
from .errors import CryptoStoreMismatch as CryptoStoreMismatch
from .errors import EncryptionError as EncryptionError
from .requests import ToDeviceKind, ToDeviceRequest
from .store_api import CryptoStore, PendingToDeviceRecord
from .types import KeyOrigin, MachineConfig

__all__ = [
    "SIGNED_CURVE25519",
    "CryptoStoreMismatch",
    "EncryptionError",
    "MachineCore",
    "MachinePart",
    "Rejected",
]

SIGNED_CURVE25519 = "signed_curve25519"
KEY_REQUEST_TYPES = ("m.room_key_request", "m.secret.request")
ORIGINS = {origin.value: origin for origin in KeyOrigin}
BACKUP_SECRET = "m.megolm_backup.v1"
#: Secrets we give to our own verified devices that ask (``m.secret.request``).
SHAREABLE_SECRETS = frozenset({*CROSS_SIGNING_SECRET_NAMES.values(), BACKUP_SECRET})
USAGE_BY_SECRET = {name: usage for usage, name in CROSS_SIGNING_SECRET_NAMES.items()}


class Rejected(Exception):
    """An incoming to-device event fails a check; the message says which."""


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return secrets.token_urlsafe(18)


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str) -> Any:
    """``json.loads`` without its Python-level wrapping for compact JSON (every payload).

    Anything the fast scan does not consume exactly (whitespace around, trailing
    data, an error) goes through ``json.loads``, which decides.
    """
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def server_name(user_id: str) -> str:
    return user_id.partition(":")[2]


class MachineCore:
    """The context of one device's machine, and its queue of to-device messages."""

    def __init__(
        self,
        user_id: str,
        device_id: str,
        store: CryptoStore,
        backend: CryptoBackend,
        *,
        pickle_key: bytes,
        clock: Callable[[], int] | None = None,
        config: MachineConfig | None = None,
    ) -> None:
        check_pickle_key(pickle_key)
        self.user_id = user_id
        self.device_id = device_id
        self.store = store
        self.backend = backend
        self.pickle_key = pickle_key
        self.clock = clock or wall_clock_ms
        self.config = config or MachineConfig()
        #: Reads cross-signing identities from the store; stateless over it.
        self.cross_signing = CrossSigningTrustPolicy(store, backend, user_id)

    def remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        """Put ``value`` in a bounded session cache (oldest out)."""
        cache[key] = value
        if len(cache) > self.config.session_cache_size:
            del cache[next(iter(cache))]

    def is_own_device(self, user_id: str, device_id: str) -> bool:
        return user_id == self.user_id and device_id == self.device_id

    @staticmethod
    def to_device_request(record: PendingToDeviceRecord) -> ToDeviceRequest:
        try:
            kind = ToDeviceKind(record["kind"])
        except ValueError:
            kind = ToDeviceKind.OTHER
        return ToDeviceRequest(
            request_id=record["request_id"],
            event_type=record["event_type"],
            kind=kind,
            messages=record["messages"],
        )

    def queue_to_device(
        self,
        event_type: str,
        messages: dict[str, dict[str, dict[str, Any]]],
        kind: ToDeviceKind,
        meta: dict[str, str],
    ) -> ToDeviceRequest:
        """Keep a to-device request in the store until it is marked sent or failed."""
        record = PendingToDeviceRecord(
            request_id=new_id(),
            event_type=event_type,
            messages=messages,
            kind=kind.value,
            meta=meta,
            created_ms=self.clock(),
        )
        self.store.save_pending_to_device(record)
        return self.to_device_request(record)

    def pending_to_device(self) -> list[ToDeviceRequest]:
        """Every queued to-device request, in the order made."""
        return [self.to_device_request(r) for r in self.store.list_pending_to_device()]


class MachinePart:
    """Base of the machine's parts: the core's fields as plain attributes (hot paths read them)."""

    def __init__(self, core: MachineCore) -> None:
        self._core = core
        self._user_id = core.user_id
        self._device_id = core.device_id
        self._store = core.store
        self._backend = core.backend
        self._pickle_key = core.pickle_key
        self._clock = core.clock
        self._config = core.config
        self._cross_signing = core.cross_signing
