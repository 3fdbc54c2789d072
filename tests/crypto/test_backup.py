"""Server-side key backup: keys, versions and their trust, uploads, restores.

matrix-nio 0.26 implements neither key backup nor secret storage, so the
independent checks are (1) matrix-js-sdk's and matrix-rust-sdk's test vectors
(a backup entry made by Element's stack restored here, and the event it unlocks
decrypted) and (2) a from-the-spec implementation of the PK scheme written in this
file on the `cryptography` package alone, which must read what we write and
write what we read.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tui_client.crypto import CryptoBackend, load_backend
from tui_client.crypto.backup import (
    BACKUP_ALGORITHM,
    BackupError,
    BackupKey,
    BackupUploader,
    BackupVersion,
    RestoreFailureKind,
    RestoreProgress,
    SignatureState,
    SignerKind,
    TrustedBy,
    UnsupportedBackupError,
    backup_version_body,
    check_backup_trust,
    check_backup_trust_for,
    count_backup_entries,
    decrypt_backup,
    restore_backup,
)
from tui_client.crypto.recovery_key import RecoveryKeyError
from tui_client.crypto.secret_storage import (
    DEFAULT_KEY_TYPE,
    KeyDescription,
    SecretStorageKey,
    StoredSecrets,
    parse_default_key,
    read_recovery_secrets,
    recovery_setup_writes,
)
from tui_client.crypto.signing import sign_json, verify_signed_json
from tui_client.crypto.types import Device, FailureReason, KeyOrigin, LocalTrust, SenderTrust

from .conftest import MakePeer
from .harness import Peer

ROOM = "!room:x"
OTHER_ROOM = "!other:x"
USERS = ["@alice:x", "@bob:y"]

# --- matrix-js-sdk spec/test-utils/crypto-test-data ---------------------------------

JS_BACKUP_KEY_BASE58 = "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"
JS_BACKUP_KEY_BASE64 = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
JS_SIGNED_BACKUP_DATA = {
    "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
    "version": "1",
    "auth_data": {
        "public_key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",
        "signatures": {
            "@alice:localhost": {
                "ed25519:test_device": "KDSNeumirTsd8piI0oVfv/wzg4J4HlEc7rs5XhODFcJ/YAcUdg65ajsZG+rLI0TQOSSGjorJqcrSiSB1HRSCAA"
            }
        },
    },
    "etag": "",
    "count": 0,
}
JS_DEVICE_ED25519 = "YI/7vbGVLpGdYtuceQR8MSsKB/QjgfMXM1xqnn+0NWU"
JS_SESSION_ID = "ipdI6Zs/7DzFTEhiA2iGaMDfHkIYCleqXT6L+5e1/co"
JS_SESSION_KEY = (
    "AQAAAABXGO+Z9jlQJhIL6ByhXrv2BwCIxkhh7MXpKLsYmXkJcWrQlirmXmD79ga1zo+I4DCtEZzyGSpDWXBC6G7ez3H4"
    "gDMBam1RE3Jm5tc+oTlIri32UkYgSL0kBkcEnttqmIXBlK8tAfJo3cJnlh7F4ltEOAqrdME6dU0zXTkqXmURqYqXSOmb"
    "P+w8xUxIYgNohmjA3x5CGApXql0+i/uXtf3K"
)
JS_KEY_BACKUP_DATA = {
    "first_message_index": 1,
    "forwarded_count": 0,
    "is_verified": False,
    "session_data": {
        "ciphertext": (
            "r6HRk2/Im2yJe5cLP8R81aVjFWjYWPHpw7TVxphiSK1cdIDZTTK57r6MfU+0i/mTPn+/PosT74OvYwCnehy2dyqq"
            "ks+Ev+uBKw3TAo0HCv7W3Rmq9XtqxikG9ts7XtcjFEkx37+qRaXtikcu0+CmUf+I5X6KStwNXb+CPnN2CGgwpn8g"
            "5+xEgSjE904QFrte4s9ygfqymgszgF7kzNICYF5g2GTlss8pdu/GLnh52AKvtT6FcqE5LC74N07BDWUycMHMMMw4"
            "3F7z5GhzEnoWOXlbz+M4eTGrCYuhvcmQGNbdgzYqEXPm1z4xFhVgs84kFCtNeUc+AHZWfC2zynZ++4tpmfCYYpYE"
            "fYwQNo9Ks7o+Mh2PtAo9/GIU4xAK/uG0vizEiNYt/1QAxwgrmDxjdRe5TH4pPUtLMktRDyZKeUHJmYZA7pcLtpVa"
            "tXhXmVEQLFLDc/uusxaBxFXYkx7BQnNRoa1BE1yXRxud94s6vMsI/auhn95TG58Z0Rz9psRT4HzgDKeHf/uVbdfK"
            "R9O3gqxlB4mzZAyTCqHhUQERmGiISC2FeuKkAwVk/ZxXiFqSTUCizwXcczGbzEbC+pBJTi6jX5Pa2yI9cT5C8xaG"
            "GUzEaKdNWukcs73uvXoFl/5y0Y29PkfE8UlPWpN4kZn7hrcOllcqqV9ZMH+rBbGViIw0yZ6yQUciEJzO8Gk3yz36"
            "lIT30VhCgKXMu+kELEPTRSVXqEQkCXBcfNOhgl3LIso"
        ),
        "ephemeral": "q+P1WdRtEiPIEtNuuGrRcueZxUbLnSKdsuTAkxewXgU",
        "mac": "OibmACbORhI",
    },
}
JS_ENCRYPTED_EVENT = {
    "type": "m.room.encrypted",
    "room_id": "!room:id",
    "sender": "@alice:localhost",
    "content": {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": "WimPd2udAU/1S/+YBpPbmr9L+0H5H+BnAVHSwDxlPGc",
        "ciphertext": (
            "AwgAEnAkBmciEAyhh1j6DCk29UXJ7kv/kvayUNfuNT0iAioLxcXjFXOZ5ho3jF1/wrytlt0Lb298uMM67OxdVMi+"
            "/mMfYpwlvi07P9cIH6CMSj8tyhYoWl0SrKY6tkPf5GWOlRSRRKbziXa96FHXvnA3V2FCAIGtAe3G4ei5RPbhkmKA"
            "FBLAen33/D6MjJVqU8Ojr5vTkgls5eyirarlVpsmnH06alDaxO8avrU0NL+Vsw26xvlUQgEMOnUJ"
        ),
        "session_id": JS_SESSION_ID,
        "device_id": "TEST_DEVICE",
    },
    "event_id": "$event1",
    "origin_server_ts": 1507753886000,
}

# --- matrix-rust-sdk bindings/matrix-sdk-crypto-js/tests/backup_recovery_key.test.js --

RUST_BACKUP_KEY_BASE64 = "Ha9cklU/9NqFo9WKdVfGzmqUL/9wlkdxfEitbSIPVXw"
RUST_SESSION_DATA = {
    "ephemeral": "HlLi76oV6wxHz3PCqE/bxJi6yF1HnYz5Dq3T+d/KpRw",
    "ciphertext": (
        "MuM8E3Yc6TSAvhVGb77rQ++jE6p9dRepx63/3YPD2wACKAppkZHeFrnTH6wJ/HSyrmzo7HfwqVl6tKNpfooSTHqU"
        "f6x1LHz+h4B/Id5ITO1WYt16AaI40LOnZqTkJZCfSPuE2oxalwEHnCS3biWybutcnrBFPR3LMtaeHvvkb+k3ny9l"
        "5ZpsU9G7vCm3XoeYkWfLekWXvDhbqWrylXD0+CNUuaQJ/S527TzLd4XKctqVjjO/cCH7q+9utt9WJAfK8LGaWT/m"
        "Z3AeWjf5kiqOpKKf5Cn4n5SSil5p/pvGYmjnURvZSEeQIzHgvunIBEPtzK/MYEPOXe/P5achNGlCx+5N19Ftyp9T"
        "FaTFlTWCTi0mpD7ePfCNISrwpozAz9HZc0OhA8+1aSc7rhYFIeAYXFU326NuFIFHI5pvpSxjzPQlOA+mavIKmiRA"
        "tjlLw11IVKTxgrdT4N8lXeMr4ndCSmvIkAzFMo1uZA4fzjiAdQJE4/2WeXFNNpvdfoYmX8Zl9CAYjpSO5HvpwkAb"
        "k4/iLEH3hDfCVUwDfMh05PdGLnxeRpiEFWSMSsJNp+OWAA+5JsF41BoRGrxoXXT+VKqlUDONd+O296Psu8Q+d8/S"
        "618"
    ),
    "mac": "GtMrurhDTwo",
}
RUST_SESSION_KEY = (
    "AQAAAABwCEYsl5BrvPW0N8HTYP11phC7LOzItQLS3Zen6j1j9qMydUHVDeuMLxwo5i3GYfLWGjJEjsCj0Q99TZMABnJB"
    "CFg9MheV8cNSBfj7mHSZr6NP8aUAAAOhsY+cJwPDHxcnU181nAEs0fovHnonZGXs6iB/K6sKfuRWUNvX50ORohgDT3TG"
    "l0gQFed1FQEtn2Q1qT35iTRfe81SGOnFJrOM"
)

# --- the PK scheme from the spec's text, on `cryptography` alone ----------------------


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _u64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _spec_keys(shared: bytes) -> tuple[bytes, bytes, bytes]:
    okm = HKDF(hashes.SHA256(), 80, bytes(32), b"").derive(shared)
    return okm[:32], okm[32:64], okm[64:]


def spec_decrypt(private_key: bytes, session_data: dict[str, str]) -> dict[str, Any]:
    ephemeral = X25519PublicKey.from_public_bytes(_b64(session_data["ephemeral"]))
    aes_key, mac_key, iv = _spec_keys(
        X25519PrivateKey.from_private_bytes(private_key).exchange(ephemeral)
    )
    # Step 5: the MAC of the empty string (libolm's bug, now the standard), first 8 bytes.
    assert hmac.new(mac_key, b"", hashlib.sha256).digest()[:8] == _b64(session_data["mac"])
    op = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
    padded = op.update(_b64(session_data["ciphertext"])) + op.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    value = json.loads(unpadder.update(padded) + unpadder.finalize())
    assert isinstance(value, dict)
    return value


def spec_encrypt(public_key: str, plaintext: str) -> dict[str, str]:
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(_b64(public_key)))
    aes_key, mac_key, iv = _spec_keys(shared)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode()) + padder.finalize()
    op = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    return {
        "ephemeral": _u64(ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
        "ciphertext": _u64(op.update(padded) + op.finalize()),
        "mac": _u64(hmac.new(mac_key, b"", hashlib.sha256).digest()[:8]),
    }


# --- a key backup server in memory ----------------------------------------------------


class BackupServer:
    """``/room_keys/version`` and ``/room_keys/keys``, with the spec's keep-the-better rule."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.puts = 0

    @property
    def current(self) -> str:
        return max(self.versions, key=int)

    def create(self, body: dict[str, Any]) -> str:
        version = str(len(self.versions) + 1)
        self.versions[version] = copy.deepcopy(body)
        self.keys[version] = {}
        return version

    def info(self, version: str | None = None) -> dict[str, Any]:
        version = version or self.current
        count = sum(len(s) for s in self.keys[version].values())
        return {**self.versions[version], "version": version, "count": count, "etag": str(count)}

    def put(self, version: str, body: dict[str, Any]) -> dict[str, Any]:
        if version != self.current:
            raise RuntimeError("M_WRONG_ROOM_KEYS_VERSION")
        self.puts += 1
        for room_id, room in body["rooms"].items():
            stored = self.keys[version].setdefault(room_id, {})
            for session_id, data in room["sessions"].items():
                old = stored.get(session_id)
                if old is None or _better(data, old):
                    stored[session_id] = copy.deepcopy(data)
        count = sum(len(s) for s in self.keys[version].values())
        return {"count": count, "etag": str(count)}

    def get(self, version: str | None = None) -> dict[str, Any]:
        version = version or self.current
        return {"rooms": {r: {"sessions": copy.deepcopy(s)} for r, s in self.keys[version].items()}}


