"""SAS against an independent implementation: matrix-nio 0.26's ``Sas`` (on vodozemac).

nio's SAS, as shipped, does not interoperate with Element's crypto, and the spec is
the reference, so the test peer is patched (never our code) on three points:

1. its accept ``commitment`` is a hex digest; the spec says unpadded base64 (both
   where nio computes it and where it checks ours);
2. it reads vodozemac's ``emoji_indices`` (already seven 6-bit indices) as raw bytes
   to split again, showing the wrong emoji;
3. for ``hkdf-hmac-sha256`` (the only MAC method it offers) it computes the MAC the
   ``hkdf-hmac-sha256.v2`` way; the spec defines that method by libolm's historical
   base64 (vodozemac's ``calculate_mac_invalid_base64``).

nio 0.26 has no request/ready framework either: when we ask, the test plays that
part (the ``ready`` and the final ``done``) and hands the SAS to nio's ``Sas``.
Each side starts once: nio with a bare to-device ``start``, we after a request.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from nio.api import Api
from nio.crypto.device import OlmDevice
from nio.crypto.sas import Sas as NioSas
from nio.event_builders import ToDeviceMessage
from nio.events import ToDeviceEvent

from tui_client.crypto.types import LocalTrust
from tui_client.crypto.verification import VerificationState

from .conftest import MakePeer
from .flows import settle
from .harness import FakeHomeserver, Peer, RawDevice

ALICE = "@alice:x"


def _commitment(public_key: str, content: dict[str, Any]) -> str:
    digest = hashlib.sha256((public_key + Api.to_canonical_json(content)).encode()).digest()
    return base64.b64encode(digest).decode().rstrip("=")


class _MacAsTheSpecSays:
    """vodozemac's EstablishedSas with the MAC encoding of the method nio chose."""

    def __init__(self, inner: Any, sas: NioSas) -> None:
        self._inner = inner
        self._sas = sas

    def bytes(self, info: str) -> Any:
        return self._inner.bytes(info)

    def calculate_mac(self, message: str, info: str) -> str:
        if self._sas.chosen_mac_method == "hkdf-hmac-sha256":
            return str(self._inner.calculate_mac_invalid_base64(message, info))
        return str(self._inner.calculate_mac(message, info))


@pytest.fixture
def patched_nio(monkeypatch: pytest.MonkeyPatch) -> None:
    """nio's three deviations from the spec, corrected in nio's class (for this test only)."""
    original_from_start = NioSas.from_key_verification_start.__func__

    def from_start(cls: type[NioSas], *args: Any) -> NioSas:
        sas = original_from_start(cls, *args)
        sas.commitment = _commitment(sas.pubkey, args[-1].source["content"])  # 1.
        return sas

    def check_commitment(self: NioSas, key: str) -> bool:
        return bool(self.commitment == _commitment(key, self.start_verification().content))  # 1.

    def generate_emoji(self: NioSas, extra_info: str) -> list[tuple[str, str]]:
        indices = self.established_sas.bytes(extra_info).emoji_indices
        return [self.emoji[i] for i in indices]  # 2.

    def establish_sas(self: NioSas, their_public_key: str) -> None:
        self.established_sas = _MacAsTheSpecSays(self.diffie_hellman(their_public_key), self)  # 3.
        self.their_sas_key = their_public_key

    monkeypatch.setattr(NioSas, "from_key_verification_start", classmethod(from_start))
    monkeypatch.setattr(NioSas, "_check_commitment", check_commitment)
    monkeypatch.setattr(NioSas, "_generate_emoji", generate_emoji)
    monkeypatch.setattr(NioSas, "establish_sas", establish_sas)


class NioDevice:
    """A device of ours whose SAS is nio's (identity keys uploaded like any device)."""

    def __init__(self, server: FakeHomeserver, user_id: str, device_id: str) -> None:
        self.raw = RawDevice(server, user_id, device_id)
        self.server, self.user_id, self.device_id = server, user_id, device_id
        self.sas: NioSas | None = None

    def olm_device(self, peer: Peer) -> OlmDevice:
        keys = peer.machine.identity_keys
        return OlmDevice(
            peer.user_id, peer.device_id, {"ed25519": keys.ed25519, "curve25519": keys.curve25519}
        )

    def send(self, peer: Peer, message: ToDeviceMessage | tuple[str, dict[str, Any]]) -> None:
        event_type, content = (
            (message.type, message.content) if isinstance(message, ToDeviceMessage) else message
        )
        self.server.deliver(
            peer.user_id,
            peer.device_id,
            {"type": event_type, "sender": self.user_id, "content": dict(content)},
        )

    def receive(self) -> list[Any]:
        return [
            ToDeviceEvent.parse_event(e)
            for e in self.server.sync(self.user_id, self.device_id)["to_device"]
        ]


