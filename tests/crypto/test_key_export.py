"""The key export file format: Element's test vectors, nio's implementation, bad input."""

from __future__ import annotations

import pytest
from nio.crypto import key_export as nio_export

from tui_client.crypto.key_export import (
    FOOTER,
    HEADER,
    KeyExportError,
    decrypt_key_export,
    encrypt_key_export,
)

# Test vectors of Element's MegolmExportEncryption tests (matrix-react-sdk,
# test/utils/MegolmExportEncryption-test.js): (plaintext, passphrase, file).
ELEMENT_VECTORS = [
    (
        "plain",
        "password",
        "-----BEGIN MEGOLM SESSION DATA-----\n"
        "AXNhbHRzYWx0c2FsdHNhbHSIiIiIiIiIiIiIiIiIiIiIAAAACmIRUW2OjZ3L2l6j9h0lHlV3M2dx\n"
        "cissyYBxjsfsAndErh065A8=\n"
        "-----END MEGOLM SESSION DATA-----",
    ),
    (
        "Hello, World",
        "betterpassword",
        "-----BEGIN MEGOLM SESSION DATA-----\n"
        "AW1vcmVzYWx0bW9yZXNhbHT//////////wAAAAAAAAAAAAAD6KyBpe1Niv5M5NPm4ZATsJo5nghk\n"
        "KYu63a0YQ5DRhUWEKk7CcMkrKnAUiZny\n"
        "-----END MEGOLM SESSION DATA-----",
    ),
    (
        "alphanumericallyalphanumericallyalphanumericallyalphanumerically",
        "SWORDFISH",
        "-----BEGIN MEGOLM SESSION DATA-----\n"
        "AXllc3NhbHR5Z29vZG5lc3P//////////wAAAAAAAAAAAAAD6OIW+Je7gwvjd4kYrb+49gKCfExw\n"
        "MgJBMD4mrhLkmgAngwR1pHjbWXaoGybtiAYr0moQ93GrBQsCzPbvl82rZhaXO3iH5uHo/RCEpOqp\n"
        "Pgg29363BGR+/Ripq/VCLKGNbw==\n"
        "-----END MEGOLM SESSION DATA-----",
    ),
    (
        "alphanumericallyalphanumericallyalphanumericallyalphanumerically",
        "password" * 32,
        "-----BEGIN MEGOLM SESSION DATA-----\n"
        "Af//////////////////////////////////////////AAAD6IAZJy7IQ7Y0idqSw/bmpngEEVVh\n"
        "gsH+8ptgqxw6ZVWQnohr8JsuwH9SwGtiebZuBu5smPCO+RFVWH2cQYslZijXv/BEH/txvhUrrtCd\n"
        "bWnSXS9oymiqwUIGs08sXI33ZA==\n"
        "-----END MEGOLM SESSION DATA-----",
    ),
]


@pytest.mark.parametrize(("plain", "passphrase", "armoured"), ELEMENT_VECTORS)
def test_element_vectors_decrypt(plain: str, passphrase: str, armoured: str) -> None:
    assert decrypt_key_export(armoured, passphrase) == plain.encode()


def test_round_trip_shape_and_crlf() -> None:
    text = encrypt_key_export("données ✓" * 50, "pass phrase", rounds=1000)
    lines = text.splitlines()
    assert lines[0] == HEADER and lines[-1] == FOOTER
    assert all(len(line) <= 96 for line in lines[1:-1])
    assert decrypt_key_export(text, "pass phrase") == ("données ✓" * 50).encode()
    assert decrypt_key_export("preamble\r\n" + text.replace("\n", "\r\n"), "pass phrase")


def test_iv_bit_63_is_clear() -> None:
    from tui_client.crypto.encoding import b64decode

    for _ in range(20):
        text = encrypt_key_export("x", "p", rounds=1)
        raw = b64decode("".join(text.splitlines()[1:-1]))
        assert raw[17 + 8] & 0x80 == 0


def test_wrong_passphrase_and_bad_files() -> None:
    text = encrypt_key_export("secret", "right", rounds=1000)
    with pytest.raises(KeyExportError, match="passphrase"):
        decrypt_key_export(text, "wrong")
    lines = text.splitlines()
    body = lines[1]
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(KeyExportError):
        decrypt_key_export("\n".join([lines[0], flipped, *lines[2:]]), "right")
    with pytest.raises(KeyExportError, match="header"):
        decrypt_key_export("-----", "")
    with pytest.raises(KeyExportError, match="trailer"):
        decrypt_key_export(HEADER + "\n-----", "")
    with pytest.raises(KeyExportError, match="too short"):
        decrypt_key_export(
            HEADER
            + "\nAXNhbHRzYWx0c2FsdHNhbHSIiIiIiIiIiIiIiIiIiIiIAAAACmIRUW2OjZ3L2l6j9h0lHlV3M2dx\n"
            "cissyYBxjsfsAn\n" + FOOTER,
            "",
        )
    with pytest.raises(KeyExportError):
        encrypt_key_export("x", "")


def test_nio_reads_ours_and_we_read_nios() -> None:
    ours = encrypt_key_export('[{"a":1}]', "pw", rounds=1000)
    body = "".join(ours.splitlines()[1:-1])
    assert nio_export.decrypt(body, "pw") == b'[{"a":1}]'
    theirs = nio_export.encrypt(b'[{"b":2}]', "pw2", count=1000)
    assert decrypt_key_export(f"{HEADER}\n{theirs}\n{FOOTER}", "pw2") == b'[{"b":2}]'