def _better(new: dict[str, Any], old: dict[str, Any]) -> bool:
    if new["is_verified"] != old["is_verified"]:
        return bool(new["is_verified"])
    if new["first_message_index"] != old["first_message_index"]:
        return bool(new["first_message_index"] < old["first_message_index"])
    return bool(new["forwarded_count"] < old["forwarded_count"])


def upload_all(uploader: BackupUploader, server: BackupServer) -> int:
    batches = 0
    while (upload := uploader.next_upload()) is not None:
        uploader.mark_sent(upload, server.put(upload.version, upload.body))
        batches += 1
    return batches


def js_device(*, trust: LocalTrust = LocalTrust.UNSET, ed25519: str = JS_DEVICE_ED25519) -> Device:
    return Device(
        user_id="@alice:localhost",
        device_id="test_device",
        curve25519="F4uCNNlcbRvc7CfBz95ZGWBvY1ALniG1J8+6rhVoKS0",
        ed25519=ed25519,
        algorithms=("m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"),
        display_name=None,
        local_trust=trust,
        deleted=False,
        keys_json="{}",
    )


@pytest.fixture
def alice(make_peer: MakePeer) -> Peer:
    return make_peer("@alice:x", "A1")


@pytest.fixture
def bob(make_peer: MakePeer) -> Peer:
    return make_peer("@bob:y", "B1")


