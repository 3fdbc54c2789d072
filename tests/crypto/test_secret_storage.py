"""Secret storage (``m.secret_storage.v1.aes-hmac-sha2``): keys, check values, secrets.

Known answers come from matrix-rust-sdk (``crates/matrix-sdk-crypto/src/secret_storage.rs``
and ``crates/matrix-sdk/tests/integration/encryption/secret_storage.rs``); the
encryption is also checked against a from-the-spec implementation written here on
the `cryptography` package alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tui_client.crypto import CryptoBackend
from tui_client.crypto.recovery_key import (
    PassphraseInfo,
    RecoveryKeyError,
    RecoveryKeyProblem,
    decode_recovery_key,
)
from tui_client.crypto.secret_storage import (
    AES_HMAC_SHA2,
    CROSS_SIGNING_MASTER,
    CROSS_SIGNING_SELF_SIGNING,
    CROSS_SIGNING_USER_SIGNING,
    DEFAULT_KEY_TYPE,
    KEY_BACKUP_TYPE,
    MEGOLM_BACKUP_V1,
    AccountDataWrite,
    KeyDescription,
    MalformedContentError,
    SecretDecryptionError,
    SecretNotStoredError,
    SecretStorageError,
    SecretStorageKey,
    StoredSecrets,
    UnsupportedAlgorithmError,
    WrongKeyError,
    check_cross_signing_secrets,
    compute_key_check,
    ed25519_public_key_from_secret,
    parse_default_key,
    read_recovery_secrets,
    recovery_setup_writes,
)

# --- matrix-rust-sdk vectors --------------------------------------------------------

RUST_RECOVERY_KEY = "EsTj 3yST y93F SLpB jJsz eAXc 2XzA ygD3 w69H fGaN TKBj jXEd"
RUST_KEY_ID = "bmur2d9ypPUH1msSwCxQOJkuKRmJI55e"
RUST_KEY_CONTENT = {
    "algorithm": "m.secret_storage.v1.aes-hmac-sha2",
    "iv": "xv5b6/p3ExEw++wTyfSHEg==",
    "mac": "ujBBbXahnTAMkmPUX2/0+VTfUh63pGyVRuBcDMgmJC8=",
}
RUST_PASSPHRASE_KEY_ID = "DZkbKc0RtKSq0z8V61w6KBmJCK6OCiIu"
RUST_PASSPHRASE_CONTENT = {
    "algorithm": "m.secret_storage.v1.aes-hmac-sha2",
    "iv": "gH2iNpiETFhApvW6/FFEJQ",
    "mac": "9Lw12m5SKDipNghdQXKjgpfdj1/K7HFI2brO+UWAGoM",
    "passphrase": {
        "algorithm": "m.pbkdf2",
        "salt": "IuLnH7S85YtZmkkBJKwNUKxWF42g9O1H",
        "iterations": 10,
    },
}
RUST_PASSPHRASE = "It's a secret to everybody"
# The account data of an account whose secrets are stored under RUST_KEY_ID.
RUST_ACCOUNT_DATA = {
    CROSS_SIGNING_MASTER: {
        "encrypted": {
            RUST_KEY_ID: {
                "ciphertext": "lCRSSA1lChONEXj/8RyogsgAa8ouQwYDnLr4XBCheRikrZykLRzPCx3doCE=",
                "iv": "bdfCwu+ECYgZ/jWTkGrQ/A==",
                "mac": "NXeV1dZaOe2JLvQ6Hh6tFto7AgFFdaQnY0l9pruwdtE=",
            }
        }
    },
    CROSS_SIGNING_SELF_SIGNING: {
        "encrypted": {
            RUST_KEY_ID: {
                "ciphertext": "+B9WD02IvtQ8S4OaquhuYEZAx20xvz0oTN7r2VM9VOBxmlOyi+KkkWOvLAo=",
                "iv": "3BCaKGCaSMkg1x9WnTqUmw==",
                "mac": "xQEDxQbPH0bYeZUFC3wYJh0lsLkP2amcFGdaZ3VdfQg=",
            }
        }
    },
    CROSS_SIGNING_USER_SIGNING: {
        "encrypted": {
            RUST_KEY_ID: {
                "ciphertext": "atqNy5IDzYRkRC+lkKoflwsyHkd0dr4UeoViwJdUzexiq0M8h1i8JMkADNg=",
                "iv": "bjb1V2n9YmA8j31Z9muMqQ==",
                "mac": "vusvNuV8Kkq50VxtC78oioofVBurnTTVEhiRyZkfu/4=",
            }
        }
    },
}
RUST_MASTER_SECRET = "VcY1+LNyV6aSMne8mvi4lc/q+JiCHe+m6+hKLtgLP30="
# The public keys the same account's /keys/query answer publishes.
RUST_MASTER_PUBLIC = "fKJdf5b3ga1hshUT5obkBteMNTtLkfy8qh4h5/XLNew"
RUST_SELF_SIGNING_PUBLIC = "vsEoa0HHxc8hmlWgoohTQBGWcCRh1BFoTzI8HNIxg5Q"
RUST_USER_SIGNING_PUBLIC = "IGfFj6KhzqBWxiMm6/e+Pu/x/5NV6a7iEe8AKhuRiq0"

# --- the algorithm, from the spec's text, on `cryptography` alone ------------------


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _spec_keys(key: bytes, name: str) -> tuple[bytes, bytes]:
    okm = HKDF(hashes.SHA256(), 64, bytes(32), name.encode()).derive(key)
    return okm[:32], okm[32:]


def _spec_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    op = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    return op.update(data) + op.finalize()


def spec_decrypt(key: bytes, name: str, data: dict[str, str]) -> str:
    aes_key, mac_key = _spec_keys(key, name)
    ciphertext = _b64(data["ciphertext"])
    assert hmac.new(mac_key, ciphertext, hashlib.sha256).digest() == _b64(data["mac"])
    return _spec_ctr(aes_key, _b64(data["iv"]), ciphertext).decode()


def spec_check(key: bytes, iv: bytes) -> bytes:
    aes_key, mac_key = _spec_keys(key, "")
    return hmac.new(mac_key, _spec_ctr(aes_key, iv, bytes(32)), hashlib.sha256).digest()


# --- tests --------------------------------------------------------------------------


def rust_description() -> KeyDescription:
    return KeyDescription.from_content(RUST_KEY_ID, RUST_KEY_CONTENT)


def test_rust_sdk_recovery_key_opens_its_description() -> None:
    description = rust_description()
    assert description.event_type == f"m.secret_storage.key.{RUST_KEY_ID}"
    assert description.can_check
    key = SecretStorageKey.unlock(RUST_RECOVERY_KEY, description)
    assert key.key_id == RUST_KEY_ID and key.verified
    assert key.recovery_key() == RUST_RECOVERY_KEY
    assert (
        SecretStorageKey.from_recovery_key(RUST_RECOVERY_KEY.replace(" ", ""), description).key_id
        == RUST_KEY_ID
    )


def test_rust_sdk_passphrase_opens_its_description() -> None:
    description = KeyDescription.from_content(RUST_PASSPHRASE_KEY_ID, RUST_PASSPHRASE_CONTENT)
    assert description.passphrase == PassphraseInfo("IuLnH7S85YtZmkkBJKwNUKxWF42g9O1H", 10)
    key = SecretStorageKey.unlock(RUST_PASSPHRASE, description)
    assert key.key_id == RUST_PASSPHRASE_KEY_ID
    # ... and the same key through its recovery key form.
    assert (
        SecretStorageKey.unlock(key.recovery_key(), description).recovery_key()
        == key.recovery_key()
    )


def test_rust_sdk_secrets_decrypt_and_match_the_published_keys(backend: CryptoBackend) -> None:
    key = SecretStorageKey.unlock(RUST_RECOVERY_KEY, rust_description())
    assert (
        key.open_secret(CROSS_SIGNING_MASTER, RUST_ACCOUNT_DATA[CROSS_SIGNING_MASTER])
        == RUST_MASTER_SECRET
    )
    stored, problems = read_recovery_secrets(key, RUST_ACCOUNT_DATA)
    assert problems == {}
    assert stored.has_cross_signing and stored.backup_key is None
    assert stored.master_key == RUST_MASTER_SECRET
    assert ed25519_public_key_from_secret(backend, RUST_MASTER_SECRET) == RUST_MASTER_PUBLIC
    assert check_cross_signing_secrets(
        backend,
        stored,
        master=RUST_MASTER_PUBLIC,
        self_signing=RUST_SELF_SIGNING_PUBLIC,
        user_signing=RUST_USER_SIGNING_PUBLIC,
    ) == {
        CROSS_SIGNING_MASTER: True,
        CROSS_SIGNING_SELF_SIGNING: True,
        CROSS_SIGNING_USER_SIGNING: True,
    }
    # A reset identity (other published keys) makes the stale secrets unusable.
    assert check_cross_signing_secrets(
        backend,
        stored,
        master=RUST_SELF_SIGNING_PUBLIC,
        self_signing=None,
        user_signing=RUST_USER_SIGNING_PUBLIC,
    ) == {
        CROSS_SIGNING_MASTER: False,
        CROSS_SIGNING_SELF_SIGNING: False,
        CROSS_SIGNING_USER_SIGNING: True,
    }


def test_the_spec_implementation_agrees_with_the_rust_vectors() -> None:
    # Our test-side reading of the spec, checked on the independent vectors first.
    raw = decode_recovery_key(RUST_RECOVERY_KEY)
    assert spec_check(raw, _b64(RUST_KEY_CONTENT["iv"])) == _b64(RUST_KEY_CONTENT["mac"])
    data = RUST_ACCOUNT_DATA[CROSS_SIGNING_MASTER]["encrypted"][RUST_KEY_ID]
    assert spec_decrypt(raw, CROSS_SIGNING_MASTER, data) == RUST_MASTER_SECRET


def test_wrong_recovery_key_is_rejected_and_nothing_changes() -> None:
    description = rust_description()
    before = description.to_content()
    other = SecretStorageKey.create().recovery_key()
    with pytest.raises(WrongKeyError, match="does not unlock") as caught:
        SecretStorageKey.unlock(other, description)
    assert other.split()[3] not in str(caught.value)
    with pytest.raises(WrongKeyError):
        SecretStorageKey.from_recovery_key(other, description)
    assert description.to_content() == before
    # A mistyped recovery key says so (no passphrase to fall back on).
    mistyped = RUST_RECOVERY_KEY[:-1] + ("e" if RUST_RECOVERY_KEY[-1] != "e" else "f")
    with pytest.raises(RecoveryKeyError) as typo:
        SecretStorageKey.unlock(mistyped, description)
    assert typo.value.problem is RecoveryKeyProblem.WRONG_PARITY
    with pytest.raises(RecoveryKeyError):
        SecretStorageKey.unlock("correct horse battery staple", description)


def test_wrong_passphrase_is_rejected() -> None:
    description = KeyDescription.from_content(RUST_PASSPHRASE_KEY_ID, RUST_PASSPHRASE_CONTENT)
    with pytest.raises(WrongKeyError):
        SecretStorageKey.unlock("It's a secret to nobody", description)
    with pytest.raises(WrongKeyError):
        SecretStorageKey.from_passphrase("It's a secret to nobody", description)
    # A mistyped recovery key for a passphrase-protected key: the better message wins.
    mistyped = RUST_RECOVERY_KEY[:-1] + "e"
    with pytest.raises(RecoveryKeyError) as caught:
        SecretStorageKey.unlock(mistyped, description)
    assert caught.value.problem is RecoveryKeyProblem.WRONG_PARITY
    # A recovery key that is valid but another one is a wrong key, not a passphrase.
    with pytest.raises(WrongKeyError):
        SecretStorageKey.unlock(RUST_RECOVERY_KEY, description)
    with pytest.raises(RecoveryKeyError) as empty:
        SecretStorageKey.unlock("  ", description)
    assert empty.value.problem is RecoveryKeyProblem.EMPTY
    with pytest.raises(SecretStorageError, match="not made from a passphrase"):
        SecretStorageKey.from_passphrase(RUST_PASSPHRASE, rust_description())


def test_created_keys_carry_a_check_value_the_spec_recomputes() -> None:
    key = SecretStorageKey.create(name="Recovery")
    content = key.description.to_content()
    assert content["algorithm"] == AES_HMAC_SHA2 and content["name"] == "Recovery"
    assert "passphrase" not in content
    iv = _b64(content["iv"])
    assert len(iv) == 16 and iv[8] & 0x80 == 0  # bit 63 cleared
    raw = decode_recovery_key(key.recovery_key())
    assert spec_check(raw, iv) == _b64(content["mac"])
    assert compute_key_check(raw, iv) == (content["iv"], content["mac"])
    assert "=" not in content["iv"] + content["mac"]  # unpadded base64
    reopened = SecretStorageKey.unlock(
        key.recovery_key(), KeyDescription.from_content(key.key_id, content)
    )
    assert reopened.key_id == key.key_id and len(key.key_id) == 32


def test_passphrase_keys_open_with_either_form() -> None:
    key = SecretStorageKey.create(passphrase="correct horse battery staple", iterations=1000)
    content = key.description.to_content()
    assert content["passphrase"]["algorithm"] == "m.pbkdf2"
    assert content["passphrase"]["iterations"] == 1000 and content["passphrase"]["bits"] == 256
    description = KeyDescription.from_content(key.key_id, content)
    by_passphrase = SecretStorageKey.unlock("correct horse battery staple", description)
    by_key = SecretStorageKey.unlock(key.recovery_key(), description)
    assert by_passphrase.recovery_key() == by_key.recovery_key() == key.recovery_key()


def test_secrets_round_trip_and_are_bound_to_their_name() -> None:
    key = SecretStorageKey.create()
    raw = decode_recovery_key(key.recovery_key())
    secret = "VcY1+LNyV6aSMne8mvi4lc/q+JiCHe+m6+hKLtgLP30"
    data = key.encrypt(CROSS_SIGNING_MASTER, secret)
    assert set(data) == {"iv", "ciphertext", "mac"}
    assert _b64(data["iv"])[8] & 0x80 == 0
    assert spec_decrypt(raw, CROSS_SIGNING_MASTER, data) == secret
    assert key.decrypt(CROSS_SIGNING_MASTER, data) == secret
    assert key.encrypt(CROSS_SIGNING_MASTER, secret)["ciphertext"] != data["ciphertext"]  # fresh IV
    with pytest.raises(SecretDecryptionError):
        key.decrypt(CROSS_SIGNING_SELF_SIGNING, data)
    tampered = dict(data, ciphertext=base64.b64encode(b"x" + _b64(data["ciphertext"])[1:]).decode())
    with pytest.raises(SecretDecryptionError):
        key.decrypt(CROSS_SIGNING_MASTER, tampered)
    with pytest.raises(MalformedContentError):
        key.decrypt(CROSS_SIGNING_MASTER, dict(data, iv="AAAA"))
    with pytest.raises(MalformedContentError):
        key.decrypt(CROSS_SIGNING_MASTER, {"iv": data["iv"], "mac": data["mac"]})
    unicode_secret = "naïve ✓ secret"
    assert key.decrypt("org.example", key.encrypt("org.example", unicode_secret)) == unicode_secret


def test_open_secret_explains_what_is_missing() -> None:
    key = SecretStorageKey.create()
    other = SecretStorageKey.create()
    content = key.secret_content(MEGOLM_BACKUP_V1, "c2VjcmV0")
    assert list(content["encrypted"]) == [key.key_id]
    assert key.open_secret(MEGOLM_BACKUP_V1, content) == "c2VjcmV0"
    with pytest.raises(SecretNotStoredError, match="not with this key"):
        other.open_secret(MEGOLM_BACKUP_V1, content)
    with pytest.raises(SecretNotStoredError):
        key.open_secret(MEGOLM_BACKUP_V1, None)
    with pytest.raises(SecretNotStoredError):
        key.open_secret(MEGOLM_BACKUP_V1, {})
    with pytest.raises(MalformedContentError):
        key.open_secret(MEGOLM_BACKUP_V1, [])


def test_description_without_check_value_accepts_any_key_then_secrets_fail() -> None:
    # The spec: without iv/mac, clients must assume the key is valid.
    description = KeyDescription.from_content(
        "k", {"algorithm": AES_HMAC_SHA2, "iv": "", "mac": ""}
    )
    assert not description.can_check
    right = SecretStorageKey.create(key_id="k")
    content = right.secret_content(CROSS_SIGNING_MASTER, "secret")
    wrong = SecretStorageKey.unlock(SecretStorageKey.create().recovery_key(), description)
    assert not wrong.verified
    with pytest.raises(SecretDecryptionError):
        wrong.open_secret(CROSS_SIGNING_MASTER, content)


def test_bad_descriptions() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        KeyDescription.from_content(
            "k", {"algorithm": "m.secret_storage.custom", "iv": "x", "mac": "y"}
        )
    with pytest.raises(MalformedContentError):
        KeyDescription.from_content("k", "not an object")
    short_iv = KeyDescription.from_content(
        RUST_KEY_ID,
        {
            "algorithm": AES_HMAC_SHA2,
            "iv": base64.b64encode(bytes(14)).decode(),
            "mac": RUST_KEY_CONTENT["mac"],
        },
    )
    with pytest.raises(MalformedContentError):
        SecretStorageKey.unlock(RUST_RECOVERY_KEY, short_iv)
    short_mac = KeyDescription.from_content(
        RUST_KEY_ID,
        {
            "algorithm": AES_HMAC_SHA2,
            "iv": RUST_KEY_CONTENT["iv"],
            "mac": base64.b64encode(bytes(10)).decode(),
        },
    )
    with pytest.raises(MalformedContentError):
        SecretStorageKey.unlock(RUST_RECOVERY_KEY, short_mac)
    # An unusable passphrase property is dropped: the recovery key still works.
    odd = KeyDescription.from_content(
        RUST_KEY_ID, {**RUST_KEY_CONTENT, "passphrase": {"algorithm": "m.scrypt", "salt": "s"}}
    )
    assert odd.passphrase is None
    assert SecretStorageKey.unlock(RUST_RECOVERY_KEY, odd).key_id == RUST_KEY_ID


def test_default_key_content() -> None:
    assert parse_default_key({"key": "abc"}) == "abc"
    for bad in (None, {}, {"key": ""}, {"key": 3}, []):
        assert parse_default_key(bad) is None


def test_recovery_setup_writes_in_order_and_read_back() -> None:
    key = SecretStorageKey.create()
    stored = StoredSecrets(
        master_key="bWFzdGVy",
        self_signing_key="c2VsZg",
        user_signing_key="dXNlcg",
        backup_key="YmFja3Vw",
    )
    writes = recovery_setup_writes(key, stored, backup_enabled=True)
    assert [w.event_type for w in writes] == [
        f"m.secret_storage.key.{key.key_id}",
        CROSS_SIGNING_MASTER,
        CROSS_SIGNING_SELF_SIGNING,
        CROSS_SIGNING_USER_SIGNING,
        MEGOLM_BACKUP_V1,
        DEFAULT_KEY_TYPE,
        KEY_BACKUP_TYPE,
    ]
    account_data = {w.event_type: w.content for w in writes}
    assert account_data[DEFAULT_KEY_TYPE] == {"key": key.key_id}
    assert account_data[KEY_BACKUP_TYPE] == {"enabled": True}
    # A new login: default key -> description -> the user's recovery key -> secrets.
    key_id = parse_default_key(account_data[DEFAULT_KEY_TYPE])
    assert key_id is not None
    description = KeyDescription.from_content(
        key_id, account_data[f"m.secret_storage.key.{key_id}"]
    )
    opened = SecretStorageKey.unlock(key.recovery_key(), description)
    read, problems = read_recovery_secrets(opened, account_data)
    assert problems == {} and read == stored
    # Only the backup key, no default change.
    partial = recovery_setup_writes(key, StoredSecrets(backup_key="YmFja3Vw"), make_default=False)
    assert [w.event_type for w in partial] == [
        f"m.secret_storage.key.{key.key_id}",
        MEGOLM_BACKUP_V1,
    ]


def test_a_corrupted_secret_is_reported_the_others_read() -> None:
    key = SecretStorageKey.create()
    stored = StoredSecrets(
        master_key="bWFzdGVy", self_signing_key="c2VsZg", user_signing_key="dXNlcg"
    )
    account_data = {w.event_type: w.content for w in recovery_setup_writes(key, stored)}
    entry = account_data[CROSS_SIGNING_SELF_SIGNING]["encrypted"][key.key_id]
    entry["mac"] = base64.b64encode(bytes(32)).decode()
    read, problems = read_recovery_secrets(key, account_data)
    assert set(problems) == {CROSS_SIGNING_SELF_SIGNING}
    assert isinstance(problems[CROSS_SIGNING_SELF_SIGNING], SecretDecryptionError)
    assert read.master_key == "bWFzdGVy" and read.self_signing_key is None
    assert not read.has_cross_signing


def test_no_key_material_in_reprs() -> None:
    key = SecretStorageKey.create()
    stored = StoredSecrets(master_key="bWFzdGVyc2VjcmV0", backup_key="YmFja3Vwc2VjcmV0")
    write = AccountDataWrite(
        "m.cross_signing.master", key.secret_content(CROSS_SIGNING_MASTER, "x")
    )
    for text in (repr(key), repr(stored), repr(write), str(stored)):
        assert key.recovery_key().split()[2] not in text
        assert "bWFzdGVyc2VjcmV0" not in text and "YmFja3Vwc2VjcmV0" not in text
        assert "ciphertext" not in text
    assert key.key_id in repr(key)
