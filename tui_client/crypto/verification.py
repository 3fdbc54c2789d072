"""Interactive key verification: the request framework and SAS (emoji / decimal), sans-I/O.

One state machine for both transports the spec's "Key verification framework"
defines: to-device (``m.key.verification.*`` with a ``transaction_id``, for our own
devices) and in-room (an ``m.room.message`` with ``msgtype:
m.key.verification.request`` in a DM, then events related to it by ``m.reference``,
for other users). Input is events (:meth:`VerificationMachine.receive_to_device`,
:meth:`~VerificationMachine.receive_room_event`) and the user's choices (accept,
start, confirm, mismatch, cancel); output is :class:`VerificationMessage` values
("send this event"), :class:`VerificationResult` values (what was verified), and
:class:`Verification` snapshots for the UI. Time comes from the host's clock.

Flows are keyed by transport: ``(other user, transaction_id)`` to-device and
``(room, request event ID)`` in-room, so several run at once without mixing; each
also gets a local handle (:attr:`Verification.id`) for the UI.

Security (the spec's "Key and signature security", after the 2022 attacks):

- the other side's keys are fixed when the flow learns its device (at the latest
  when SAS starts), referred to by public key, and never re-read;
- a user with a device whose ID equals one of their cross-signing public keys is
  refused (``m.key_mismatch``);
- a MAC is accepted only if the key-ID list MAC matches, the device's key is among
  the keys it names, and every fixed key it names has a valid MAC (else
  ``m.key_mismatch``); a key ID that is not one of the fixed keys (say a master key
  published after the flow began) is skipped and not verified;
- the commitment and the MACs are compared in constant time.

A ``start`` that arrives before the other device's keys are known (our key query is
still running) is held until they are, not taken as a key mismatch. Requests that
cross (both sides asked each other) end in one flow: see "crossed requests" below.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from tui_client.protocol.canonical_json import CanonicalJsonError

from .backend import Sas, SasError, SasMacMethod
from .encoding import is_curve25519_key
from .sas import (
    DECIMAL_BYTES,
    EMOJI_BYTES,
    HASH,
    KEY_AGREEMENT_PROTOCOL,
    MAC_METHODS,
    SAS_METHOD,
    SHORT_AUTHENTICATION_STRINGS,
    SasEmoji,
    choose_mac_method,
    commitment,
    decimals_from_bytes,
    emoji_from_bytes,
    key_ids_text,
    mac_info,
    mac_method_from_name,
    sas_info,
)

__all__ = [
    "REQUEST_MSGTYPE",
    "VERIFICATION_EVENT_TYPES",
    "CancelCode",
    "Cancellation",
    "Verification",
    "VerificationConfig",
    "VerificationError",
    "VerificationHost",
    "VerificationMachine",
    "VerificationMessage",
    "VerificationResult",
    "VerificationState",
    "explain_cancel",
]

log = logging.getLogger(__name__)

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


class VerificationState(StrEnum):
    """Where a flow is, and what the UI should offer."""

    #: An in-room request not yet sent (waiting for its event ID).
    CREATED = "created"
    #: We asked; waiting for the other side to accept.
    REQUESTED = "requested"
    #: They asked; show "accept / decline" (``Verification.methods`` empty: unsupported).
    INCOMING = "incoming"
    #: Both sides ready; either may start SAS (``start_sas``).
    READY = "ready"
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
    #: Verification methods both sides support (only ``m.sas.v1`` here).
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


_SUPPORTED_METHODS = (SAS_METHOD,)


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

    def __init__(self, code: CancelCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


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


def _sas_offer(content: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The MAC method and short strings we choose from a SAS ``start``; raises if none fit."""
    method = _str(content, "method")
    if method != SAS_METHOD:
        raise _Cancel(CancelCode.UNKNOWN_METHOD, f"unsupported method {method}")
    protocols = _str_list(content, "key_agreement_protocols")
    hashes = _str_list(content, "hashes")
    macs = _str_list(content, "message_authentication_codes")
    strings = _str_list(content, "short_authentication_string")
    mac_name = choose_mac_method(macs)
    agreed = tuple(s for s in SHORT_AUTHENTICATION_STRINGS if s in strings)
    if (
        KEY_AGREEMENT_PROTOCOL not in protocols
        or HASH not in hashes
        or mac_name is None
        or not agreed
    ):
        raise _Cancel(CancelCode.UNKNOWN_METHOD, "no SAS parameters in common")
    return mac_name, agreed


def _digest(event_type: str, content: Mapping[str, Any]) -> str:
    text = json.dumps([event_type, content], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _relation(content: Mapping[str, Any]) -> str | None:
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping) or relates.get("rel_type") != "m.reference":
        return None
    event_id = relates.get("event_id")
    return event_id if isinstance(event_id, str) and event_id else None