def history(alice: Peer, bob: Peer) -> list[tuple[str, dict[str, Any], str]]:
    """Bob writes in two rooms (two sessions each), Alice once: (room, event, body)."""
    events = []
    for room in (ROOM, OTHER_ROOM):
        for n in range(2):
            body = f"bob {room} {n}"
            events.append((room, bob.encrypt(room, USERS, body), body))
            bob.machine.invalidate_group_session(room)
    alice.sync()
    events.append((ROOM, alice.encrypt(ROOM, USERS, "alice's own"), "alice's own"))
    for room, event, body in events:
        assert alice.decrypt(event, room).content["body"] == body
    return events


def make_backup(
    peer: Peer, server: BackupServer, master: Any = None
) -> tuple[BackupKey, BackupVersion]:
    key = BackupKey.create(peer.machine.backend)
    version = server.create(backup_version_body(key.public_key, peer.machine, master))
    return key, BackupVersion.from_response(server.info(version))


# --- the key and independent vectors ------------------------------------------------------


def test_backup_key_forms_and_the_js_sdk_vector(backend: CryptoBackend) -> None:
    key = BackupKey.from_recovery_key(backend, JS_BACKUP_KEY_BASE58)
    assert key.public_key == JS_SIGNED_BACKUP_DATA["auth_data"]["public_key"]  # type: ignore[index]
    assert key.recovery_key() == JS_BACKUP_KEY_BASE58
    assert BackupKey.from_secret(backend, JS_BACKUP_KEY_BASE64).public_key == key.public_key
    assert BackupKey.from_secret(backend, key.to_secret()).public_key == key.public_key
    assert "=" not in key.to_secret()
    version = BackupVersion.from_response(JS_SIGNED_BACKUP_DATA)
    assert key.matches(version) and version.version == "1" and version.count == 0
    value = key.decrypt_session_data(JS_KEY_BACKUP_DATA["session_data"])
    assert value["session_key"] == JS_SESSION_KEY
    assert value["sender_key"] == "WimPd2udAU/1S/+YBpPbmr9L+0H5H+BnAVHSwDxlPGc"
    assert repr(key) == f"BackupKey(public_key={key.public_key!r})"
    with pytest.raises(BackupError):
        BackupKey.from_secret(backend, "notBase64!")
    with pytest.raises(BackupError):
        BackupKey.from_secret(backend, _u64(bytes(31)))
    with pytest.raises(RecoveryKeyError):
        BackupKey.from_recovery_key(backend, JS_BACKUP_KEY_BASE58[:-1] + "e")


def test_rust_sdk_vector_decrypts(backend: CryptoBackend) -> None:
    key = BackupKey.from_secret(backend, RUST_BACKUP_KEY_BASE64)
    value = key.decrypt_session_data(RUST_SESSION_DATA)
    assert value["algorithm"] == "m.megolm.v1.aes-sha2"
    assert value["sender_key"] == "wREG/hBdSspoqM9xPCEXd/4YwjpBFXlsobRkyDTo/Q8"
    assert value["session_key"] == RUST_SESSION_KEY
    with pytest.raises(BackupError, match="did not decrypt"):
        BackupKey.create(backend).decrypt_session_data(RUST_SESSION_DATA)


