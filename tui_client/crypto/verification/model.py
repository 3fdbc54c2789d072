"""Key verification: the values flows are made of (states, cancel codes, snapshots, the host).

Shared by the request lifecycle (:mod:`.lifecycle`), SAS (:mod:`.sas_flow`) and QR codes
(:mod:`.qr`); see :mod:`tui_client.crypto.verification` for the whole picture.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ..backend import Sas, SasMacMethod
from ..sas import (
    SAS_METHOD,
    SasEmoji,
)
from .qr_code import QrCode

REQUEST = "m.key.verification.request"
READY = "m.key.verification.ready"
START = "m.key.verification.start"
ACCEPT = "m.key.verification.accept"
KEY = "m.key.verification.key"
MAC = "m.key.verification.mac"
DONE = "m.key.verification.done"
CANCEL = "m.key.verification.cancel"
#: Every verification event type (the request travels as ``m.room.message`` in rooms).
VERIFICATION_EVENT_TYPES = frozenset({REQUEST, READY, START, ACCEPT, KEY, MAC, DONE, CANCEL})
#: The ``msgtype`` of an in-room request.
REQUEST_MSGTYPE = REQUEST

#: This device can show a QR code (the spec's "QR codes").
QR_SHOW_METHOD = "m.qr_code.show.v1"
#: This device can scan a QR code.
QR_SCAN_METHOD = "m.qr_code.scan.v1"
#: The ``start`` method a device sends once it scanned the other's QR code.
RECIPROCATE_METHOD = "m.reciprocate.v1"


class VerificationState(StrEnum):
    """Where a flow is, and what the UI should offer."""

    #: An in-room request not yet sent (waiting for its event ID).
    CREATED = "created"
    #: We asked; waiting for the other side to accept.
    REQUESTED = "requested"
    #: They asked; show "accept / decline" (``Verification.methods`` empty: unsupported).
    INCOMING = "incoming"
    #: Both sides ready; either may start SAS (``start_sas``); our QR code is shown
    #: (``Verification.qr_code``) if the other side can scan it.
    READY = "ready"
    #: The other device scanned our QR code (its secret matched): ask the user whether it
    #: says so (``confirm_qr_scanned`` / ``qr_not_scanned``).
    QR_SCANNED = "qr_scanned"
    #: SAS negotiation in flight (start, accept, keys).
    STARTED = "started"
    #: Show the emoji (and decimals); ask "do they match?" (``confirm_sas`` / ``sas_mismatch``).
    KEYS_EXCHANGED = "keys_exchanged"
    #: The user confirmed; waiting for the other side's MAC.
    CONFIRMED = "confirmed"
    #: Both MACs checked; waiting for the other side's ``done``.
    WAITING_FOR_DONE = "waiting_for_done"
    #: Verified.
    DONE = "done"
    #: Cancelled (``Verification.cancellation`` says by whom and why).
    CANCELLED = "cancelled"


_FINAL = frozenset({VerificationState.DONE, VerificationState.CANCELLED})
# Our request, not answered yet.
_UNANSWERED = frozenset({VerificationState.CREATED, VerificationState.REQUESTED})


class CancelCode(StrEnum):
    """The spec's cancel codes (``m.key.verification.cancel``)."""

    USER = "m.user"
    TIMEOUT = "m.timeout"
    UNKNOWN_TRANSACTION = "m.unknown_transaction"
    UNKNOWN_METHOD = "m.unknown_method"
    UNEXPECTED_MESSAGE = "m.unexpected_message"
    KEY_MISMATCH = "m.key_mismatch"
    USER_MISMATCH = "m.user_mismatch"
    INVALID_MESSAGE = "m.invalid_message"
    ACCEPTED = "m.accepted"
    MISMATCHED_COMMITMENT = "m.mismatched_commitment"
    MISMATCHED_SAS = "m.mismatched_sas"


