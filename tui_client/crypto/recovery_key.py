"""Recovery keys and passphrases: how a user holds a 32-byte secret key.

Two ways, both from the spec:

- The **recovery key** text (appendices, "Cryptographic key representation"):
  ``0x8B 0x01 | key | parity`` (the parity byte is the XOR of every byte before
  it), base58-encoded with the Bitcoin alphabet, a space after every fourth
  character. Reading it, whitespace is disregarded; nothing else is forgiven
  (base58 is case-sensitive, so case cannot be folded).
- A **passphrase** (secrets.md, "Deriving keys from passphrases", ``m.pbkdf2``):
  PBKDF2-HMAC-SHA512 over the UTF-8 passphrase, with the ``salt`` string's UTF-8
  bytes and ``iterations`` from the key's ``passphrase`` property.

The secret storage key and the (older) backup decryption key are both shown this
way. Nothing here logs or puts a key in an exception message.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "BASE58_ALPHABET",
    "DEFAULT_PBKDF2_ITERATIONS",
    "KEY_LENGTH",
    "MAX_PBKDF2_ITERATIONS",
    "PBKDF2_ALGORITHM",
    "RECOVERY_KEY_PREFIX",
    "PassphraseInfo",
    "PassphraseInfoError",
    "RecoveryKeyError",
    "RecoveryKeyProblem",
    "b58decode",
    "b58encode",
    "decode_recovery_key",
    "derive_key_from_passphrase",
    "encode_recovery_key",
]

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_VALUES = {c: i for i, c in enumerate(BASE58_ALPHABET)}
RECOVERY_KEY_PREFIX = b"\x8b\x01"
KEY_LENGTH = 32
_DECODED_LENGTH = len(RECOVERY_KEY_PREFIX) + KEY_LENGTH + 1
_ENCODED_LENGTH = 48
_GROUP = 4

PBKDF2_ALGORITHM = "m.pbkdf2"
#: What Element and matrix-rust-sdk use for new keys (about half a second here).
DEFAULT_PBKDF2_ITERATIONS = 500_000
#: A key description may name any count; refuse absurd ones rather than hang for minutes.
MAX_PBKDF2_ITERATIONS = 10_000_000
_SALT_LENGTH = 32
_SALT_ALPHABET = string.ascii_letters + string.digits


class RecoveryKeyProblem(StrEnum):
    """Why a text is not a recovery key (machine-readable; the UI words it)."""

    EMPTY = "empty"
    #: A character outside the base58 alphabet (often ``0``, ``O``, ``I`` or ``l``).
    NOT_BASE58 = "not_base58"
    #: Decodes to the wrong number of bytes: characters missing or extra.
    WRONG_LENGTH = "wrong_length"
    #: Not the ``0x8B 0x01`` prefix: not a Matrix key, or mistyped at the start.
    WRONG_PREFIX = "wrong_prefix"
    #: The parity byte does not match: a character is mistyped.
    WRONG_PARITY = "wrong_parity"


class RecoveryKeyError(ValueError):
    """The text is not a well-formed recovery key; ``problem`` says how.

    The message never contains the text or any part of the key.
    """

    def __init__(self, problem: RecoveryKeyProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class PassphraseInfoError(ValueError):
    """A key description's ``passphrase`` property is unusable (unknown algorithm, bad values)."""


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); each leading zero byte becomes a ``1``."""
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(BASE58_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode base58 (Bitcoin alphabet); ``ValueError`` on a character outside it.

    The error names the position of the first bad character, never the character.
    """
    number = 0
    for position, char in enumerate(text):
        value = _B58_VALUES.get(char)
        if value is None:
            raise ValueError(f"character {position + 1} is not base58")
        number = number * 58 + value
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def _parity(data: bytes) -> int:
    parity = 0
    for byte in data:
        parity ^= byte
    return parity


def encode_recovery_key(key: bytes) -> str:
    """The spec's text form of a 32-byte key: prefix, parity, base58, groups of four.

    Example shape: ``EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d``.
    """
    if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
        raise ValueError("a recovery key holds exactly 32 bytes")
    data = RECOVERY_KEY_PREFIX + key
    encoded = b58encode(data + bytes([_parity(data)]))
    return " ".join(encoded[i : i + _GROUP] for i in range(0, len(encoded), _GROUP))


