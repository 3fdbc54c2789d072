"""The join queue: joins run one at a time, rate limits are waited out, none is lost.

Joining many rooms at once ("join all suggested", a list of links) soon meets the
server's join rate limit. :class:`JoinQueue` keeps every requested join until it
has either succeeded or failed for a reason that waiting will not fix: a ``429``
is waited out for as long as the server asks (``Retry-After`` or
``retry_after_ms``), server errors and lost connections are retried with backoff.
Progress is published as :class:`~tui_client.engine.updates.JoinProgress`. Each join
is written to the cache when it is asked for and removed once made or refused, so the
joins still queued when the client stops are made after the next start
(:meth:`JoinQueue.restore`).

A refusal to join a restricted room is explained: the queue looks for the spaces
whose members may join (the room's ``allowed_room_ids``, or failing that the
spaces known to list it) and names those the user is not in, so the UI can offer
to join one first (:meth:`JoinQueue.enqueue_via_space`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..net.http import backoff_delay
from ..protocol import requests as api
from ..protocol.commands import CommandError
from ..protocol.directory import parse_room_chunk
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.ids import InvalidIdentifier, is_room_alias, is_room_id, parse_link
from ..store.cache import PendingJoin
from .updates import JoinProgress, JoinStatus, RoomListChanged, Update

if TYPE_CHECKING:
    from .core import Core
    from .spaces import SpaceService

__all__ = ["JoinFailed", "JoinJob", "JoinQueue", "RequiredSpace"]

log = logging.getLogger(__name__)

MAX_FAULT_RETRIES = 6
MAX_BACKOFF = 30.0
LOOKUP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RequiredSpace:
    """A space whose members may join a restricted room (``certain``: the room says so;
    otherwise the space merely lists the room)."""

    room_id: str
    name: str
    via: tuple[str, ...] = ()
    certain: bool = True


class JoinFailed(Exception):
    """A join that will not succeed as asked; the message is meant for the user.

    ``required`` lists the spaces to join first when the room is open to their
    members only.
    """

    def __init__(
        self, target: str, message: str, *, required: Sequence[RequiredSpace] = ()
    ) -> None:
        super().__init__(message)
        self.target = target
        self.message = message
        self.required = tuple(required)


@dataclass(eq=False)
class JoinJob:
    """One requested join. Await :meth:`wait` for the room ID (or :class:`JoinFailed`)."""

    job_id: int
    target: str
    identifier: str
    via: tuple[str, ...]
    label: str
    reason: str | None = None
    after: JoinJob | None = None
    state: str = "queued"
    room_id: str | None = None
    error: str | None = None
    retry_at: float | None = None
    required: tuple[RequiredSpace, ...] = ()
    attempts: int = 0
    #: The join's key in the cache (``pending_joins``), kept until it is made or refused.
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    future: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def status(self) -> JoinStatus:
        """A snapshot for the UI."""
        return JoinStatus(
            self.job_id,
            self.target,
            self.label,
            self.state,
            self.room_id,
            self.error,
            self.retry_at,
            tuple(space.room_id for space in self.required),
        )

    async def wait(self) -> str:
        """The joined room's ID; raises :class:`JoinFailed`."""
        return await asyncio.shield(self.future)


