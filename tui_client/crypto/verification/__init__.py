"""Interactive key verification: the request framework, SAS (emoji / decimal) and QR codes, sans-I/O.

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
cross (both sides asked each other) end in one flow: see "crossed requests" in
:mod:`.lifecycle`.

The parts: :mod:`.model` (states, cancel codes, snapshots, the host protocol),
:mod:`.core` (bookkeeping every flow shares: outputs, sending, ending, the keys fixed
for a flow), :mod:`.sas_flow` (the SAS steps), :mod:`.lifecycle` (requests, ready,
crossed requests, cancel, timeouts, input dispatch: :class:`VerificationMachine`),
:mod:`.qr` (the QR code steps: show, scan, reciprocate) and :mod:`.qr_code` (the
code's bytes).
"""

from .lifecycle import VerificationMachine
from .model import (
    QR_SCAN_METHOD,
    QR_SHOW_METHOD,
    RECIPROCATE_METHOD,
    REQUEST_MSGTYPE,
    VERIFICATION_EVENT_TYPES,
    CancelCode,
    Cancellation,
    Verification,
    VerificationConfig,
    VerificationError,
    VerificationHost,
    VerificationMessage,
    VerificationResult,
    VerificationState,
    explain_cancel,
)

__all__ = [
    "QR_SCAN_METHOD",
    "QR_SHOW_METHOD",
    "RECIPROCATE_METHOD",
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
