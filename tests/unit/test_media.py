"""Attachments parsed from message content: the spec's examples, hostile names, bad keys."""

from __future__ import annotations

import json

import pytest

from tui_client.protocol.media import MediaError, parse_attachment, parse_mxc, safe_filename

from .spec_examples import EXAMPLES_DIR, load_document

ENCRYPTED_IMAGE = {
    "body": "something-important.jpg",
    "msgtype": "m.image",
    "file": {
        "url": "mxc://example.org/FHyPlCeYUSFFxlgbQYZmoEoe",
        "v": "v2",
        "key": {
            "alg": "A256CTR",
            "ext": True,
            "k": "aWF6-32KGYaC3A_FEUCk1Bt0JA37zP0wrStgmdCaW-0",
            "key_ops": ["encrypt", "decrypt"],
            "kty": "oct",
        },
        "iv": "w+sE15fzSc0AAAAAAAAAAA",
        "hashes": {"sha256": "fdSLu/YkRx3Wyh3KQabP3rd6+SFiKg5lsJZQHtkSAYA"},
    },
    "info": {"mimetype": "image/jpeg", "size": 422018},
}


@pytest.mark.parametrize("msgtype", ["m.file", "m.image", "m.audio", "m.video"])
def test_the_spec_examples(msgtype: str) -> None:
    path = EXAMPLES_DIR / f"m.room.message${msgtype}.yaml"
    if not path.exists():
        pytest.fail(f"missing spec example {path}")
    content = load_document(path)["content"]
    attachment = parse_attachment(content)
    assert attachment.mxc == content["url"] and attachment.encrypted is None
    assert attachment.filename and "/" not in attachment.filename


def test_the_encrypted_example_of_the_spec() -> None:
    attachment = parse_attachment(ENCRYPTED_IMAGE)
    assert attachment.mxc == "mxc://example.org/FHyPlCeYUSFFxlgbQYZmoEoe"
    assert attachment.encrypted is not None
    assert len(attachment.encrypted.key) == 32 and len(attachment.encrypted.iv) == 16
    assert attachment.filename == "something-important.jpg" and attachment.size == 422018


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(v="v1"), "version"),
        (lambda f: f["key"].update(alg="A128CTR"), "AES-256-CTR"),
        (lambda f: f["key"].update(k="AAAAAAAAAAAAAAAAAAAAAA"), "wrong length"),
        (lambda f: f.update(iv="!!!"), "malformed"),
        (lambda f: f.pop("hashes"), "hash"),
        (lambda f: f.update(url="https://evil.example/x"), "content URI"),
    ],
)
def test_bad_encrypted_files_are_refused_plainly(change, message: str) -> None:  # type: ignore[no-untyped-def]
    content = json.loads(json.dumps(ENCRYPTED_IMAGE))
    change(content["file"])
    with pytest.raises(MediaError, match=message):
        parse_attachment(content)


def test_content_uris() -> None:
    assert parse_mxc("mxc://matrix.org/abc_DEF-123") == ("matrix.org", "abc_DEF-123")
    for bad in (
        "mxc://matrix.org/../../etc",
        "mxc://matrix.org/a/b",
        "mxc:///abc",
        "http://x/y",
        None,
        "mxc://bad server/x",
    ):
        with pytest.raises(MediaError):
            parse_mxc(bad)
    with pytest.raises(MediaError, match="no attachment"):
        parse_attachment({"msgtype": "m.text", "body": "hi"})


def test_names_from_others_are_made_safe() -> None:
    assert safe_filename("../../.bashrc") == "bashrc"
    assert safe_filename("C:\\Windows\\evil.exe") == "evil.exe"
    assert safe_filename("report\x1b[31m\u202e.pdf") == "report.pdf"
    assert safe_filename("...") == "attachment"
    assert safe_filename('a<b>c:"d"|e?*.txt') == "abcde.txt"
    long = safe_filename("x" * 300 + ".tar.gz")
    assert len(long) <= 120 and long.endswith(".gz")
    assert (
        parse_attachment({"msgtype": "m.file", "body": "", "url": "mxc://s.org/abc"}).filename
        == "file-abc"
    )
