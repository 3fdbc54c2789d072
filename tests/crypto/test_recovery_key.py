"""Recovery key text form and passphrase parameters (appendices, secrets.md)."""

from __future__ import annotations

import base64
import secrets

import pytest

from tui_client.crypto.recovery_key import (
    BASE58_ALPHABET,
    MAX_PBKDF2_ITERATIONS,
    PassphraseInfo,
    PassphraseInfoError,
    RecoveryKeyError,
    RecoveryKeyProblem,
    b58decode,
    b58encode,
    decode_recovery_key,
    derive_key_from_passphrase,
    encode_recovery_key,
)

# matrix-rust-sdk, crates/matrix-sdk-crypto/src/backups/keys/decryption.rs (TEST_KEY), and
# matrix-js-sdk spec/test-utils/crypto-test-data (BACKUP_DECRYPTION_KEY_BASE58/_BASE64).
RUST_TEST_KEY = bytes(
    [
        0x77, 0x07, 0x6D, 0x0A, 0x73, 0x18, 0xA5, 0x7D, 0x3C, 0x16, 0xC1, 0x72, 0x51, 0xB2, 0x66,
        0x45, 0xDF, 0x4C, 0x2F, 0x87, 0xEB, 0xC0, 0x99, 0x2A, 0xB1, 0x77, 0xFB, 0xA5, 0x1D, 0xB9,
        0x2C, 0x2A,
    ]
)  # fmt: skip
RUST_TEST_KEY_BASE58 = "EsTcLW2KPGiFwKEA3As5g5c4BXwkqeeJZJV8Q9fugUMNUE4d"
JS_BACKUP_KEY_BASE58 = "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"
JS_BACKUP_KEY_BASE64 = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="

# matrix-rust-sdk, crates/matrix-sdk-crypto/src/secret_storage.rs, base58_parsing.
RUST_DECODED_KEY = bytes(
    [
        159, 189, 70, 187, 52, 81, 113, 198, 246, 2, 44, 154, 37, 213, 104, 27, 165, 78, 236,
        106, 108, 73, 83, 243, 173, 192, 185, 110, 157, 145, 173, 163,
    ]
)  # fmt: skip


def test_known_vectors_decode() -> None:
    assert decode_recovery_key(RUST_TEST_KEY_BASE58) == RUST_TEST_KEY
    assert decode_recovery_key(JS_BACKUP_KEY_BASE58) == base64.b64decode(JS_BACKUP_KEY_BASE64)
    assert base64.b64decode(JS_BACKUP_KEY_BASE64) == RUST_TEST_KEY
    spaced = "EsT           pRvZTnjck8    YrhRAtw XLS84Nr2r9S9LGAWDaExVAPBvLRK   "
    assert decode_recovery_key(spaced) == RUST_DECODED_KEY


def test_encoding_is_the_spec_presentation() -> None:
    # Prefix 0x8B 0x01, parity, base58, a space after every fourth character.
    assert encode_recovery_key(RUST_TEST_KEY) == JS_BACKUP_KEY_BASE58


def test_round_trips_random_keys() -> None:
    for _ in range(200):
        key = secrets.token_bytes(32)
        text = encode_recovery_key(key)
        groups = text.split(" ")
        assert all(len(g) == 4 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 4
        assert text.startswith("Es")
        assert decode_recovery_key(text) == key
        assert decode_recovery_key(text.replace(" ", "")) == key
        assert decode_recovery_key("\n\t " + text.replace(" ", "\n") + "  ") == key


def test_edge_keys_round_trip() -> None:
    for key in (bytes(32), b"\xff" * 32, bytes(31) + b"\x01"):
        assert decode_recovery_key(encode_recovery_key(key)) == key


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("EsTpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk", RecoveryKeyProblem.WRONG_PARITY),
        ("AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk", RecoveryKeyProblem.WRONG_PREFIX),
        ("AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9", RecoveryKeyProblem.WRONG_LENGTH),
        ("AATpRvZTnjck8YrhRAtwXLS84Nr0OIl", RecoveryKeyProblem.NOT_BASE58),
        (
            "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4e",
            RecoveryKeyProblem.WRONG_PARITY,
        ),
        (
            "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4",
            RecoveryKeyProblem.WRONG_LENGTH,
        ),
        (
            "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4dd",
            RecoveryKeyProblem.WRONG_LENGTH,
        ),
        ("   \n", RecoveryKeyProblem.EMPTY),
        ("", RecoveryKeyProblem.EMPTY),
    ],
)
def test_bad_keys_are_rejected_with_the_reason(text: str, problem: RecoveryKeyProblem) -> None:
    with pytest.raises(RecoveryKeyError) as caught:
        decode_recovery_key(text)
    assert caught.value.problem is problem
    message = str(caught.value)
    assert message
    for group in text.split():
        if len(group) >= 4:
            assert group not in message  # the error never repeats the key


