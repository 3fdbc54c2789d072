"""Devices and trust: what the UI shows about who is who.

- Our own devices: the server's list (``GET /devices``: name, last seen IP and time)
  joined with what the crypto machine knows of each (keys, verified or not); rename
  one (``PUT /devices/{id}``); sign others out (``POST /delete_devices``, confirmed
  with the password through :mod:`.uia`).
- Any user's devices and identity (their cross-signing master key) as this device
  judges them: verified, not verified, changed.
- A small cache of each user's trust for the views that show it on every line
  (member list, message senders, a DM's header): :meth:`DeviceService.trust` answers
  at once from the cache and computes what it lacks in the background, then publishes
  :class:`~tui_client.engine.updates.TrustChanged`.
- Identity-change warnings (:class:`~tui_client.engine.updates.IdentityWarnings`),
  shown until the user acknowledges them or verifies the user again.
- The account's setting "share room keys only with verified devices", kept in the
  cache's meta table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..protocol import requests as api
from ..protocol.ids import is_user_id
from .uia import UserInteractiveAuth
from .updates import IdentityWarnings, TrustChanged

if TYPE_CHECKING:
    # Imported where first used (issue 13: the trust cache the first painted room list
    # asks is empty until the machine is open).
    from ..crypto import OlmMachine, OutgoingRequest
    from ..crypto.cross_signing import UserIdentity
    from ..crypto.types import Device, DeviceTrust, RequestOutcome
    from .core import Core
    from .encryption import Encryption
    from .uia import PasswordPrompt

__all__ = ["ONLY_VERIFIED_SETTING", "DeviceInfo", "DeviceService", "IdentityState", "UserTrust"]

log = logging.getLogger(__name__)

#: The cache meta key of the key-sharing setting (``"1"``: only verified devices).
ONLY_VERIFIED_SETTING = "share_keys_only_with_verified"


class IdentityState(StrEnum):
    """A user's cross-signing identity as this device judges it."""

    #: The user has no cross-signing identity (or we have not fetched it).
    NONE = "none"
    #: Published, not verified by us.
    UNVERIFIED = "unverified"
    #: Verified (by us with SAS, through our user-signing key, or our own identity).
    VERIFIED = "verified"
    #: Their master key changed since we first saw it (they reset their identity): tell the user.
    CHANGED = "changed"
    #: It was verified and changed since: warn until acknowledged or verified again.
    VIOLATION = "violation"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device as the UI lists it."""

    user_id: str
    device_id: str
    display_name: str | None
    #: ``verified``, ``unverified``, ``blocked``, or ``unknown`` (its keys are not known here).
    trust: str
    #: This very session.
    is_current: bool = False
    #: From ``GET /devices`` (our own devices only).
    last_seen_ip: str | None = None
    last_seen_ts: int | None = None
    #: The device's Ed25519 key (its fingerprint), when known.
    ed25519: str | None = None

    @property
    def verified(self) -> bool:
        """Verified (cross-signed by a verified identity, verified here, or this device)."""
        return self.trust == "verified"


@dataclass(frozen=True, slots=True)
class UserTrust:
    """What this device thinks of one user: their identity and which of their devices it trusts."""

    user_id: str
    state: IdentityState
    master_key: str | None = None
    #: Every device of theirs we know (from ``/keys/query``) and the verified ones.
    devices: frozenset[str] = frozenset()
    verified_devices: frozenset[str] = frozenset()
    #: A device of theirs is named like one of their cross-signing keys: never trusted.
    device_id_collision: bool = False

    @property
    def verified(self) -> bool:
        """The user's identity is verified."""
        return self.state is IdentityState.VERIFIED

    @property
    def needs_attention(self) -> bool:
        """Their identity changed (or is forged): show a warning."""
        return self.device_id_collision or self.state in (
            IdentityState.CHANGED,
            IdentityState.VIOLATION,
        )