class VerificationMachine:
    """Every verification flow of one device (see the module documentation)."""

    def __init__(self, host: VerificationHost, config: VerificationConfig | None = None) -> None:
        self._host = host
        self._config = config or VerificationConfig()
        self._flows: dict[str, _Flow] = {}
        self._index: dict[tuple[str, str, str], str] = {}
        self._messages: list[VerificationMessage] = []
        self._results: list[VerificationResult] = []
        self._changed: dict[str, None] = {}

    def __repr__(self) -> str:
        return f"VerificationMachine({self._host.user_id!r}, flows={len(self._flows)})"

    # ------------------------------------------------------------------ outputs

    def take_messages(self) -> list[VerificationMessage]:
        """Events to send, in order (each returned once)."""
        messages, self._messages = self._messages, []
        return messages

    def take_results(self) -> list[VerificationResult]:
        """Flows that ended verified since the last call (each returned once)."""
        results, self._results = self._results, []
        return results

    def take_changed(self) -> list[Verification]:
        """Snapshots of the flows that changed since the last call."""
        changed, self._changed = list(self._changed), {}
        return [self._snapshot(self._flows[i]) for i in changed if i in self._flows]

    def get(self, verification_id: str) -> Verification | None:
        """A flow's snapshot."""
        flow = self._flows.get(verification_id)
        return None if flow is None else self._snapshot(flow)

    def list(self, *, active_only: bool = True) -> list[Verification]:
        """Every flow (only unfinished ones by default), oldest first."""
        return [
            self._snapshot(f)
            for f in sorted(self._flows.values(), key=lambda f: f.created_ms)
            if not (active_only and f.final)
        ]

    def _snapshot(self, flow: _Flow) -> Verification:
        expires = min(flow.deadline_ms, flow.last_activity_ms + self._config.inactivity_ms)
        if flow.prompt_deadline_ms is not None and flow.state is VerificationState.INCOMING:
            expires = min(expires, flow.prompt_deadline_ms)
        return Verification(
            id=flow.id,
            flow_id=flow.flow_id,
            room_id=flow.room_id,
            other_user_id=flow.other_user,
            other_device_id=flow.other_device,
            we_requested=flow.we_requested,
            state=flow.state,
            created_ms=flow.created_ms,
            expires_ms=expires,
            methods=flow.methods,
            emoji=flow.emoji,
            decimals=flow.decimals,
            keys=dict(flow.their_keys or {}),
            verified_keys=flow.verified_keys,
            cancellation=flow.cancellation,
        )

    # ------------------------------------------------------------------ bookkeeping

    def _touch(self, flow: _Flow) -> None:
        flow.last_activity_ms = self._host.now_ms()
        self._changed[flow.id] = None

    def _new_flow(
        self,
        other_user: str,
        *,
        room_id: str | None,
        flow_id: str | None,
        we_requested: bool,
        state: VerificationState,
        created_ms: int | None = None,
    ) -> _Flow:
        now = self._host.now_ms()
        created = now if created_ms is None else created_ms
        flow = _Flow(
            id=_new_id(),
            other_user=other_user,
            room_id=room_id,
            flow_id=flow_id,
            we_requested=we_requested,
            created_ms=created,
            deadline_ms=created + self._config.timeout_ms,
            last_activity_ms=now,
            state=state,
        )
        self._flows[flow.id] = flow
        if flow_id is not None:
            self._index[self._key(flow)] = flow.id
        self._changed[flow.id] = None
        return flow

    @staticmethod
    def _key(flow: _Flow) -> tuple[str, str, str]:
        assert flow.flow_id is not None
        if flow.room_id is not None:
            return ("room", flow.room_id, flow.flow_id)
        return ("to_device", flow.other_user, flow.flow_id)

    def _flow(self, verification_id: str) -> _Flow:
        flow = self._flows.get(verification_id)
        if flow is None:
            raise VerificationError("no such verification")
        return flow

    def _content(self, flow: _Flow, content: dict[str, Any]) -> dict[str, Any]:
        assert flow.flow_id is not None
        if flow.in_room:
            content["m.relates_to"] = {"rel_type": "m.reference", "event_id": flow.flow_id}
        else:
            content["transaction_id"] = flow.flow_id
        return content

    def _send(
        self,
        flow: _Flow,
        event_type: str,
        content: dict[str, Any],
        devices: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        content = self._content(flow, content)
        if flow.in_room:
            assert flow.room_id is not None
            message = VerificationMessage(
                flow.id, _new_id(), event_type, content, room_id=flow.room_id
            )
        else:
            if devices is None:
                devices = (flow.other_device,) if flow.other_device else flow.request_targets
            if not devices:
                return content
            message = VerificationMessage(
                flow.id,
                _new_id(),
                event_type,
                content,
                user_id=flow.other_user,
                device_ids=tuple(devices),
            )
        self._messages.append(message)
        self._touch(flow)
        return content

    def _end(self, flow: _Flow, state: VerificationState) -> None:
        flow.state = state
        flow.ended_ms = self._host.now_ms()
        flow.sas = None
        flow.pending_start = None
        flow.bare_start = None
        self._changed[flow.id] = None

    def _cancel(
        self,
        flow: _Flow,
        code: CancelCode | str,
        reason: str | None = None,
        *,
        send: bool = True,
        devices: Sequence[str] | None = None,
    ) -> None:
        if flow.final:
            return
        code = str(code)
        reason = reason or explain_cancel(code, True)
        if send and flow.flow_id is not None:
            self._send(flow, CANCEL, {"code": code, "reason": reason}, devices)
        flow.cancellation = Cancellation(code, reason, True, explain_cancel(code, True))
        log.info("verification %s cancelled here: %s", flow.id, code)
        self._end(flow, VerificationState.CANCELLED)

    # ------------------------------------------------------------------ keys fixed for a flow

    def _fix_keys(self, flow: _Flow, *, refresh: bool = True) -> bool:
        """Fix the other side's keys (once); ``False`` if the device's keys are not known yet.

        Unknown keys are asked for again (``refresh``). Raises :class:`_Cancel`
        (``m.key_mismatch``) when the other user has a device named like one of their
        cross-signing keys.
        """
        if flow.their_keys is not None:
            return True
        device_id = flow.other_device
        if device_id is None:
            return False
        host = self._host
        master, cross_signing = host.cross_signing_keys(flow.other_user)
        colliding = cross_signing.intersection({device_id, *host.device_ids(flow.other_user)})
        if colliding or host.device_id_collision(flow.other_user):
            raise _Cancel(
                CancelCode.KEY_MISMATCH, "a device ID of this user equals a cross-signing key"
            )
        _, own_cross_signing = host.cross_signing_keys(host.user_id)
        if host.device_id in own_cross_signing:
            raise _Cancel(CancelCode.KEY_MISMATCH, "our device ID equals a cross-signing key")
        device_key = host.device_key(flow.other_user, device_id)
        if device_key is None:
            if refresh:
                host.refresh_user(flow.other_user)
            return False
        keys = {f"ed25519:{device_id}": device_key}
        flow.their_device_key_id = f"ed25519:{device_id}"
        if master is not None:
            keys[f"ed25519:{master}"] = master
            flow.their_master_key_id = f"ed25519:{master}"
        flow.their_keys = keys
        flow.our_master_key = host.own_trusted_master_key()
        self._changed[flow.id] = None
        return True

    # ------------------------------------------------------------------ our actions

    def request(self, user_id: str, device_ids: Sequence[str]) -> Verification:
        """Ask ``device_ids`` of ``user_id`` to verify over to-device messages (our own devices).

        If one of them asked us already (not answered yet) and its request wins over
        ours (see "crossed requests"), that request is accepted instead: the snapshot
        returned is that flow, ready.
        """
        devices = tuple(d for d in dict.fromkeys(device_ids) if d)
        if user_id == self._host.user_id:
            devices = tuple(d for d in devices if d != self._host.device_id)
        if not devices:
            raise VerificationError("no device to send the request to")
        theirs = self._settle_crossing(user_id, None, devices)
        if theirs is not None:
            return self.accept(theirs.id)
        flow = self._new_flow(
            user_id,
            room_id=None,
            flow_id=_new_id(),
            we_requested=True,
            state=VerificationState.REQUESTED,
        )
        flow.request_targets = devices
        flow.methods = _SUPPORTED_METHODS
        if len(devices) == 1:
            flow.other_device = devices[0]
        self._send(
            flow,
            REQUEST,
            {
                "from_device": self._host.device_id,
                "methods": list(_SUPPORTED_METHODS),
                "timestamp": self._host.now_ms(),
            },
            devices,
        )
        if flow.other_device is not None:
            self._try_fix(flow)
        self._host.refresh_user(user_id)
        return self._snapshot(flow)

    def request_in_room(self, room_id: str, user_id: str) -> Verification:
        """Ask ``user_id`` to verify in ``room_id`` (a DM); the flow waits for its event ID.

        As :meth:`request`, their unanswered request in the room may be accepted instead.
        """
        if user_id == self._host.user_id:
            raise VerificationError("verify your own devices with a to-device request")
        theirs = self._settle_crossing(user_id, room_id)
        if theirs is not None:
            return self.accept(theirs.id)
        flow = self._new_flow(
            user_id,
            room_id=room_id,
            flow_id=None,
            we_requested=True,
            state=VerificationState.CREATED,
        )
        flow.methods = _SUPPORTED_METHODS
        flow.request_txn = _new_id()
        content = {
            "msgtype": REQUEST_MSGTYPE,
            "body": (
                f"{self._host.user_id} is requesting to verify your key, but your client does "
                "not support in-chat key verification. You will need to use legacy key "
                "verification to verify keys."
            ),
            "from_device": self._host.device_id,
            "methods": list(_SUPPORTED_METHODS),
            "to": user_id,
        }
        self._messages.append(
            VerificationMessage(
                flow.id, flow.request_txn, "m.room.message", content, room_id=room_id
            )
        )
        self._host.refresh_user(user_id)
        return self._snapshot(flow)

    def bind_room_request(self, txn_id: str, event_id: str) -> Verification | None:
        """Our in-room request was sent as ``event_id``: the flow's ID from now on."""
        for flow in self._flows.values():
            if flow.request_txn == txn_id and flow.flow_id is None:
                flow.flow_id = event_id
                self._index[self._key(flow)] = flow.id
                if flow.state is VerificationState.CREATED:
                    flow.state = VerificationState.REQUESTED
                    self._crossed_after_sending(flow)
                elif flow.cancellation is not None and flow.cancellation.by_us:
                    # Cancelled while the request was on its way: tell the room now.
                    cancelled = flow.cancellation
                    self._send(flow, CANCEL, {"code": cancelled.code, "reason": cancelled.reason})
                self._touch(flow)
                return self._snapshot(flow)
        return None

    def room_request_failed(self, txn_id: str) -> Verification | None:
        """Our in-room request could not be sent: the flow ends (there is no one to tell)."""
        for flow in self._flows.values():
            if flow.request_txn == txn_id and flow.flow_id is None and not flow.final:
                self._cancel(flow, CancelCode.USER, "the request could not be sent", send=False)
                return self._snapshot(flow)
        return None

    def accept(self, verification_id: str) -> Verification:
        """Accept an incoming request (sends ``ready``), or a bare start (answers it)."""
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.INCOMING:
            raise VerificationError(f"cannot accept a verification in state {flow.state.value}")
        if not flow.methods:
            raise VerificationError("the other device offers no verification method we support")
        if flow.bare_start is not None:
            return self._accept_bare_start(flow)
        try:
            self._try_fix(flow, strict=True)
        except _Cancel as cancel:
            self._cancel(flow, cancel.code, cancel.reason)
            return self._snapshot(flow)
        self._send(
            flow,
            READY,
            {"from_device": self._host.device_id, "methods": list(flow.methods)},
        )
        flow.state = VerificationState.READY
        return self._snapshot(flow)

    def _accept_bare_start(self, flow: _Flow) -> Verification:
        """The user accepted a bare start: answer it now (held again if the keys are unknown)."""
        start = flow.bare_start
        assert start is not None
        flow.bare_start = None
        flow.prompt_deadline_ms = None
        flow.state = VerificationState.READY
        self._touch(flow)
        try:
            self._on_start(flow, start)
        except _Cancel as cancel:
            log.info("verification %s: %s", flow.id, cancel.reason)
            self._cancel(flow, cancel.code, cancel.reason)
        return self._snapshot(flow)

    def start_sas(self, verification_id: str) -> Verification:
        """Start SAS on a ready flow (sends ``start``)."""
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.READY:
            raise VerificationError(f"cannot start SAS in state {flow.state.value}")
        if SAS_METHOD not in flow.methods:
            raise VerificationError("the other device does not support SAS")
        if flow.pending_start is not None:
            # They started already, before we knew their keys: answer their start instead.
            self._resume_start(flow)
            if flow.pending_start is not None:
                raise VerificationError(
                    "the other device's keys are not known yet: wait for the key query"
                )
            return self._snapshot(flow)
        try:
            if not self._fix_keys(flow):
                raise VerificationError(
                    "the other device's keys are not known yet: wait for the key query"
                )
        except _Cancel as cancel:
            self._cancel(flow, cancel.code, cancel.reason)
            return self._snapshot(flow)
        self._begin_sas(flow)
        content = self._send(
            flow,
            START,
            {
                "from_device": self._host.device_id,
                "method": SAS_METHOD,
                "key_agreement_protocols": [KEY_AGREEMENT_PROTOCOL],
                "hashes": [HASH],
                "message_authentication_codes": list(MAC_METHODS),
                "short_authentication_string": list(SHORT_AUTHENTICATION_STRINGS),
            },
        )
        flow.start_content = json.loads(json.dumps(content))
        flow.we_started_sas = True
        return self._snapshot(flow)

    def confirm_sas(self, verification_id: str) -> Verification:
        """The user says the emoji / numbers match: send our MAC (and ``done`` if theirs checked)."""
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.KEYS_EXCHANGED:
            raise VerificationError(f"nothing to confirm in state {flow.state.value}")
        self._send_mac(flow)
        flow.state = VerificationState.CONFIRMED
        if flow.their_mac_ok:
            self._send_done(flow)
        return self._snapshot(flow)

    def sas_mismatch(self, verification_id: str) -> Verification:
        """The user says they do not match: cancel with ``m.mismatched_sas``."""
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.KEYS_EXCHANGED:
            raise VerificationError(f"nothing to compare in state {flow.state.value}")
        self._cancel(flow, CancelCode.MISMATCHED_SAS)
        return self._snapshot(flow)

    def cancel(
        self, verification_id: str, code: CancelCode | str = CancelCode.USER
    ) -> Verification:
        """Cancel (or decline) a flow; to-device requests not yet accepted reach every target."""
        flow = self._flow(verification_id)
        if flow.final:
            return self._snapshot(flow)
        if flow.flow_id is None:
            self._cancel(flow, code, send=False)
            return self._snapshot(flow)
        devices: Sequence[str] | None = None
        if not flow.in_room and flow.state is VerificationState.REQUESTED:
            devices = flow.request_targets
        self._cancel(flow, code, devices=devices)
        return self._snapshot(flow)

    def _try_fix(self, flow: _Flow, *, strict: bool = False) -> None:
        """Fix the keys when the device is known; a collision cancels (raised if ``strict``)."""
        try:
            self._fix_keys(flow)
        except _Cancel as cancel:
            if strict:
                raise
            self._cancel(flow, cancel.code, cancel.reason)

    # ------------------------------------------------------------------ timeouts

    def expire(self) -> None:
        """Time flows out (the caller's clock decides) and forget long-finished ones."""
        now = self._host.now_ms()
        for flow in list(self._flows.values()):
            if flow.final:
                if flow.ended_ms is not None and now - flow.ended_ms >= self._config.linger_ms:
                    self._forget(flow)
                continue
            if (
                flow.state is VerificationState.INCOMING
                and flow.prompt_deadline_ms is not None
                and now >= flow.prompt_deadline_ms
            ):
                # Dismiss the prompt without telling anyone: another of our devices may answer.
                # A bare start was sent to this device alone: it is told.
                self._cancel(flow, CancelCode.TIMEOUT, send=not flow.from_request)
                continue
            if now >= flow.deadline_ms or now - flow.last_activity_ms >= self._config.inactivity_ms:
                devices = (
                    flow.request_targets if flow.state is VerificationState.REQUESTED else None
                )
                self._cancel(
                    flow,
                    CancelCode.TIMEOUT,
                    send=flow.state is not VerificationState.INCOMING,
                    devices=devices if not flow.in_room else None,
                )
                continue
            if flow.pending_start is not None:
                self._resume_start(flow)

    def _forget(self, flow: _Flow) -> None:
        self._flows.pop(flow.id, None)
        if flow.flow_id is not None and self._index.get(self._key(flow)) == flow.id:
            # (A request merged into one of ours is indexed to our flow: see ``_adopt``.)
            self._index.pop(self._key(flow), None)
        self._changed.pop(flow.id, None)

    # ------------------------------------------------------------------ input

    def receive_to_device(
        self,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        sender_device: str | None = None,
    ) -> None:
        """A to-device ``m.key.verification.*`` event (``sender_device`` when Olm-authenticated)."""
        if event_type not in VERIFICATION_EVENT_TYPES or not isinstance(content, Mapping):
            return
        txn = content.get("transaction_id")
        if not isinstance(txn, str) or not txn:
            log.info("to-device %s without transaction_id ignored", event_type)
            return
        flow_id = self._index.get(("to_device", sender, txn))
        flow = self._flows.get(flow_id) if flow_id is not None else None
        if event_type == REQUEST:
            if flow is None:
                self._incoming_to_device_request(sender, txn, content)
            return
        if flow is None:
            if event_type == START:
                self._bare_start(sender, txn, content)
            elif event_type not in (CANCEL, DONE):
                self._unknown_transaction(sender, txn, event_type, content, sender_device)
            return
        if sender_device is not None and flow.other_device not in (None, sender_device):
            log.info("verification event from another device of %s ignored", sender)
            return
        self._dispatch(flow, event_type, content)

    def receive_room_event(self, room_id: str, event: Mapping[str, Any]) -> None:
        """A room event (decrypted if it was encrypted) that may belong to a verification."""
        sender = event.get("sender")
        content = event.get("content")
        event_type = event.get("type")
        if not isinstance(sender, str) or not isinstance(content, Mapping):
            return
        if event_type == "m.room.message":
            if content.get("msgtype") == REQUEST_MSGTYPE:
                self._incoming_room_request(room_id, sender, event, content)
            return
        if event_type not in VERIFICATION_EVENT_TYPES or event_type == REQUEST:
            return
        related = _relation(content)
        if related is None:
            return
        flow_id = self._index.get(("room", room_id, related))
        flow = self._flows.get(flow_id) if flow_id is not None else None
        if flow is None:
            return
        if sender == self._host.user_id:
            self._own_room_event(flow, event_type, content)
            return
        if sender != flow.other_user:
            return
        self._dispatch(flow, event_type, content)

    def _own_room_event(self, flow: _Flow, event_type: str, content: Mapping[str, Any]) -> None:
        """Our own user's events in a flow: our echoes, or another of our devices answering."""
        if flow.final or flow.state is not VerificationState.INCOMING:
            return
        if event_type == READY and content.get("from_device") != self._host.device_id:
            flow.cancellation = Cancellation(
                CancelCode.ACCEPTED.value,
                "accepted on another of your devices",
                False,
                explain_cancel(CancelCode.ACCEPTED, False),
            )
            self._end(flow, VerificationState.CANCELLED)
        elif event_type == CANCEL:
            code = content.get("code")
            code = code if isinstance(code, str) else CancelCode.USER.value
            flow.cancellation = Cancellation(
                code, "declined on another of your devices", False, explain_cancel(code, False)
            )
            self._end(flow, VerificationState.CANCELLED)

    # ------------------------------------------------------------------ new flows

    def _timestamp_ok(self, timestamp: object) -> bool:
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            return False
        now = self._host.now_ms()
        return (
            now - timestamp <= self._config.timeout_ms
            and timestamp - now <= self._config.future_tolerance_ms
        )

    def _incoming_request(
        self,
        sender: str,
        *,
        room_id: str | None,
        flow_id: str,
        content: Mapping[str, Any],
        timestamp: int,
    ) -> None:
        from_device = content.get("from_device")
        methods = content.get("methods")
        if not isinstance(from_device, str) or not from_device or not isinstance(methods, list):
            log.info("malformed verification request from %s ignored", sender)
            return
        if sender == self._host.user_id and from_device == self._host.device_id:
            return
        ours = self._our_request_to(sender, from_device, room_id)
        crossed = ours is not None and SAS_METHOD in methods
        if crossed:
            assert ours is not None
            self._supersede(sender, from_device)
            if self._we_go_first(sender, from_device):
                # Theirs crossed ours: ours is kept (they accept it on their side).
                self._set_aside(
                    self._new_flow(
                        sender,
                        room_id=room_id,
                        flow_id=flow_id,
                        we_requested=False,
                        state=VerificationState.INCOMING,
                        created_ms=min(timestamp, self._host.now_ms()),
                    ),
                    from_device,
                    _digest(REQUEST, content),
                )
                return
            if ours.state is VerificationState.REQUESTED:
                self._adopt(
                    ours,
                    flow_id=flow_id,
                    from_device=from_device,
                    methods=tuple(m for m in _SUPPORTED_METHODS if m in methods),
                    seen=(_digest(REQUEST, content),),
                )
                return
            # Ours is not sent yet (in a room): settled when it is (``bind_room_request``).
        self._supersede(sender, from_device)
        now = self._host.now_ms()
        flow = self._new_flow(
            sender,
            room_id=room_id,
            flow_id=flow_id,
            we_requested=False,
            state=VerificationState.INCOMING,
            created_ms=min(timestamp, now),
        )
        flow.other_device = from_device
        flow.methods = tuple(m for m in _SUPPORTED_METHODS if m in methods)
        flow.prompt_deadline_ms = min(
            timestamp + self._config.timeout_ms, now + self._config.request_prompt_ms
        )
        flow.seen.add(_digest(REQUEST, content))
        self._try_fix(flow)
        if flow.their_keys is None and not flow.final:
            self._host.refresh_user(sender)

    def _supersede(self, sender: str, device_id: str) -> None:
        """A device asking again: drop its unanswered request, cancel anything further along.

        The spec: "When the same device attempts to initiate multiple verification
        attempts, the recipient should cancel all attempts with that device." A
        request still waiting for our user is replaced quietly (the device gave up on it).
        Our own unanswered request to the device is not touched: the requests crossed.
        """
        for flow in list(self._flows.values()):
            if flow.final or flow.other_user != sender or flow.other_device != device_id:
                continue
            if flow.we_requested and flow.state in _UNANSWERED:
                # Our own request to that device, crossing theirs: see ``_our_request_to``.
                continue
            if flow.state is VerificationState.INCOMING:
                flow.cancellation = Cancellation(
                    CancelCode.USER.value,
                    "replaced by a new request",
                    False,
                    explain_cancel(CancelCode.USER, False),
                )
                self._end(flow, VerificationState.CANCELLED)
            else:
                self._cancel(flow, CancelCode.UNEXPECTED_MESSAGE, "a new request from this device")

    # ------------------------------------------------------------------ crossed requests
    #
    # Both sides asking each other at once (each user clicked "verify" before the other's
    # request arrived) would leave two flows, or cancel both. The request of the side
    # whose (user ID, device ID) is smaller is kept on both sides (the spec's rule for
    # two starts): that side ignores the other request; the other side accepts the kept
    # request in place of its own (its user asked to verify that very device or user),
    # and tells the targets of its own request that it is over (``m.accepted``). Its
    # flow keeps its local handle, so the dialog showing it goes on.

    def _we_go_first(self, other_user: str, other_device: str | None) -> bool:
        ours = (self._host.user_id, self._host.device_id)
        return ours < (other_user, other_device or "")

    def _our_request_to(self, user_id: str, device_id: str, room_id: str | None) -> _Flow | None:
        """Our unanswered request that ``device_id`` of ``user_id`` would answer (same transport)."""
        for flow in self._flows.values():
            if (
                flow.final
                or not flow.we_requested
                or not flow.from_request
                or flow.state not in _UNANSWERED
                or flow.other_user != user_id
            ):
                continue
            if room_id is None and not flow.in_room and device_id in flow.request_targets:
                return flow
            if room_id is not None and flow.room_id == room_id:
                return flow
        return None

    def _their_requests(
        self, user_id: str, room_id: str | None, devices: Sequence[str] = ()
    ) -> tuple[_Flow, ...]:
        """Unanswered requests from ``user_id`` (to-device: from one of ``devices``), oldest first."""
        return tuple(
            flow
            for flow in sorted(self._flows.values(), key=lambda f: f.created_ms)
            if not flow.final
            and flow.state is VerificationState.INCOMING
            and flow.other_user == user_id
            and SAS_METHOD in flow.methods
            and flow.room_id == room_id
            and (room_id is not None or flow.other_device in devices)
        )

    def _settle_crossing(
        self, user_id: str, room_id: str | None, devices: Sequence[str] = ()
    ) -> _Flow | None:
        """We are about to ask: a request of theirs to accept instead, if one wins over ours.

        Else their requests (each losing to ours) are set aside: they accept ours.
        """
        waiting = self._their_requests(user_id, room_id, devices)
        for theirs in waiting:
            # A bare start cannot be replaced by our request (its sender knows no requests).
            if not theirs.from_request or not self._we_go_first(
                theirs.other_user, theirs.other_device
            ):
                return theirs
        for theirs in waiting:
            self._set_aside(theirs)
        return None

    def _crossed_after_sending(self, ours: _Flow) -> None:
        """Our in-room request got its event ID: settle requests of theirs that came before."""
        theirs = self._settle_crossing(ours.other_user, ours.room_id)
        if theirs is None:
            return
        assert theirs.flow_id is not None and theirs.other_device is not None
        self._adopt(
            ours,
            flow_id=theirs.flow_id,
            from_device=theirs.other_device,
            methods=theirs.methods,
            seen=tuple(theirs.seen),
        )
        self._set_aside(theirs)

    def _set_aside(
        self, flow: _Flow, from_device: str | None = None, digest: str | None = None
    ) -> None:
        """End a request of theirs quietly: it crossed ours (nothing is sent)."""
        if from_device is not None:
            flow.other_device = from_device
        if digest is not None:
            flow.seen.add(digest)
        reason = "crossed with a request of this device"
        flow.cancellation = Cancellation(
            CancelCode.ACCEPTED.value,
            reason,
            True,
            "You both asked at once: the verification goes on in one request.",
        )
        log.info("verification %s set aside: %s", flow.id, reason)
        self._end(flow, VerificationState.CANCELLED)

    def _adopt(
        self,
        ours: _Flow,
        *,
        flow_id: str,
        from_device: str,
        methods: tuple[str, ...],
        seen: Sequence[str],
    ) -> None:
        """Their crossing request wins: our flow becomes it, accepted (``ready`` sent)."""
        assert ours.flow_id is not None
        # Our request is over: its targets (our other devices, or theirs in the room) stop asking.
        self._send(
            ours,
            CANCEL,
            {"code": CancelCode.ACCEPTED.value, "reason": "replaced by the other side's request"},
            None if ours.in_room else ours.request_targets,
        )
        self._index.pop(self._key(ours), None)
        ours.flow_id = flow_id
        self._index[self._key(ours)] = ours.id
        if ours.other_device not in (None, from_device):
            ours.their_keys = None
            ours.their_device_key_id = None
            ours.their_master_key_id = None
        ours.other_device = from_device
        ours.request_targets = () if ours.in_room else (from_device,)
        ours.we_requested = False
        ours.methods = methods
        ours.seen.update(seen)
        log.info("verification %s: crossed requests, theirs accepted in place of ours", ours.id)
        try:
            self._try_fix(ours, strict=True)
        except _Cancel as cancel:
            self._cancel(ours, cancel.code, cancel.reason)
            return
        self._send(ours, READY, {"from_device": self._host.device_id, "methods": list(methods)})
        ours.state = VerificationState.READY
        if ours.their_keys is None:
            self._host.refresh_user(ours.other_user)

    def _incoming_to_device_request(
        self, sender: str, txn: str, content: Mapping[str, Any]
    ) -> None:
        timestamp = content.get("timestamp")
        if not self._timestamp_ok(timestamp):
            log.info("verification request from %s too old or in the future: ignored", sender)
            return
        assert isinstance(timestamp, int)
        self._incoming_request(
            sender, room_id=None, flow_id=txn, content=content, timestamp=timestamp
        )

    def _incoming_room_request(
        self, room_id: str, sender: str, event: Mapping[str, Any], content: Mapping[str, Any]
    ) -> None:
        event_id = event.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            return
        if sender == self._host.user_id:
            unsigned = event.get("unsigned")
            txn = unsigned.get("transaction_id") if isinstance(unsigned, Mapping) else None
            if isinstance(txn, str) and content.get("from_device") == self._host.device_id:
                self.bind_room_request(txn, event_id)
            return
        if content.get("to") != self._host.user_id:
            return
        if ("room", room_id, event_id) in self._index:
            return
        timestamp = event.get("origin_server_ts")
        if not self._timestamp_ok(timestamp):
            return
        assert isinstance(timestamp, int)
        self._incoming_request(
            sender, room_id=room_id, flow_id=event_id, content=content, timestamp=timestamp
        )

    def _bare_start(self, sender: str, txn: str, content: Mapping[str, Any]) -> None:
        """A to-device ``start`` without a request (deprecated, but still to be handled).

        It waits for the user like a request (``INCOMING``): nothing is answered until
        they accept it (:meth:`accept`); declining sends ``m.user``. A start we could
        not answer anyway is cancelled at once, without asking.
        """
        from_device = content.get("from_device")
        if not isinstance(from_device, str) or not from_device:
            return
        if sender == self._host.user_id and from_device == self._host.device_id:
            return
        self._supersede(sender, from_device)
        now = self._host.now_ms()
        flow = self._new_flow(
            sender,
            room_id=None,
            flow_id=txn,
            we_requested=False,
            state=VerificationState.INCOMING,
        )
        flow.other_device = from_device
        flow.methods = _SUPPORTED_METHODS
        flow.from_request = False
        flow.prompt_deadline_ms = now + self._config.request_prompt_ms
        flow.seen.add(_digest(START, content))
        try:
            _sas_offer(content)
            self._try_fix(flow, strict=True)
        except _Cancel as cancel:
            log.info("verification %s: %s", flow.id, cancel.reason)
            self._cancel(flow, cancel.code, cancel.reason)
            return
        flow.bare_start = json.loads(json.dumps(dict(content)))
        if flow.their_keys is None:
            self._host.refresh_user(sender)

    def _unknown_transaction(
        self,
        sender: str,
        txn: str,
        event_type: str,
        content: Mapping[str, Any],
        sender_device: str | None,
    ) -> None:
        """Tell the sending device we do not know ``txn`` (when we know which device it is)."""
        device = sender_device
        if device is None and event_type == READY:
            from_device = content.get("from_device")
            device = from_device if isinstance(from_device, str) and from_device else None
        if device is None:
            log.info("%s for an unknown verification from %s ignored", event_type, sender)
            return
        code = CancelCode.UNKNOWN_TRANSACTION
        self._messages.append(
            VerificationMessage(
                "",
                _new_id(),
                CANCEL,
                {"transaction_id": txn, "code": code.value, "reason": explain_cancel(code, True)},
                user_id=sender,
                device_ids=(device,),
            )
        )

    # ------------------------------------------------------------------ events of a flow

    def _dispatch(self, flow: _Flow, event_type: str, content: Mapping[str, Any]) -> None:
        digest = _digest(event_type, content)
        if flow.final:
            if digest == flow.final_digest and flow.result is not None:
                # The event that completed the flow, again: the caller's transaction that
                # applied the result was rolled back and the sync is being replayed.
                self._results.append(flow.result)
            return
        if digest in flow.seen:
            return
        flow.seen.add(digest)
        now = self._host.now_ms()
        if now >= flow.deadline_ms or now - flow.last_activity_ms >= self._config.inactivity_ms:
            self._cancel(flow, CancelCode.TIMEOUT)
            return
        self._touch(flow)
        try:
            if event_type == CANCEL:
                self._on_cancel(flow, content)
            elif event_type == READY:
                self._on_ready(flow, content)
            elif event_type == START:
                self._on_start(flow, content)
            elif event_type == ACCEPT:
                self._on_accept(flow, content)
            elif event_type == KEY:
                self._on_key(flow, content)
            elif event_type == MAC:
                self._on_mac(flow, content)
            elif event_type == DONE:
                self._on_done(flow)
            else:
                raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, f"unexpected {event_type}")
            if flow.state is VerificationState.DONE:
                flow.final_digest = digest
        except _Cancel as cancel:
            log.info("verification %s: %s", flow.id, cancel.reason)
            self._cancel(flow, cancel.code, cancel.reason)

    def _on_cancel(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        code = content.get("code")
        reason = content.get("reason")
        code = code if isinstance(code, str) and code else CancelCode.USER.value
        reason = reason if isinstance(reason, str) else ""
        if (
            not flow.in_room
            and flow.state is VerificationState.REQUESTED
            and len(flow.request_targets) > 1
        ):
            # Declined on one of their devices: tell the others (the spec's framework).
            others = [d for d in flow.request_targets if d != flow.other_device]
            self._send(
                flow,
                CANCEL,
                {"code": CancelCode.USER.value, "reason": "declined on another device"},
                others,
            )
        flow.cancellation = Cancellation(code, reason, False, explain_cancel(code, False))
        log.info("verification %s cancelled by the other side: %s", flow.id, code)
        self._end(flow, VerificationState.CANCELLED)

    def _on_ready(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        if flow.state is not VerificationState.REQUESTED:
            if flow.we_requested and content.get("from_device") != flow.other_device:
                # Another of their devices accepted too late: it gets (or got) m.accepted.
                log.info("ready from a second device of %s ignored", flow.other_user)
                return
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "unexpected ready")
        from_device = _str(content, "from_device")
        methods = _str_list(content, "methods")
        if not flow.in_room and from_device not in flow.request_targets:
            log.info("ready from a device of %s we did not ask: ignored", flow.other_user)
            return
        flow.other_device = from_device
        flow.methods = tuple(m for m in _SUPPORTED_METHODS if m in methods)
        flow.state = VerificationState.READY
        if not flow.in_room:
            others = [d for d in flow.request_targets if d != from_device]
            if others:
                self._send(
                    flow,
                    CANCEL,
                    {"code": CancelCode.ACCEPTED.value, "reason": "accepted on another device"},
                    others,
                )
        if not flow.methods:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "no verification method in common")
        self._try_fix(flow, strict=True)
        if flow.their_keys is None:
            self._host.refresh_user(flow.other_user)

    def _begin_sas(self, flow: _Flow) -> None:
        flow.sas = self._host.create_sas()
        flow.state = VerificationState.STARTED
        flow.deadline_ms = self._host.now_ms() + self._config.timeout_ms

    def _on_start(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        from_device = _str(content, "from_device")
        method = _str(content, "method")
        if flow.other_device is not None and from_device != flow.other_device:
            # Not the device this flow is with: ignored (a cancel would reach the right one).
            log.info("start from another device of %s ignored", flow.other_user)
            return
        if flow.state is VerificationState.STARTED and flow.we_started_sas:
            if flow.mac_method is not None:
                raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "start after accept")
            if method != SAS_METHOD:
                raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "both sides started other methods")
            # Both started: the start of the smaller user ID (then device ID) wins.
            ours = (self._host.user_id, self._host.device_id)
            theirs = (flow.other_user, from_device)
            if (ours[0] < theirs[0]) or (ours[0] == theirs[0] and ours[1] < theirs[1]):
                return
            flow.sas = None
            flow.start_content = None
            flow.we_started_sas = False
            flow.state = VerificationState.READY
        if flow.state is not VerificationState.READY:
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, f"unexpected start in {flow.state.value}")
        if SAS_METHOD not in flow.methods:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, f"unsupported method {method}")
        mac_name, agreed = _sas_offer(content)
        if not self._fix_keys(flow):
            # Their start overtook our key query (their device is new to us): hold it until
            # the keys arrive (``_resume_start``); the flow's timeouts still apply.
            log.info("verification %s: start held until the device's keys are known", flow.id)
            flow.pending_start = json.loads(json.dumps(dict(content)))
            self._changed[flow.id] = None
            return
        flow.pending_start = None
        self._begin_sas(flow)
        assert flow.sas is not None
        start = json.loads(json.dumps(dict(content)))
        try:
            our_commitment = commitment(flow.sas.public_key, start)
        except CanonicalJsonError as exc:
            raise _Cancel(CancelCode.INVALID_MESSAGE, "start is not canonical JSON") from exc
        flow.start_content = start
        flow.we_started_sas = False
        flow.mac_method_name = mac_name
        flow.mac_method = mac_method_from_name(mac_name)
        flow.sas_methods = agreed
        self._send(
            flow,
            ACCEPT,
            {
                "method": SAS_METHOD,
                "key_agreement_protocol": KEY_AGREEMENT_PROTOCOL,
                "hash": HASH,
                "message_authentication_code": mac_name,
                "short_authentication_string": list(agreed),
                "commitment": our_commitment,
            },
        )

    def _resume_start(self, flow: _Flow) -> None:
        """Handle a held ``start`` once the other device's keys are known (else keep it)."""
        content = flow.pending_start
        if content is None or flow.final or flow.state is not VerificationState.READY:
            flow.pending_start = None
            return
        try:
            if not self._fix_keys(flow, refresh=False):
                return
            flow.pending_start = None
            self._on_start(flow, content)
        except _Cancel as cancel:
            log.info("verification %s: %s", flow.id, cancel.reason)
            self._cancel(flow, cancel.code, cancel.reason)

    def _on_accept(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        if (
            flow.state is not VerificationState.STARTED
            or not flow.we_started_sas
            or flow.mac_method is not None
        ):
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "unexpected accept")
        protocol = _str(content, "key_agreement_protocol")
        hash_name = _str(content, "hash")
        mac_name = _str(content, "message_authentication_code")
        strings = _str_list(content, "short_authentication_string")
        their_commitment = _str(content, "commitment")
        method = content.get("method", SAS_METHOD)
        agreed = tuple(s for s in SHORT_AUTHENTICATION_STRINGS if s in strings)
        if (
            method != SAS_METHOD
            or protocol != KEY_AGREEMENT_PROTOCOL
            or hash_name != HASH
            or mac_name not in MAC_METHODS
            or not agreed
            or any(s not in SHORT_AUTHENTICATION_STRINGS for s in strings)
        ):
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "accept chose parameters we did not offer")
        flow.their_commitment = their_commitment
        flow.mac_method_name = mac_name
        flow.mac_method = mac_method_from_name(mac_name)
        flow.sas_methods = agreed
        assert flow.sas is not None
        self._send(flow, KEY, {"key": flow.sas.public_key})
        flow.our_key_sent = True

    def _on_key(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        if flow.state is not VerificationState.STARTED or flow.their_key is not None:
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "unexpected key")
        if flow.we_started_sas and not flow.our_key_sent:
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "key before accept")
        if not flow.we_started_sas and flow.mac_method is None:
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "key before start")
        their_key = _str(content, "key")
        if not is_curve25519_key(their_key):
            raise _Cancel(CancelCode.INVALID_MESSAGE, "the SAS key is not a Curve25519 key")
        assert flow.sas is not None and flow.start_content is not None
        if flow.we_started_sas:
            assert flow.their_commitment is not None
            try:
                expected = commitment(their_key, flow.start_content)
            except CanonicalJsonError as exc:  # our own start: cannot happen
                raise _Cancel(CancelCode.INVALID_MESSAGE, "start is not canonical JSON") from exc
            if not hmac.compare_digest(
                expected.encode("utf-8"), flow.their_commitment.encode("utf-8")
            ):
                raise _Cancel(
                    CancelCode.MISMATCHED_COMMITMENT, "the key does not match the commitment"
                )
        try:
            flow.sas.set_their_public_key(their_key)
        except SasError as exc:
            raise _Cancel(CancelCode.INVALID_MESSAGE, "the SAS key agreement failed") from exc
        flow.their_key = their_key
        if not flow.we_started_sas:
            self._send(flow, KEY, {"key": flow.sas.public_key})
            flow.our_key_sent = True
        self._derive_sas(flow)
        flow.state = VerificationState.KEYS_EXCHANGED

    def _derive_sas(self, flow: _Flow) -> None:
        assert flow.sas is not None and flow.their_key is not None and flow.flow_id is not None
        assert flow.other_device is not None
        ours = (self._host.user_id, self._host.device_id, flow.sas.public_key)
        theirs = (flow.other_user, flow.other_device, flow.their_key)
        first, second = (ours, theirs) if flow.we_started_sas else (theirs, ours)
        info = sas_info(*first, *second, flow.flow_id)
        data = flow.sas.generate_bytes(info, EMOJI_BYTES)
        flow.emoji = emoji_from_bytes(data) if "emoji" in flow.sas_methods else None
        flow.decimals = (
            decimals_from_bytes(data[:DECIMAL_BYTES]) if "decimal" in flow.sas_methods else None
        )

    def _on_mac(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        if (
            flow.state not in (VerificationState.KEYS_EXCHANGED, VerificationState.CONFIRMED)
            or flow.their_mac_ok
        ):
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "unexpected mac")
        macs = content.get("mac")
        keys_mac = content.get("keys")
        if (
            not isinstance(macs, Mapping)
            or not macs
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in macs.items())
            or not isinstance(keys_mac, str)
        ):
            raise _Cancel(CancelCode.INVALID_MESSAGE, "malformed mac")
        assert flow.sas is not None and flow.mac_method is not None
        assert flow.their_keys is not None and flow.other_device is not None
        assert flow.flow_id is not None
        info = mac_info(
            flow.other_user,
            flow.other_device,
            self._host.user_id,
            self._host.device_id,
            flow.flow_id,
        )
        if not flow.sas.verify_mac(key_ids_text(macs), info + "KEY_IDS", keys_mac, flow.mac_method):
            raise _Cancel(CancelCode.KEY_MISMATCH, "the MAC of the key list does not match")
        ours = set()
        if flow.other_user != self._host.user_id:
            own_master, _ = self._host.cross_signing_keys(self._host.user_id)
            ours = {f"ed25519:{self._host.device_id}"}
            if own_master is not None:
                ours.add(f"ed25519:{own_master}")
        verified = []
        for key_id, key_mac in macs.items():
            expected_key = flow.their_keys.get(key_id)
            if expected_key is None and key_id in ours:
                # An authenticated MAC of *our* keys as theirs: a reflection, or a confused peer.
                raise _Cancel(CancelCode.USER_MISMATCH, "the MAC names our own keys as theirs")
            if expected_key is None:
                # Not one of the keys fixed for the flow (say a master key published after the
                # flow began): it is not verified, and the rest still counts.
                log.info(
                    "verification %s: MAC of a key not fixed for the flow skipped: %r",
                    flow.id,
                    key_id[:80],
                )
                continue
            if not flow.sas.verify_mac(expected_key, info + key_id, key_mac, flow.mac_method):
                raise _Cancel(CancelCode.KEY_MISMATCH, "a key's MAC does not match")
            verified.append(key_id)
        if flow.their_device_key_id not in verified:
            raise _Cancel(CancelCode.KEY_MISMATCH, "the MAC does not cover the device's key")
        flow.verified_keys = tuple(sorted(verified))
        flow.their_mac_ok = True
        if flow.state is VerificationState.CONFIRMED:
            self._send_done(flow)

    def _on_done(self, flow: _Flow) -> None:
        if flow.state is VerificationState.WAITING_FOR_DONE:
            flow.done_received = True
            self._finish(flow)
            return
        if flow.state is VerificationState.CONFIRMED and not flow.done_received:
            # Their done can only follow their MAC; wait for it (a reordered delivery).
            flow.done_received = True
            return
        raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "unexpected done")

    def _send_mac(self, flow: _Flow) -> None:
        assert flow.sas is not None and flow.mac_method is not None
        assert flow.other_device is not None and flow.flow_id is not None
        info = mac_info(
            self._host.user_id,
            self._host.device_id,
            flow.other_user,
            flow.other_device,
            flow.flow_id,
        )
        keys = {f"ed25519:{self._host.device_id}": self._host.ed25519}
        if flow.our_master_key is not None:
            keys[f"ed25519:{flow.our_master_key}"] = flow.our_master_key
        macs = {
            key_id: flow.sas.calculate_mac(key, info + key_id, flow.mac_method)
            for key_id, key in keys.items()
        }
        self._send(
            flow,
            MAC,
            {
                "mac": macs,
                "keys": flow.sas.calculate_mac(
                    key_ids_text(keys), info + "KEY_IDS", flow.mac_method
                ),
            },
        )
        flow.our_mac_sent = True

    def _send_done(self, flow: _Flow) -> None:
        if not flow.from_request:
            # A bare start (the protocol before the request framework): no done either way.
            self._finish(flow)
            return
        self._send(flow, DONE, {})
        flow.done_sent = True
        flow.state = VerificationState.WAITING_FOR_DONE
        if flow.done_received:
            self._finish(flow)

    def _finish(self, flow: _Flow) -> None:
        assert flow.other_device is not None and flow.their_keys is not None
        device_key = (
            flow.their_keys.get(flow.their_device_key_id)
            if flow.their_device_key_id in flow.verified_keys
            else None
        )
        master_key = (
            flow.their_keys.get(flow.their_master_key_id)
            if flow.their_master_key_id is not None
            and flow.their_master_key_id in flow.verified_keys
            else None
        )
        flow.result = VerificationResult(
            verification_id=flow.id,
            other_user_id=flow.other_user,
            other_device_id=flow.other_device,
            device_key=device_key,
            master_key=master_key,
            in_room=flow.in_room,
        )
        self._results.append(flow.result)
        log.info("verification %s done", flow.id)
        self._end(flow, VerificationState.DONE)
