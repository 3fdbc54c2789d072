"""Encrypted attachments: our encryption and decryption, against matrix-nio's, both ways."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from nio.crypto.attachments import decrypt_attachment as nio_decrypt
from nio.crypto.attachments import encrypt_attachment as nio_encrypt

from tui_client.crypto.attachments import AttachmentError, decrypt_attachment, encrypt_attachment
from tui_client.protocol.media import parse_attachment


def _content(file: dict[str, Any]) -> dict[str, Any]:
    return {
        "msgtype": "m.file",
        "body": "notes.txt",
        "file": {**file, "url": "mxc://example.org/abc"},
    }


def test_ours_round_trips_and_the_counter_starts_at_zero() -> None:
    plaintext = secrets.token_bytes(70_000)
    ciphertext, file = encrypt_attachment(plaintext)
    assert ciphertext != plaintext and len(ciphertext) == len(plaintext)
    attachment = parse_attachment(_content(file))
    assert attachment.encrypted is not None and attachment.encrypted.iv[8:] == bytes(8)
    assert decrypt_attachment(ciphertext, attachment.encrypted) == plaintext


def test_nio_reads_ours_and_we_read_nio() -> None:
    plaintext = b"shared with another implementation " * 100
    ciphertext, file = encrypt_attachment(plaintext)
    assert (
        nio_decrypt(ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"]) == plaintext
    )
    their_ciphertext, their_keys = nio_encrypt(plaintext)
    theirs = {
        "v": "v2",
        "key": their_keys["key"],
        "iv": their_keys["iv"],
        "hashes": their_keys["hashes"],
    }
    attachment = parse_attachment(_content(theirs))
    assert attachment.encrypted is not None
    assert decrypt_attachment(their_ciphertext, attachment.encrypted) == plaintext


def test_a_damaged_or_swapped_file_is_refused() -> None:
    ciphertext, file = encrypt_attachment(b"the real file")
    attachment = parse_attachment(_content(file))
    assert attachment.encrypted is not None
    damaged = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(AttachmentError, match="hash"):
        decrypt_attachment(damaged, attachment.encrypted)
    other, _ = encrypt_attachment(b"the real file")
    with pytest.raises(AttachmentError):
        decrypt_attachment(other, attachment.encrypted)
