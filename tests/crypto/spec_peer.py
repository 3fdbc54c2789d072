"""A verification peer written from the spec's text alone, to test our machine against.

Nothing here imports the code under test's SAS, MAC or canonical-JSON helpers: the
derivations are re-written from "SAS HKDF calculation", "MAC calculation", the
``decimal`` and ``emoji`` methods and the accept's ``commitment`` description, on
``cryptography`` (X25519, HKDF-SHA256, HMAC-SHA256). The deprecated
``hkdf-hmac-sha256`` MAC is defined by libolm's historical base64 output, so a peer
that needs it uses python-olm's ``Sas`` (libolm itself, the reference).

:class:`ScriptedDevice` is a device a test drives one event at a time: it uploads
real device keys (so the machine under test knows it) and exchanges plain
to-device events through the in-memory homeserver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Protocol

import olm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .harness import FakeHomeserver, Peer, RawDevice

__all__ = [
    "SPEC_EMOJI",
    "LibolmSas",
    "ScriptedDevice",
    "SpecSas",
    "spec_commitment",
    "spec_decimals",
    "spec_emoji_numbers",
    "spec_mac_info",
    "spec_sas_info",
]

V2 = "hkdf-hmac-sha256.v2"
OLD = "hkdf-hmac-sha256"

# data-definitions/sas-emoji.json of matrix-org/matrix-spec: (number, description).
SPEC_EMOJI = {
    0: "Dog", 1: "Cat", 2: "Lion", 3: "Horse", 4: "Unicorn", 5: "Pig", 6: "Elephant",
    7: "Rabbit", 8: "Panda", 9: "Rooster", 10: "Penguin", 11: "Turtle", 12: "Fish",
    13: "Octopus", 14: "Butterfly", 15: "Flower", 16: "Tree", 17: "Cactus", 18: "Mushroom",
    19: "Globe", 20: "Moon", 21: "Cloud", 22: "Fire", 23: "Banana", 24: "Apple",
    25: "Strawberry", 26: "Corn", 27: "Pizza", 28: "Cake", 29: "Heart", 30: "Smiley",
    31: "Robot", 32: "Hat", 33: "Glasses", 34: "Spanner", 35: "Santa", 36: "Thumbs Up",
    37: "Umbrella", 38: "Hourglass", 39: "Clock", 40: "Gift", 41: "Light Bulb", 42: "Book",
    43: "Pencil", 44: "Paperclip", 45: "Scissors", 46: "Lock", 47: "Key", 48: "Hammer",
    49: "Telephone", 50: "Flag", 51: "Train", 52: "Bicycle", 53: "Aeroplane", 54: "Rocket",
    55: "Trophy", 56: "Ball", 57: "Guitar", 58: "Trumpet", 59: "Bell", 60: "Anchor",
    61: "Headphones", 62: "Folder", 63: "Pin",
}  # fmt: skip


def _unpadded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _raw(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def spec_sas_info(
    start_user: str,
    start_device: str,
    start_key: str,
    accept_user: str,
    accept_device: str,
    accept_key: str,
    transaction_id: str,
) -> str:
    """ "SAS HKDF calculation" for ``curve25519-hkdf-sha256``, item by item."""
    parts = [
        "MATRIX_KEY_VERIFICATION_SAS|",
        start_user + "|",
        start_device + "|",
        start_key + "|",
        accept_user + "|",
        accept_device + "|",
        accept_key + "|",
        transaction_id,
    ]
    return "".join(parts)


def spec_mac_info(
    sender_user: str, sender_device: str, other_user: str, other_device: str, transaction_id: str
) -> str:
    """ "MAC calculation", step 1, without the final key ID / ``KEY_IDS``."""
    return (
        "MATRIX_KEY_VERIFICATION_MAC"
        + sender_user
        + sender_device
        + other_user
        + (other_device + transaction_id)
    )


def spec_emoji_numbers(six_bytes: bytes) -> list[int]:
    """The first 42 bits in 7 groups of 6 ("similar to how one would base64 encode")."""
    bits = "".join(format(b, "08b") for b in six_bytes)[:42]
    return [int(bits[i : i + 6], 2) for i in range(0, 42, 6)]


def spec_decimals(five_bytes: bytes) -> tuple[int, int, int]:
    """The spec's three formulas, verbatim."""
    b0, b1, b2, b3, b4 = five_bytes
    return (
        (b0 << 5 | b1 >> 3) + 1000,
        ((b1 & 0x7) << 10 | b2 << 2 | b3 >> 6) + 1000,
        ((b3 & 0x3F) << 7 | b4 >> 1) + 1000,
    )