# (when we cancelled, when they did): plain words for the user.
_EXPLANATIONS: dict[str, tuple[str, str]] = {
    CancelCode.USER: (
        "You cancelled the verification.",
        "The other side declined or cancelled the verification.",
    ),
    CancelCode.TIMEOUT: (
        "The verification timed out.",
        "The verification timed out on the other side.",
    ),
    CancelCode.UNKNOWN_TRANSACTION: (
        "A verification message arrived for a verification this device does not know.",
        "The other device does not know this verification (it may have expired there).",
    ),
    CancelCode.UNKNOWN_METHOD: (
        "The other device offered no verification method this client supports.",
        "The other device supports none of the verification methods this client offered.",
    ),
    CancelCode.UNEXPECTED_MESSAGE: (
        "The other device sent a verification message out of order.",
        "The other device received a message it did not expect; try again.",
    ),
    CancelCode.KEY_MISMATCH: (
        "The keys could not be verified: they are not the keys this device expected. "
        "Do not trust this device or user.",
        "The other device could not verify the keys. Do not trust this device or user.",
    ),
    CancelCode.USER_MISMATCH: (
        "The verification involved a user other than the expected one.",
        "The other device saw an unexpected user in this verification.",
    ),
    CancelCode.INVALID_MESSAGE: (
        "The other device sent a malformed verification message.",
        "The other device found one of our verification messages malformed.",
    ),
    CancelCode.ACCEPTED: (
        "The request was handled on another device.",
        "The request was accepted on another device.",
    ),
    CancelCode.MISMATCHED_COMMITMENT: (
        "The other device's key did not match what it committed to: the connection may be "
        "intercepted. Do not trust this device or user.",
        "Our key did not match our commitment on the other side: the connection may be "
        "intercepted.",
    ),
    CancelCode.MISMATCHED_SAS: (
        "You reported that the emoji or numbers did not match: the connection may be "
        "intercepted. Do not trust this device or user.",
        "The other side reported that the emoji or numbers did not match: the connection "
        "may be intercepted.",
    ),
}


def explain_cancel(code: str, by_us: bool) -> str:
    """A sentence for the user about a cancellation with ``code``."""
    texts = _EXPLANATIONS.get(code)
    if texts is None:
        return "The verification was cancelled" + (" here." if by_us else " by the other side.")
    return texts[0] if by_us else texts[1]


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Who cancelled a flow and why."""

    code: str
    #: The ``reason`` sent or received (from the other side: untrusted text, sanitise it).
    reason: str
    by_us: bool
    #: Our own words for ``code`` (what to show).
    explanation: str


@dataclass(frozen=True, slots=True)
class Verification:
    """A snapshot of one flow, for the UI (take a new one after every change)."""

    #: Local handle: pass it to the machine's verification methods.
    id: str
    #: The spec's flow ID: the ``transaction_id``, or the request's event ID in a room.
    flow_id: str | None
    room_id: str | None
    other_user_id: str
    #: The other device, once known (from the request, or its ``ready``).
    other_device_id: str | None
    #: We sent the request (or, for a bare to-device start, the start).
    we_requested: bool
    state: VerificationState
    created_ms: int
    #: When it times out unless something happens (``expire_verifications``).
    expires_ms: int
    #: What this flow can do: ``m.sas.v1`` if both sides offer it, ``m.qr_code.show.v1``
    #: if we show a QR code and they scan, ``m.qr_code.scan.v1`` if we scan theirs (and
    #: ``m.reciprocate.v1`` with either). Before the other side answers: what we offered.
    methods: tuple[str, ...]
    #: The seven emoji, once the keys are exchanged (if the emoji method was agreed).
    emoji: tuple[SasEmoji, ...] | None
    #: The three numbers, once the keys are exchanged.
    decimals: tuple[int, int, int] | None
    #: The other side's keys being verified (key ID to public key), fixed for the flow.
    keys: Mapping[str, str]
    #: Key IDs whose MAC the other side sent and we checked.
    verified_keys: tuple[str, ...]
    cancellation: Cancellation | None
    #: The QR code to show (its bytes, the spec's format), while ready and if the other
    #: side can scan it and the keys it needs are known.
    qr_code: bytes | None = None

    @property
    def in_room(self) -> bool:
        """True for an in-room (DM) flow."""
        return self.room_id is not None

    @property
    def is_final(self) -> bool:
        """Done or cancelled."""
        return self.state in _FINAL

    def __repr__(self) -> str:
        return (
            f"Verification({self.id!r}, {self.other_user_id!r}/{self.other_device_id!r}, "
            f"{self.state.value}, in_room={self.in_room})"
        )


@dataclass(frozen=True, slots=True)
class VerificationMessage:
    """An event the machine wants sent: to-device or to a room."""

    verification_id: str
    #: Stable per message: the to-device transaction ID / the room send's ``txn_id``.
    txn_id: str
    event_type: str
    content: dict[str, Any] = field(repr=False)
    #: To-device: the recipient user and devices.
    user_id: str | None = None
    device_ids: tuple[str, ...] = ()
    #: In-room: the room.
    room_id: str | None = None

    @property
    def in_room(self) -> bool:
        """True if it is a room event."""
        return self.room_id is not None


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """What a finished flow proved: the other side's keys whose MACs matched the SAS."""

    verification_id: str
    other_user_id: str
    other_device_id: str
    #: The other device's Ed25519 key, if its MAC was checked.
    device_key: str | None
    #: The other user's master key, if its MAC was checked.
    master_key: str | None
    in_room: bool