def _exchange(ours: Peer, nio: NioDevice) -> None:
    """Pass every event between the two until nothing moves."""
    for _ in range(6):
        ours.sync()
        ours.flush()
        sas = nio.sas
        assert sas is not None
        for event in nio.receive():
            kind = type(event).__name__
            if kind == "KeyVerificationAccept":
                sas.receive_accept_event(event)
                nio.send(ours, sas.share_key())
            elif kind == "KeyVerificationKey":
                sas.receive_key_event(event)
                if not sas.we_started_it:
                    nio.send(ours, sas.share_key())
            elif kind == "KeyVerificationMac":
                sas.receive_mac_event(event)
            assert not sas.canceled, (sas.cancel_code, sas.cancel_reason)


def test_nio_starts(make_peer: MakePeer, server: FakeHomeserver, patched_nio: None) -> None:
    ours = make_peer(ALICE, "A1")
    nio = NioDevice(server, ALICE, "N1")
    settle(ours)
    nio.sas = NioSas(ALICE, "N1", nio.raw.keys.ed25519, nio.olm_device(ours))
    nio.send(ours, nio.sas.start_verification())
    # nio's bare start waits for our user's answer.
    [asked] = ours.sync().verifications
    assert asked.state is VerificationState.INCOMING and not asked.we_requested
    ours.machine.accept_verification(asked.id)
    _exchange(ours, nio)
    [flow] = ours.machine.verifications()
    assert flow.state is VerificationState.KEYS_EXCHANGED and not flow.we_requested
    assert flow.emoji is not None
    assert [e.symbol for e in flow.emoji] == [symbol for symbol, _ in nio.sas.get_emoji()]
    assert flow.decimals == tuple(nio.sas.get_decimals())
    nio.sas.accept_sas()
    nio.send(ours, nio.sas.get_mac())
    ours.machine.confirm_sas(flow.id)
    _exchange(ours, nio)
    assert nio.sas.verified and nio.sas.verified_devices == ["A1"]
    done = ours.machine.get_verification(flow.id)
    assert done is not None and done.state is VerificationState.DONE
    device = ours.machine.get_device(ALICE, "N1")
    assert device is not None and device.local_trust is LocalTrust.VERIFIED


def test_we_start(make_peer: MakePeer, server: FakeHomeserver, patched_nio: None) -> None:
    ours = make_peer(ALICE, "A1")
    nio = NioDevice(server, ALICE, "N1")
    settle(ours)
    flow = ours.machine.request_verification(ALICE, ["N1"])
    ours.flush()
    [request] = nio.receive()
    txn = request.source["content"]["transaction_id"]
    # The framework part nio lacks: the ready.
    ready = {"from_device": "N1", "methods": ["m.sas.v1"], "transaction_id": txn}
    nio.send(ours, ("m.key.verification.ready", ready))
    ours.sync()
    ours.machine.start_sas(flow.id)
    ours.flush()
    [start] = nio.receive()
    nio.sas = NioSas.from_key_verification_start(
        ALICE, "N1", nio.raw.keys.ed25519, nio.olm_device(ours), start
    )
    assert not nio.sas.canceled
    nio.send(ours, nio.sas.accept_verification())
    _exchange(ours, nio)
    shown = ours.machine.get_verification(flow.id)
    assert shown is not None and shown.state is VerificationState.KEYS_EXCHANGED
    assert shown.emoji is not None
    assert [e.symbol for e in shown.emoji] == [symbol for symbol, _ in nio.sas.get_emoji()]
    assert shown.decimals == tuple(nio.sas.get_decimals())
    ours.machine.confirm_sas(flow.id)
    nio.sas.accept_sas()
    nio.send(ours, nio.sas.get_mac())
    _exchange(ours, nio)
    assert nio.sas.verified
    waiting = ours.machine.get_verification(flow.id)
    assert waiting is not None and waiting.state is VerificationState.WAITING_FOR_DONE
    nio.send(ours, ("m.key.verification.done", {"transaction_id": txn}))
    ours.sync()
    finished = ours.machine.get_verification(flow.id)
    assert finished is not None and finished.state is VerificationState.DONE


def test_unpatched_nio_is_refused(make_peer: MakePeer, server: FakeHomeserver) -> None:
    """As shipped, nio's hex commitment fails our spec check (it is not our bug to copy)."""
    ours = make_peer(ALICE, "A1")
    nio = NioDevice(server, ALICE, "N1")
    settle(ours)
    flow = ours.machine.request_verification(ALICE, ["N1"])
    ours.flush()
    [request] = nio.receive()
    txn = request.source["content"]["transaction_id"]
    ready = {"from_device": "N1", "methods": ["m.sas.v1"], "transaction_id": txn}
    nio.send(ours, ("m.key.verification.ready", ready))
    ours.sync()
    ours.machine.start_sas(flow.id)
    ours.flush()
    [start] = nio.receive()
    nio.sas = NioSas.from_key_verification_start(
        ALICE, "N1", nio.raw.keys.ed25519, nio.olm_device(ours), start
    )
    nio.send(ours, nio.sas.accept_verification())
    ours.sync()
    ours.flush()
    [key] = nio.receive()
    nio.sas.receive_key_event(key)
    nio.send(ours, nio.sas.share_key())
    ours.sync()
    refused = ours.machine.get_verification(flow.id)
    assert refused is not None and refused.cancellation is not None
    assert refused.cancellation.code == "m.mismatched_commitment"
