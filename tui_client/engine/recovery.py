"""Recovery for one client: the recovery key, secret storage, and restoring from the backup.

What a user does, end to end, on top of the pure crypto layer
(:mod:`~tui_client.crypto.recovery_key`, :mod:`~tui_client.crypto.secret_storage`,
:mod:`~tui_client.crypto.backup`) and the key backup service (:mod:`.backup`):

- :meth:`Recovery.set_up`: the cross-signing identity (bootstrapped if the account
  has none), a key backup (reused when this device holds its key, else created),
  and secret storage: a new key, random or from a passphrase, holding the
  cross-signing private keys and the backup key in account data. The default key
  is written last, so an interrupted setup is simply run again. Returns the
  recovery key, to be shown once.
- :meth:`Recovery.recover`: a new login with only the recovery key (or passphrase):
  unlock secret storage (PBKDF2 in a worker thread; a wrong key changes nothing),
  take the cross-signing keys that match the published identity, sign this device
  with them (it becomes verified with no second device), then restore the room keys
  from the backup, batch by batch, decrypting the affected history in place.
- :meth:`Recovery.restore_backup`: the restore alone, with a backup key.
- Resets, when something is lost: a new recovery key (this device still holds the
  secrets), a new backup, a new cross-signing identity (with the password).
- :meth:`Recovery.health`: everything the encryption health screen shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..crypto.backup import (
    DEFAULT_RESTORE_BATCH,
    BackupError,
    BackupKey,
    BackupVersion,
    RestoreBatch,
    RestoreFailure,
    count_backup_entries,
    decrypt_backup,
)
from ..crypto.cross_signing import CrossSigningError, CrossSigningStatus
from ..crypto.recovery_key import RecoveryKeyError
from ..crypto.secret_storage import (
    CROSS_SIGNING_MASTER,
    CROSS_SIGNING_SELF_SIGNING,
    CROSS_SIGNING_USER_SIGNING,
    DEFAULT_KEY_TYPE,
    KEY_TYPE_PREFIX,
    MEGOLM_BACKUP_V1,
    RECOVERY_SECRET_NAMES,
    KeyDescription,
    SecretStorageError,
    SecretStorageKey,
    StoredSecrets,
    check_cross_signing_secrets,
    parse_default_key,
    read_recovery_secrets,
    recovery_setup_writes,
)
from ..crypto.types import FailureReason, KeyOrigin
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from .backup import BackupState, ensure_own_keys, in_transaction, master_signer
from .notices import say_once
from .recovery_model import (
    FIXES,
    EncryptionHealth,
    RecoveryError,
    RecoveryResult,
    RecoverySetup,
    RestoreSummary,
    SecretStorageInfo,
    Undecryptable,
    save_recovery_key,
    undecryptable_group,
)
from .updates import BackupStatus, KeyRestoreProgress, RecoverySuggested

if TYPE_CHECKING:
    from ..crypto import OlmMachine
    from .backup import KeyBackup
    from .core import Core
    from .cross_signing import CrossSigningService
    from .devices import DeviceService
    from .encryption import Encryption
    from .secrets import SecretStore

__all__ = [
    "FIXES",
    "EncryptionHealth",
    "Recovery",
    "RecoveryError",
    "RecoveryResult",
    "RecoverySetup",
    "RestoreSummary",
    "SecretStorageInfo",
    "Undecryptable",
    "save_recovery_key",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a recovery waits to see this session's new signature on the server.
SIGNATURE_WAIT = 15.0

_SECRET_LABELS = {
    CROSS_SIGNING_MASTER: "master key",
    CROSS_SIGNING_SELF_SIGNING: "self-signing key",
    CROSS_SIGNING_USER_SIGNING: "user-signing key",
    MEGOLM_BACKUP_V1: "backup key",
}
_USAGE_ARGUMENT = {
    CROSS_SIGNING_MASTER: "master",
    CROSS_SIGNING_SELF_SIGNING: "self_signing",
    CROSS_SIGNING_USER_SIGNING: "user_signing",
}
_RECOVERY_OFFERED = "recovery_offered"


def _new_storage_key(passphrase: str | None) -> SecretStorageKey:
    return SecretStorageKey.create(passphrase=passphrase)


class Recovery:
    """Recovery of one client (``MatrixClient.recovery``).

    ``new_storage_key(passphrase)`` makes the secret storage key of a setup (tests
    inject a fixed one); ``restore_batch`` is how many backup entries are imported
    per transaction.
    """

    def __init__(
        self,
        core: Core,
        encryption: Encryption,
        backup: KeyBackup,
        devices: DeviceService,
        cross_signing: CrossSigningService,
        secrets: SecretStore,
        *,
        show_decrypted: Callable[[dict[str, dict[str, dict[str, Any]]]], None],
    ) -> None:
        self.core = core
        self.encryption = encryption
        self.backup = backup
        self._devices = devices
        self._signing = cross_signing
        self._secrets = secrets
        self._show_decrypted = show_decrypted
        self.new_storage_key: Callable[[str | None], SecretStorageKey] = _new_storage_key
        self.restore_batch = DEFAULT_RESTORE_BATCH
        #: How long a setup waits for our other sessions to send a backup key it lacks.
        self.secret_wait = 10.0
        #: The last restore's progress (the UI shows it when it opens mid-restore).
        self.progress: KeyRestoreProgress | None = None
        self._busy = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    def in_background(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run a recovery or restore as the engine's own task: closing the dialog that
        started it (or anything else in the UI) does not stop it. Await it with
        :func:`asyncio.shield`; :meth:`stop` cancels it when the client closes."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The progress update already said why; the task's owner may be gone.
            log.info("background restore ended: %s", task.exception())

    def stop(self) -> None:
        """Cancel a recovery or restore under way (the client is closing)."""
        for task in list(self._background):
            task.cancel()

    @property
    def busy(self) -> bool:
        """A setup or restore is under way."""
        return self._busy.locked()

    # -- helpers ------------------------------------------------------------------------

    def _machine(self) -> OlmMachine:
        return self.encryption.require_machine(RecoveryError)

    async def _account_data(self, event_type: str) -> dict[str, Any] | None:
        try:
            answer = await self.core.connection.send(
                api.get_account_data(self.core.user_id, event_type)
            )
        except MatrixError as error:
            if error.status == 404 or error.errcode == "M_NOT_FOUND":
                return None
            raise
        return answer if isinstance(answer, dict) else None

    async def _put_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        await self.core.connection.send(
            api.set_account_data(self.core.user_id, event_type, content)
        )

    def _progress(self, progress: KeyRestoreProgress) -> None:
        self.progress = progress
        self.core.publish(progress)

    async def _cross_signing(self) -> CrossSigningStatus:
        machine = self._machine()
        return await in_transaction(self.encryption, machine.cross_signing_status)

    # -- secret storage -------------------------------------------------------------------

    async def secret_storage(self) -> SecretStorageInfo:
        """The account's default secret storage key, read from the server."""
        key_id = parse_default_key(await self._account_data(DEFAULT_KEY_TYPE))
        if key_id is None:
            return SecretStorageInfo(None, None)
        content = await self._account_data(KEY_TYPE_PREFIX + key_id)
        if content is None:
            return SecretStorageInfo(
                key_id, None, "the default secret storage key's description is missing"
            )
        try:
            return SecretStorageInfo(key_id, KeyDescription.from_content(key_id, content))
        except SecretStorageError as error:
            return SecretStorageInfo(key_id, None, str(error))

    # -- setting up -----------------------------------------------------------------------

    async def _bootstrap(self, *, reset: bool) -> None:
        """Create (or replace) our cross-signing identity and sign this device with it.

        The password, when the server asks for it, comes from ``client.ask_password``.
        """
        try:
            await self._signing.bootstrap(reset=reset)
        except CrossSigningError as error:
            raise RecoveryError(str(error)) from None
        await self.encryption.flush()
        await ensure_own_keys(self.encryption, self._devices)

    async def _ask_for_backup_key(
        self, machine: OlmMachine, version: BackupVersion
    ) -> BackupKey | None:
        """Ask our other sessions for the key of ``version`` and wait a little for it."""
        asked = await in_transaction(
            self.encryption, lambda: machine.request_secret(MEGOLM_BACKUP_V1)
        )
        if asked is None:
            return None
        self.encryption.wake()
        deadline = asyncio.get_running_loop().time() + self.secret_wait
        while True:
            held = await self.backup.held_key()
            if held is not None and held.matches(version):
                return held
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.2)

    async def set_up(
        self,
        passphrase: str | None = None,
        *,
        new_backup: bool = False,
        delete_old_backup: bool = False,
        reset_identity: bool = False,
    ) -> RecoverySetup:
        """Set up (or redo) recovery; returns the new recovery key.

        ``new_backup`` makes a new backup version even if this device holds the
        current one's key (``delete_old_backup`` deletes the old version, and every
        key in it); ``reset_identity`` replaces the cross-signing identity (the
        password is asked through ``client.ask_password``). Raises :class:`RecoveryError`
        when this device cannot vouch for the account's identity.
        """
        async with self._busy:
            machine = self._machine()
            if not await ensure_own_keys(self.encryption, self._devices):
                raise RecoveryError("Your own keys could not be read from the server; try again.")
            status = await self._cross_signing()
            new_identity = False
            if reset_identity or not status.published:
                await self._bootstrap(reset=reset_identity)
                new_identity = True
                status = await self._cross_signing()
            if not (status.has_master and status.has_self_signing and status.has_user_signing):
                raise RecoveryError(
                    "This account's cross-signing identity was set up on another device and this "
                    "device does not hold its keys: restore from your recovery key, or verify this "
                    "device from another one, first (or reset your identity)."
                )
            secrets = await in_transaction(self.encryption, machine.export_cross_signing_keys)
            master = await in_transaction(self.encryption, lambda: master_signer(machine))
            backup = self.backup
            await backup.check()
            held = await backup.held_key()
            current = backup.version
            if (
                not new_backup
                and not reset_identity
                and backup.state == BackupState.ACTIVE
                and current is not None
                and (held is None or not held.matches(current))
            ):
                # A trusted backup we cannot open: making a new one would leave every key in
                # it behind (secret storage would then hold only the new backup's key).
                held = await self._ask_for_backup_key(machine, current)
                if held is None:
                    raise RecoveryError(
                        f"Your account has a key backup (version {current.version}) whose key this "
                        "device does not hold, and your other sessions did not send it. Restore from "
                        "your current recovery key first, or verify this session from one that has "
                        "the key; if the key is lost for good, choose Reset, New key backup (F7)."
                    )
            reuse = (
                not new_backup
                and backup.state == BackupState.ACTIVE
                and current is not None
                and held is not None
                and held.matches(current)
            )
            if reuse and held is not None and current is not None:
                key = held
                version = current
                if new_identity:
                    version = await backup.resign(current, key, master)
            else:
                key = BackupKey.create(machine.backend)
                version = await backup.create(key, master)
                if delete_old_backup and current is not None and current.version != version.version:
                    try:
                        await backup.delete(current.version)
                    except (MatrixError, NetworkError) as error:
                        log.warning("the old backup version could not be deleted: %s", error)
            storage_key = await asyncio.to_thread(self.new_storage_key, passphrase)
            stored = StoredSecrets(
                master_key=secrets.get(CROSS_SIGNING_MASTER),
                self_signing_key=secrets.get(CROSS_SIGNING_SELF_SIGNING),
                user_signing_key=secrets.get(CROSS_SIGNING_USER_SIGNING),
                backup_key=key.to_secret(),
            )
            for write in recovery_setup_writes(storage_key, stored, backup_enabled=True):
                await self._put_account_data(write.event_type, write.content)
            return RecoverySetup(
                recovery_key=storage_key.recovery_key(),
                backup_version=version.version,
                new_backup=not reuse,
                new_identity=new_identity,
                passphrase=passphrase is not None,
            )

    # -- recovering on a new login ------------------------------------------------------------

    async def recover(self, text: str) -> RecoveryResult:
        """Unlock secret storage with ``text`` (recovery key or passphrase); verify this device
        with the cross-signing keys; restore the room keys from the backup.

        A wrong key or passphrase raises :class:`RecoveryError` before anything changes.
        """
        async with self._busy:
            machine = self._machine()
            self._progress(KeyRestoreProgress("unlocking"))
            try:
                info = await self.secret_storage()
                if info.description is None:
                    raise RecoveryError(
                        "This account has no usable secret storage"
                        + (f" ({info.problem})" if info.problem else "")
                        + ": set up recovery on a device that has your keys."
                    )
                description = info.description
                try:
                    storage_key = await asyncio.to_thread(
                        SecretStorageKey.unlock, text, description
                    )
                except RecoveryKeyError as error:
                    raise RecoveryError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from None
                except SecretStorageError as error:
                    raise RecoveryError(
                        f"{str(error)[:1].upper()}{str(error)[1:]}. Nothing was changed."
                    ) from None
                contents = {name: await self._account_data(name) for name in RECOVERY_SECRET_NAMES}
                stored, unreadable = read_recovery_secrets(storage_key, contents)
                problems = [
                    f"the stored {_SECRET_LABELS[name]} is unreadable: {error}"
                    for name, error in unreadable.items()
                ]
                self._progress(KeyRestoreProgress("verifying"))
                imported = await self._import_identity(machine, stored, problems)
                status = await self._cross_signing()
                restore: RestoreSummary | None = None
                if stored.backup_key is None:
                    problems.append("secret storage holds no backup key")
                else:
                    try:
                        key = BackupKey.from_secret(machine.backend, stored.backup_key)
                        restore = await self._restore(key)
                        imported.append(MEGOLM_BACKUP_V1)
                    except (RecoveryError, BackupError) as error:
                        problems.append(str(error))
            except RecoveryError as error:
                self._progress(KeyRestoreProgress("failed", detail=str(error)))
                raise
            except (MatrixError, NetworkError) as error:
                self._progress(KeyRestoreProgress("failed", detail=str(error)))
                raise
            except asyncio.CancelledError:
                self._progress(KeyRestoreProgress("failed", detail="the restore was stopped"))
                raise
            if restore is None:
                self._progress(KeyRestoreProgress("done", detail="; ".join(problems)))
            return RecoveryResult(
                device_verified=status.master_trusted and status.this_device_signed,
                imported=tuple(imported),
                problems=tuple(problems),
                restore=restore,
            )

    async def _import_identity(
        self, machine: OlmMachine, stored: StoredSecrets, problems: list[str]
    ) -> list[str]:
        """Keep the stored cross-signing keys that match our published identity; sign this device."""
        if not await ensure_own_keys(self.encryption, self._devices):
            problems.append("your own keys could not be read from the server")
            return []
        own = await in_transaction(self.encryption, lambda: machine.user_identity(machine.user_id))
        if own is None or own.master_key is None:
            if stored.master_key is not None:
                problems.append("the account has no cross-signing identity on the server")
            return []
        matches = check_cross_signing_secrets(
            machine.backend,
            stored,
            master=own.master_key,
            self_signing=own.self_signing_key,
            user_signing=own.user_signing_key,
        )
        given: dict[str, str] = {}
        for name, ok in matches.items():
            secret = stored.by_name()[name]
            if ok and secret is not None:
                given[_USAGE_ARGUMENT[name]] = secret
            else:
                problems.append(
                    f"the stored {_SECRET_LABELS[name]} does not match your identity on the server "
                    "(it was reset elsewhere?): not used"
                )
        if not given:
            return []
        try:
            await in_transaction(
                self.encryption, lambda: machine.import_cross_signing_keys(**given)
            )
        except CrossSigningError as error:
            problems.append(str(error))
            return []
        # The self-signing key now signs this device: upload that, then read it back (the
        # background request loop may be sending it already: keep looking for a while).
        deadline = asyncio.get_running_loop().time() + SIGNATURE_WAIT
        while True:
            await self.encryption.flush()
            await ensure_own_keys(self.encryption, self._devices)
            status = await self._cross_signing()
            if status.this_device_signed or not status.has_self_signing:
                break
            if asyncio.get_running_loop().time() >= deadline:
                problems.append("the signature of this session was not confirmed by the server yet")
                break
            await asyncio.sleep(0.2)
        self.backup.recheck()
        return [name for name, usage in _USAGE_ARGUMENT.items() if usage in given]

    # -- restoring -----------------------------------------------------------------------------

    async def restore_backup(self, key: BackupKey | None = None) -> RestoreSummary:
        """Restore every room key from the current backup, with ``key`` or the one this device holds."""
        async with self._busy:
            try:
                if key is None:
                    key = await self.backup.held_key()
                    if key is None:
                        raise RecoveryError(
                            "This device does not hold the backup key: enter your recovery key."
                        )
                return await self._restore(key)
            except (RecoveryError, MatrixError, NetworkError, BackupError) as error:
                self._progress(KeyRestoreProgress("failed", detail=str(error)))
                raise
            except asyncio.CancelledError:
                self._progress(KeyRestoreProgress("failed", detail="the restore was stopped"))
                raise

    async def _restore(self, key: BackupKey) -> RestoreSummary:
        machine = self._machine()
        core = self.core
        backup = self.backup
        self._progress(KeyRestoreProgress("downloading"))
        try:
            version = await backup.fetch_version()
        except BackupError as error:
            raise RecoveryError(f"The backup on the server cannot be used: {error}.") from None
        if version is None:
            raise RecoveryError("This account has no key backup on the server.")
        if not key.matches(version):
            raise RecoveryError(
                "The key backup on the server was not made with your backup key (it was replaced, "
                "perhaps by someone else): it is not used."
            )
        # Holding the key that opens it is trust enough (the key came from secret storage
        # unlocked by the user, or from this device).
        await in_transaction(
            self.encryption, lambda: machine.save_secret(MEGOLM_BACKUP_V1, key.to_secret())
        )
        await backup.adopt(version)
        answer = await core.connection.send(api.get_room_keys(version.version))
        total = count_backup_entries(answer)
        self._progress(KeyRestoreProgress("restoring", 0, total))
        batches: Iterator[RestoreBatch] = decrypt_backup(key, answer, batch_size=self.restore_batch)
        imported = redecrypted = 0
        failures: list[RestoreFailure] = []
        encryption = self.encryption
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                break
            failures.extend(batch.failures)
            sessions = batch.sessions

            def work(
                sessions: list[dict[str, Any]] = sessions,
            ) -> tuple[int, dict[str, dict[str, dict[str, Any]]]]:
                result = machine.import_sessions(sessions, origin=KeyOrigin.BACKUP)
                shown = encryption.redecrypt((k.room_id, k.session_id) for k in result.room_keys)
                return result.imported, shown

            if sessions:
                count, shown = await in_transaction(self.encryption, work)
                imported += count
                redecrypted += sum(len(events) for events in shown.values())
                self._show_decrypted(shown)
            self._progress(
                KeyRestoreProgress("restoring", batch.done, total, imported, len(failures))
            )
        for failure in failures:
            log.warning(
                "backup entry %s/%s skipped: %s",
                failure.room_id,
                failure.session_id,
                failure.kind.value,
            )
        summary = RestoreSummary(version.version, total, imported, tuple(failures), redecrypted)
        detail = f"{imported} keys restored" + (
            f", {len(failures)} damaged entries skipped" if failures else ""
        )
        self._progress(KeyRestoreProgress("done", total, total, imported, len(failures), detail))
        await backup.refresh_counts()
        backup.wake()
        return summary

    # -- asking other devices -------------------------------------------------------------------

    async def request_missing_keys(self) -> int:
        """Ask our other devices for every missing room key we know of; returns how many asked."""
        machine = self._machine()
        store = self.encryption.store
        codes = (FailureReason.MISSING_ROOM_KEY.value, FailureReason.UNKNOWN_MESSAGE_INDEX.value)

        def work() -> int:
            asked = 0
            for room_id, session_id in store.undecrypted_sessions(codes):
                if machine.request_room_key(room_id, session_id):
                    asked += 1
            return asked

        asked = await in_transaction(self.encryption, work)
        self.encryption.wake()
        return asked

    # -- health ----------------------------------------------------------------------------------

    async def health(self, *, check_backup: bool = True) -> EncryptionHealth:
        """The state of encryption on this device and the account (reads the server)."""
        core = self.core
        machine = self.encryption.machine
        backup = self.backup
        if machine is None:
            return EncryptionHealth(
                available=False,
                error=self.encryption.error,
                user_id=core.user_id,
                device_id=core.device_id,
                cross_signing=None,
                secret_storage=False,
                secret_storage_passphrase=False,
                secrets_cached=(),
                backup=BackupStatus(BackupState.OFF),
                one_time_keys=None,
                keyring_warning=self._secrets.warning,
                crypto_backend=self.encryption.backend_name,
            )
        if check_backup:
            try:
                await backup.check()
            except (MatrixError, NetworkError) as error:
                backup.state = BackupState.UNREACHABLE
                backup.detail = f"The backup could not be checked: {error}"
        try:
            storage = await self.secret_storage()
        except (MatrixError, NetworkError):
            cached = await core.db.run(core.cache.account_data, DEFAULT_KEY_TYPE)
            storage = SecretStorageInfo(parse_default_key(cached), None)
        store = self.encryption.store

        def read() -> tuple[
            CrossSigningStatus, list[str], int | None, list[tuple[str, int, int]], tuple[int, int]
        ]:
            account = store.load_account()
            otks = account.get("uploaded_otk_count") if account else None
            return (
                machine.cross_signing_status(),
                machine.secret_names(),
                otks if isinstance(otks, int) else None,
                store.undecrypted_summary(),
                store.count_inbound_group_sessions(),
            )

        status, names, otks, summary, counts = await in_transaction(self.encryption, read)
        backup.counts = counts
        return EncryptionHealth(
            available=True,
            error=None,
            user_id=core.user_id,
            device_id=core.device_id,
            cross_signing=status,
            secret_storage=storage.exists or storage.key_id is not None,
            secret_storage_passphrase=storage.has_passphrase,
            secrets_cached=tuple(names),
            backup=backup.status(),
            one_time_keys=otks,
            undecryptable=tuple(
                undecryptable_group(code, events, sessions) for code, events, sessions in summary
            ),
            keyring_warning=self._secrets.warning,
            crypto_backend=self.encryption.backend_name,
        )

    # -- suggestions after the first sync -----------------------------------------------------

    async def suggest(self) -> None:
        """After the first check: offer a restore to an unverified device of an account with
        secret storage (once per device), or nudge an account with encrypted rooms and no backup."""
        core = self.core
        machine = self.encryption.machine
        if machine is None:
            return
        has_storage = await core.db.run(core.cache.account_data, DEFAULT_KEY_TYPE) is not None
        status = await self._cross_signing()
        verified = status.master_trusted and status.this_device_signed
        if has_storage and not verified:
            if await core.db.run(core.cache.get_meta, _RECOVERY_OFFERED) is None:
                await core.db.run(core.cache.set_meta, _RECOVERY_OFFERED, "1")
                core.publish(
                    RecoverySuggested(
                        "restore",
                        "This account has secret storage. Enter your recovery key (or passphrase) to "
                        "verify this device and read your encrypted history; or verify it from "
                        "another of your devices.",
                    )
                )
            return
        encrypted = any(s.encrypted and s.membership == "join" for s in core.rooms.values())
        if not has_storage and self.backup.state == BackupState.NONE and encrypted:
            await say_once(
                core,
                "no_backup",
                "info",
                "Your encrypted messages are not backed up: set up recovery (Ctrl+P, "
                '"Set up recovery", or F7) to read them on a new device.',
            )
