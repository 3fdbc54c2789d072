"""Interactive verification (SAS: emoji and decimals; QR codes), the engine's side.

The crypto machine runs the flows (``tui_client.crypto.verification``); this service
drives it for one client and tells the listeners what changed:

- starting flows: our other devices (to-device), another user in our DM with them
  (in-room), or one device of another user (to-device); accepting, starting SAS,
  confirming, reporting a mismatch, cancelling;
- events from sync reach the machine inside the batch's transaction
  (:meth:`~tui_client.engine.encryption.Encryption.ingest_hook`); the flows they
  changed come here (:meth:`VerificationService.on_sync`);
- to-device messages go out with the machine's other requests (the encryption
  request loop); room messages are sent here, encrypted in encrypted rooms (to every
  device of the room, verified or not: the device being verified is not yet), in
  order within each room (one waiting to be retried holds back those after it);
- a timer expires flows while any is active;
- every change is published as :class:`~tui_client.engine.updates.VerificationChanged`
  with the flow's snapshot. A flow that ends verified refreshes the trust the UI shows,
  and the machine's follow-ups (signature uploads, secret requests) are sent.

When we asked and the other side accepted, SAS is started by itself (unless the other
side can scan our QR code: then the code is shown, and SAS is a button away)
(:attr:`VerificationService.auto_start`), waiting for the other device's keys if
they are still being fetched; starting it again once under way is nothing to do.
Accepting a request waits for the other device's keys too (their start may follow at
once). Flows live in memory: they do not survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..crypto import EncryptionError
from ..crypto.requests import RoomMessageRequest
from ..crypto.verification import (
    QR_SHOW_METHOD,
    CancelCode,
    Verification,
    VerificationError,
    VerificationState,
)
from ..protocol import requests as api
from ..protocol.commands import CommandError
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.ids import is_user_id
from .updates import VerificationChanged

if TYPE_CHECKING:
    from ..crypto import OlmMachine
    from .core import Core
    from .devices import DeviceService
    from .encryption import Encryption

__all__ = ["VerificationService"]

log = logging.getLogger(__name__)

_ACTIVE_STATES = frozenset(
    s for s in VerificationState if s not in (VerificationState.DONE, VerificationState.CANCELLED)
)
# SAS started (by either side) or over: starting it again is nothing to do.
_SAS_UNDERWAY = frozenset(
    {
        VerificationState.STARTED,
        VerificationState.KEYS_EXCHANGED,
        VerificationState.CONFIRMED,
        VerificationState.WAITING_FOR_DONE,
        VerificationState.DONE,
    }
)


class VerificationService:
    """See the module documentation."""

    #: Start SAS as soon as the other side accepted our request.
    auto_start = True
    #: Seconds between expiry checks while a flow is active.
    tick_seconds = 1.0
    #: Seconds to wait for the other device's keys before SAS can start.
    keys_timeout = 20.0

    def __init__(
        self,
        core: Core,
        encryption: Encryption,
        devices: DeviceService,
        *,
        cross_signing_changed: Callable[[], None],
        create_dm: Callable[[str], Awaitable[str]],
        wait_for_room: Callable[..., Awaitable[bool]],
    ) -> None:
        self.core = core
        self.encryption = encryption
        self._devices = devices
        self._cross_signing_changed = cross_signing_changed
        self._create_dm = create_dm
        self._wait_for_room = wait_for_room
        self.flows: dict[str, Verification] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._send_lock = asyncio.Lock()
        self._retry_at: dict[str, float] = {}
        self._auto_started: set[str] = set()
        self._auto_starting: set[str] = set()
        self._stopped = False

    # -- reading ----------------------------------------------------------------------

    def get(self, verification_id: str) -> Verification | None:
        """The latest snapshot of a flow."""
        return self.flows.get(verification_id)

    def active(self) -> list[Verification]:
        """Unfinished flows, oldest first."""
        return sorted(
            (v for v in self.flows.values() if not v.is_final), key=lambda v: v.created_ms
        )

    def incoming(self) -> list[Verification]:
        """Requests waiting for the user's answer (accept or decline), oldest first."""
        return [v for v in self.active() if v.state is VerificationState.INCOMING]

    def auto_starting(self, verification_id: str) -> bool:
        """SAS is being started by itself on this flow (:attr:`auto_start`): no need to ask."""
        return verification_id in self._auto_starting

    def _machine(self) -> OlmMachine:
        return self.encryption.require_machine(VerificationError)

    # -- starting flows ---------------------------------------------------------------

    async def verify_own_devices(self, device_ids: Iterable[str] | None = None) -> Verification:
        """Ask our other devices (all, or ``device_ids``) to verify this one, to-device."""
        machine = self._machine()
        me = self.core.user_id
        await self._devices.await_queried([me])
        targets = None if device_ids is None else list(device_ids)
        if targets is None:
            known = await self.encryption.call(lambda: machine.get_user_devices(me))
            targets = [d.device_id for d in known if d.device_id != self.core.device_id]
            if not targets:
                raise VerificationError("you have no other session to verify with")
        chosen = targets
        return await self._act(lambda: machine.request_verification(me, chosen))

    async def verify_device(self, user_id: str, device_id: str) -> Verification:
        """Verify one device of any user over to-device messages."""
        if user_id == self.core.user_id:
            return await self.verify_own_devices([device_id])
        machine = self._machine()
        await self._devices.await_queried([user_id])
        return await self._act(lambda: machine.request_verification(user_id, [device_id]))

    async def verify_user(self, user_id: str, room_id: str | None = None) -> Verification:
        """Verify another user in our DM with them (``room_id``, or the existing DM, or a new one).

        Verifying a user verifies their identity (master key), and through it every
        device they cross-signed. For ourselves, this asks our other sessions.
        """
        if not is_user_id(user_id):
            raise CommandError(f"{user_id!r} is not a user ID (@name:server)")
        if user_id == self.core.user_id:
            return await self.verify_own_devices()
        machine = self._machine()
        if room_id is None:
            room_id = self.dm_with(user_id)
        if room_id is None:
            room_id = await self._create_dm(user_id)
            if not await self._wait_for_room(room_id, timeout=30):
                raise VerificationError(
                    "the direct chat for the verification was not created in time"
                )
        target_room = room_id
        self.encryption.wake()
        return await self._act(lambda: machine.request_verification_in_room(target_room, user_id))

    def dm_with(self, user_id: str) -> str | None:
        """Our joined direct chat with ``user_id``, encrypted ones first, if any."""
        rooms = [
            r
            for r in self.core.rooms.values()
            if r.is_dm and r.dm_user == user_id and r.membership == "join"
        ]
        rooms.sort(key=lambda r: (not r.encrypted, -r.last_ts))
        return rooms[0].room_id if rooms else None

    async def verify_command(self, room_id: str | None, argument: str) -> Verification:
        """``/verify [@user]``: the user given; else the other person of this DM; else our sessions."""
        target = argument.strip()
        if target:
            summary = self.core.rooms.get(room_id) if room_id else None
            in_dm = (
                summary is not None
                and summary.is_dm
                and summary.dm_user == target
                and summary.membership == "join"
            )
            return await self.verify_user(target, room_id if in_dm else None)
        summary = self.core.rooms.get(room_id) if room_id else None
        if (
            summary is not None
            and summary.is_dm
            and summary.dm_user
            and summary.membership == "join"
        ):
            return await self.verify_user(summary.dm_user, summary.room_id)
        return await self.verify_own_devices()

    # -- the user's answers -------------------------------------------------------------

    async def accept(self, verification_id: str) -> Verification:
        """Accept an incoming request (once the other device's keys are fetched, if they can be).

        The other side may start SAS as soon as it sees the answer: its keys should be
        known by then (the machine holds a start that overtakes the key query anyway).
        """
        machine = self._machine()
        await self._await_keys(verification_id)
        return await self._act(lambda: machine.accept_verification(verification_id))

    async def start_sas(self, verification_id: str) -> Verification:
        """Start comparing emoji on a ready flow (waits for the other device's keys if needed).

        Nothing to do (the current snapshot is returned) if SAS is already under way,
        started by this client by itself or by the other side.
        """
        machine = self._machine()
        deadline = time.monotonic() + self.keys_timeout
        await self._await_keys(verification_id)
        while True:
            try:
                return await self._act(lambda: machine.start_sas(verification_id))
            except VerificationError as error:
                current = await self.encryption.call(
                    lambda: machine.get_verification(verification_id)
                )
                if current is not None and current.state in _SAS_UNDERWAY:
                    self._apply([current])
                    return self.flows.get(current.id, current)
                flow = self.flows.get(verification_id)
                if "not known yet" not in str(error) or flow is None or time.monotonic() > deadline:
                    raise
                await self._devices.await_queried([flow.other_user_id], timeout=2.0)

    async def _await_keys(self, verification_id: str) -> None:
        """Wait (a while) for the key query of the flow's other user, if its keys are not fixed."""
        flow = self.flows.get(verification_id)
        if flow is None or flow.keys or flow.is_final:
            return
        if not await self._devices.await_queried([flow.other_user_id], self.keys_timeout):
            log.info("the keys of %s are not fetched yet", flow.other_user_id)

    async def confirm(self, verification_id: str) -> Verification:
        """The emoji (or numbers) match."""
        machine = self._machine()
        return await self._act(lambda: machine.confirm_sas(verification_id))

    async def confirm_qr_scanned(self, verification_id: str) -> Verification:
        """The other device says it scanned our QR code (the user saw it): trust, finish."""
        machine = self._machine()
        return await self._act(lambda: machine.confirm_qr_scanned(verification_id))

    async def qr_not_scanned(self, verification_id: str) -> Verification:
        """The other device does not say it scanned our code: cancel, trusting nothing."""
        machine = self._machine()
        return await self._act(lambda: machine.qr_not_scanned(verification_id))

    async def scan_qr(self, verification_id: str, data: bytes) -> Verification:
        """The other device's QR code was read (``data``): check it and reciprocate."""
        machine = self._machine()
        return await self._act(lambda: machine.scan_qr_code(verification_id, data))

    async def mismatch(self, verification_id: str) -> Verification:
        """The emoji (or numbers) do not match: cancel, telling the other side."""
        machine = self._machine()
        return await self._act(lambda: machine.sas_mismatch(verification_id))

    async def cancel(
        self, verification_id: str, code: CancelCode | str = CancelCode.USER
    ) -> Verification:
        """Cancel, or decline a request."""
        machine = self._machine()
        return await self._act(lambda: machine.cancel_verification(verification_id, code))

    async def _act(self, action: Callable[[], Verification]) -> Verification:
        result = await self.encryption.call(action)
        self._apply([result])
        await self._pump()
        return self.flows.get(result.id, result)

    # -- changes ------------------------------------------------------------------------

    def on_sync(self, changed: list[Verification]) -> None:
        """Flows a committed sync batch changed (called by the client after the commit)."""
        self._apply(changed)
        self._spawn(self._pump())

    async def refresh(self) -> None:
        """Take the machine's current snapshots (timeouts applied) and publish the changes."""
        if self.encryption.machine is None:
            return
        machine = self._machine()

        def read() -> list[Verification]:
            machine.expire_verifications()
            return machine.verifications(active_only=False)

        self._apply(await self.encryption.call(read))
        # Expiry may have sent something (a held start answered once the keys came).
        self.encryption.wake()

    def _apply(self, snapshots: Iterable[Verification]) -> None:
        for flow in snapshots:
            old = self.flows.get(flow.id)
            if old == flow:
                continue
            self.flows[flow.id] = flow
            start = (
                self.auto_start
                and flow.we_requested
                and flow.state is VerificationState.READY
                and flow.id not in self._auto_started
                # The other side can scan our QR code: it is shown instead (SAS a button away).
                and QR_SHOW_METHOD not in flow.methods
            )
            if start:
                # Before publishing: the dialog then offers no "start" of its own.
                self._auto_started.add(flow.id)
                self._auto_starting.add(flow.id)
            self.core.publish(VerificationChanged(flow))
            if flow.state is VerificationState.DONE and (
                old is None or old.state is not VerificationState.DONE
            ):
                self._spawn(self._verified(flow))
            if start and not self._spawn(self._auto_start(flow.id)):
                self._auto_starting.discard(flow.id)
        self._forget_old()
        if any(v.state in _ACTIVE_STATES for v in self.flows.values()):
            self._ensure_ticker()

    def _forget_old(self) -> None:
        if len(self.flows) < 64:
            return
        finished = sorted(
            (v for v in self.flows.values() if v.is_final), key=lambda v: v.created_ms
        )
        for flow in finished[: len(self.flows) - 64]:
            self.flows.pop(flow.id, None)

    async def _auto_start(self, verification_id: str) -> None:
        try:
            await self.start_sas(verification_id)
        except VerificationError as error:
            log.info("SAS not started by itself: %s", error)
        finally:
            self._auto_starting.discard(verification_id)
            flow = self.flows.get(verification_id)
            if flow is not None and not self._stopped:
                # The dialog offers "start" again if it did not work out.
                self.core.publish(VerificationChanged(flow))

    async def _verified(self, flow: Verification) -> None:
        """A flow ended verified: send the machine's follow-ups, refresh what the UI shows."""
        self.encryption.wake()
        users = {flow.other_user_id, self.core.user_id}
        await self._devices.refresh_trust(users)
        await self._devices.check_warnings()
        self._cross_signing_changed()

    # -- sending room messages ------------------------------------------------------------

    async def _pump(self) -> None:
        """Send what the flows want sent: to-device by the request loop, room events here."""
        self.encryption.wake()
        if self.encryption.machine is None:
            return
        machine = self._machine()
        async with self._send_lock:
            requests = await self.encryption.call(machine.outgoing_room_messages)
            now = time.monotonic()
            held: set[str] = set()
            for request in requests:
                # In order within a room: a message waiting to be retried holds back the
                # ones after it (a done must not overtake its mac).
                if request.room_id in held:
                    continue
                waiting = self._retry_at.get(request.request_id, 0.0) > now
                if waiting or not await self._send_room_message(machine, request):
                    held.add(request.room_id)
        await self.refresh()

    async def _send_room_message(self, machine: OlmMachine, request: RoomMessageRequest) -> bool:
        """Send one room message; ``False`` if it is to be retried later."""
        summary = self.core.rooms.get(request.room_id)
        if summary is None:
            # A room we have not synced yet may be encrypted: wait for its state.
            self._retry_at[request.request_id] = time.monotonic() + 1.0
            return False
        try:
            if summary.encrypted:
                content = await self.encryption.encrypt(
                    request.room_id, request.event_type, dict(request.content), only_verified=False
                )
                http = api.send_event(
                    request.room_id, "m.room.encrypted", request.request_id, content
                )
            else:
                http = request.to_http()
            answer = await self.core.connection.send(http)
        except MatrixError as error:
            if error.is_transient:
                self._retry_at[request.request_id] = time.monotonic() + 5.0
                return False
            log.warning("verification message refused: %s", error)
            await self.encryption.call(
                lambda: machine.mark_request_as_failed(request.request_id, permanent=True)
            )
            return True
        except (NetworkError, EncryptionError) as error:
            log.info("verification message not sent yet: %s", error)
            self._retry_at[request.request_id] = time.monotonic() + 5.0
            return False
        self._retry_at.pop(request.request_id, None)
        event_id = answer.get("event_id") if isinstance(answer, dict) else None
        outcome = await self.encryption.call(
            lambda: machine.mark_request_as_sent(
                request.request_id, {"event_id": event_id} if isinstance(event_id, str) else {}
            )
        )
        self._apply(outcome.verifications)
        return True

    # -- time ---------------------------------------------------------------------------

    def _ensure_ticker(self) -> None:
        if self._stopped or (self._ticker is not None and not self._ticker.done()):
            return
        try:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        except RuntimeError:
            return

    async def _tick(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self.tick_seconds)
            try:
                await self._pump()
            except Exception:
                log.exception("verification timer")
            if not any(v.state in _ACTIVE_STATES for v in self.flows.values()):
                return

    def _spawn(self, coroutine: Any) -> bool:
        if self._stopped:
            coroutine.close()
            return False
        try:
            task = asyncio.get_running_loop().create_task(coroutine)
        except RuntimeError:
            coroutine.close()
            return False
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("verification work failed", exc_info=task.exception())

    def stop(self) -> None:
        """Stop the timer and background work (the flows stay in the machine's memory)."""
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
