"""This session's cross-signing: set up the account's identity, or ask to be verified.

Once sync runs and our own keys have been fetched (:meth:`CrossSigningService.start`):

- an account without a cross-signing identity gets one (:meth:`~CrossSigningService.bootstrap`):
  master, self-signing and user-signing keys made here, uploaded to
  ``/keys/device_signing/upload`` (with the password if the server asks: the user-
  interactive auth of :mod:`.uia`), this device signed;
- an account that has one that this session cannot vouch for publishes
  :class:`~tui_client.engine.updates.CrossSigningChanged` with ``needs_verification``:
  the UI offers to verify this session from another of the account's sessions
  (:meth:`~CrossSigningService.verify_this_session`).

The state is published again whenever it changes: after a verification, after the
secrets arrive from our other device, after our keys are fetched again.

Setting up needs current keys of our own (whether the account already has an identity is
only known from a ``/keys/query`` answered after the last change the server reported). The
server reports a change of our devices right after our first key upload, so our keys can
turn outdated again between the wait for them and the setup: the setup then waits for
them again and repeats at once. Transient failures (network, ``5xx``, rate limits, our
keys not fetched) are retried by themselves with backoff; only a failure that needs the
user (a password refused or declined, an identity made elsewhere) stops and is shown
with Retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..crypto.cross_signing import CrossSigningError, CrossSigningStatus, OwnKeysNotQueried
from ..crypto.verification import Verification
from ..net.http import backoff_delay
from ..protocol.errors import MatrixError, NetworkError
from .storage import StorageUnavailable
from .uia import AuthCancelled, AuthFailed, AuthUnsupported, UserInteractiveAuth
from .updates import CrossSigningChanged

if TYPE_CHECKING:
    from ..crypto import OlmMachine
    from .core import Core
    from .devices import DeviceService
    from .encryption import Encryption
    from .uia import ApprovalPrompt, PasswordPrompt

__all__ = ["CrossSigningService"]

log = logging.getLogger(__name__)

#: Failures of a bootstrap that are reported (and leave the account as it was).
BOOTSTRAP_FAILURES = (
    CrossSigningError,
    AuthCancelled,
    AuthFailed,
    AuthUnsupported,
    MatrixError,
    NetworkError,
)

#: How long one round waits for our own keys to be fetched (seconds).
OWN_KEYS_TIMEOUT = 120.0
#: Setups in a row that may find our keys outdated again before backing off.
QUICK_ROUNDS = 5


def is_transient(error: BaseException) -> bool:
    """A failure that retrying later can mend without the user (network, server, our keys)."""
    if isinstance(error, OwnKeysNotQueried | NetworkError):
        return True
    if isinstance(error, MatrixError):
        return error.status >= 500 or error.is_rate_limit
    return False


class CrossSigningService:
    """See the module documentation."""

    #: Set up an identity by itself when the account has none (bots and tests may turn it off).
    auto_bootstrap = True
    #: Backoff between automatic setups after a transient failure (seconds): first, most.
    retry_base = 1.0
    retry_cap = 60.0
    #: How long a setup the user asked for (Retry) waits for our own keys (seconds).
    retry_keys_timeout = 30.0

    def __init__(
        self,
        core: Core,
        encryption: Encryption,
        devices: DeviceService,
        *,
        password_prompt: Callable[[], PasswordPrompt | None],
        approve_prompt: Callable[[], ApprovalPrompt | None],
        verify_own_devices: Callable[[], Awaitable[Verification]],
        trust_changed: Callable[[], None],
    ) -> None:
        self.core = core
        self.encryption = encryption
        self._devices = devices
        self._password_prompt = password_prompt
        self._approve_prompt = approve_prompt
        self._verify_own_devices = verify_own_devices
        self._trust_changed = trust_changed
        self.state: CrossSigningChanged | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh_queued = False
        self._lock = asyncio.Lock()
        self._error: str | None = None
        self._auto_error = False

    def _machine(self) -> OlmMachine:
        return self.encryption.require_machine(CrossSigningError)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, StorageUnavailable):  # a full disk, a damaged cache: said already
            log.warning("cross-signing work stopped: %s", error)
        elif error is not None:
            log.error("cross-signing work failed", exc_info=error)

    def start(self) -> None:
        """Check (and if need be set up) cross-signing once our own keys are fetched."""
        if self.encryption.available:
            self._spawn(self._startup())

    def stop(self) -> None:
        """Stop background work."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def _startup(self) -> None:
        if not self.auto_bootstrap:
            if await self._own_keys_fetched(OWN_KEYS_TIMEOUT):
                await self.check()
            else:
                log.warning("our own keys could not be fetched: cross-signing not checked")
            return
        attempt = 0
        while True:
            delay = backoff_delay(attempt, base=self.retry_base, cap=self.retry_cap)
            _, failure = await self._set_up(OWN_KEYS_TIMEOUT, retry_in=delay)
            if failure is None or not is_transient(failure):
                return
            attempt += 1
            await asyncio.sleep(delay)

    async def _own_keys_fetched(self, timeout: float) -> bool:
        return await self._devices.await_queried([self.core.user_id], timeout=timeout)

    async def _set_up(
        self, keys_timeout: float, *, retry_in: float | None = None
    ) -> tuple[CrossSigningChanged, BaseException | None]:
        """Wait for our own keys, then read the state and set up an identity if there is
        none; the state, and the failure if the setup failed (``retry_in``: the caller
        tries again after so many seconds if the failure is transient)."""
        failure: BaseException | None = None
        for _ in range(QUICK_ROUNDS):
            if not await self._own_keys_fetched(keys_timeout):
                failure = OwnKeysNotQueried("our own keys could not be fetched from the server")
                break
            async with self._lock:
                status = await self.status()
                if status.published:
                    return self._settled(status), None
                try:
                    status = await self._bootstrap(reset=False)
                except OwnKeysNotQueried as error:
                    # A change of our devices arrived after the wait: fetch them again.
                    failure = error
                    continue
                except BOOTSTRAP_FAILURES as error:
                    return self._failed(error, await self.status(), retry_in), error
                self._error, self._auto_error = None, False
                return self._publish(status), None
        assert failure is not None
        async with self._lock:
            return self._failed(failure, await self.status(), retry_in), failure

    def _failed(
        self, error: BaseException, status: CrossSigningStatus, retry_in: float | None
    ) -> CrossSigningChanged:
        self._error = f"Cross-signing could not be set up: {error}"
        if retry_in is not None and is_transient(error):
            self._error += f" (trying again in {max(1, round(retry_in))} s)"
        self._auto_error = True
        log.warning("cross-signing bootstrap failed: %s", self._error)
        return self._publish(status)

    def _settled(self, status: CrossSigningStatus) -> CrossSigningChanged:
        if status.published and self._auto_error:
            # The identity exists now (our retry, or another session of a first login that
            # raced this one, made it): an earlier failure no longer matters.
            self._error, self._auto_error = None, False
        return self._publish(status)

    async def status(self) -> CrossSigningStatus:
        """Our cross-signing state on this device, now."""
        machine = self._machine()
        return await self.encryption.call(machine.cross_signing_status)

    async def check(self, *, bootstrap: bool = False) -> CrossSigningChanged:
        """Read the state (setting up an identity first if ``bootstrap`` and there is none,
        once our own keys are fetched); publish it if it changed. A failed setup is in the
        state's ``error``."""
        if bootstrap:
            state, _ = await self._set_up(self.retry_keys_timeout)
            return state
        async with self._lock:
            return self._settled(await self.status())

    def _publish(self, status: CrossSigningStatus) -> CrossSigningChanged:
        # Not trusting the identity, or trusting it without a signature on this device and
        # without the key to make one: another of our sessions must vouch for this one.
        needs = status.published and (
            not status.master_trusted or not (status.this_device_signed or status.has_self_signing)
        )
        state = CrossSigningChanged(status, needs, self._error)
        if state != self.state:
            self.state = state
            self.core.publish(state)
            self._trust_changed()
        return state

    def refresh_soon(self) -> None:
        """Read the state again shortly (after our keys, a verification or secrets changed it)."""
        if self._refresh_queued or not self.encryption.available:
            return
        self._refresh_queued = True

        async def refresh() -> None:
            await asyncio.sleep(0.05)
            self._refresh_queued = False
            await self.check()

        try:
            self._spawn(refresh())
        except RuntimeError:
            self._refresh_queued = False

    async def bootstrap(self, *, reset: bool = False) -> CrossSigningStatus:
        """Create the account's cross-signing identity (``reset``: replace the existing one).

        Asks for the password through ``client.ask_password`` if the server wants it (it
        always does for a reset). Raises :class:`CrossSigningError` when the account
        already has an identity and ``reset`` is not set, and the errors of :mod:`.uia`.
        """
        async with self._lock:
            try:
                status = await self._bootstrap(reset=reset)
            except BOOTSTRAP_FAILURES as error:
                self._error = f"Cross-signing could not be set up: {error}"
                self._publish(await self.status())
                raise
            self._error = None
            self._publish(status)
            return status

    async def _bootstrap(self, *, reset: bool) -> CrossSigningStatus:
        machine = self._machine()
        encryption = self.encryption
        request = await encryption.call(lambda: machine.bootstrap_cross_signing(reset=reset))
        if request is None:
            return await self.status()
        auth = UserInteractiveAuth(
            self.core.connection,
            self.core.user_id,
            self._password_prompt(),
            approve=self._approve_prompt(),
        )
        purpose = "Replace your cross-signing identity" if reset else "Set up cross-signing"
        try:
            await auth.send(lambda auth_dict: request.to_http(auth=auth_dict), purpose=purpose)
        except BaseException:
            await encryption.call(lambda: machine.mark_request_as_failed(request.request_id))
            raise
        await encryption.call(lambda: machine.mark_request_as_sent(request.request_id, {}))
        log.info("cross-signing identity %s", "replaced" if reset else "created")
        # The signature of this device by the new self-signing key, and a fresh key query.
        encryption.wake()
        return await self.status()

    async def verify_this_session(self) -> Verification:
        """Ask our other sessions to verify this one (the UI then shows the flow)."""
        return await self._verify_own_devices()
