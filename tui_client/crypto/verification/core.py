"""The bookkeeping every verification flow shares: outputs, snapshots, sending, ending, keys.

:class:`MachineCore` is the base of :class:`~.lifecycle.VerificationMachine`; the method
steps (:mod:`.sas_flow`, :mod:`.qr`) build on it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .model import (
    CANCEL,
    DONE,
    CancelCode,
    Cancellation,
    Verification,
    VerificationConfig,
    VerificationError,
    VerificationHost,
    VerificationMessage,
    VerificationResult,
    VerificationState,
    _Cancel,
    _Flow,
    _new_id,
    explain_cancel,
)

log = logging.getLogger(__name__)


class MachineCore:
    """State and bookkeeping of every flow (see the package documentation)."""

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
            qr_code=self._qr_bytes(flow),
        )

    def _qr_bytes(self, flow: _Flow) -> bytes | None:
        """The QR code to show for ``flow`` now (none without the QR steps)."""
        return None

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
        explanation: str | None = None,
    ) -> None:
        if flow.final:
            return
        code = str(code)
        reason = reason or explain_cancel(code, True)
        if send and flow.flow_id is not None:
            self._send(flow, CANCEL, {"code": code, "reason": reason}, devices)
        flow.cancellation = Cancellation(
            code, reason, True, explanation or explain_cancel(code, True)
        )
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

    def _try_fix(self, flow: _Flow, *, strict: bool = False) -> None:
        """Fix the keys when the device is known; a collision cancels (raised if ``strict``)."""
        try:
            self._fix_keys(flow)
        except _Cancel as cancel:
            if strict:
                raise
            self._cancel(flow, cancel.code, cancel.reason)

    def _fix_keys_quietly(self, flow: _Flow) -> None:
        """Fix the keys if they have arrived meanwhile (no new key query); a collision cancels."""
        try:
            self._fix_keys(flow, refresh=False)
        except _Cancel as cancel:
            self._cancel(flow, cancel.code, cancel.reason)

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

    def _on_done(self, flow: _Flow) -> None:
        if flow.state is VerificationState.WAITING_FOR_DONE:
            flow.done_received = True
            if not flow.done_sent:
                # We scanned their QR code: our done answers theirs.
                self._send(flow, DONE, {})
                flow.done_sent = True
            self._finish(flow)
            return
        if flow.state is VerificationState.CONFIRMED and not flow.done_received:
            # Their done can only follow their MAC; wait for it (a reordered delivery).
            flow.done_received = True
            return
        if flow.state is VerificationState.QR_SCANNED and not flow.done_received:
            # They scanned our code and are done; we wait for our user's answer.
            flow.done_received = True
            return
        raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "unexpected done")

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
        if flow.qr_device_key is not None or flow.qr_master_key is not None:
            # A QR code flow: what the code (and the user) confirmed.
            device_key, master_key = flow.qr_device_key, flow.qr_master_key
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
