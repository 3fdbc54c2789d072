"""QR code verification steps (the spec's "QR codes"): show ours, scan theirs, reciprocate.

Showing: once a flow is ready and the other side can scan, the snapshot carries our
code (:attr:`~.model.Verification.qr_code`; its mode from who is verified and whether
we trust our master key). The scanning device checks the keys in it and sends a
``start`` with ``method: m.reciprocate.v1`` and the code's secret. A secret that does
not match cancels (``m.key_mismatch``: someone who never saw the screen is answering).
A matching one only says the code was read: the user is asked whether the other device
says it scanned and verified (:meth:`QrSteps.confirm_qr_scanned`, or
:meth:`QrSteps.qr_not_scanned`), and only then is anything trusted, and ``done`` sent.

Scanning (:meth:`QrSteps.scan_qr`, for devices that can read a code): the keys in the
code must be the ones we know (else ``m.key_mismatch``); then we reciprocate and wait
for the other side's ``done``.

What is trusted, as a :class:`~.model.VerificationResult` like SAS's (the crypto
machine then cross-signs): showing mode 0x00, their master key; 0x01, their device;
0x02, our master key. Scanning 0x00, their master key; 0x01, our master key; 0x02,
their device.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from ..encoding import b64decode
from .core import MachineCore
from .model import (
    QR_SCAN_METHOD,
    QR_SHOW_METHOD,
    RECIPROCATE_METHOD,
    START,
    CancelCode,
    Verification,
    VerificationError,
    VerificationState,
    _Cancel,
    _Flow,
    _str,
)
from .qr_code import QrCode, QrCodeError, QrMode

__all__ = ["QrSteps"]

log = logging.getLogger(__name__)

_WRONG_SECRET = (
    "The device that answered did not read this QR code (its secret did not match): "
    "someone may be trying to intercept. Do not trust it."
)
_WRONG_KEYS = (
    "The keys in the QR code are not the ones this device knows: the connection may be "
    "intercepted. Do not trust this device or user."
)
_NOT_SCANNED = "You said the other device did not confirm the scan. Nothing was trusted."


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class QrSteps(MachineCore):
    """The QR code method's steps of a flow."""

    # ------------------------------------------------------------------ showing

    def _qr_bytes(self, flow: _Flow) -> bytes | None:
        if flow.state is not VerificationState.READY or QR_SHOW_METHOD not in flow.methods:
            return None
        if flow.qr is None:
            # Made once, the first time it can be shown (its secret then stays the same).
            flow.qr = self._our_code(flow)
            if flow.qr is None and flow.their_keys is not None:
                # The keys are known and no code can be made (another user without
                # cross-signing, or our master key not trusted): SAS only.
                dropped = (
                    {QR_SHOW_METHOD}
                    if QR_SCAN_METHOD in flow.methods
                    else {
                        QR_SHOW_METHOD,
                        RECIPROCATE_METHOD,
                    }
                )
                flow.methods = tuple(m for m in flow.methods if m not in dropped)
        return None if flow.qr is None else flow.qr.to_bytes()

    def _our_code(self, flow: _Flow) -> QrCode | None:
        """Our code for ``flow``, if the keys it needs are known (else none yet)."""
        keys = flow.their_keys
        if keys is None or flow.flow_id is None or flow.their_device_key_id is None:
            return None
        their_master = keys.get(flow.their_master_key_id) if flow.their_master_key_id else None
        if flow.other_user != self._host.user_id:
            if flow.our_master_key is None or their_master is None:
                return None
            return QrCode.new(
                QrMode.VERIFY_OTHER_USER, flow.flow_id, flow.our_master_key, their_master
            )
        if flow.our_master_key is not None:
            return QrCode.new(
                QrMode.SELF_TRUSTED,
                flow.flow_id,
                flow.our_master_key,
                keys[flow.their_device_key_id],
            )
        if their_master is None:
            return None
        return QrCode.new(QrMode.SELF_UNTRUSTED, flow.flow_id, self._host.ed25519, their_master)

    def _on_reciprocate(self, flow: _Flow, content: Mapping[str, Any]) -> None:
        from_device = _str(content, "from_device")
        if flow.other_device is not None and from_device != flow.other_device:
            log.info("reciprocate from another device of %s ignored", flow.other_user)
            return
        code = flow.qr
        if QR_SHOW_METHOD not in flow.methods or code is None:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "reciprocate, but we showed no QR code")
        if flow.state is not VerificationState.READY:
            raise _Cancel(
                CancelCode.UNEXPECTED_MESSAGE, f"unexpected reciprocate in {flow.state.value}"
            )
        try:
            secret = b64decode(_str(content, "secret"))
        except ValueError as exc:
            raise _Cancel(CancelCode.INVALID_MESSAGE, "the secret is not base64") from exc
        if not hmac.compare_digest(secret, code.secret):
            raise _Cancel(
                CancelCode.KEY_MISMATCH, "the QR code secret does not match", _WRONG_SECRET
            )
        if code.mode is QrMode.SELF_TRUSTED:
            flow.qr_device_key = code.second_key
        else:
            flow.qr_master_key = code.second_key
        flow.state = VerificationState.QR_SCANNED
        log.info("verification %s: the other device scanned our QR code", flow.id)

    def confirm_qr_scanned(self, verification_id: str) -> Verification:
        """The user says the other device confirmed the scan: trust, and send ``done``."""
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.QR_SCANNED:
            raise VerificationError(f"no scan to confirm in state {flow.state.value}")
        flow.verified_keys = self._qr_key_ids(flow)
        self._send_done(flow)
        return self._snapshot(flow)

    def qr_not_scanned(self, verification_id: str) -> Verification:
        """The user says the other device did not confirm: cancel, trusting nothing."""
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.QR_SCANNED:
            raise VerificationError(f"no scan to deny in state {flow.state.value}")
        flow.qr_device_key = flow.qr_master_key = None
        self._cancel(
            flow,
            CancelCode.USER,
            "the other device did not confirm the scan",
            explanation=_NOT_SCANNED,
        )
        return self._snapshot(flow)

    # ------------------------------------------------------------------ scanning

    def scan_qr(self, verification_id: str, data: bytes) -> Verification:
        """We read the other device's code (``data``): check it, then reciprocate.

        Raises :class:`~.model.VerificationError` for bytes that are not a code of this
        flow (nothing is sent: scan again); keys that do not match cancel the flow.
        """
        flow = self._flow(verification_id)
        if flow.state is not VerificationState.READY:
            raise VerificationError(f"cannot scan a code in state {flow.state.value}")
        if QR_SCAN_METHOD not in flow.methods:
            raise VerificationError("the other device does not show QR codes")
        try:
            code = QrCode.from_bytes(data)
        except QrCodeError as exc:
            raise VerificationError(f"not a verification QR code: {exc}") from exc
        if code.flow_id != flow.flow_id:
            raise VerificationError("this QR code belongs to another verification")
        try:
            if not self._fix_keys(flow):
                raise VerificationError(
                    "the other device's keys are not known yet: wait for the key query"
                )
            self._check_scanned(flow, code)
        except _Cancel as cancel:
            log.info("verification %s: %s", flow.id, cancel.reason)
            self._cancel(flow, cancel.code, cancel.reason, explanation=cancel.explanation)
            return self._snapshot(flow)
        self._send(
            flow,
            START,
            {
                "from_device": self._host.device_id,
                "method": RECIPROCATE_METHOD,
                "secret": code.secret_b64,
            },
        )
        flow.verified_keys = self._qr_key_ids(flow)
        flow.state = VerificationState.WAITING_FOR_DONE
        return self._snapshot(flow)

    def _check_scanned(self, flow: _Flow, code: QrCode) -> None:
        """The code's keys are the ones we know: note what it proves (else raise)."""
        keys = flow.their_keys
        assert keys is not None and flow.their_device_key_id is not None
        their_device = keys[flow.their_device_key_id]
        their_master = keys.get(flow.their_master_key_id) if flow.their_master_key_id else None
        own_master, _ = self._host.cross_signing_keys(self._host.user_id)
        mine = flow.other_user == self._host.user_id
        ok = False
        if code.mode is QrMode.VERIFY_OTHER_USER and not mine:
            # Their master key, and what they think ours is.
            ok = _same(code.first_key, their_master) and _same(code.second_key, own_master)
            flow.qr_master_key = their_master
        elif code.mode is QrMode.SELF_TRUSTED and mine:
            # Our master key (they trust it), and what they think this device's key is.
            ok = _same(code.first_key, own_master) and _same(code.second_key, self._host.ed25519)
            flow.qr_master_key = own_master
        elif code.mode is QrMode.SELF_UNTRUSTED and mine:
            # Their device key, and the master key as they see it: we must trust it.
            ok = _same(code.first_key, their_device) and _same(code.second_key, flow.our_master_key)
            flow.qr_device_key = their_device
        if not ok:
            flow.qr_device_key = flow.qr_master_key = None
            raise _Cancel(CancelCode.KEY_MISMATCH, "the QR code's keys do not match", _WRONG_KEYS)

    @staticmethod
    def _qr_key_ids(flow: _Flow) -> tuple[str, ...]:
        ids = []
        if flow.qr_device_key is not None and flow.their_device_key_id is not None:
            ids.append(flow.their_device_key_id)
        if flow.qr_master_key is not None:
            ids.append(f"ed25519:{flow.qr_master_key}")
        return tuple(ids)
