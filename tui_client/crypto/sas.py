"""The SAS method's derivations, exactly as the spec writes them (pure functions).

"Short Authentication String (SAS) verification" in the end-to-end encryption
module: the HKDF ``info`` strings for the short authentication string and for the
MACs, the accept's commitment, the seven emoji (the spec's table of 64) and the
three decimals. The key agreement itself (X25519, HKDF, HMAC) is the backend's
:class:`~tui_client.crypto.backend.Sas`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tui_client.protocol.canonical_json import canonical_json

from .backend import SasMacMethod
from .encoding import b64encode

__all__ = [
    "DECIMAL_BYTES",
    "EMOJI",
    "EMOJI_BYTES",
    "HASH",
    "KEY_AGREEMENT_PROTOCOL",
    "MAC_METHODS",
    "SAS_METHOD",
    "SHORT_AUTHENTICATION_STRINGS",
    "SasEmoji",
    "choose_mac_method",
    "commitment",
    "decimals_from_bytes",
    "emoji_from_bytes",
    "key_ids_text",
    "mac_info",
    "mac_method_from_name",
    "sas_info",
]

#: The verification method this module implements.
SAS_METHOD = "m.sas.v1"
#: The only key agreement protocol we speak (``curve25519`` is deprecated and not offered).
KEY_AGREEMENT_PROTOCOL = "curve25519-hkdf-sha256"
HASH = "sha256"
#: MSC3783's unstable name for ``hkdf-hmac-sha256.v2`` (older Element releases send it).
_MSC3783 = "org.matrix.msc3783.hkdf-hmac-sha256"
#: The MAC methods we offer, best first.
MAC_METHODS = (SasMacMethod.HKDF_HMAC_SHA256_V2.value, SasMacMethod.HKDF_HMAC_SHA256.value)
SHORT_AUTHENTICATION_STRINGS = ("decimal", "emoji")


@dataclass(frozen=True, slots=True)
class SasEmoji:
    """One emoji of the short authentication string: its number, symbol and English name."""

    number: int
    symbol: str
    name: str


# data-definitions/sas-emoji.json of the spec (number, emoji, description).
EMOJI: tuple[SasEmoji, ...] = tuple(
    SasEmoji(number, symbol, name)
    for number, (symbol, name) in enumerate(
        [
            ("🐶", "Dog"),
            ("🐱", "Cat"),
            ("🦁", "Lion"),
            ("🐎", "Horse"),
            ("🦄", "Unicorn"),
            ("🐷", "Pig"),
            ("🐘", "Elephant"),
            ("🐰", "Rabbit"),
            ("🐼", "Panda"),
            ("🐓", "Rooster"),
            ("🐧", "Penguin"),
            ("🐢", "Turtle"),
            ("🐟", "Fish"),
            ("🐙", "Octopus"),
            ("🦋", "Butterfly"),
            ("🌷", "Flower"),
            ("🌳", "Tree"),
            ("🌵", "Cactus"),
            ("🍄", "Mushroom"),
            ("🌏", "Globe"),
            ("🌙", "Moon"),
            ("☁️", "Cloud"),
            ("🔥", "Fire"),
            ("🍌", "Banana"),
            ("🍎", "Apple"),
            ("🍓", "Strawberry"),
            ("🌽", "Corn"),
            ("🍕", "Pizza"),
            ("🎂", "Cake"),
            ("❤️", "Heart"),
            ("😀", "Smiley"),
            ("🤖", "Robot"),
            ("🎩", "Hat"),
            ("👓", "Glasses"),
            ("🔧", "Spanner"),
            ("🎅", "Santa"),
            ("👍", "Thumbs Up"),
            ("☂️", "Umbrella"),
            ("⌛", "Hourglass"),
            ("⏰", "Clock"),
            ("🎁", "Gift"),
            ("💡", "Light Bulb"),
            ("📕", "Book"),
            ("✏️", "Pencil"),
            ("📎", "Paperclip"),
            ("✂️", "Scissors"),
            ("🔒", "Lock"),
            ("🔑", "Key"),
            ("🔨", "Hammer"),
            ("☎️", "Telephone"),
            ("🏁", "Flag"),
            ("🚂", "Train"),
            ("🚲", "Bicycle"),
            ("✈️", "Aeroplane"),
            ("🚀", "Rocket"),
            ("🏆", "Trophy"),
            ("⚽", "Ball"),
            ("🎸", "Guitar"),
            ("🎺", "Trumpet"),
            ("🔔", "Bell"),
            ("⚓", "Anchor"),
            ("🎧", "Headphones"),
            ("📁", "Folder"),
            ("📌", "Pin"),
        ]
    )
)

#: Bytes of HKDF output each method needs.
EMOJI_BYTES = 6
DECIMAL_BYTES = 5


def sas_info(
    start_user: str,
    start_device: str,
    start_key: str,
    accept_user: str,
    accept_device: str,
    accept_key: str,
    flow_id: str,
) -> str:
    """The HKDF ``info`` for ``curve25519-hkdf-sha256`` ("SAS HKDF calculation").

    ``start_*`` describe the device that sent ``m.key.verification.start`` (and the
    ephemeral key it sent in ``m.key.verification.key``), ``accept_*`` the device that
    sent ``m.key.verification.accept``; ``flow_id`` is the transaction ID (to-device)
    or the request's event ID (in-room).
    """
    return (
        f"MATRIX_KEY_VERIFICATION_SAS|{start_user}|{start_device}|{start_key}|"
        f"{accept_user}|{accept_device}|{accept_key}|{flow_id}"
    )


def mac_info(
    sender_user: str, sender_device: str, receiver_user: str, receiver_device: str, flow_id: str
) -> str:
    """The HKDF ``info`` prefix of a MAC ("MAC calculation"); append the key ID or ``KEY_IDS``.

    ``sender_*`` is the device sending the MAC (whose keys are MAC-ed), ``receiver_*``
    the one receiving it.
    """
    return (
        f"MATRIX_KEY_VERIFICATION_MAC{sender_user}{sender_device}"
        f"{receiver_user}{receiver_device}{flow_id}"
    )


def key_ids_text(key_ids: Iterable[str]) -> str:
    """The MAC-ed list of key IDs: sorted lexicographically, comma-separated."""
    return ",".join(sorted(key_ids))


def commitment(public_key: str, start_content: Mapping[str, Any]) -> str:
    """The accept's commitment: unpadded base64 SHA-256 of the key then the start's canonical JSON.

    Raises :class:`~tui_client.protocol.canonical_json.CanonicalJsonError` if the
    start content cannot be canonical JSON (then it is an invalid message).
    """
    digest = hashlib.sha256(public_key.encode("utf-8") + canonical_json(start_content)).digest()
    return b64encode(digest)


def emoji_from_bytes(data: bytes) -> tuple[SasEmoji, ...]:
    """Seven emoji from the first 42 bits of six HKDF bytes, six bits each, most significant first."""
    if len(data) < EMOJI_BYTES:
        raise ValueError("the emoji method needs six bytes")
    bits = int.from_bytes(data[:EMOJI_BYTES], "big") >> 6
    return tuple(EMOJI[(bits >> (6 * (6 - i))) & 0x3F] for i in range(7))


def decimals_from_bytes(data: bytes) -> tuple[int, int, int]:
    """Three numbers in 1000..9191 from five HKDF bytes, thirteen bits each."""
    if len(data) < DECIMAL_BYTES:
        raise ValueError("the decimal method needs five bytes")
    b0, b1, b2, b3, b4 = data[:DECIMAL_BYTES]
    return (
        ((b0 << 5) | (b1 >> 3)) + 1000,
        (((b1 & 0x7) << 10) | (b2 << 2) | (b3 >> 6)) + 1000,
        (((b3 & 0x3F) << 7) | (b4 >> 1)) + 1000,
    )


def mac_method_from_name(name: object) -> SasMacMethod | None:
    """The MAC method called ``name`` (MSC3783's unstable name is ``hkdf-hmac-sha256.v2``)."""
    if name == _MSC3783:
        return SasMacMethod.HKDF_HMAC_SHA256_V2
    if isinstance(name, str):
        try:
            return SasMacMethod(name)
        except ValueError:
            return None
    return None


def choose_mac_method(offered: Iterable[object]) -> str | None:
    """The MAC method name to accept from a start's offer: v2 whenever offered, else the old one."""
    names = [n for n in offered if isinstance(n, str)]
    for preferred in (SasMacMethod.HKDF_HMAC_SHA256_V2.value, _MSC3783):
        if preferred in names:
            return preferred
    if SasMacMethod.HKDF_HMAC_SHA256.value in names:
        return SasMacMethod.HKDF_HMAC_SHA256.value
    return None