def decode_recovery_key(text: str) -> bytes:
    """The 32-byte key from its text form; whitespace anywhere is disregarded.

    Raises :class:`RecoveryKeyError` (``problem`` says which check failed).
    """
    if not isinstance(text, str):
        raise RecoveryKeyError(RecoveryKeyProblem.EMPTY, "a recovery key is text")
    compact = "".join(text.split())
    if not compact:
        raise RecoveryKeyError(RecoveryKeyProblem.EMPTY, "no recovery key was entered")
    try:
        raw = b58decode(compact)
    except ValueError as exc:
        raise RecoveryKeyError(
            RecoveryKeyProblem.NOT_BASE58,
            f"not a recovery key: {exc} (recovery keys never contain 0, O, I or l)",
        ) from None
    # Every 35-byte string starting 0x8B 0x01 is 48 base58 characters: counting the
    # characters names a missing or extra one better than the decoded length would.
    if len(compact) != _ENCODED_LENGTH or len(raw) != _DECODED_LENGTH:
        raise RecoveryKeyError(
            RecoveryKeyProblem.WRONG_LENGTH,
            "not a recovery key: it is too "
            + ("short" if len(compact) < _ENCODED_LENGTH else "long")
            + " (a recovery key is 48 characters in 12 groups of 4)",
        )
    if raw[:2] != RECOVERY_KEY_PREFIX:
        raise RecoveryKeyError(
            RecoveryKeyProblem.WRONG_PREFIX,
            "not a recovery key: it does not start the way Matrix recovery keys do",
        )
    if _parity(raw) != 0:
        # XOR over prefix, key and parity is zero exactly when the parity byte matches.
        raise RecoveryKeyError(
            RecoveryKeyProblem.WRONG_PARITY,
            "the recovery key's check digit does not match: a character is mistyped",
        )
    return raw[2 : 2 + KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class PassphraseInfo:
    """The ``passphrase`` property of a secret storage key description (``m.pbkdf2``)."""

    salt: str
    iterations: int
    bits: int = 256
    algorithm: str = PBKDF2_ALGORITHM

    @classmethod
    def generate(cls, iterations: int = DEFAULT_PBKDF2_ITERATIONS) -> PassphraseInfo:
        """Fresh parameters: a random 32-character alphanumeric salt."""
        salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(_SALT_LENGTH))
        info = cls(salt=salt, iterations=iterations)
        info.check()
        return info

    @classmethod
    def from_content(cls, content: object) -> PassphraseInfo:
        """Parse the property; raises :class:`PassphraseInfoError`."""
        if not isinstance(content, Mapping):
            raise PassphraseInfoError("the passphrase information is not an object")
        algorithm = content.get("algorithm")
        salt = content.get("salt")
        iterations = content.get("iterations")
        bits = content.get("bits", 256)
        if algorithm != PBKDF2_ALGORITHM:
            raise PassphraseInfoError("unsupported passphrase algorithm")
        if not isinstance(salt, str):
            raise PassphraseInfoError("the passphrase salt is missing")
        if not isinstance(iterations, int) or isinstance(iterations, bool):
            raise PassphraseInfoError("the passphrase iteration count is missing")
        if bits is None:
            bits = 256
        if not isinstance(bits, int) or isinstance(bits, bool):
            raise PassphraseInfoError("the passphrase key size is not a number")
        info = cls(salt=salt, iterations=iterations, bits=bits)
        info.check()
        return info

    def check(self) -> None:
        """Raise :class:`PassphraseInfoError` unless the parameters are usable."""
        if self.algorithm != PBKDF2_ALGORITHM:
            raise PassphraseInfoError("unsupported passphrase algorithm")
        if not 1 <= self.iterations <= MAX_PBKDF2_ITERATIONS:
            raise PassphraseInfoError("unreasonable PBKDF2 iteration count")
        if self.bits <= 0 or self.bits % 8 or self.bits > 8 * 64:
            raise PassphraseInfoError("unsupported passphrase key size")

    def to_content(self) -> dict[str, Any]:
        """The property as it goes in the key description."""
        return {
            "algorithm": self.algorithm,
            "salt": self.salt,
            "iterations": self.iterations,
            "bits": self.bits,
        }


def derive_key_from_passphrase(passphrase: str, info: PassphraseInfo) -> bytes:
    """PBKDF2-HMAC-SHA512(passphrase, salt, iterations) of ``info.bits`` bits."""
    info.check()
    if not isinstance(passphrase, str) or not passphrase:
        raise PassphraseInfoError("an empty passphrase protects nothing")
    return hashlib.pbkdf2_hmac(
        "sha512",
        passphrase.encode("utf-8"),
        info.salt.encode("utf-8"),
        info.iterations,
        info.bits // 8,
    )
