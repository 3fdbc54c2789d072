"""Server-side key backup for one client: every room key uploaded to a trusted backup.

The crypto layer (:mod:`tui_client.crypto.backup`) decides what a backup version
is, whether it may be trusted and what to upload; this module runs it against
the homeserver:

- :meth:`KeyBackup.check` reads the current version (``GET /room_keys/version``)
  and its trust: signed by this device, by one of our verified devices or by our
  trusted master key, or its public key is the one of the backup key this device
  holds. Only a trusted version is ever uploaded to.
- :meth:`KeyBackup.run` uploads in the background: woken after a sync batch that
  brought room keys and after we shared a room key of our own, it builds a batch
  in a database transaction, sends it outside any transaction
  (``PUT /room_keys/keys``), and marks it backed up in another. A restart resumes
  from the sessions' ``backed_up`` flags; the version they refer to is kept in
  the store (``crypto_backup_state``), so a version replaced meanwhile is noticed
  and everything is uploaded to the new one. ``429``/``5xx``/network faults back
  off and retry; ``M_WRONG_ROOM_KEYS_VERSION`` or ``404`` stops, checks the new
  version's trust again, and goes on only if it is trusted.
- :meth:`KeyBackup.create` makes a new version (set up or reset recovery), and
  :meth:`KeyBackup.adopt` takes on an existing one (a restore on a new login).

Every machine call runs on the database thread, in a transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..crypto import CryptoStore
from ..crypto.backend import PkSigning
from ..crypto.backup import (
    DEFAULT_UPLOAD_BATCH,
    BackupError,
    BackupKey,
    BackupTrust,
    BackupUpload,
    BackupUploader,
    BackupVersion,
    UnsupportedBackupError,
    backup_version_body,
    check_backup_trust_for,
)
from ..crypto.encoding import b64decode
from ..crypto.secret_storage import CROSS_SIGNING_MASTER, MEGOLM_BACKUP_V1
from ..crypto.store_api import InboundGroupSessionRecord
from ..crypto.types import DeviceTrust
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from .updates import BackupStatus, Notice

if TYPE_CHECKING:
    from ..crypto import OlmMachine
    from .core import Core
    from .devices import DeviceService
    from .encryption import Encryption
    from .sync import SyncLoop

__all__ = [
    "BackupState",
    "KeyBackup",
    "ensure_own_keys",
    "in_transaction",
    "master_signer",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class BackupState:
    """The values of :attr:`BackupStatus.state`."""

    UNKNOWN = "unknown"
    NONE = "none"
    ACTIVE = "active"
    UNTRUSTED = "untrusted"
    UNSUPPORTED = "unsupported"
    UNREACHABLE = "unreachable"
    OFF = "off"


class _VersionGone(Exception):
    """The server refused an upload because the version is no longer the current one."""


async def in_transaction(encryption: Encryption, work: Callable[[], T]) -> T:
    """Run ``work`` on the client's database thread inside one transaction."""
    return await encryption.call(work)


async def ensure_own_keys(
    encryption: Encryption, devices: DeviceService, timeout: float = 15.0
) -> bool:
    """Make sure our own devices and cross-signing keys have been queried (``/keys/query``).

    Returns False if they are still outdated after ``timeout`` seconds.
    """
    if encryption.machine is None:
        return False
    return await devices.await_queried([encryption.core.user_id], timeout=timeout)


def master_signer(machine: OlmMachine) -> PkSigning | None:
    """Our master cross-signing key, if this device holds it (database thread)."""
    secret = machine.export_cross_signing_keys().get(CROSS_SIGNING_MASTER)
    if secret is None:
        return None
    try:
        return machine.backend.pk_signing_from_seed(b64decode(secret))
    except ValueError:
        return None


def _sender_verified(machine: OlmMachine) -> Callable[[InboundGroupSessionRecord], bool]:
    """Whether a room key's sending device is verified (the backup's ``is_verified``)."""

    def check(record: InboundGroupSessionRecord) -> bool:
        user = record.get("sender_user_id")
        if not isinstance(user, str):
            return False
        for device in machine.get_user_devices(user):
            if device.curve25519 == record["sender_key"]:
                return machine.device_trust(device) is DeviceTrust.VERIFIED
        return False

    return check