def identity_state(identity: UserIdentity | None) -> IdentityState:
    """Map the machine's judgement to the state the UI shows."""
    if identity is None or identity.master_key is None:
        return IdentityState.NONE
    if identity.verification_violation:
        return IdentityState.VIOLATION
    if identity.verified:
        return IdentityState.VERIFIED
    if identity.changed:
        return IdentityState.CHANGED
    return IdentityState.UNVERIFIED


#: By :class:`~tui_client.crypto.types.DeviceTrust` (a ``StrEnum``: its values are the keys).
_TRUST_LABEL = {"verified": "verified", "unverified": "unverified", "blocked": "blocked"}


class DeviceService:
    """Our devices, anyone's devices and identity, the trust cache (see the module documentation)."""

    def __init__(
        self,
        core: Core,
        encryption: Encryption,
        *,
        password_prompt: Callable[[], PasswordPrompt | None],
        cross_signing_changed: Callable[[], None],
        trust_changed: Callable[[], None],
    ) -> None:
        self.core = core
        self.encryption = encryption
        self._password_prompt = password_prompt
        self._cross_signing_changed = cross_signing_changed
        self._trust_changed = trust_changed
        self._trust: dict[str, UserTrust] = {}
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._warnings: tuple[UserIdentity, ...] | None = None
        self._requeried: set[str] = set()
        self._opened = False

    # -- start -----------------------------------------------------------------------

    async def open(self) -> None:
        """Read the key-sharing setting and follow the crypto machine's answers."""
        if self._opened:
            return
        self._opened = True
        value = await self.core.db.run(self.core.cache.get_meta, ONLY_VERIFIED_SETTING)
        self.encryption.only_verified = value == "1"
        self.encryption.outcome_listeners.append(self._on_outcome)
        if self.encryption.available:
            if self._pending:
                self._schedule(())
            await self.check_warnings()

    def stop(self) -> None:
        """Stop background work."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _machine(self) -> OlmMachine:
        return self.encryption.require_machine(RuntimeError)

    # -- the key-sharing setting -------------------------------------------------------

    @property
    def only_verified(self) -> bool:
        """Room keys are shared only with verified devices (others get a withheld notice)."""
        return self.encryption.only_verified

    async def set_only_verified(self, value: bool) -> None:
        """Change the key-sharing setting (kept across restarts; new room keys follow it)."""
        await self.core.db.run(
            self.core.cache.set_meta, ONLY_VERIFIED_SETTING, "1" if value else "0"
        )
        self.encryption.only_verified = value

    # -- the trust cache -------------------------------------------------------------

    def trust(self, user_id: str) -> UserTrust | None:
        """The cached trust of ``user_id``; ``None`` the first time (computed in the background,
        then :class:`TrustChanged` is published)."""
        known = self._trust.get(user_id)
        if known is None and is_user_id(user_id):
            if self.encryption.available:
                self._schedule([user_id])
            elif self.encryption.error is None:
                # Asked before the machine opened (the first paint comes first): computed,
                # and TrustChanged published, once it is (:meth:`open`).
                self._pending.add(user_id)
        return known

    def _schedule(self, user_ids: Iterable[str]) -> None:
        self._pending.update(user_ids)
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._compute_pending())
            except RuntimeError:
                return

    async def _compute_pending(self) -> None:
        await asyncio.sleep(0)
        while self._pending:
            users, self._pending = sorted(self._pending), set()
            try:
                await self.refresh_trust(users)
            except Exception:
                log.exception("computing trust failed")
                return

    async def refresh_trust(self, user_ids: Iterable[str]) -> dict[str, UserTrust]:
        """Recompute the trust of these users now; publishes :class:`TrustChanged` if any changed."""
        users = sorted(set(user_ids))
        if not users or not self.encryption.available:
            return {}
        machine = self._machine()
        computed = await self.encryption.call(
            lambda: {u: self._user_trust(machine, u) for u in users}
        )
        changed = frozenset(u for u, t in computed.items() if self._trust.get(u) != t)
        self._trust.update(computed)
        if changed:
            self.core.publish(TrustChanged(changed))
            if self.core.user_id in changed:
                self._trust_changed()
        return computed

    @staticmethod
    def _user_trust(machine: OlmMachine, user_id: str) -> UserTrust:
        from ..crypto.types import DeviceTrust

        identity = machine.user_identity(user_id)
        devices = machine.get_user_devices(user_id)
        verified = frozenset(
            d.device_id for d in devices if machine.device_trust(d) is DeviceTrust.VERIFIED
        )
        return UserTrust(
            user_id=user_id,
            state=identity_state(identity),
            master_key=identity.master_key if identity is not None else None,
            devices=frozenset(d.device_id for d in devices),
            verified_devices=verified,
            device_id_collision=identity is not None and identity.device_id_collision,
        )

    def _on_outcome(self, request: OutgoingRequest, outcome: RequestOutcome) -> None:
        """A key query or a signature upload may change what we think of some users."""
        from ..crypto.requests import KeysQueryRequest, SignatureUploadRequest

        users: set[str] = set(outcome.users_updated)
        if isinstance(request, SignatureUploadRequest):
            users.update(request.body)
        interesting = {u for u in users if u in self._trust or u == self.core.user_id}
        if interesting:
            self._schedule(interesting)
        if outcome.identity_changes or (isinstance(request, KeysQueryRequest) and users):
            self._spawn(self.check_warnings())
        if self.core.user_id in users:
            self._cross_signing_changed()

    def _spawn(self, coroutine: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coroutine)
        except RuntimeError:
            coroutine.close()
            return
        task.add_done_callback(_log_failure)

    def forget_trust(self) -> None:
        """Drop the cache (everything is computed again when next asked)."""
        self._trust.clear()

    # -- identity warnings -------------------------------------------------------------

    @property
    def warnings(self) -> tuple[UserIdentity, ...]:
        """The last published identity warnings."""
        return self._warnings or ()

    async def check_warnings(self) -> tuple[UserIdentity, ...]:
        """Recompute the users whose identity needs attention; publish when the list changed."""
        if not self.encryption.available:
            return ()
        machine = self._machine()
        found = tuple(await self.encryption.call(machine.identities_needing_attention))
        if found != self._warnings:
            self._warnings = found
            self.core.publish(IdentityWarnings(found))
        return found

    async def acknowledge(self, user_id: str) -> None:
        """The user saw that ``user_id``'s identity changed: stop warning (it stays unverified)."""
        machine = self._machine()
        await self.encryption.call(lambda: machine.acknowledge_identity_change(user_id))
        await self.refresh_trust([user_id])
        await self.check_warnings()

    # -- keys queried -------------------------------------------------------------------

    async def await_queried(self, user_ids: Iterable[str], timeout: float = 15.0) -> bool:
        """Track these users and wait until their device lists are fetched; False on timeout."""
        users = list(user_ids)
        machine = self._machine()
        encryption = self.encryption
        await encryption.call(lambda: machine.update_tracked_users(users))
        deadline = time.monotonic() + timeout
        while True:
            outdated = await encryption.call(lambda: machine.outdated_users(users))
            if not outdated:
                return True
            if time.monotonic() >= deadline:
                return False
            encryption.wake()
            await asyncio.sleep(0.1)

    # -- anyone's devices ------------------------------------------------------------------

    async def user_devices(self, user_id: str) -> tuple[UserTrust, list[DeviceInfo]]:
        """``user_id``'s identity and devices (their keys fetched first if needed)."""
        machine = self._machine()
        await self.await_queried([user_id])

        def read() -> tuple[UserTrust, list[tuple[Device, DeviceTrust]]]:
            devices = machine.get_user_devices(user_id)
            return self._user_trust(machine, user_id), [
                (d, machine.device_trust(d)) for d in devices
            ]

        trust, devices = await self.encryption.call(read)
        if self._trust.get(user_id) != trust:
            self._trust[user_id] = trust
            self.core.publish(TrustChanged(frozenset({user_id})))
        infos = [
            DeviceInfo(
                user_id=user_id,
                device_id=device.device_id,
                display_name=device.display_name,
                trust=_TRUST_LABEL.get(verdict, "unverified"),
                is_current=user_id == self.core.user_id and device.device_id == self.core.device_id,
                ed25519=device.ed25519,
            )
            for device, verdict in devices
        ]
        infos.sort(key=lambda d: (not d.is_current, (d.display_name or "").casefold(), d.device_id))
        return trust, infos

    async def device_name(self, user_id: str, device_id: str) -> str | None:
        """The display name of a device we know the keys of (untrusted text), if it has one."""
        if not self.encryption.available:
            return None
        machine = self._machine()
        device = await self.encryption.call(lambda: machine.get_device(user_id, device_id))
        return device.display_name if device is not None else None

    # -- our own devices -------------------------------------------------------------------

    async def own_devices(self) -> list[DeviceInfo]:
        """Our devices as the server lists them, with what the machine knows of each.

        This session first, then the most recently seen. A device the server lists and
        whose keys we do not know (yet) shows as ``unknown``.
        """
        data = await self.core.connection.send(api.get_devices())
        listed = data.get("devices") if isinstance(data, dict) else None
        server_devices = (
            [d for d in listed if isinstance(d, dict) and isinstance(d.get("device_id"), str)]
            if isinstance(listed, list)
            else []
        )
        known: dict[str, DeviceInfo] = {}
        if self.encryption.available:
            with contextlib.suppress(RuntimeError):
                _, infos = await self.user_devices(self.core.user_id)
                known = {d.device_id: d for d in infos}
                listed_ids = {d["device_id"] for d in server_devices}
                unknown = listed_ids - set(known) - {self.core.device_id} - self._requeried
                if unknown:
                    # A session logged in since our last key query (its device list change
                    # may not have reached us yet): fetch our keys again, once per session
                    # (one that never uploads keys stays "unknown").
                    self._requeried |= unknown
                    machine = self._machine()
                    user_id = self.core.user_id
                    await self.encryption.call(lambda: machine.mark_users_outdated([user_id]))
                    _, infos = await self.user_devices(user_id)
                    known = {d.device_id: d for d in infos}
        devices = []
        for entry in server_devices:
            device_id = entry["device_id"]
            name = entry.get("display_name")
            ip = entry.get("last_seen_ip")
            ts = entry.get("last_seen_ts")
            info = known.get(device_id)
            current = device_id == self.core.device_id
            devices.append(
                DeviceInfo(
                    user_id=self.core.user_id,
                    device_id=device_id,
                    display_name=name
                    if isinstance(name, str)
                    else (info.display_name if info else None),
                    trust="verified"
                    if current
                    else (info.trust if info is not None else "unknown"),
                    is_current=current,
                    last_seen_ip=ip if isinstance(ip, str) else None,
                    last_seen_ts=ts if isinstance(ts, int) and not isinstance(ts, bool) else None,
                    ed25519=info.ed25519 if info is not None else None,
                )
            )
        devices.sort(key=lambda d: (not d.is_current, -(d.last_seen_ts or 0), d.device_id))
        return devices

    async def rename(self, device_id: str, name: str) -> None:
        """Rename one of our devices (the name others see in their device lists)."""
        await self.core.connection.send(api.update_device(device_id, name.strip()))

    async def sign_out(self, device_ids: Iterable[str]) -> None:
        """Sign other devices of ours out, after the password (user-interactive auth).

        Raises :class:`~tui_client.engine.uia.AuthCancelled` (and the other UIA errors)
        when it could not be confirmed; this session is never in the list (log out instead).
        """
        ids = [d for d in dict.fromkeys(device_ids) if d]
        if self.core.device_id in ids:
            raise ValueError("this session cannot sign itself out here: log out instead")
        if not ids:
            return
        auth = UserInteractiveAuth(self.core.connection, self.core.user_id, self._password_prompt())
        what = f"Sign out {len(ids)} devices" if len(ids) > 1 else f"Sign out the device {ids[0]}"
        await auth.send(lambda auth_dict: api.delete_devices(ids, auth_dict), purpose=what)
        # The server tells every member's client through device_lists.changed; ours too.
        self.encryption.wake()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background trust work failed", exc_info=task.exception())
