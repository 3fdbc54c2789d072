"""The persistent send queue: what the user sends reaches the server once, in order.

A message is written to the cache's outbox, with its transaction ID, before the
first attempt. The queue sends entries one at a time in the order they were
written, reusing the transaction ID on every retry (the server deduplicates by it),
so a restart resends what was pending exactly once. Network faults and server
errors are retried with backoff; a refusal (``M_FORBIDDEN``, a bad request) marks
the message failed, and the user may retry or discard it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..net.http import HomeserverConnection, backoff_delay
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..store.cache import Cache, OutboxEntry
from .dbthread import DatabaseThread
from .storage import StorageHealth, StorageUnavailable

__all__ = [
    "EncryptionUnavailable",
    "NotJoined",
    "NotReady",
    "Refused",
    "SendQueue",
    "new_transaction_id",
]

log = logging.getLogger(__name__)


class Refused(Exception):
    """Preparing refuses to send this message; the text says why (shown to the user)."""


class NotJoined(Refused):
    """A message for a room we are not joined to (never sent)."""


class EncryptionUnavailable(Refused):
    """A message for an encrypted room cannot be encrypted (and is never sent in clear)."""


class NotReady(Exception):
    """The message cannot be prepared yet (e.g. its room has not synced); try again later."""


def new_transaction_id() -> str:
    """A transaction ID unique to this device: time plus randomness."""
    return f"tui{int(time.time() * 1000)}.{secrets.token_hex(6)}"


# (txn_id, room_id, state, event_id, error) -> None; state is pending/sent/failed.
SendListener = Callable[[OutboxEntry, str, str | None, str | None], None]
# Called before sending; may transform the event (encryption will) or raise.
PrepareHook = Callable[[OutboxEntry], Awaitable[tuple[str, dict[str, Any]]]]


class SendQueue:
    """Sends outbox entries in order; one worker task."""

    def __init__(
        self,
        cache: Cache,
        db: DatabaseThread,
        connection: HomeserverConnection,
        listener: SendListener,
        *,
        prepare: PrepareHook | None = None,
        max_backoff: float = 30.0,
        storage: StorageHealth | None = None,
    ) -> None:
        self._storage = storage
        self._cache = cache
        self._db = db
        self._connection = connection
        self._listener = listener
        self._prepare = prepare
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._stopping = False
        self.idle = asyncio.Event()

    async def enqueue(self, room_id: str, event_type: str, content: dict[str, Any]) -> OutboxEntry:
        """Write the message to the outbox (durably) and wake the worker."""
        entry = await self._db.run(
            self._cache.outbox_add, new_transaction_id(), room_id, event_type, content
        )
        self.idle.clear()
        self._wake.set()
        return entry

    async def retry(self, txn_id: str) -> None:
        """Put a failed message back in the queue (same transaction ID)."""
        await self._db.run(self._cache.outbox_set_state, txn_id, "pending", None)
        self.idle.clear()
        self._wake.set()

    async def discard(self, txn_id: str) -> None:
        """Drop a message the user no longer wants to send."""
        await self._db.run(self._cache.outbox_remove, txn_id)

    def stop(self) -> None:
        """End the worker after its current attempt."""
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        """Try again now (for example when sync reconnects)."""
        self._wake.set()

    async def run(self) -> None:
        """Send pending entries until stopped (a later run starts the worker again)."""
        self._stopping = False
        failures = 0
        while not self._stopping:
            pending = await self._db.run(self._cache.outbox, None, ("pending",))
            if not pending:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            # Order is kept within a room; a room still waiting (not synced yet) does
            # not hold up the others.
            waiting: set[str] = set()
            outcome = "next"
            for entry in pending:
                if entry.room_id in waiting:
                    continue
                outcome = await self._send(entry)
                if outcome != "not ready":
                    break
                waiting.add(entry.room_id)
            if outcome == "no storage" and self._storage is not None:
                # The outbox cannot be written: wait for space (the messages are kept).
                await self._storage.wait_writable(self._wake)
                continue
            if outcome in ("retry", "not ready", "no storage"):
                failures += 1
                delay = backoff_delay(failures, cap=self._max_backoff)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    pass
            elif outcome == "stop":
                return
            else:
                failures = 0

    async def _send(self, entry: OutboxEntry) -> str:
        try:
            return await self._attempt(entry)
        except StorageUnavailable as error:
            # Whatever the server answered, the entry stays pending under its transaction
            # ID: sent again once the cache can be written, the server keeps one copy.
            self._listener(entry, "pending", None, f"waiting: {error}")
            return "no storage"

    async def _attempt(self, entry: OutboxEntry) -> str:
        await self._db.run(self._cache.outbox_attempt, entry.txn_id)
        try:
            event_type, content = (
                await self._prepare(entry)
                if self._prepare is not None
                else (entry.event_type, entry.content)
            )
            answer = await self._connection.send(
                api.send_event(entry.room_id, event_type, entry.txn_id, content)
            )
        except MatrixError as error:
            if error.is_unknown_token:
                self._listener(entry, "pending", None, "not logged in")
                return "stop"
            if error.is_transient:
                self._listener(entry, "pending", None, f"retrying: {error.errcode}")
                return "retry"
            message = _refusal_message(error)
            await self._db.run(self._cache.outbox_set_state, entry.txn_id, "failed", message)
            self._listener(entry, "failed", None, message)
            return "next"
        except NetworkError as error:
            self._listener(entry, "pending", None, f"retrying: {error}")
            return "retry"
        except NotReady as error:
            self._listener(entry, "pending", None, str(error))
            return "not ready"
        except Refused as error:
            await self._db.run(self._cache.outbox_set_state, entry.txn_id, "failed", str(error))
            self._listener(entry, "failed", None, str(error))
            return "next"
        except StorageUnavailable:
            raise
        except Exception as error:
            # A bug in preparing (or encrypting) must not lose the message: fail it visibly.
            log.exception("could not prepare message %s", entry.txn_id)
            message = f"could not send: {type(error).__name__}: {error}"
            await self._db.run(self._cache.outbox_set_state, entry.txn_id, "failed", message)
            self._listener(entry, "failed", None, message)
            return "next"
        event_id = answer.get("event_id") if isinstance(answer, dict) else None
        if not isinstance(event_id, str):
            self._listener(entry, "pending", None, "retrying: no event ID in the answer")
            return "retry"
        await self._db.run(self._cache.outbox_sent, entry.txn_id, event_id)
        self._listener(entry, "sent", event_id, None)
        return "next"


def _refusal_message(error: MatrixError) -> str:
    if error.errcode == "M_FORBIDDEN":
        return "not allowed to send here" + (f": {error.message}" if error.message else "")
    if error.errcode == "M_TOO_LARGE":
        return "the message is too large"
    return f"the server refused the message ({error.errcode}{': ' + error.message if error.message else ''})"