class VerificationError(RuntimeError):
    """A verification action is not possible now (the message says why)."""


class VerificationHost(Protocol):
    """What the verification machine needs from the crypto machine."""

    @property
    def user_id(self) -> str:
        """Our user ID."""
        ...

    @property
    def device_id(self) -> str:
        """Our device ID."""
        ...

    @property
    def ed25519(self) -> str:
        """Our device's Ed25519 key."""
        ...

    def now_ms(self) -> int:
        """The clock."""
        ...

    def create_sas(self) -> Sas:
        """A fresh SAS key pair."""
        ...

    def device_key(self, user_id: str, device_id: str) -> str | None:
        """The Ed25519 key of a known, current device (``None`` if unknown or deleted)."""
        ...

    def device_ids(self, user_id: str) -> list[str]:
        """IDs of the user's current devices."""
        ...

    def cross_signing_keys(self, user_id: str) -> tuple[str | None, frozenset[str]]:
        """The user's published master key (if any) and every cross-signing public key listed."""
        ...

    def own_trusted_master_key(self) -> str | None:
        """Our master key, if this device trusts it (then it is MAC-ed for the other side)."""
        ...

    def device_id_collision(self, user_id: str) -> bool:
        """The server listed a device of ``user_id`` named like one of their cross-signing keys."""
        ...

    def refresh_user(self, user_id: str) -> None:
        """Track ``user_id`` and query their keys again (a device we do not know yet)."""
        ...


@dataclass(frozen=True, slots=True)
class VerificationConfig:
    """Timeouts (the spec's "Error and exception handling" and request prompt rules)."""

    #: A flow times out this long after it was requested, and SAS this long after it started.
    timeout_ms: int = 600_000
    #: A flow also times out after this long without a message sent or received.
    inactivity_ms: int = 600_000
    #: An incoming request the user has not answered is dismissed this long after arrival.
    request_prompt_ms: int = 120_000
    #: A request stamped further in the future than this is ignored.
    future_tolerance_ms: int = 300_000
    #: Finished flows are kept this long (late or repeated events are then ignored quietly).
    linger_ms: int = 600_000
    #: The methods this device offers. A terminal shows QR codes but has no camera to
    #: scan one: ``m.qr_code.scan.v1`` is for programs (and tests) that read codes.
    methods: tuple[str, ...] = (SAS_METHOD, QR_SHOW_METHOD, RECIPROCATE_METHOD)


