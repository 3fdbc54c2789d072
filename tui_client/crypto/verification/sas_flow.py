"""SAS (emoji / decimal) verification steps: start, accept, key, MAC (sans-I/O).

Mixed into :class:`~.lifecycle.VerificationMachine`; see the package documentation for
the security rules these steps keep.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

from tui_client.protocol.canonical_json import CanonicalJsonError

from ..backend import SasError
from ..encoding import is_curve25519_key
from ..sas import (
    DECIMAL_BYTES,
    EMOJI_BYTES,
    HASH,
    KEY_AGREEMENT_PROTOCOL,
    MAC_METHODS,
    SAS_METHOD,
    SHORT_AUTHENTICATION_STRINGS,
    choose_mac_method,
    commitment,
    decimals_from_bytes,
    emoji_from_bytes,
    key_ids_text,
    mac_info,
    mac_method_from_name,
    sas_info,
)
from .core import MachineCore
from .model import (
    ACCEPT,
    KEY,
    MAC,
    START,
    CancelCode,
    Verification,
    VerificationError,
    VerificationState,
    _Cancel,
    _Flow,
    _str,
    _str_list,
)

log = logging.getLogger(__name__)


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


class SasSteps(MachineCore):
    """The SAS method's steps of a flow."""

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
