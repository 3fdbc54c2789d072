"""SAS key agreement on ``cryptography`` (X25519, HKDF-SHA256, HMAC-SHA256).

The vodozemac backend uses this: vodozemac's Python binding (0.10) only exposes
the SAS output as emoji indices and decimals, not the spec's generic HKDF bytes,
so its SAS is computed here from the same primitives libolm and vodozemac use
(RFC 7748 X25519, RFC 5869 HKDF with no salt, RFC 2104 HMAC). The tests check it
bit for bit against both libraries: bytes, emoji, decimals, and both MAC methods.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .backend import Sas, SasError, SasMacMethod
from .encoding import b64decode, b64encode

__all__ = ["X25519Sas", "libolm_inplace_base64"]

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def libolm_inplace_base64(data: bytes) -> str:
    """libolm's base64 of ``data`` written over its own input buffer.

    libolm's ``olm_sas_calculate_mac`` encoded the MAC in place, so each output
    group overwrote input bytes not yet read; ``hkdf-hmac-sha256`` (the deprecated
    SAS MAC method) is defined by that output. Reproduced step by step.
    """
    buf = bytearray(data) + bytearray(len(data) // 3 * 4 + 4 - len(data) + 4)
    end = (len(data) // 3) * 3
    pos = 0
    out = 0
    while pos != end:
        value = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
        pos += 3
        buf[out + 3] = _ALPHABET[value & 0x3F]
        buf[out + 2] = _ALPHABET[(value >> 6) & 0x3F]
        buf[out + 1] = _ALPHABET[(value >> 12) & 0x3F]
        buf[out] = _ALPHABET[(value >> 18) & 0x3F]
        out += 4
    remainder = len(data) - end
    length = out
    if remainder:
        value = buf[pos]
        if remainder == 2:
            value = ((value << 8) | buf[pos + 1]) << 2
            buf[out + 2] = _ALPHABET[value & 0x3F]
            value >>= 6
            length += 3
        else:
            value <<= 4
            length += 2
        buf[out + 1] = _ALPHABET[value & 0x3F]
        value >>= 6
        buf[out] = _ALPHABET[value & 0x3F]
    return bytes(buf[:length]).decode("ascii")


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


class X25519Sas(Sas):
    """A SAS side with an ephemeral X25519 key from ``cryptography``."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self._public = b64encode(self._private.public_key().public_bytes_raw())
        self._secret: bytes | None = None

    def __repr__(self) -> str:
        return f"X25519Sas(public_key={self._public!r}, agreed={self._secret is not None})"

    @property
    def public_key(self) -> str:
        """Our ephemeral Curve25519 public key."""
        return self._public

    def set_their_public_key(self, key: str) -> None:
        """Derive the shared secret; a low-order (non-contributory) key is refused."""
        try:
            raw = b64decode(key)
            their = X25519PublicKey.from_public_bytes(raw)
            secret = self._private.exchange(their)
        except (ValueError, InvalidKey) as exc:
            raise SasError("invalid SAS public key") from exc
        if not any(secret):
            raise SasError("non-contributory SAS key agreement")
        self._secret = secret

    def _shared(self) -> bytes:
        if self._secret is None:
            raise SasError("the other side's public key is not set")
        return self._secret

    def generate_bytes(self, info: str, count: int) -> bytes:
        """``count`` bytes of HKDF-SHA256(shared secret, no salt, ``info``)."""
        if count < 1:
            raise ValueError("count must be positive")
        return _hkdf(self._shared(), info.encode("utf-8"), count)

    def calculate_mac(
        self, message: str, info: str, method: SasMacMethod = SasMacMethod.HKDF_HMAC_SHA256_V2
    ) -> str:
        """The MAC of ``message``: HMAC-SHA256 under HKDF(secret, ``info``), base64 per method."""
        key = _hkdf(self._shared(), info.encode("utf-8"), 32)
        mac = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
        if method is SasMacMethod.HKDF_HMAC_SHA256_V2:
            return b64encode(mac)
        if method is SasMacMethod.HKDF_HMAC_SHA256:
            return libolm_inplace_base64(mac)
        raise SasError(f"unsupported MAC method {method!r}")