class KeyBackup:
    """The key backup of one client (``MatrixClient.backup``).

    ``upload_delay`` gathers keys arriving together into one request;
    ``max_backoff`` caps the wait after failures.
    """

    def __init__(
        self,
        core: Core,
        encryption: Encryption,
        devices: DeviceService,
        *,
        sync_loop: Callable[[], SyncLoop | None],
        suggest_recovery: Callable[[], Awaitable[None]],
        upload_delay: float = 0.5,
        batch_size: int = DEFAULT_UPLOAD_BATCH,
        max_backoff: float = 60.0,
    ) -> None:
        self.core = core
        self.encryption = encryption
        self._devices = devices
        self._sync_loop = sync_loop
        self._suggest_recovery = suggest_recovery
        self.upload_delay = upload_delay
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.version: BackupVersion | None = None
        self.trust: BackupTrust | None = None
        self.state = BackupState.UNKNOWN
        self.detail = ""
        self.error: str | None = None
        self.key_cached = False
        self.server_count: int | None = None
        self.counts = (0, 0)
        #: Set while nothing is left to upload (or nothing can be): tests wait on it.
        self.idle = asyncio.Event()
        #: Set once the first check after start is done.
        self.checked = asyncio.Event()
        self._uploader: BackupUploader | None = None
        self._wake = asyncio.Event()
        self._recheck = True
        self._stopping = False
        # Held while a batch is in flight and while the version (and the flags) change.
        self._flags = asyncio.Lock()
        self._warned_untrusted: str | None = None
        self._asked_key_for: str | None = None

    # -- status -------------------------------------------------------------------------

    def status(self) -> BackupStatus:
        """The current status (also published as an update when it changes)."""
        total, done = self.counts
        return BackupStatus(
            state=self.state,
            version=self.version.version if self.version is not None else None,
            keys_total=total,
            keys_backed_up=done,
            server_count=self.server_count,
            key_cached=self.key_cached,
            detail=self.detail,
            error=self.error,
        )

    def _publish(self) -> None:
        self.core.publish(self.status())

    def _machine(self) -> OlmMachine:
        return self.encryption.require_machine(BackupError)

    async def _run(self, work: Callable[[], T]) -> T:
        return await in_transaction(self.encryption, work)

    async def refresh_counts(self) -> BackupStatus:
        """Count the room keys on this device and those backed up (and publish)."""
        store = self.encryption.store
        self.counts = await self._run(store.count_inbound_group_sessions)
        self._publish()
        return self.status()

    # -- the loop -------------------------------------------------------------------------

    def wake(self) -> None:
        """New room keys may be waiting to be uploaded."""
        self._wake.set()

    def recheck(self) -> None:
        """Read the server's backup version again on the next round."""
        self._recheck = True
        self._wake.set()

    def trust_changed(self) -> None:
        """Our identity or one of our devices became trusted (or not): a backup we did not
        trust may be usable now (signed by that device, or by our master key)."""
        if self.state == BackupState.UNTRUSTED:
            self.recheck()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """After the first sync, check the backup; then upload whenever woken, until stopped."""
        sync_loop = self._sync_loop()
        if sync_loop is not None:
            await sync_loop.first_batch_done.wait()
        if self.encryption.machine is None:
            self.state = BackupState.OFF
            self.detail = self.encryption.error or "end-to-end encryption is off"
            self.checked.set()
            self.idle.set()
            self._publish()
            return
        failures = gone_in_a_row = 0
        first = True
        while not self._stopping:
            try:
                if self._recheck:
                    await self.check()
                    if first:
                        first = False
                        await self._suggest()
                        self.checked.set()
                if self.state == BackupState.ACTIVE:
                    await self._upload_all()
                failures = gone_in_a_row = 0
            except _VersionGone:
                # Normally the next check finds the new version at once; a server that keeps
                # refusing the version it reports is not asked again and again without pause.
                self._recheck = True
                gone_in_a_row += 1
                if gone_in_a_row > 1:
                    await self._sleep(min(self.max_backoff, 2.0**gone_in_a_row))
                continue
            except (MatrixError, NetworkError) as error:
                failures += 1
                self.error = str(error)
                if self._recheck:
                    self.state = BackupState.UNREACHABLE
                    self.detail = f"The backup could not be checked: {error}"
                log.warning("key backup: %s", error)
                self._publish()
                if first:
                    self.checked.set()
                await self._sleep(min(self.max_backoff, 2.0**failures))
                continue
            except Exception:
                log.exception("key backup loop error")
                failures += 1
                await self._sleep(min(self.max_backoff, 2.0**failures))
                continue
            self.idle.set()
            await self._wake.wait()
            self._wake.clear()
            self.idle.clear()
            if self.upload_delay and not self._stopping:
                await asyncio.sleep(self.upload_delay)

    async def _suggest(self) -> None:
        """What to suggest about recovery, after the first check (never fatal)."""
        try:
            await self._suggest_recovery()
        except Exception:
            log.exception("recovery suggestion failed")

    async def _sleep(self, seconds: float) -> None:
        """Back off (``stop`` cancels the task, so a plain sleep is enough)."""
        await asyncio.sleep(seconds)

    async def _upload_all(self) -> None:
        """Upload batches until every key is backed up (raises on failure)."""
        while not self._stopping:
            async with self._flags:
                uploader = self._uploader
                if uploader is None or self.state != BackupState.ACTIVE:
                    return
                upload = await self._run(uploader.next_upload)
                if upload is None:
                    await self.refresh_counts()
                    return
                await self._send(uploader, upload)

    async def _send(self, uploader: BackupUploader, upload: BackupUpload) -> None:
        request = api.put_room_keys(upload.version, upload.body)
        try:
            answer = await self.core.connection.send(request, wait_on_rate_limit=False)
        except MatrixError as error:
            await self._run(lambda: uploader.mark_failed(upload))
            if error.errcode == "M_WRONG_ROOM_KEYS_VERSION" or error.status == 404:
                log.info("key backup version %s is gone: %s", upload.version, error)
                raise _VersionGone from error
            raise
        except NetworkError:
            await self._run(lambda: uploader.mark_failed(upload))
            raise
        response = answer if isinstance(answer, dict) else {}
        store = self.encryption.store

        def mark() -> tuple[int, tuple[int, int]]:
            outcome = uploader.mark_sent(upload, response)
            if outcome.server_count is not None or outcome.etag is not None:
                state = store.load_backup_state() or {}
                state.update(count=outcome.server_count, etag=outcome.etag)
                store.save_backup_state(state)
            return outcome.server_count or 0, store.count_inbound_group_sessions()

        server_count, self.counts = await self._run(mark)
        self.server_count = server_count or self.server_count
        self.error = None
        self._publish()

    # -- versions -------------------------------------------------------------------------

    async def fetch_version(self) -> BackupVersion | None:
        """The server's current backup version (``None``: the account has none).

        Raises :class:`UnsupportedBackupError`/:class:`BackupError` for a version this
        client cannot use, :class:`MatrixError`/:class:`NetworkError` on failure.
        """
        try:
            answer = await self.core.connection.send(api.room_keys_version())
        except MatrixError as error:
            if error.status == 404 or error.errcode == "M_NOT_FOUND":
                return None
            raise
        return BackupVersion.from_response(answer)

    async def check(self) -> BackupStatus:
        """Read the current version and decide whether to use it (and publish the result)."""
        machine = self._machine()
        await ensure_own_keys(self.encryption, self._devices)
        try:
            version = await self.fetch_version()
        except UnsupportedBackupError as error:
            self._recheck = False
            return await self._unusable(BackupState.UNSUPPORTED, f"{error}: it is not used.")
        except BackupError as error:
            self._recheck = False
            return await self._unusable(
                BackupState.UNSUPPORTED, f"The backup is malformed ({error}): it is not used."
            )
        self._recheck = False
        if version is None:
            return await self._unusable(BackupState.NONE, "This account has no key backup.")
        trust = await self._run(lambda: self._trust(machine, version))
        if trust.trusted:
            await self.adopt(version, trust)
            await self._ask_for_new_key(machine, version)
            return self.status()
        self.trust = trust
        await self._unusable(BackupState.UNTRUSTED, trust.explain(), version=version)
        if self._warned_untrusted != version.version:
            self._warned_untrusted = version.version
            self.core.publish(
                Notice(
                    "warning",
                    f"The key backup on the server (version {version.version}) is not trusted by this "
                    "device, so no keys are uploaded to it. See Encryption health.",
                )
            )
        return self.status()

    async def _ask_for_new_key(self, machine: OlmMachine, version: BackupVersion) -> None:
        """The backup was replaced (by another session of ours) and we hold the old one's key:
        ask our other sessions for the new key, once per version (they answer only a
        verified session of ours)."""
        if self.key_cached or self._asked_key_for == version.version:
            return
        if await self._run(lambda: self._held_key(machine)) is None:
            return  # never had one: asked for after a verification, with the other secrets
        self._asked_key_for = version.version
        if await self._run(lambda: machine.request_secret(MEGOLM_BACKUP_V1)) is not None:
            self.encryption.wake()

    def _held_key(self, machine: OlmMachine) -> BackupKey | None:
        secret = machine.get_secret(MEGOLM_BACKUP_V1)
        if secret is None:
            return None
        try:
            return BackupKey.from_secret(machine.backend, secret)
        except BackupError:
            log.warning("the cached backup key is unusable")
            return None

    def _trust(self, machine: OlmMachine, version: BackupVersion) -> BackupTrust:
        """Database thread: the trust of ``version`` as this device sees it."""
        own = machine.user_identity(machine.user_id)
        held = self._held_key(machine)
        self.key_cached = held is not None and held.matches(version)
        return check_backup_trust_for(
            machine,
            version,
            master_key=own.master_key if own is not None else None,
            master_key_trusted=own is not None and own.verified,
            backup_key=held,
        )

    async def _unusable(
        self, state: str, detail: str, *, version: BackupVersion | None = None
    ) -> BackupStatus:
        async with self._flags:
            self._uploader = None
            self.version = version
            self.state = state
            self.detail = detail
            if version is None:
                self.trust = None
                self.key_cached = False
        self.server_count = version.count if version is not None else None
        return await self.refresh_counts()

    async def adopt(self, version: BackupVersion, trust: BackupTrust | None = None) -> None:
        """Use ``version`` from now on (it is trusted): persist it; if it is not the version
        the ``backed_up`` flags refer to, clear them so every key goes to it."""
        machine = self._machine()
        store = self.encryption.store
        pickle_key = self.encryption.pickle_key
        if pickle_key is None:
            raise BackupError("end-to-end encryption is not available")

        def work() -> tuple[BackupUploader, BackupTrust, tuple[int, int]]:
            uploader = BackupUploader(
                cast(CryptoStore, store),
                machine.backend,
                pickle_key,
                version,
                batch_size=self.batch_size,
                is_verified=_sender_verified(machine),
            )
            state = store.load_backup_state()
            if (
                state is None
                or state.get("version") != version.version
                or state.get("public_key") != version.public_key
            ):
                uploader.reset_flags()
            store.save_backup_state(
                {
                    "version": version.version,
                    "public_key": version.public_key,
                    "count": version.count,
                    "etag": version.etag,
                }
            )
            return (
                uploader,
                trust or self._trust(machine, version),
                store.count_inbound_group_sessions(),
            )

        async with self._flags:
            uploader, checked, counts = await self._run(work)
            self._uploader = uploader
            self.version = version
            self.trust = checked
            self.state = BackupState.ACTIVE
            self.detail = checked.explain()
            self.server_count = version.count
            self.counts = counts
        self._publish()
        self.wake()

    async def create(self, key: BackupKey, master: PkSigning | None = None) -> BackupVersion:
        """A new backup version for ``key`` (signed by this device and ``master``), now in use.

        The backup key is kept on this device; every room key is uploaded to the new version.
        """
        machine = self._machine()
        body = await self._run(lambda: backup_version_body(key.public_key, machine, master))
        answer = await self.core.connection.send(api.create_room_keys_version(body))
        version_id = answer.get("version") if isinstance(answer, dict) else None
        if not isinstance(version_id, str) or not version_id:
            raise BackupError("the server did not say which backup version it created")
        version = BackupVersion.from_response({**body, "version": version_id, "count": 0})
        await self._run(lambda: machine.save_secret(MEGOLM_BACKUP_V1, key.to_secret()))
        await self.adopt(version)
        return version

    async def resign(
        self, version: BackupVersion, key: BackupKey, master: PkSigning | None
    ) -> BackupVersion:
        """Sign ``version`` again (a new cross-signing identity): ``PUT /room_keys/version/{v}``."""
        machine = self._machine()
        body = await self._run(lambda: backup_version_body(key.public_key, machine, master))
        await self.core.connection.send(api.update_room_keys_version(version.version, body))
        updated = BackupVersion.from_response(
            {**body, "version": version.version, "count": version.count}
        )
        await self.adopt(updated)
        return updated

    async def delete(self, version: str) -> None:
        """Delete a backup version on the server (its keys are lost for every device)."""
        await self.core.connection.send(api.delete_room_keys_version(version))
        if self.version is not None and self.version.version == version:
            self.recheck()

    async def held_key(self) -> BackupKey | None:
        """The backup key this device holds, if any (it may belong to another version)."""
        machine = self._machine()
        return await self._run(lambda: self._held_key(machine))

    # -- secrets from our other devices ----------------------------------------------------

    def on_secrets(self, secrets: Iterable[Any]) -> None:
        """Secrets our verified devices sent us (``SyncChanges.secrets``): keep the backup key
        if it opens the current backup."""
        for secret in secrets:
            if getattr(secret, "name", None) == MEGOLM_BACKUP_V1 and isinstance(
                getattr(secret, "secret", None), str
            ):
                task = asyncio.ensure_future(self._received_key(secret.secret))
                task.add_done_callback(_log_failure)

    async def _received_key(self, secret: str) -> None:
        machine = self._machine()
        try:
            key = BackupKey.from_secret(machine.backend, secret)
            version = await self.fetch_version()
        except (BackupError, MatrixError, NetworkError) as error:
            log.warning("a received backup key could not be checked: %s", error)
            return
        if version is None or not key.matches(version):
            log.warning("a received backup key does not open the current backup; not kept")
            return
        await self._run(lambda: machine.save_secret(MEGOLM_BACKUP_V1, key.to_secret()))
        self.recheck()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("handling a received backup key failed: %s", task.exception())