def usable_methods(ours: Sequence[str], theirs: Sequence[str]) -> tuple[str, ...]:
    """What a flow can do, given the methods each side offered (see ``Verification.methods``)."""
    usable = []
    if SAS_METHOD in ours and SAS_METHOD in theirs:
        usable.append(SAS_METHOD)
    if RECIPROCATE_METHOD in ours and RECIPROCATE_METHOD in theirs:
        if QR_SHOW_METHOD in ours and QR_SCAN_METHOD in theirs:
            usable.append(QR_SHOW_METHOD)
        if QR_SCAN_METHOD in ours and QR_SHOW_METHOD in theirs:
            usable.append(QR_SCAN_METHOD)
        if QR_SHOW_METHOD in usable or QR_SCAN_METHOD in usable:
            usable.append(RECIPROCATE_METHOD)
    return tuple(usable)


@dataclass(eq=False)
class _Flow:
    id: str
    other_user: str
    room_id: str | None
    flow_id: str | None
    we_requested: bool
    created_ms: int
    deadline_ms: int
    last_activity_ms: int
    state: VerificationState
    request_txn: str | None = None
    #: Begun by a request (``False``: a bare to-device start, which has no ``done``).
    from_request: bool = True
    request_targets: tuple[str, ...] = ()
    other_device: str | None = None
    prompt_deadline_ms: int | None = None
    methods: tuple[str, ...] = ()
    # Keys fixed for the flow: theirs (key ID -> key) and our master key to MAC, if any.
    their_keys: dict[str, str] | None = None
    their_device_key_id: str | None = None
    their_master_key_id: str | None = None
    our_master_key: str | None = None
    # SAS
    sas: Sas | None = field(default=None, repr=False)
    we_started_sas: bool = False
    start_content: dict[str, Any] | None = field(default=None, repr=False)
    their_commitment: str | None = None
    mac_method: SasMacMethod | None = None
    mac_method_name: str | None = None
    sas_methods: tuple[str, ...] = ()
    #: Their ``start``, held until their device's keys are known (see ``_on_start``).
    pending_start: dict[str, Any] | None = field(default=None, repr=False)
    #: A bare ``start`` (no request before it), held until the user accepts it.
    bare_start: dict[str, Any] | None = field(default=None, repr=False)
    their_key: str | None = None
    our_key_sent: bool = False
    emoji: tuple[SasEmoji, ...] | None = None
    decimals: tuple[int, int, int] | None = None
    verified_keys: tuple[str, ...] = ()
    # QR codes: the code we show (its secret, to check the other side's reciprocate), and
    # what a QR flow proved once the user (or our scan) confirmed it: their device key and
    # master key, as for SAS (``_finish``).
    qr: QrCode | None = field(default=None, repr=False)
    qr_device_key: str | None = None
    qr_master_key: str | None = None
    their_mac_ok: bool = False
    our_mac_sent: bool = False
    done_sent: bool = False
    done_received: bool = False
    cancellation: Cancellation | None = None
    ended_ms: int | None = None
    seen: set[str] = field(default_factory=set)
    #: The event that completed the flow, and what it proved (see ``_dispatch``).
    final_digest: str | None = None
    result: VerificationResult | None = None

    @property
    def in_room(self) -> bool:
        return self.room_id is not None

    @property
    def final(self) -> bool:
        return self.state in _FINAL


class _Cancel(Exception):
    """Processing an event hit an error: cancel the flow with ``code``."""

    def __init__(self, code: CancelCode, reason: str, explanation: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        #: Our words for the user, when the code's usual ones would not say what happened.
        self.explanation = explanation


def _new_id() -> str:
    return secrets.token_urlsafe(18)


def _str(content: Mapping[str, Any], key: str) -> str:
    value = content.get(key)
    if not isinstance(value, str) or not value:
        raise _Cancel(CancelCode.INVALID_MESSAGE, f"missing or invalid {key}")
    return value


def _str_list(content: Mapping[str, Any], key: str) -> list[str]:
    value = content.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Cancel(CancelCode.INVALID_MESSAGE, f"missing or invalid {key}")
    return list(value)


def _digest(event_type: str, content: Mapping[str, Any]) -> str:
    text = json.dumps([event_type, content], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _relation(content: Mapping[str, Any]) -> str | None:
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping) or relates.get("rel_type") != "m.reference":
        return None
    event_id = relates.get("event_id")
    return event_id if isinstance(event_id, str) and event_id else None