def test_an_element_backup_restores_and_unlocks_its_event(make_peer: MakePeer) -> None:
    # A session backed up by Element's stack, restored here, decrypts Element's event.
    peer = make_peer("@alice:localhost", "NEWDEVICE")
    key = BackupKey.from_recovery_key(peer.machine.backend, JS_BACKUP_KEY_BASE58)
    response = {"rooms": {"!room:id": {"sessions": {JS_SESSION_ID: JS_KEY_BACKUP_DATA}}}}
    result = restore_backup(
        key, response, lambda batch: peer.machine.import_sessions(batch, origin=KeyOrigin.BACKUP)
    )
    assert (result.total, result.decrypted, result.imported, result.failures) == (1, 1, 1, [])
    [info] = result.room_keys
    assert (info.room_id, info.session_id, info.origin) == (
        "!room:id",
        JS_SESSION_ID,
        KeyOrigin.BACKUP,
    )
    decrypted = peer.decrypt(JS_ENCRYPTED_EVENT, "!room:id")
    assert decrypted.content == {"msgtype": "m.text", "body": "Hello world"}
    assert decrypted.trust is SenderTrust.UNAUTHENTICATED
    assert decrypted.key_origin is KeyOrigin.BACKUP
    [record] = peer.store.list_inbound_group_sessions("!room:id")
    assert record["shared_history"] is True  # from js-sdk's "m.shared_history"
    assert record["backed_up"] is True


def test_js_sdk_signed_backup_trust(backend: CryptoBackend) -> None:
    version = BackupVersion.from_response(JS_SIGNED_BACKUP_DATA)
    common: dict[str, Any] = {
        "backend": backend,
        "user_id": "@alice:localhost",
        "device_id": "new_device",
        "device_ed25519": "x" * 43,
    }
    verified = check_backup_trust(
        version, own_devices=[js_device()], is_verified=lambda _d: True, **common
    )
    assert verified.trusted and verified.trusted_by == (TrustedBy.VERIFIED_DEVICE,)
    [check] = verified.signatures
    assert (check.signer, check.state, check.device_id) == (
        SignerKind.OWN_DEVICE,
        SignatureState.VALID_TRUSTED,
        "test_device",
    )
    unverified = check_backup_trust(version, own_devices=[js_device()], **common)
    assert not unverified.trusted
    assert unverified.signatures[0].state is SignatureState.VALID_UNTRUSTED
    assert "not verified" in unverified.explain()
    forged = check_backup_trust(
        version,
        own_devices=[js_device(ed25519="F4uCNNlcbRvc7CfBz95ZGWBvY1ALniG1J8+6rhVoKS0")],
        is_verified=lambda _d: True,
        **common,
    )
    assert not forged.trusted and forged.signatures[0].state is SignatureState.INVALID
    unknown = check_backup_trust(version, **common)
    assert not unknown.trusted and unknown.signatures[0].state is SignatureState.UNKNOWN_SIGNER
    # Holding the matching key (from secret storage, or typed in) is trust on its own.
    held = check_backup_trust(
        version, backup_key=BackupKey.from_secret(backend, JS_BACKUP_KEY_BASE64), **common
    )
    assert held.trusted and held.trusted_by == (TrustedBy.PRIVATE_KEY,) and held.key_matches


