"""The verification request lifecycle: requests, ready, crossed requests, cancel, timeouts.

:class:`VerificationMachine` is every flow of one device; the methods' own steps come
from :class:`~.sas_flow.SasSteps`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..sas import SAS_METHOD
from .model import (
    _UNANSWERED,
    ACCEPT,
    CANCEL,
    DONE,
    KEY,
    MAC,
    READY,
    RECIPROCATE_METHOD,
    REQUEST,
    REQUEST_MSGTYPE,
    START,
    VERIFICATION_EVENT_TYPES,
    CancelCode,
    Cancellation,
    Verification,
    VerificationError,
    VerificationMessage,
    VerificationState,
    _Cancel,
    _digest,
    _Flow,
    _new_id,
    _relation,
    _str,
    _str_list,
    explain_cancel,
    usable_methods,
)
from .qr import QrSteps
from .sas_flow import SasSteps, _sas_offer

log = logging.getLogger(__name__)


class VerificationMachine(SasSteps, QrSteps):
    """Every verification flow of one device (see the package documentation)."""

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
        flow.methods = self._config.methods
        if len(devices) == 1:
            flow.other_device = devices[0]
        self._send(
            flow,
            REQUEST,
            {
                "from_device": self._host.device_id,
                "methods": list(self._config.methods),
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
        flow.methods = self._config.methods
        flow.request_txn = _new_id()
        content = {
            "msgtype": REQUEST_MSGTYPE,
            "body": (
                f"{self._host.user_id} is requesting to verify your key, but your client does "
                "not support in-chat key verification. You will need to use legacy key "
                "verification to verify keys."
            ),
            "from_device": self._host.device_id,
            "methods": list(self._config.methods),
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
            elif flow.state is VerificationState.READY and flow.their_keys is None:
                # The key query came back: the QR code can be shown now.
                self._fix_keys_quietly(flow)

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
                    methods=usable_methods(self._config.methods, methods),
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
        flow.methods = usable_methods(self._config.methods, methods)
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
        # A bare start is SAS (the protocol before the request framework).
        flow.methods = (SAS_METHOD,)
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
            elif event_type == START and content.get("method") == RECIPROCATE_METHOD:
                self._on_reciprocate(flow, content)
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
            self._cancel(flow, cancel.code, cancel.reason, explanation=cancel.explanation)

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
        flow.methods = usable_methods(self._config.methods, methods)
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