class JoinQueue:
    """Joins rooms one after the other on behalf of a client."""

    def __init__(
        self,
        core: Core,
        spaces: SpaceService,
        *,
        note_joined: Callable[[str], Awaitable[None]],
        max_fault_retries: int = MAX_FAULT_RETRIES,
        max_backoff: float = MAX_BACKOFF,
        backoff_base: float = 1.0,
    ) -> None:
        self._core = core
        self._spaces = spaces
        self._note_joined = note_joined
        self._max_fault_retries = max_fault_retries
        self._max_backoff = max_backoff
        # The first retry after a fault waits about twice this; tests shorten it.
        self.backoff_base = backoff_base
        self._ids = itertools.count(1)
        self._pending: list[JoinJob] = []
        self._batch: list[JoinJob] = []
        self._task: asyncio.Task[None] | None = None
        self._room_seen = asyncio.Event()
        self._unsubscribe = core.subscribe(self._on_update)

    # -- asking for joins -------------------------------------------------------------

    def enqueue(
        self,
        target: str,
        via: Iterable[str] = (),
        *,
        label: str = "",
        reason: str | None = None,
        after: JoinJob | None = None,
        key: str | None = None,
    ) -> JoinJob:
        """Queue a join by room ID, alias, ``matrix.to`` link or ``matrix:`` URI.

        Raises :class:`CommandError` at once for something that is not a room. ``key``
        is given for a join restored from the cache (it is not written again).
        """
        try:
            link = parse_link(target)
        except InvalidIdentifier as error:
            raise CommandError(str(error)) from error
        if link.kind == "user":
            raise CommandError(f"{link.identifier} is a user, not a room")
        servers = tuple(dict.fromkeys([*link.via, *via]))
        if not servers and is_room_id(link.identifier):
            servers = self._spaces.via_for(link.identifier)
        if not self._batch_is_open():
            self._batch = []
        job = JoinJob(
            next(self._ids),
            target.strip(),
            link.identifier,
            servers,
            label or self._label_for(link.identifier),
            reason,
            after,
        )
        if key is not None:
            job.key = key
        else:
            self._store(
                self._core.cache.joins_add,
                PendingJoin(
                    job.key, job.target, job.via, job.label, reason, after.key if after else None
                ),
            )
        self._pending.append(job)
        self._batch.append(job)
        self._publish()
        self._ensure_worker()
        return job

    def restore(self, pending: Iterable[PendingJoin]) -> list[JoinJob]:
        """Queue again the joins a previous run left unfinished (those not queued already)."""
        queued = {job.key: job for job in self._pending}
        restored: list[JoinJob] = []
        for entry in pending:
            if entry.key in queued:
                continue
            try:
                job = self.enqueue(
                    entry.target,
                    entry.via,
                    label=entry.label,
                    reason=entry.reason,
                    after=queued.get(entry.after_key) if entry.after_key else None,
                    key=entry.key,
                )
            except CommandError:
                log.warning("a stored join of %r is not a room: dropped", entry.target)
                self._store(self._core.cache.joins_remove, entry.key)
                continue
            queued[entry.key] = job
            restored.append(job)
        return restored

    def _store(self, function: Callable[..., None], *args: object) -> None:
        """Write to the cache now, in order with every other write, without waiting."""
        future = self._core.db.submit(function, *args)
        future.add_done_callback(_log_store_failure)

    def enqueue_many(self, targets: Iterable[tuple[str, Sequence[str]]]) -> list[JoinJob]:
        """Queue several joins (``(target, via)`` pairs), in order."""
        return [self.enqueue(target, via) for target, via in targets]

    def enqueue_via_space(
        self, target: str, via: Iterable[str], space: RequiredSpace
    ) -> tuple[JoinJob, JoinJob]:
        """Join ``space`` first, then ``target`` (which only fails if the space join did)."""
        first = self.enqueue(space.room_id, space.via, label=space.name)
        return first, self.enqueue(target, via, after=first)

    async def join(self, target: str, via: Iterable[str] = (), *, label: str = "") -> str:
        """Queue a join and wait for it; returns the room ID or raises :class:`JoinFailed`."""
        return await self.enqueue(target, via, label=label).wait()

    def progress(self) -> JoinProgress:
        """The current batch's state."""
        return JoinProgress(tuple(job.status() for job in self._batch))

    async def stop(self) -> None:
        """Stop the worker; joins not done yet fail with "stopped" (nothing is left hanging)."""
        self._unsubscribe()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for job in self._pending:
            # Still in the cache: made after the next start.
            self._finish(job, None, "the client was closed before this join was made", forget=False)
        self._pending.clear()

    async def wait_for_room(self, room_id: str, timeout: float = 30.0) -> bool:
        """Wait until sync shows the user in ``room_id``; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            summary = self._core.rooms.get(room_id)
            if summary is not None and summary.membership == "join":
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._room_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room_seen.wait(), remaining)

    # -- the worker -------------------------------------------------------------------

    def _on_update(self, update: Update) -> None:
        if isinstance(update, RoomListChanged):
            self._room_seen.set()

    def _batch_is_open(self) -> bool:
        return any(job.state not in ("joined", "failed") for job in self._batch)

    def _label_for(self, identifier: str) -> str:
        summary = self._core.rooms.get(identifier)
        if summary is not None and summary.display_name:
            return summary.display_name
        described = self._spaces.describe(identifier)
        return described.display_name if described is not None else identifier

    def _ensure_worker(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def _publish(self) -> None:
        self._core.publish(self.progress())

    async def _run(self) -> None:
        while self._pending:
            job = self._pending[0]
            try:
                await self._attempt(job)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A bug must not leave the join (or those after it) hanging.
                log.exception("join of %s failed unexpectedly", job.target)
                self._finish(job, None, f"could not join: {type(error).__name__}: {error}")
            if self._pending and self._pending[0] is job:
                self._pending.pop(0)
            self._publish()

    async def _attempt(self, job: JoinJob) -> None:
        if job.after is not None and job.after.state == "failed":
            self._finish(job, None, f"{job.after.label} could not be joined first")
            return
        existing = self._core.rooms.get(job.identifier)
        if existing is not None and existing.membership == "join":
            self._finish(job, job.identifier, None)
            return
        rate_limits = 0
        while True:
            job.state, job.retry_at = "joining", None
            job.attempts += 1
            self._publish()
            try:
                data = await self._core.connection.send(
                    api.join(job.identifier, job.via, job.reason), wait_on_rate_limit=False
                )
            except MatrixError as error:
                if error.is_unknown_token:
                    self._finish(job, None, "you are logged out")
                    return
                if error.is_rate_limit:
                    rate_limits += 1
                    delay = (
                        error.retry_after
                        if error.retry_after is not None
                        else backoff_delay(
                            rate_limits, base=self.backoff_base, cap=self._max_backoff
                        )
                    )
                    await self._wait(job, delay, "rate limited")
                    continue
                if error.is_transient and job.attempts <= self._max_fault_retries:
                    await self._wait(
                        job,
                        backoff_delay(job.attempts, base=self.backoff_base, cap=self._max_backoff),
                        f"server error {error.status}",
                    )
                    continue
                await self._refused(job, error)
                return
            except NetworkError as error:
                if job.attempts <= self._max_fault_retries:
                    await self._wait(
                        job,
                        backoff_delay(job.attempts, base=self.backoff_base, cap=self._max_backoff),
                        "connection problem",
                    )
                    continue
                self._finish(job, None, f"could not reach the server: {error}")
                return
            room_id = data.get("room_id") if isinstance(data, dict) else None
            if not isinstance(room_id, str):
                if job.attempts <= self._max_fault_retries:
                    await self._wait(
                        job,
                        backoff_delay(job.attempts, base=self.backoff_base, cap=self._max_backoff),
                        "odd answer",
                    )
                    continue
                self._finish(job, None, "the server's answer has no room ID")
                return
            await self._note_joined(room_id)
            self._finish(job, room_id, None)
            return

    async def _wait(self, job: JoinJob, delay: float, why: str) -> None:
        job.state, job.retry_at, job.error = "waiting", time.time() + delay, why
        self._publish()
        await asyncio.sleep(delay)
        job.error = None

    def _finish(
        self,
        job: JoinJob,
        room_id: str | None,
        error: str | None,
        required: Sequence[RequiredSpace] = (),
        *,
        forget: bool = True,
    ) -> None:
        if forget and job.state not in ("joined", "failed"):
            self._store(self._core.cache.joins_remove, job.key)
        job.retry_at = None
        job.required = tuple(required)
        if room_id is not None:
            job.state, job.room_id, job.error = "joined", room_id, None
            if not job.future.done():
                job.future.set_result(room_id)
        else:
            job.state, job.error = "failed", error
            if not job.future.done():
                job.future.set_exception(
                    JoinFailed(job.target, error or "could not join", required=required)
                )
                # Nobody may be waiting (a batch of joins): do not warn about it.
                job.future.exception()

    # -- explaining refusals ------------------------------------------------------------

    async def _refused(self, job: JoinJob, error: MatrixError) -> None:
        name = job.label
        if error.errcode == "M_NOT_FOUND" or error.status == 404:
            what = "alias" if is_room_alias(job.identifier) else "room"
            self._finish(
                job,
                None,
                f"No {what} {job.identifier} was found (it may be on a server yours cannot reach).",
            )
            return
        if error.errcode != "M_FORBIDDEN" and error.status != 403:
            self._finish(job, None, f"Could not join {name}: {error}")
            return
        required = await self._required_spaces(job)
        if required:
            names = " or ".join(space.name for space in required)
            if all(space.certain for space in required):
                message = f"{name} is open to members of {names} only: join {names} first."
            else:
                message = f"You may not join {name} yet. It is in {names}, which you have not joined: its rooms may be open to space members only."
            self._finish(job, None, message, required)
            return
        said = f" ({error.message})" if error.message else ""
        self._finish(
            job,
            None,
            f"You are not allowed to join {name}{said}: it may be invite-only, or you may be banned.",
        )

    async def _required_spaces(self, job: JoinJob) -> list[RequiredSpace]:
        core = self._core
        spaces = self._spaces
        room_id = job.identifier if is_room_id(job.identifier) else None
        info = spaces.describe(room_id) if room_id else None
        if info is None or not info.allowed_room_ids:
            try:
                data = await asyncio.wait_for(
                    core.connection.send(api.room_summary(job.identifier, job.via)), LOOKUP_TIMEOUT
                )
            except (TimeoutError, MatrixError, NetworkError):
                data = None
            summary = parse_room_chunk(data)
            if summary is not None:
                spaces.note([summary])
                info, room_id = summary, summary.room_id
        if room_id is None and is_room_alias(job.identifier):
            try:
                data = await asyncio.wait_for(
                    core.connection.send(api.resolve_alias(job.identifier)), LOOKUP_TIMEOUT
                )
                resolved = data.get("room_id") if isinstance(data, dict) else None
                room_id = resolved if is_room_id(resolved) else None
            except (TimeoutError, MatrixError, NetworkError):
                room_id = None
        if room_id is None:
            return []
        joined = {r for r, s in core.rooms.items() if s.membership == "join"}
        if info is not None and info.allowed_room_ids:
            candidates, certain = list(info.allowed_room_ids), True
        else:
            candidates, certain = spaces.spaces_listing(room_id), False
        found = []
        for space_id in candidates:
            if space_id in joined:
                continue
            via = spaces.via_for(space_id) or job.via
            if spaces.describe(space_id) is None and space_id not in core.rooms:
                await self._describe(space_id, via)
            found.append(RequiredSpace(space_id, self._label_for(space_id), via, certain))
        return found

    async def _describe(self, room_id: str, via: Sequence[str]) -> None:
        # The space's name, to say which space to join (public spaces have a summary).
        try:
            data = await asyncio.wait_for(
                self._core.connection.send(api.room_summary(room_id, via)), LOOKUP_TIMEOUT
            )
        except (TimeoutError, MatrixError, NetworkError):
            return
        summary = parse_room_chunk(data)
        if summary is not None:
            self._spaces.note([summary])


def _log_store_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("the join queue could not be saved", exc_info=future.exception())