def test_our_encryption_matches_the_spec_both_ways(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    history(alice, bob)
    server = BackupServer()
    key, version = make_backup(alice, server)
    upload_all(BackupUploader(alice.store, backend, alice.pickle_key, version), server)
    private = _b64(key.to_secret())
    exported = {s["session_id"]: s for s in alice.machine.export_sessions()}
    for room_id, room in server.get()["rooms"].items():
        for session_id, data in room["sessions"].items():
            value = spec_decrypt(private, data["session_data"])
            expected = {
                k: v for k, v in exported[session_id].items() if k not in ("room_id", "session_id")
            }
            assert value == expected
            assert room_id == exported[session_id]["room_id"]
    written = spec_encrypt(
        key.public_key, json.dumps({"algorithm": "m.megolm.v1.aes-sha2", "x": "é"})
    )
    assert key.decrypt_session_data(written) == {"algorithm": "m.megolm.v1.aes-sha2", "x": "é"}


# --- versions, bodies and trust -------------------------------------------------------------


def test_version_body_is_signed_by_device_and_master(backend: CryptoBackend, alice: Peer) -> None:
    master = backend.pk_signing_from_seed(secrets.token_bytes(32))
    key = BackupKey.create(backend)
    body = backup_version_body(key.public_key, alice.machine, master)
    assert body["algorithm"] == BACKUP_ALGORITHM
    auth = body["auth_data"]
    assert auth["public_key"] == key.public_key
    assert set(auth["signatures"]["@alice:x"]) == {"ed25519:A1", f"ed25519:{master.public_key}"}
    assert verify_signed_json(
        backend, auth, "@alice:x", "ed25519:A1", alice.machine.identity_keys.ed25519
    )
    assert verify_signed_json(
        backend, auth, "@alice:x", f"ed25519:{master.public_key}", master.public_key
    )
    with pytest.raises(BackupError):
        backup_version_body("not a key", alice.machine)


def test_parsing_versions() -> None:
    good = {
        "algorithm": BACKUP_ALGORITHM,
        "version": "7",
        "auth_data": {"public_key": "A" * 43},
        "count": 3,
        "etag": "e",
    }
    parsed = BackupVersion.from_response(good)
    assert (parsed.version, parsed.count, parsed.etag, parsed.public_key) == ("7", 3, "e", "A" * 43)
    with pytest.raises(UnsupportedBackupError):
        BackupVersion.from_response({**good, "algorithm": "org.example.other"})
    for bad in (
        None,
        {**good, "version": ""},
        {**good, "auth_data": {}},
        {**good, "auth_data": {"public_key": "short"}},
    ):
        with pytest.raises(BackupError):
            BackupVersion.from_response(bad)


def test_our_own_backup_is_trusted_by_this_device(alice: Peer) -> None:
    server = BackupServer()
    _, version = make_backup(alice, server)
    trust = check_backup_trust_for(alice.machine, version)
    assert trust.trusted and trust.trusted_by == (TrustedBy.THIS_DEVICE,)
    assert trust.key_matches is None
    assert "this device" in trust.explain()


def test_unsigned_or_foreign_backups_are_refused(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    key = BackupKey.create(backend)
    unsigned = BackupVersion.from_response(
        {"algorithm": BACKUP_ALGORITHM, "version": "1", "auth_data": {"public_key": key.public_key}}
    )
    trust = check_backup_trust_for(alice.machine, unsigned)
    assert not trust.trusted and trust.signatures == ()
    assert "not signed" in trust.explain()
    # Signed by Bob's device (another user): ignored.
    by_bob = BackupVersion.from_response(
        {
            "algorithm": BACKUP_ALGORITHM,
            "version": "1",
            "auth_data": backup_version_body(key.public_key, bob.machine)["auth_data"],
        }
    )
    assert not check_backup_trust_for(alice.machine, by_bob).trusted
    # A server that swaps in its own public key keeps our signature, which no longer verifies.
    signed = backup_version_body(key.public_key, alice.machine)["auth_data"]
    swapped = BackupVersion.from_response(
        {
            "algorithm": BACKUP_ALGORITHM,
            "version": "2",
            "auth_data": {**signed, "public_key": BackupKey.create(backend).public_key},
        }
    )
    trust = check_backup_trust_for(alice.machine, swapped)
    assert not trust.trusted
    assert [(s.signer, s.state) for s in trust.signatures] == [
        (SignerKind.THIS_DEVICE, SignatureState.INVALID)
    ]
    assert "do not verify" in trust.explain()
    # Holding some other backup key does not help.
    assert check_backup_trust_for(alice.machine, swapped, backup_key=key).key_matches is False


def test_other_own_devices_count_only_when_verified(make_peer: MakePeer, alice: Peer) -> None:
    server = BackupServer()
    _, version = make_backup(alice, server)
    alice2 = make_peer("@alice:x", "A2")
    alice2.prepare(["@alice:x"])
    trust = check_backup_trust_for(alice2.machine, version)
    assert not trust.trusted
    assert [(s.device_id, s.state) for s in trust.signatures] == [
        ("A1", SignatureState.VALID_UNTRUSTED)
    ]
    assert alice2.machine.set_local_trust("@alice:x", "A1", LocalTrust.VERIFIED)
    trust = check_backup_trust_for(alice2.machine, version)
    assert trust.trusted and trust.trusted_by == (TrustedBy.VERIFIED_DEVICE,)
    alice2.machine.set_local_trust("@alice:x", "A1", LocalTrust.BLOCKED)
    assert not check_backup_trust_for(alice2.machine, version).trusted


def test_master_key_signature_counts_only_when_the_master_key_is_trusted(
    backend: CryptoBackend, make_peer: MakePeer, alice: Peer
) -> None:
    master = backend.pk_signing_from_seed(secrets.token_bytes(32))
    server = BackupServer()
    _, version = make_backup(alice, server, master)
    alice2 = make_peer("@alice:x", "A2")
    untrusted = check_backup_trust_for(alice2.machine, version, master_key=master.public_key)
    assert not untrusted.trusted
    states = {s.signer: s.state for s in untrusted.signatures}
    assert states[SignerKind.MASTER_KEY] is SignatureState.VALID_UNTRUSTED
    trusted = check_backup_trust_for(
        alice2.machine, version, master_key=master.public_key, master_key_trusted=True
    )
    assert trusted.trusted and trusted.trusted_by == (TrustedBy.MASTER_KEY,)
    # Another master key (the identity was reset): its signature is not ours any more.
    other = backend.pk_signing_from_seed(secrets.token_bytes(32))
    reset = check_backup_trust_for(
        alice2.machine, version, master_key=other.public_key, master_key_trusted=True
    )
    assert not reset.trusted


def test_a_device_named_like_the_master_key_is_not_taken_for_it(backend: CryptoBackend) -> None:
    # A malicious server lists a device whose ID is our master public key, with its own key.
    master = backend.pk_signing_from_seed(secrets.token_bytes(32))
    impostor = backend.create_account()
    key = BackupKey.create(backend)
    auth = sign_json(
        {"public_key": key.public_key}, "@alice:x", f"ed25519:{master.public_key}", impostor.sign
    )
    version = BackupVersion.from_response(
        {"algorithm": BACKUP_ALGORITHM, "version": "1", "auth_data": auth}
    )
    device = Device(
        user_id="@alice:x",
        device_id=master.public_key,
        curve25519=impostor.identity_keys.curve25519,
        ed25519=impostor.identity_keys.ed25519,
        algorithms=(),
        display_name=None,
        local_trust=LocalTrust.VERIFIED,
        deleted=False,
        keys_json="{}",
    )
    trust = check_backup_trust(
        version,
        backend=backend,
        user_id="@alice:x",
        device_id="A2",
        device_ed25519="x",
        own_devices=[device],
        is_verified=lambda _d: True,
        master_key=master.public_key,
        master_key_trusted=True,
    )
    assert not trust.trusted
    assert [(s.signer, s.state) for s in trust.signatures] == [
        (SignerKind.MASTER_KEY, SignatureState.INVALID)
    ]


# --- upload --------------------------------------------------------------------------------


def test_uploads_are_batched_stable_and_resumable(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    history(alice, bob)
    total, done = alice.store.count_inbound_group_sessions()
    assert (total, done) == (5, 0)
    server = BackupServer()
    _, version = make_backup(alice, server)
    uploader = BackupUploader(alice.store, backend, alice.pickle_key, version, batch_size=2)
    first = uploader.next_upload()
    assert first is not None and first.count == 2 and first.version == version.version
    assert uploader.next_upload() is first  # stable while in flight
    uploader.mark_failed(first)
    retried = uploader.next_upload()
    assert retried is not None and retried is not first
    assert {s[:2] for s in retried.sessions} == {s[:2] for s in first.sessions}
    outcome = uploader.mark_sent(retried, server.put(retried.version, retried.body))
    assert (outcome.marked, outcome.server_count, outcome.etag) == (2, 2, "2")
    assert uploader.remaining() == 3
    # The process restarts: a new uploader continues from the store's flags.
    resumed = BackupUploader(alice.store, backend, alice.pickle_key, version, batch_size=2)
    assert upload_all(resumed, server) == 2
    assert resumed.counts() == (5, 5) and resumed.next_upload() is None
    assert server.info()["count"] == 5
    # A new room key is picked up by the next call.
    bob.machine.invalidate_group_session(ROOM)
    bob.encrypt(ROOM, USERS, "later")
    alice.sync()
    assert upload_all(resumed, server) == 1 and server.info()["count"] == 6


def test_upload_entries_carry_the_servers_metadata(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    history(alice, bob)
    server = BackupServer()
    key, version = make_backup(alice, server)
    # An imported copy of one more session (as from a key file): forwarded.
    other = BackupKey.create(backend)
    carol_session = backend.create_outbound_group_session()
    inbound = backend.inbound_group_session(carol_session.session_key)
    alice.machine.import_sessions(
        [
            {
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": ROOM,
                "session_id": carol_session.session_id,
                "session_key": inbound.export_at(0),
                "sender_key": other.public_key,
                "sender_claimed_keys": {"ed25519": "C" * 43},
                "forwarding_curve25519_key_chain": [],
            }
        ]
    )
    own = alice.store.get_outbound_group_session(ROOM)
    assert own is not None
    verified_calls: list[str] = []

    def is_verified(record: Any) -> bool:
        verified_calls.append(record["session_id"])
        return True

    upload_all(
        BackupUploader(alice.store, backend, alice.pickle_key, version, is_verified=is_verified),
        server,
    )
    entries = {
        sid: data
        for room in server.get()["rooms"].values()
        for sid, data in room["sessions"].items()
    }
    assert entries[own["session_id"]]["is_verified"] is True
    assert entries[own["session_id"]]["forwarded_count"] == 0
    assert entries[carol_session.session_id]["forwarded_count"] == 1
    assert entries[carol_session.session_id]["is_verified"] is False
    assert (
        carol_session.session_id not in verified_calls and own["session_id"] not in verified_calls
    )
    assert len(verified_calls) == 4  # Bob's sessions, received over Olm
    assert all(e["first_message_index"] == 0 for e in entries.values())
    assert all(
        set(e["session_data"]) == {"ephemeral", "ciphertext", "mac"} for e in entries.values()
    )
    assert (
        key.decrypt_session_data(entries[carol_session.session_id]["session_data"])["sender_key"]
        == other.public_key
    )


def test_a_session_improved_while_uploading_is_uploaded_again(
    backend: CryptoBackend, alice: Peer
) -> None:
    outbound = backend.create_outbound_group_session()
    at_zero = backend.inbound_group_session(outbound.session_key).export_at(0)
    outbound.encrypt("{}")
    at_one = backend.inbound_group_session(outbound.session_key).export_at(1)
    assert at_zero is not None and at_one is not None
    server = BackupServer()
    key, version = make_backup(alice, server)

    def item(session_key: str) -> dict[str, Any]:
        return {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": ROOM,
            "session_id": outbound.session_id,
            "session_key": session_key,
            "sender_key": "B" * 43,
            "sender_claimed_keys": {"ed25519": "C" * 43},
            "forwarding_curve25519_key_chain": [],
        }

    assert alice.machine.import_sessions([item(at_one)]).imported == 1
    uploader = BackupUploader(alice.store, backend, alice.pickle_key, version)
    upload = uploader.next_upload()
    assert upload is not None and upload.count == 1
    # While the PUT is in flight, a copy reaching further back arrives.
    assert alice.machine.import_sessions([item(at_zero)]).imported == 1
    outcome = uploader.mark_sent(upload, server.put(upload.version, upload.body))
    assert outcome.marked == 0
    again = uploader.next_upload()
    assert again is not None and again.count == 1
    uploader.mark_sent(again, server.put(again.version, again.body))
    stored = server.get()["rooms"][ROOM]["sessions"][outbound.session_id]
    assert stored["first_message_index"] == 0
    assert key.decrypt_session_data(stored["session_data"])["session_key"] == at_zero
    assert uploader.next_upload() is None


def test_unreadable_sessions_do_not_block_the_queue(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    history(alice, bob)
    [broken, *_] = alice.store.list_inbound_group_sessions(OTHER_ROOM)
    alice.store.save_inbound_group_session({**broken, "pickle": "garbage"})
    server = BackupServer()
    _, version = make_backup(alice, server)
    uploader = BackupUploader(alice.store, backend, alice.pickle_key, version, batch_size=10)
    upload = uploader.next_upload()
    assert upload is not None
    assert upload.unreadable == ((broken["room_id"], broken["session_id"]),)
    assert upload.count == 4
    uploader.mark_sent(upload, server.put(upload.version, upload.body))
    assert uploader.next_upload() is None and uploader.counts() == (5, 5)
    # A whole batch of unreadable sessions: flagged, and the next batch comes up.
    uploader.reset_flags()
    for record in alice.store.list_inbound_group_sessions(OTHER_ROOM):
        alice.store.save_inbound_group_session({**record, "pickle": "garbage"})
    small = BackupUploader(alice.store, backend, alice.pickle_key, version, batch_size=1)
    seen = []
    while (upload := small.next_upload()) is not None:
        assert upload.count == 1
        seen.append(upload.sessions[0][:2])
        small.mark_sent(upload)
    assert len(seen) == 3 and {room for room, _ in seen} == {ROOM}
    assert small.counts() == (5, 5)


def test_a_new_version_resets_the_flags(backend: CryptoBackend, alice: Peer, bob: Peer) -> None:
    history(alice, bob)
    server = BackupServer()
    _, first = make_backup(alice, server)
    upload_all(BackupUploader(alice.store, backend, alice.pickle_key, first), server)
    _, second = make_backup(alice, server)
    with pytest.raises(RuntimeError, match="WRONG_ROOM_KEYS_VERSION"):
        server.put(first.version, {"rooms": {}})
    uploader = BackupUploader(alice.store, backend, alice.pickle_key, second)
    assert uploader.next_upload() is None  # the flags still describe the old version
    uploader.reset_flags()
    assert upload_all(uploader, server) == 1 and server.info(second.version)["count"] == 5


# --- restore -------------------------------------------------------------------------------


def test_new_login_with_the_recovery_key_reads_history(
    backend_name: str, make_peer: MakePeer, alice: Peer, bob: Peer
) -> None:
    """Alice backs up; her new device, with only the recovery key, reads the old messages."""
    events = history(alice, bob)
    server = BackupServer()
    backup_key, version = make_backup(alice, server)
    assert check_backup_trust_for(alice.machine, version).trusted
    upload_all(
        BackupUploader(alice.store, alice.machine.backend, alice.pickle_key, version, batch_size=2),
        server,
    )
    ssss = SecretStorageKey.create(passphrase="a long passphrase", iterations=1000)
    account_data = {
        w.event_type: w.content
        for w in recovery_setup_writes(ssss, StoredSecrets(backup_key=backup_key.to_secret()))
    }
    recovery_key = ssss.recovery_key()

    other = "vodozemac" if backend_name == "olm" else "olm"  # the new login uses the other backend
    alice2 = make_peer("@alice:x", "A2", backend=other)
    for room, event, _ in events:
        alice2.fail(event, room)
    key_id = parse_default_key(account_data[DEFAULT_KEY_TYPE])
    assert key_id is not None
    description = KeyDescription.from_content(
        key_id, account_data[f"m.secret_storage.key.{key_id}"]
    )
    with pytest.raises(Exception, match="does not unlock"):
        SecretStorageKey.unlock("the wrong passphrase", description)
    opened = SecretStorageKey.unlock(recovery_key, description)
    stored, problems = read_recovery_secrets(opened, account_data)
    assert problems == {} and stored.backup_key is not None
    key = BackupKey.from_secret(alice2.machine.backend, stored.backup_key)
    current = BackupVersion.from_response(server.info())
    trust = check_backup_trust_for(alice2.machine, current, backup_key=key)
    assert trust.trusted and TrustedBy.PRIVATE_KEY in trust.trusted_by
    seen: list[RestoreProgress] = []
    result = restore_backup(
        key,
        server.get(current.version),
        lambda batch: alice2.machine.import_sessions(batch, origin=KeyOrigin.BACKUP),
        batch_size=2,
        progress=seen.append,
    )
    assert (result.total, result.decrypted, result.imported, result.failures) == (5, 5, 5, [])
    assert [p.done for p in seen] == [2, 4, 5] and seen[-1].imported == 5
    assert {(k.room_id, k.session_id) for k in result.room_keys} == {
        (r["room_id"], r["session_id"]) for r in alice.store.list_inbound_group_sessions()
    }
    for room, event, body in events:
        decrypted = alice2.decrypt(event, room)
        assert decrypted.content["body"] == body
        assert decrypted.key_origin is KeyOrigin.BACKUP
    # Restored keys are not uploaded again.
    again = BackupUploader(alice2.store, alice2.machine.backend, alice2.pickle_key, current)
    assert again.next_upload() is None


def test_corrupted_entries_are_skipped_and_reported(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    events = history(alice, bob)
    server = BackupServer()
    key, version = make_backup(alice, server)
    upload_all(BackupUploader(alice.store, backend, alice.pickle_key, version), server)
    response = server.get()
    sessions = response["rooms"][ROOM]["sessions"]
    ids = sorted(sessions)
    # 1. another ephemeral key: the MAC (of the key agreement) fails.
    sessions[ids[0]]["session_data"]["ephemeral"] = BackupKey.create(backend).public_key
    # 2. truncated ciphertext: not whole AES blocks.
    data = sessions[ids[1]]["session_data"]
    data["ciphertext"] = _u64(_b64(data["ciphertext"])[:-5])
    # 3. valid encryption of something that is not a room key.
    sessions[ids[2]]["session_data"] = spec_encrypt(key.public_key, json.dumps({"hello": "world"}))
    # 4. an entry that is not even an object, and a room that is not one either.
    response["rooms"]["!junk:x"] = {
        "sessions": {"s1": "nonsense", "s2": {"first_message_index": 0}}
    }
    response["rooms"]["!worse:x"] = ["nonsense"]
    fresh = load_backend(backend.name)
    restored_key = BackupKey.from_secret(fresh, key.to_secret())
    assert count_backup_entries(response) == 7
    importer = Peer(alice.server, "@alice:x", "A3", backend.name, alice.clock)
    importer.login()
    result = restore_backup(
        restored_key,
        response,
        lambda b: importer.machine.import_sessions(b, origin=KeyOrigin.BACKUP),
        batch_size=3,
    )
    kinds = {(f.room_id, f.session_id): f.kind for f in result.failures}
    assert kinds == {
        (ROOM, ids[0]): RestoreFailureKind.UNDECRYPTABLE,
        (ROOM, ids[1]): RestoreFailureKind.UNDECRYPTABLE,
        (ROOM, ids[2]): RestoreFailureKind.NOT_A_ROOM_KEY,
        ("!junk:x", "s1"): RestoreFailureKind.MALFORMED,
        ("!junk:x", "s2"): RestoreFailureKind.MALFORMED,
        ("!worse:x", "*"): RestoreFailureKind.MALFORMED,
    }
    assert (result.total, result.decrypted, result.imported) == (7, 2, 2)
    for failure in result.failures:
        assert key.to_secret() not in failure.detail
    readable = [e for e in events if e[0] == OTHER_ROOM]
    for room, event, body in readable:
        assert importer.decrypt(event, room).content["body"] == body


def test_a_server_moving_entries_does_not_mislead(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    events = history(alice, bob)
    server = BackupServer()
    key, version = make_backup(alice, server)
    upload_all(BackupUploader(alice.store, backend, alice.pickle_key, version), server)
    response = server.get()
    room_sessions = response["rooms"][OTHER_ROOM]["sessions"]
    a, b = sorted(room_sessions)
    room_sessions[a], room_sessions[b] = room_sessions[b], room_sessions[a]  # swapped IDs
    moved = response["rooms"][ROOM]["sessions"]
    response["rooms"]["!elsewhere:x"] = {"sessions": moved}  # filed under another room
    del response["rooms"][ROOM]
    importer = Peer(alice.server, "@alice:x", "A3", backend.name, alice.clock)
    importer.login()
    result = restore_backup(
        key, response, lambda s: importer.machine.import_sessions(s, origin=KeyOrigin.BACKUP)
    )
    # Swapped session IDs fail the importer's check of the ID against the key.
    assert result.decrypted == 5 and result.imported == 3 and result.not_imported == 2
    for room, event, _ in events:
        assert importer.fail(event, room).reason is FailureReason.MISSING_ROOM_KEY
        if room == ROOM:
            # Filed under another room, the key cannot pass its events off there.
            moved_failure = importer.fail(event, "!elsewhere:x")
            assert moved_failure.reason is FailureReason.MISMATCHED_ROOM


def test_the_wrong_backup_key_restores_nothing(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    history(alice, bob)
    server = BackupServer()
    _, version = make_backup(alice, server)
    upload_all(BackupUploader(alice.store, backend, alice.pickle_key, version), server)
    wrong = BackupKey.create(backend)
    assert not wrong.matches(version)
    batches = list(decrypt_backup(wrong, server.get(), batch_size=2))
    assert [b.done for b in batches] == [2, 4, 5]
    assert sum(len(b.sessions) for b in batches) == 0
    assert sum(len(b.failures) for b in batches) == 5


def test_single_room_and_single_session_answers(
    backend: CryptoBackend, alice: Peer, bob: Peer
) -> None:
    history(alice, bob)
    server = BackupServer()
    key, version = make_backup(alice, server)
    upload_all(BackupUploader(alice.store, backend, alice.pickle_key, version), server)
    room = server.get()["rooms"][OTHER_ROOM]
    [batch] = decrypt_backup(key, room, room_id=OTHER_ROOM)
    assert batch.total == 2 and {s["room_id"] for s in batch.sessions} == {OTHER_ROOM}
    session_id, data = next(iter(room["sessions"].items()))
    [single] = decrypt_backup(key, data, room_id=OTHER_ROOM, session_id=session_id)
    assert [s["session_id"] for s in single.sessions] == [session_id]
    [empty] = decrypt_backup(key, {"rooms": {}})
    assert (empty.total, empty.sessions, empty.failures) == (0, [], [])
    with pytest.raises(BackupError):
        list(decrypt_backup(key, {"nothing": 1}))


def test_legacy_passphrase_backups(backend: CryptoBackend) -> None:
    from tui_client.crypto.recovery_key import PassphraseInfo, derive_key_from_passphrase

    info = PassphraseInfo("saltysalt", 1000)
    raw = derive_key_from_passphrase("backup passphrase", info)
    public = BackupKey.from_bytes(backend, raw).public_key
    version = BackupVersion.from_response(
        {
            "algorithm": BACKUP_ALGORITHM,
            "version": "3",
            "auth_data": {
                "public_key": public,
                "private_key_salt": "saltysalt",
                "private_key_iterations": 1000,
            },
        }
    )
    assert BackupKey.from_passphrase(backend, "backup passphrase", version).public_key == public
    with pytest.raises(BackupError, match="does not open"):
        BackupKey.from_passphrase(backend, "wrong", version)
    plain = BackupVersion.from_response(
        {"algorithm": BACKUP_ALGORITHM, "version": "4", "auth_data": {"public_key": public}}
    )
    with pytest.raises(BackupError, match="cannot be opened"):
        BackupKey.from_passphrase(backend, "backup passphrase", plain)
