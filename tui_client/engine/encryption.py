"""End-to-end encryption for one client: drives the crypto machine, the engine's side.

The :class:`~tui_client.crypto.machine.OlmMachine` is sans-I/O and keeps all its
state in the cache's crypto tables. This module runs it the way it must be run:

- every machine call happens on the database thread inside a transaction; during
  sync, inside the very transaction that stores the batch and its ``next_batch``
  (:meth:`Encryption.ingest_hook`), so a crash never loses a room key;
- the requests it wants sent (key upload, device queries, one-time key claims,
  to-device messages) are sent by :meth:`Encryption.run` after each commit, and
  marked sent in a new transaction;
- encrypted events are decrypted as they are stored; those that cannot be are kept
  with their reason and retried the moment a key for their session arrives;
- sending to an encrypted room shares the room key with every device of every
  member who may read the message, then encrypts (:meth:`Encryption.encrypt`).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..crypto import BACKENDS, load_backend
from ..crypto.errors import CryptoStoreMismatch, EncryptionError
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.events import ENCRYPTION_INFO
from ..protocol.sync import SyncBatch
from ..store.crypto_store import SqliteCryptoStore
from .decryption_forms import TRUST_LABELS, failure_text, with_failure
from .storage import StorageHealth, StorageUnavailable
from .updates import CryptoStoreUpgrade, Notice

if TYPE_CHECKING:
    # The crypto types, requests and verification constants are imported where first used
    # (issue 13: the first painted room list needs none of them).
    from ..crypto import (
        CryptoStore,
        DecryptedEvent,
        EncryptionSettings,
        OlmMachine,
        OutgoingRequest,
    )
    from ..crypto.types import MachineConfig, RequestOutcome
    from .core import Core
    from .secrets import SecretStore

__all__ = [
    "BACKEND_ENV",
    "CryptoResult",
    "Encryption",
    "chosen_backend",
    "configure_backend",
    "failure_text",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Event = dict[str, Any]

MEGOLM = "m.megolm.v1.aes-sha2"


#: How long moving a python-olm store to vodozemac may take before the user is told
#: (:class:`CryptoStoreUpgrade`), and how often its progress is looked at, in seconds.
UPGRADE_NOTICE_AFTER = 0.3
UPGRADE_POLL = 0.1

#: The environment variable that picks the crypto backend (wins over the config file).
BACKEND_ENV = "TUI_CLIENT_CRYPTO_BACKEND"
_configured_backend: str | None = None


def configure_backend(name: str | None) -> None:
    """The backend the config file names (``[encryption] backend``); set once at start."""
    global _configured_backend
    _configured_backend = name


def chosen_backend(explicit: str | None = None) -> str:
    """The crypto backend a client opens with: ``explicit`` (the API's ``crypto_backend``),
    else ``$TUI_CLIENT_CRYPTO_BACKEND``, else the config file's, else ``vodozemac``.

    Not checked here: an unknown name turns encryption off with the reason when the
    machine opens (:meth:`Encryption.open`), rather than failing the whole client.
    """
    return explicit or os.environ.get(BACKEND_ENV, "").strip() or _configured_backend or "vodozemac"


@dataclass(slots=True)
class CryptoResult:
    """What the crypto step of a committed sync batch changed, for the engine to show."""

    clear: dict[str, dict[str, Event]] = field(
        default_factory=dict
    )  # room -> event_id -> shown form
    redecrypted: dict[str, dict[str, Event]] = field(default_factory=dict)
    to_device: list[Any] = field(default_factory=list)
    secrets: list[Any] = field(default_factory=list)
    #: Room keys the batch brought (new or improved): the key backup uploads them.
    room_keys: int = 0
    #: Verification flows the batch changed (to-device and in-room events).
    verifications: list[Any] = field(default_factory=list)


class Encryption:
    """The crypto machine of one logged-in client, run on the client's database thread."""

    def __init__(
        self,
        core: Core,
        secrets: SecretStore,
        *,
        fetch_members: Callable[[str], Awaitable[object]],
        clock: Callable[[], int] | None = None,
        backend: str | None = None,
        storage: StorageHealth | None = None,
    ) -> None:
        self.core = core
        #: Whether the cache can be written: the request loop waits for it (a full disk).
        self._storage = storage
        self._secrets = secrets
        self._fetch_members = fetch_members
        #: The machine's time (the server's, engine/server_clock.py); ``None``: local time.
        self._clock = clock
        #: ``olm`` or ``vodozemac`` (see :func:`chosen_backend`); F7's report names it.
        self.backend_name = chosen_backend(backend)
        self.machine: OlmMachine | None = None
        self.store: SqliteCryptoStore = core.cache.crypto_store()
        self.error: str | None = None
        #: The key that seals this device's crypto state (set once the machine is open).
        self.pickle_key: bytes | None = None
        #: Share room keys only with verified devices (the account's setting, engine/devices.py).
        self.only_verified = False
        #: The machine's tunables (tests shorten the verification timeouts); read by :meth:`open`.
        self.config: MachineConfig | None = None
        #: Called on the database thread after each pickle the store's move to vodozemac
        #: rewrote (tests hold the move there); see :meth:`open`.
        self.migration_step: Callable[[str], None] | None = None
        #: Called with each request the loop sent and what marking it sent changed.
        self.outcome_listeners: list[Callable[[OutgoingRequest, RequestOutcome], None]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[str] = set()
        # Set (and replaced) each time a request is marked sent or failed.
        self._settled = asyncio.Event()
        #: How long a room key share waits for a ``/keys/claim`` in flight for one of its
        #: devices (a claim's own time limit: 30 s, the server's 10 s, 15 s of grace).
        self.claim_wait = 60.0
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._members_fetched: set[str] = set()
        #: Set once :meth:`open` ended (machine open, or encryption off with :attr:`error`).
        self._opened = asyncio.Event()
        #: The client opens the machine after the first paint (:meth:`expect_open`): until
        #: then :meth:`ready` waits rather than answer "not available".
        self._open_expected = False

    # -- transactions on the database thread ------------------------------------------

    def _transaction(self, work: Callable[[], T]) -> T:
        cache = self.core.cache
        cache.begin()
        try:
            result = work()
        except BaseException:
            cache.rollback()
            raise
        cache.commit()
        return result

    async def _run(self, work: Callable[[], T]) -> T:
        return await self.core.db.run(self._transaction, work)

    async def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` (machine calls) on the database thread, in a transaction of its own."""
        return await self._run(work)

    def expect_open(self) -> None:
        """The machine will be opened soon (after the room list is painted): :meth:`ready` waits."""
        self._open_expected = True

    @property
    def open_expected(self) -> bool:
        """Whether the client said it will open the machine (:meth:`expect_open`)."""
        return self._open_expected

    async def ready(self) -> None:
        """Wait until :meth:`open` ended, if it is expected; at once otherwise.

        Sending to an encrypted room and decrypting fetched history wait here, so a
        message typed in the moment between the first paint and the machine's opening
        is encrypted, never refused or sent in clear."""
        if self._open_expected and not self._opened.is_set():
            await self._opened.wait()

    @property
    def stored_forms_readable(self) -> bool:
        """Whether the decrypted forms stored in the cache may be shown (:meth:`shown_forms`
        needs only the store): the machine is open, or not yet opened (the first paint
        comes before it) and no error turned encryption off."""
        return self.machine is not None or self.error is None

    @property
    def available(self) -> bool:
        """True when the machine is running (the pickle key unlocked its state)."""
        return self.machine is not None

    def _machine(self) -> OlmMachine:
        return self.require_machine()

    def require_machine(self, error: type[Exception] = EncryptionError) -> OlmMachine:
        """The machine; raises ``error`` saying why when encryption is not available."""
        if self.machine is None:
            raise error(self.error or "End-to-end encryption is not available.")
        return self.machine

    # -- start --------------------------------------------------------------------------

    def _pickle_key(self) -> bytes:
        secrets_store = self._secrets
        stored = secrets_store.get("pickle_key")
        if stored:
            return base64.b64decode(stored)
        if self.store.load_account() is not None:
            raise CryptoStoreMismatch(
                "the key that unlocks this device's encryption keys is missing"
            )
        key = secrets.token_bytes(32)
        secrets_store.set("pickle_key", base64.b64encode(key).decode())
        return key

    async def open(self) -> None:
        """Create or unlock the machine; track the members of encrypted rooms."""
        try:
            await self._open()
        finally:
            self._opened.set()

    async def _open(self) -> None:
        from ..crypto.migration import PickleFormatError, prepare_store

        try:
            key = self._pickle_key()
            backend = load_backend(self.backend_name)
            core = self.core
            # The SQLite store returns plain dicts of the records' shape; the store
            # conformance suite (tests/store/test_crypto_store.py) is what holds it to that.
            store = cast("CryptoStore", self.store)

            migrated: list[int] = []

            def step(kind: str) -> None:
                migrated.append(1)
                if self.migration_step is not None:
                    self.migration_step(kind)

            def build() -> OlmMachine:
                from ..crypto.machine import OlmMachine

                # A python-olm store is moved to vodozemac's format first, in the same
                # transaction: killed half-way, it is still the store it was.
                prepare_store(store, backend, key, step=step)
                return OlmMachine(
                    core.user_id,
                    core.device_id,
                    store,
                    backend,
                    pickle_key=key,
                    config=self.config,
                    clock=self._clock,
                )

            self.machine = await self._with_upgrade_notice(self._run(build), migrated)
            self.pickle_key = key
        except (CryptoStoreMismatch, PickleFormatError, ValueError) as error:
            self.error = f"End-to-end encryption is off: {error}."
            log.error("encryption unavailable: %s", error)
            if isinstance(error, PickleFormatError):
                advice = (
                    " Open it with vodozemac, the default crypto backend"
                    f' ([encryption] backend = "vodozemac" in the config file, and no {BACKEND_ENV}).'
                )
            elif self.backend_name not in BACKENDS:
                # A misspelt $TUI_CLIENT_CRYPTO_BACKEND: the keys are fine, the name is not.
                advice = f" Set {BACKEND_ENV} to vodozemac or olm, or unset it."
            else:
                advice = " Log out and in again to start afresh."
            self.core.publish(Notice("error", self.error + advice))
            return
        encrypted = [
            room_id
            for room_id, summary in self.core.rooms.items()
            if summary.encrypted and summary.membership == "join"
        ]
        await self._run(lambda: self._track_rooms(encrypted))
        self.wake()

    async def _with_upgrade_notice(self, opening: Awaitable[T], migrated: list[int]) -> T:
        """Await ``opening``; if moving the store to vodozemac takes over
        :data:`UPGRADE_NOTICE_AFTER` seconds, say so (:class:`CryptoStoreUpgrade`, its
        count growing), then say when it is done: a big store takes seconds, and the
        client must not look frozen meanwhile."""
        task = asyncio.ensure_future(opening)
        started = time.monotonic()
        said = -1
        while True:
            done, _ = await asyncio.wait({task}, timeout=UPGRADE_POLL)
            if done:
                break
            moved = len(migrated)
            if moved and moved != said and time.monotonic() - started >= UPGRADE_NOTICE_AFTER:
                said = moved
                self.core.publish(CryptoStoreUpgrade(moved, done=False))
        result = task.result()
        if said >= 0:
            self.core.publish(CryptoStoreUpgrade(len(migrated), done=True))
        return result

    def _track_rooms(self, room_ids: Iterable[str]) -> None:
        machine = self._machine()
        for room_id in room_ids:
            machine.update_tracked_users(self._member_ids(room_id))

    def _member_ids(self, room_id: str, *, invited: bool = True) -> list[str]:
        users = []
        for event in self.core.cache.load_state(room_id, "m.room.member"):
            content = event.get("content")
            membership = content.get("membership") if isinstance(content, dict) else None
            if membership == "join" or (invited and membership == "invite"):
                user = event.get("state_key")
                if isinstance(user, str):
                    users.append(user)
        return users

    # -- the sync hook (database thread, inside the batch's transaction) ---------------

    def ingest_hook(
        self, batch: SyncBatch, into: CryptoResult | None = None, *, head: bool = True
    ) -> CryptoResult:
        """Feed a sync batch to the machine and decrypt its events (same transaction).

        A response ingested in slices (engine/sync_ingest.py) feeds the machine with its
        first slice only (``head``: to-device events, device lists, key counts, the
        older events the new keys open); every slice decrypts its own rooms' events, all
        gathered ``into`` one result. The clear forms are written together at the end
        (``batched_forms``), still in the batch's transaction.
        """
        with self.store.batched_forms():
            return self._ingest(batch, into, head)

    def _ingest(self, batch: SyncBatch, into: CryptoResult | None, head: bool) -> CryptoResult:
        machine = self.machine
        result = CryptoResult() if into is None else into
        if machine is None:
            return result
        sessions: list[tuple[str, str]] = []
        if head:
            changes = machine.receive_sync_changes(
                batch.to_device,
                batch.device_lists_changed,
                batch.device_lists_left,
                batch.one_time_keys_count or None,
                batch.unused_fallback_key_types,
            )
            result.to_device.extend(changes.to_device_events)
            result.secrets.extend(changes.secrets)
            result.verifications.extend(changes.verifications)
            result.room_keys += len(changes.room_keys)
            sessions = [(key.room_id, key.session_id) for key in changes.room_keys]
            sessions += [
                (w.room_id, w.session_id) for w in changes.withheld if w.room_id and w.session_id
            ]
        for room in batch.joined:
            self._room_membership(
                machine, room.room_id, [*room.state, *room.timeline], room.limited
            )
            for event in room.timeline:
                if event.get("type") == "m.room.encrypted":
                    shown = self._decrypt_and_store(machine, event, room.room_id)
                    if shown is not None:
                        result.clear.setdefault(room.room_id, {})[event["event_id"]] = shown
        redecrypted: dict[str, dict[str, Event]] = {}
        for event_id, room_id, data in self.store.undecrypted_for_sessions(sessions):
            shown = self._decrypt_and_store(machine, json.loads(data), room_id)
            if shown is not None:
                redecrypted.setdefault(room_id, {})[event_id] = shown
        for room_id, events in redecrypted.items():
            result.redecrypted.setdefault(room_id, {}).update(events)
        self._feed_verifications(machine, batch, redecrypted, result)
        return result

    @staticmethod
    def _feed_verifications(
        machine: OlmMachine,
        batch: SyncBatch,
        redecrypted: dict[str, dict[str, Event]],
        result: CryptoResult,
    ) -> None:
        """In-room verification events (decrypted forms, our own echoes too) to the machine."""
        for room in batch.joined:
            shown = result.clear.get(room.room_id, {})
            for event in room.timeline:
                if event.get("type") == "m.room.encrypted":
                    event = shown.get(event.get("event_id", ""), event)
                if is_verification_event(event):
                    result.verifications.extend(
                        machine.receive_room_verification_event(room.room_id, event)
                    )
        for room_id, events in redecrypted.items():
            for event in events.values():
                if is_verification_event(event):
                    result.verifications.extend(
                        machine.receive_room_verification_event(room_id, event)
                    )

    def _room_membership(
        self, machine: OlmMachine, room_id: str, events: list[Event], limited: bool
    ) -> None:
        summary = self.core.rooms.get(room_id)
        became_encrypted = any(e.get("type") == "m.room.encryption" for e in events)
        if not became_encrypted and (summary is None or not summary.encrypted):
            return
        if became_encrypted:
            machine.update_tracked_users(self._member_ids(room_id))
        joined: list[str] = []
        for event in events:
            if event.get("type") != "m.room.member" or not isinstance(event.get("state_key"), str):
                continue
            content = event.get("content")
            membership = content.get("membership") if isinstance(content, dict) else None
            if membership in ("join", "invite"):
                joined.append(event["state_key"])
            elif event["state_key"] != self.core.user_id:
                # Someone left or was removed: what follows must use a new key.
                machine.invalidate_group_session(room_id)
        if limited:
            machine.invalidate_group_session(room_id)
        if joined:
            machine.update_tracked_users(joined)

    def _decrypt_and_store(self, machine: OlmMachine, event: Event, room_id: str) -> Event | None:
        event_id = event.get("event_id")
        if not isinstance(event_id, str):
            return None
        unsigned = event.get("unsigned")
        if isinstance(unsigned, dict) and "redacted_because" in unsigned:
            return None
        from ..crypto.types import DecryptedEvent

        outcome = machine.decrypt_room_event(event, room_id)
        session_id = outcome.session_id or ""
        if isinstance(outcome, DecryptedEvent):
            shown = self._shown_form(event, outcome)
            self.store.save_decrypted(
                event_id, room_id, session_id, shown, shown["unsigned"][ENCRYPTION_INFO]
            )
            return shown
        text = failure_text(outcome)
        self.store.save_undecrypted(event_id, room_id, session_id, outcome.reason.value, text)
        return with_failure(event, outcome.reason.value, text)

    @staticmethod
    def _shown_form(event: Event, decrypted: DecryptedEvent) -> Event:
        shown = decrypted.as_event(event)
        unsigned = dict(event.get("unsigned") or {})
        unsigned[ENCRYPTION_INFO] = {
            "trust": TRUST_LABELS.get(decrypted.trust, str(decrypted.trust)),
            "session_id": decrypted.session_id,
            "device_id": decrypted.sender_device_id,
        }
        shown["unsigned"] = unsigned
        return shown

    # -- reading: the shown form of stored events (database thread) --------------------

    def shown_forms(self, events: list[Event]) -> dict[str, Event]:
        """For stored ``m.room.encrypted`` events: their decrypted or explained form."""
        ids = [
            e["event_id"]
            for e in events
            if e.get("type") == "m.room.encrypted" and isinstance(e.get("event_id"), str)
        ]
        if not ids:
            return {}
        clear = self.store.decrypted(ids)
        failed = self.store.undecrypted(ids)
        shown: dict[str, Event] = {}
        for event in events:
            event_id = event.get("event_id")
            if event_id in clear:
                shown[event_id] = clear[event_id][0]
            elif event_id in failed:
                code, reason = failed[event_id]
                shown[event_id] = with_failure(event, code, reason)
        return shown

    def fetched_forms(self, room_id: str, events: list[Event]) -> dict[str, Event]:
        """For ``m.room.encrypted`` events fetched outside sync (``/relations``, ``/threads``):
        their shown form, decrypting (and storing, so a late key mends them) those not
        decrypted before. Database thread.

        Those that failed before are tried again: their key may have come while the event
        was not in the cache (sliding sync sends a room's older events again, and the ones
        the cache cannot place yet are decrypted but not stored), and a key is retried
        only over stored events, so nothing else would mend them.

        Before the machine is open (the first paint): the forms stored in the cache."""
        machine = self.machine
        if machine is None:
            return self.shown_forms(events) if self.stored_forms_readable else {}
        shown = self.shown_forms(events)
        failed = self.store.undecrypted(list(shown))
        missing = [
            e
            for e in events
            if e.get("type") == "m.room.encrypted"
            and isinstance(e.get("event_id"), str)
            and (e["event_id"] not in shown or e["event_id"] in failed)
        ]
        if missing:

            def work() -> dict[str, Event]:
                found: dict[str, Event] = {}
                with self.store.batched_forms():
                    for event in missing:
                        form = self._decrypt_and_store(machine, event, room_id)
                        if form is not None:
                            found[event["event_id"]] = form
                return found

            shown.update(self._transaction(work))
        return shown

    # -- the request loop --------------------------------------------------------------

    def wake(self) -> None:
        """Send what the machine has queued (after a commit)."""
        self._wake.set()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send the machine's requests whenever woken, until stopped."""
        failures = 0
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping or self.machine is None:
                continue
            try:
                await self.flush()
                failures = 0
            except (MatrixError, NetworkError) as error:
                failures += 1
                log.warning("encryption requests failed: %s", error)
                await asyncio.sleep(min(30.0, 2.0**failures))
                self._wake.set()
            except StorageUnavailable as error:
                # The cache cannot be written (a full disk): the machine's requests are
                # tried again once it can, instead of every few seconds in vain.
                log.warning("encryption requests wait: %s", error)
                if self._storage is not None:
                    await self._storage.wait_writable()
                else:
                    await asyncio.sleep(5.0)
                self._wake.set()
            except Exception:
                log.exception("encryption request loop error")
                await asyncio.sleep(5.0)

    async def flush(self, rounds: int = 5) -> None:
        """Send every queued request (a few rounds: answers can queue more)."""
        machine = self._machine()
        for _ in range(rounds):
            requests = [
                r
                for r in await self._run(machine.outgoing_requests)
                if r.request_id not in self._in_flight
            ]
            if not requests:
                return
            for request in requests:
                await self._send(request)

    async def _send(self, request: OutgoingRequest) -> None:
        from ..crypto.requests import KeysClaimRequest, ToDeviceRequest

        machine = self._machine()
        self._in_flight.add(request.request_id)
        try:
            try:
                answer = await self.core.connection.send(request.to_http())
            except MatrixError as error:
                permanent = not error.is_transient and isinstance(
                    request, ToDeviceRequest | KeysClaimRequest
                )
                await self._run(
                    lambda: machine.mark_request_as_failed(request.request_id, permanent=permanent)
                )
                if error.is_transient:
                    raise
                log.warning("request %s refused: %s", type(request).__name__, error)
                return
            except NetworkError:
                await self._run(lambda: machine.mark_request_as_failed(request.request_id))
                raise
            outcome = await self._run(
                lambda: machine.mark_request_as_sent(
                    request.request_id, answer if isinstance(answer, dict) else {}
                )
            )
        finally:
            self._in_flight.discard(request.request_id)
            self._settled.set()
            self._settled = asyncio.Event()
        for listener in list(self.outcome_listeners):
            try:
                listener(request, outcome)
            except Exception:
                log.exception("request outcome listener failed")
        for warning in outcome.warnings:
            self.core.publish(Notice("warning", f"Encryption: {warning.message}"))

    # -- sending -----------------------------------------------------------------------

    def _lock(self, room_id: str) -> asyncio.Lock:
        return self._room_locks.setdefault(room_id, asyncio.Lock())

    async def _recipients(self, room_id: str) -> tuple[list[str], EncryptionSettings]:
        from ..crypto.types import EncryptionSettings

        if room_id not in self._members_fetched:
            await self._fetch_members(room_id)
            self._members_fetched.add(room_id)

        def read() -> tuple[list[str], EncryptionSettings]:
            cache = self.core.cache
            state = {
                e.get("type"): e.get("content")
                for e in cache.load_state(room_id)
                if e.get("state_key") == ""
            }
            visibility = state.get("m.room.history_visibility") or {}
            history = visibility.get("history_visibility") if isinstance(visibility, dict) else None
            encryption = state.get("m.room.encryption")
            settings = EncryptionSettings.from_state(
                encryption if isinstance(encryption, dict) else {"algorithm": MEGOLM},
                history_visibility=history if isinstance(history, str) else None,
                only_verified=self.only_verified,
            )
            # Invited members may read from their invitation unless history is "joined" only.
            users = self._member_ids(room_id, invited=history != "joined")
            return users, settings

        return await self.core.db.run(read)

    async def encrypt(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        only_verified: bool | None = None,
    ) -> dict[str, Any]:
        """Share the room key as needed and encrypt one event for ``room_id``.

        ``only_verified`` overrides the account's setting (verification messages must
        reach the very device being verified).
        """
        machine = self._machine()
        async with self._lock(room_id):
            users, settings = await self._recipients(room_id)
            if only_verified is not None and only_verified != settings.only_verified:
                settings = dataclasses.replace(settings, only_verified=only_verified)
            await self._run(lambda: machine.update_tracked_users(users))
            for _ in range(100):
                if not await self._run(lambda: machine.outdated_users(users)):
                    break
                await self.flush()
                if self._in_flight:
                    # The request loop is sending the query itself (flush skips what is in
                    # flight): wait for its answer rather than share with stale device lists.
                    await asyncio.sleep(0.05)
            await self._claim_sessions(machine, users)
            last_error: EncryptionError | None = None
            for _ in range(3):
                shares = await self._run(lambda: machine.share_room_key(room_id, users, settings))
                for share in shares:
                    await self._send(share)
                try:
                    return await self._run(
                        lambda: machine.encrypt_room_event(room_id, event_type, content)
                    )
                except EncryptionError as error:
                    last_error = error
            raise last_error or EncryptionError("could not share the room key")

    async def _claim_sessions(self, machine: OlmMachine, users: list[str]) -> None:
        """Claim the Olm sessions ``users``' devices lack, and wait for the claims already
        in flight for them (another room encrypting at once, the request loop's unwedging
        claim): a device whose claim is in flight is not claimed again, and a room key
        shared before that claim's answer would go without it, unreadable there for good
        (issue 19). A claim lost on the way is made again; after :attr:`claim_wait` a claim
        nobody is sending any more (its sender was cancelled) counts as lost."""
        deadline = time.monotonic() + self.claim_wait
        gave_up = False
        claims = 0
        while claims < 10:  # a claim of ours settles (sent, refused or raised) each time
            settled = self._settled
            claim = await self._run(lambda: machine.get_missing_sessions(users))
            if claim is not None:
                claims += 1
                await self._send(claim)
                continue
            awaited = await self._run(lambda: machine.claims_awaited(users))
            left = deadline - time.monotonic()
            if not awaited:
                return
            if left <= 0:
                lost = set(awaited) - self._in_flight
                if gave_up or not lost:
                    return  # still in flight: shared without those devices, no m.no_olm
                gave_up = True
                log.warning("key claims %s never settled: claiming again", sorted(lost))
                for request_id in lost:
                    await self._run(functools.partial(machine.mark_request_as_failed, request_id))
                continue
            self.wake()  # the request loop sends a claim it queued, if it has not yet
            try:
                await asyncio.wait_for(settled.wait(), timeout=min(left, 1.0))
            except TimeoutError:
                pass

    # -- key export and import ---------------------------------------------------------

    async def export_keys(self, path: Path, passphrase: str, room_id: str | None = None) -> int:
        """Write the room keys to a file in the standard export format; returns how many."""
        machine = self._machine()
        text = await self._run(lambda: machine.export_room_keys(passphrase, room_id=room_id))
        count = len(await self._run(lambda: machine.export_sessions(room_id)))
        await asyncio.to_thread(_write_private, path, text)
        return count

    async def import_keys(
        self, path: Path, passphrase: str
    ) -> tuple[int, int, dict[str, dict[str, Event]]]:
        """Import a key export file; returns (total, imported, events decrypted thanks to it)."""
        machine = self._machine()
        text = await asyncio.to_thread(path.read_text)

        def work() -> tuple[int, int, dict[str, dict[str, Event]]]:
            result = machine.import_room_keys(text, passphrase)
            redecrypted = self.redecrypt((k.room_id, k.session_id) for k in result.room_keys)
            return result.total, result.imported, redecrypted

        return await self._run(work)

    def redecrypt(self, sessions: Iterable[tuple[str, str]]) -> dict[str, dict[str, Event]]:
        """Decrypt again the stored events waiting for these ``(room_id, session_id)`` keys.

        Database thread, inside the transaction that brought the keys. Returns room ->
        event ID -> shown form, for :meth:`MatrixClient._show_decrypted`.
        """
        machine = self._machine()
        redecrypted: dict[str, dict[str, Event]] = {}
        with self.store.batched_forms():
            for event_id, room_id, data in self.store.undecrypted_for_sessions(list(sessions)):
                shown = self._decrypt_and_store(machine, json.loads(data), room_id)
                if shown is not None:
                    redecrypted.setdefault(room_id, {})[event_id] = shown
        return redecrypted


#: What every verification event type (and the request's ``msgtype``) starts with.
_VERIFICATION_PREFIX = "m.key.verification."


def is_verification_event(event: Event) -> bool:
    """An ``m.key.verification.*`` room event, or an in-room verification request.

    This runs for every timeline event of a sync (35,000 in a first sync of 1,000 rooms):
    anything without the prefix is answered before the import (of the verification
    model, lazy for start-up; an import statement costs ~1 us a call)."""
    event_type = event.get("type")
    if event_type == "m.room.message":
        content = event.get("content")
        msgtype = content.get("msgtype") if isinstance(content, dict) else None
        if not isinstance(msgtype, str) or not msgtype.startswith(_VERIFICATION_PREFIX):
            return False
        from ..crypto.verification.model import REQUEST_MSGTYPE

        return msgtype == REQUEST_MSGTYPE
    if not isinstance(event_type, str) or not event_type.startswith(_VERIFICATION_PREFIX):
        return False
    from ..crypto.verification.model import VERIFICATION_EVENT_TYPES

    return event_type in VERIFICATION_EVENT_TYPES


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
