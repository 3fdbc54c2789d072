"""What the verification machine (:mod:`.verification`) reads from the crypto machine.

The flows never touch the store: they ask this host (the ``VerificationHost``
protocol) for our ids and keys, the devices and cross-signing keys we know, the
clock and SAS objects, and tell it which user's devices to query again.
"""

from __future__ import annotations

from .backend import IdentityKeys, Sas
from .cross_signing import published_public_keys
from .devices import DeviceTracker
from .machine_core import MachineCore

__all__ = ["MachineVerificationHost"]


class MachineVerificationHost:
    """The crypto machine's side of ``VerificationHost``, over its core and device tracker."""

    def __init__(self, core: MachineCore, identity: IdentityKeys, devices: DeviceTracker) -> None:
        self._core = core
        self._identity = identity
        self._devices = devices

    @property
    def user_id(self) -> str:
        return self._core.user_id

    @property
    def device_id(self) -> str:
        return self._core.device_id

    @property
    def ed25519(self) -> str:
        return self._identity.ed25519

    def now_ms(self) -> int:
        return self._core.clock()

    def create_sas(self) -> Sas:
        return self._core.backend.create_sas()

    def device_key(self, user_id: str, device_id: str) -> str | None:
        record = self._core.store.get_device(user_id, device_id)
        if record is None or record["deleted"]:
            return None
        return record["ed25519"]

    def device_ids(self, user_id: str) -> list[str]:
        return [
            d["device_id"] for d in self._core.store.get_user_devices(user_id) if not d["deleted"]
        ]

    def cross_signing_keys(self, user_id: str) -> tuple[str | None, frozenset[str]]:
        identity = self._core.cross_signing.published(user_id)
        record = self._core.store.get_cross_signing_keys(user_id)
        return (
            None if identity is None else identity.master.public_key,
            published_public_keys(record, user_id),
        )

    def device_id_collision(self, user_id: str) -> bool:
        record = self._core.store.get_user_identity(user_id)
        return record is not None and record["device_id_collision"]

    def own_trusted_master_key(self) -> str | None:
        policy = self._core.cross_signing
        own = policy.published(self._core.user_id)
        if own is None or not policy.own_master_trusted(own):
            return None
        return own.master.public_key

    def refresh_user(self, user_id: str) -> None:
        self._devices.mark_users_outdated([user_id])