def test_base58_is_case_sensitive() -> None:
    # The spec only forgives whitespace; folding case would change the key.
    with pytest.raises(RecoveryKeyError):
        decode_recovery_key(JS_BACKUP_KEY_BASE58.lower())
    with pytest.raises(RecoveryKeyError):
        decode_recovery_key(JS_BACKUP_KEY_BASE58.upper())


def test_base58_matches_the_bitcoin_alphabet() -> None:
    assert BASE58_ALPHABET == "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    # Classic vectors (Bitcoin base58): leading zeros become '1'.
    assert b58encode(b"") == ""
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58decode("StV1DL6CwTryKyV") == b"hello world"
    assert b58decode("112") == b"\x00\x00\x01"
    for _ in range(100):
        data = bytes(secrets.randbelow(3)) + secrets.token_bytes(secrets.randbelow(40))
        assert b58decode(b58encode(data)) == data
    with pytest.raises(ValueError, match="character 3"):
        b58decode("120")


def test_encode_rejects_other_lengths() -> None:
    with pytest.raises(ValueError):
        encode_recovery_key(bytes(31))


def test_passphrase_info_parsing() -> None:
    info = PassphraseInfo.from_content(
        {"algorithm": "m.pbkdf2", "salt": "MmMsAlty", "iterations": 100000, "bits": 256}
    )
    assert info == PassphraseInfo(salt="MmMsAlty", iterations=100000, bits=256)
    assert PassphraseInfo.from_content(info.to_content()) == info
    assert (
        PassphraseInfo.from_content({"algorithm": "m.pbkdf2", "salt": "s", "iterations": 5}).bits
        == 256
    )
    for bad in (
        None,
        [],
        {"algorithm": "m.scrypt", "salt": "s", "iterations": 5},
        {"algorithm": "m.pbkdf2", "iterations": 5},
        {"algorithm": "m.pbkdf2", "salt": "s"},
        {"algorithm": "m.pbkdf2", "salt": "s", "iterations": True},
        {"algorithm": "m.pbkdf2", "salt": "s", "iterations": 0},
        {"algorithm": "m.pbkdf2", "salt": "s", "iterations": MAX_PBKDF2_ITERATIONS + 1},
        {"algorithm": "m.pbkdf2", "salt": "s", "iterations": 5, "bits": 255},
        {"algorithm": "m.pbkdf2", "salt": "s", "iterations": 5, "bits": "256"},
    ):
        with pytest.raises(PassphraseInfoError):
            PassphraseInfo.from_content(bad)


def test_generated_parameters_are_fresh() -> None:
    first, second = PassphraseInfo.generate(), PassphraseInfo.generate()
    assert first.salt != second.salt and len(first.salt) == 32 and first.salt.isalnum()
    assert first.iterations == 500_000 and first.bits == 256


def test_pbkdf2_sha512_derivation() -> None:
    # RFC 6070-style check against an independent PBKDF2 (the `cryptography` package).
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    info = PassphraseInfo(salt="IuLnH7S85YtZmkkBJKwNUKxWF42g9O1H", iterations=10)
    expected = PBKDF2HMAC(hashes.SHA512(), 32, info.salt.encode(), 10).derive(
        b"It's a secret to everybody"
    )
    assert derive_key_from_passphrase("It's a secret to everybody", info) == expected
    assert len(derive_key_from_passphrase("x", PassphraseInfo("s", 1, bits=512))) == 64
    # Unicode passphrases are UTF-8 encoded, without normalisation (as Element does).
    assert derive_key_from_passphrase("é", info) != derive_key_from_passphrase("e\u0301", info)
    with pytest.raises(PassphraseInfoError):
        derive_key_from_passphrase("", info)
