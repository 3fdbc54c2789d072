"""How an encrypted event is shown: the trust of a decrypted one, and why one could not
be decrypted (engine/encryption.py stores both with the event)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..protocol.events import DECRYPTION_FAILURE

if TYPE_CHECKING:
    # Imported where used (issue 13: the first painted room list needs no crypto types).
    from ..crypto.types import DecryptionFailure
    from .dbthread import DatabaseThread

__all__ = [
    "TRUST_LABELS",
    "Decrypt",
    "Ready",
    "at_once",
    "failure_text",
    "fetched_forms",
    "with_failure",
]

Event = dict[str, Any]
#: Shown forms of fetched events of a room (decrypted where we can); database thread.
Decrypt = Callable[[str, list[Event]], dict[str, Event]]
#: Waits until the crypto machine is open (``Encryption.ready``: it opens after the first paint).
Ready = Callable[[], Awaitable[None]]

_WITHHELD = {
    "m.unverified": "the sender does not share keys with unverified devices like this one",
    "m.blacklisted": "the sender has blocked this device",
    "m.unauthorised": "you were not allowed to read this message",
    "m.unavailable": "the key is not available",
    "m.no_olm": "the sender could not set up a secure channel to this device",
}
#: By :class:`~tui_client.crypto.types.SenderTrust` (a ``StrEnum``: its values are the keys).
TRUST_LABELS = {
    "verified": "verified",
    "unverified": "unverified",
    "blocked": "blocked",
    "unknown_device": "unknown device",
    "unauthenticated": "unauthenticated",
}


def failure_text(failure: DecryptionFailure) -> str:
    """What to tell the user about a message that cannot be decrypted."""
    from ..crypto.types import FailureReason

    reason = failure.reason
    if reason is FailureReason.MISSING_ROOM_KEY:
        return "the key for this message has not arrived yet (it may still come, or be in a key backup)"
    if reason is FailureReason.UNKNOWN_MESSAGE_INDEX:
        return "sent before you joined, or before this device could receive the key"
    if reason is FailureReason.WITHHELD:
        code = failure.withheld_code or ""
        text = _WITHHELD.get(code, f"the sender withheld the key ({code or 'no reason given'})")
        return text + (
            f": {failure.withheld_reason}"
            if failure.withheld_reason and code not in _WITHHELD
            else ""
        )
    if reason is FailureReason.DECRYPTION_ERROR:
        return "the message is damaged or was not encrypted for this key"
    if reason in (FailureReason.MISMATCHED_ROOM, FailureReason.MISMATCHED_SENDER):
        return "the message failed a security check and is not shown"
    if reason is FailureReason.REPLAY:
        return "this message repeats an earlier one (a replay) and is not shown"
    if reason is FailureReason.UNKNOWN_DEVICE:
        return "sent from a device that is not in the sender's device list"
    if reason is FailureReason.UNSUPPORTED_ALGORITHM:
        return "encrypted with an algorithm this client does not support"
    return "the encrypted message is malformed"


def with_failure(event: Event, code: str, reason: str) -> Event:
    """The event as shown when it cannot be decrypted: why, in ``unsigned``."""
    shown = dict(event)
    unsigned = dict(event.get("unsigned") or {})
    unsigned[DECRYPTION_FAILURE] = {"code": code, "reason": reason}
    shown["unsigned"] = unsigned
    return shown


async def at_once() -> None:
    """A :data:`Ready` with nothing to wait for (no crypto machine expected)."""
    return None


async def fetched_forms(
    db: DatabaseThread, decrypt: Decrypt, ready: Ready, room_id: str, raw: list[Event]
) -> dict[str, Event]:
    """The shown forms of events fetched from the server (a thread, search's back-fill):
    encrypted ones wait for the crypto machine (fetched before it is open, they would
    show undecrypted, and nothing would mend them: their keys are not late, only the
    machine was)."""
    if not raw:
        return {}
    if any(e.get("type") == "m.room.encrypted" for e in raw):
        await ready()
    return await db.run(decrypt, room_id, raw)