def spec_canonical(value: Any) -> bytes:
    """Canonical JSON (appendices): sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_commitment(public_key: str, start_content: dict[str, Any]) -> str:
    """The accept's ``commitment``: SHA-256 of the key then the start's canonical JSON."""
    return _unpadded(hashlib.sha256(public_key.encode() + spec_canonical(start_content)).digest())


class PeerSas(Protocol):
    """One side of the key agreement, for a scripted peer."""

    public_key: str

    def agree(self, their_key: str) -> None: ...

    def hkdf(self, info: str, length: int) -> bytes: ...

    def mac(self, method: str, message: str, info: str) -> str: ...


class SpecSas:
    """X25519 + HKDF-SHA256 (no salt) + HMAC-SHA256, unpadded base64 (``.v2``)."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public_key = _unpadded(self._private.public_key().public_bytes_raw())
        self._secret = b""

    def agree(self, their_key: str) -> None:
        self._secret = self._private.exchange(X25519PublicKey.from_public_bytes(_raw(their_key)))

    def hkdf(self, info: str, length: int) -> bytes:
        return HKDF(hashes.SHA256(), length, salt=None, info=info.encode()).derive(self._secret)

    def mac(self, method: str, message: str, info: str) -> str:
        assert method == V2, "the deprecated encoding is libolm's: use LibolmSas"
        key = self.hkdf(info, 32)
        return _unpadded(hmac.new(key, message.encode(), hashlib.sha256).digest())


class LibolmSas:
    """libolm's SAS (python-olm): the reference of the deprecated ``hkdf-hmac-sha256``."""

    def __init__(self) -> None:
        self._sas = olm.Sas()
        self.public_key = str(self._sas.pubkey)

    def agree(self, their_key: str) -> None:
        self._sas.set_their_pubkey(their_key)

    def hkdf(self, info: str, length: int) -> bytes:
        return bytes(self._sas.generate_bytes(info, length))

    def mac(self, method: str, message: str, info: str) -> str:
        if method == OLD:
            return str(self._sas.calculate_mac(message, info))
        return str(self._sas.calculate_mac_fixed_base64(message, info))


class ScriptedDevice:
    """A device whose every verification event a test writes (plain to-device events)."""

    def __init__(
        self, server: FakeHomeserver, user_id: str, device_id: str, sas: PeerSas | None = None
    ) -> None:
        self.raw = RawDevice(server, user_id, device_id)
        self.server = server
        self.user_id = user_id
        self.device_id = device_id
        self.sas: PeerSas = sas or SpecSas()
        self.received: list[dict[str, Any]] = []

    @property
    def ed25519(self) -> str:
        """The device's Ed25519 key (as uploaded)."""
        return self.raw.keys.ed25519

    def send(self, to: Peer, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Deliver a plain to-device event to ``to``; returns the content sent."""
        self.server.deliver(
            to.user_id,
            to.device_id,
            {
                "type": event_type,
                "sender": self.user_id,
                "content": json.loads(json.dumps(content)),
            },
        )
        return content

    def inbox(self) -> list[dict[str, Any]]:
        """Everything that arrived since the last call."""
        events = self.server.sync(self.user_id, self.device_id)["to_device"]
        self.received.extend(events)
        return list(events)

    def expect(self, event_type: str) -> dict[str, Any]:
        """The content of the one ``event_type`` event that arrived (fails otherwise)."""
        found = [e for e in self.inbox() if e["type"] == event_type]
        assert len(found) == 1, (event_type, found, self.received)
        return dict(found[0]["content"])

    def mac_content(
        self,
        method: str,
        keys: dict[str, str],
        *,
        to_user: str,
        to_device: str,
        transaction_id: str,
        key_ids: str | None = None,
    ) -> dict[str, Any]:
        """An ``m.key.verification.mac`` content for ``keys`` (key ID -> public key)."""
        info = spec_mac_info(self.user_id, self.device_id, to_user, to_device, transaction_id)
        macs = {key_id: self.sas.mac(method, key, info + key_id) for key_id, key in keys.items()}
        listed = key_ids if key_ids is not None else ",".join(sorted(keys))
        return {
            "transaction_id": transaction_id,
            "mac": macs,
            "keys": self.sas.mac(method, listed, info + "KEY_IDS"),
        }
