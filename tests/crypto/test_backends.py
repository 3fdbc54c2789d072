"""The backend interface, on both backends, and the two backends against each other."""

from __future__ import annotations

import json
import secrets

import olm
import pytest
import vodozemac

from tui_client.crypto import CryptoBackend, load_backend
from tui_client.crypto.backend import (
    MegolmDecryptionError,
    OlmDecryptionError,
    PickleError,
    PkDecryptionError,
    PkMessage,
    SasError,
    SasMacMethod,
    SessionCreationError,
    SessionKeyError,
    UnknownMessageIndexError,
)
from tui_client.crypto.encoding import b64decode, b64encode, megolm_message_index
from tui_client.crypto.sas_x25519 import X25519Sas, libolm_inplace_base64
from tui_client.protocol.canonical_json import signable_json

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def _pair(a: CryptoBackend, b: CryptoBackend) -> tuple[object, object]:
    """An Olm session from an account of ``a`` to one of ``b``, established both ways."""
    alice, bob = a.create_account(), b.create_account()
    bob.generate_one_time_keys(1)
    otk = next(iter(bob.one_time_keys().values()))
    outbound = alice.create_outbound_session(bob.identity_keys.curve25519, otk)
    first = outbound.encrypt("hello")
    assert first.message_type == 0
    inbound, plaintext = bob.create_inbound_session(alice.identity_keys.curve25519, first.body)
    assert plaintext == "hello"
    assert bob.one_time_keys() == {}
    return outbound, inbound


def test_account_keys_signing_and_one_time_keys(backend: CryptoBackend) -> None:
    account = backend.create_account()
    keys = account.identity_keys
    assert backend.is_valid_curve25519_key(keys.curve25519)
    assert backend.is_valid_ed25519_key(keys.ed25519)
    signature = account.sign(b"message")
    assert backend.verify_ed25519(keys.ed25519, b"message", signature)
    assert not backend.verify_ed25519(keys.ed25519, b"other", signature)
    assert account.max_one_time_keys >= 50
    account.generate_one_time_keys(5)
    assert len(account.one_time_keys()) == 5
    account.generate_fallback_key()
    assert len(account.fallback_key()) == 1
    account.mark_keys_as_published()
    assert account.one_time_keys() == {}
    assert account.fallback_key() == {}
    account.generate_fallback_key()
    assert len(account.fallback_key()) == 1
    assert account.forget_old_fallback_key() is (backend.name == "olm")


def test_verify_ed25519_never_raises(backend: CryptoBackend) -> None:
    key = backend.create_account().identity_keys.ed25519
    for bad_key, bad_sig in [("", ""), ("not base64!", "x"), (key, "AAAA"), (key, "!" * 86)]:
        assert backend.verify_ed25519(bad_key, b"m", bad_sig) is False


def test_olm_session_roundtrip_and_pickles(backend: CryptoBackend) -> None:
    outbound, inbound = _pair(backend, backend)
    reply = inbound.encrypt("reply")  # type: ignore[attr-defined]
    assert reply.message_type == 1
    assert outbound.decrypt(reply) == "reply"  # type: ignore[attr-defined]
    again = outbound.encrypt("after")  # type: ignore[attr-defined]
    assert again.message_type == 1
    restored = backend.session_from_pickle(inbound.pickle(KEY), KEY)  # type: ignore[attr-defined]
    assert restored.session_id == inbound.session_id  # type: ignore[attr-defined]
    assert restored.decrypt(again) == "after"
    with pytest.raises(OlmDecryptionError):
        restored.decrypt(again)
    with pytest.raises(PickleError):
        backend.session_from_pickle(inbound.pickle(KEY), OTHER_KEY)  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        inbound.pickle(b"short")  # type: ignore[attr-defined]


def test_prekey_matching_and_bad_prekeys(backend: CryptoBackend) -> None:
    alice, bob = backend.create_account(), backend.create_account()
    bob.generate_one_time_keys(2)
    first_otk, second_otk = list(bob.one_time_keys().values())
    one = alice.create_outbound_session(bob.identity_keys.curve25519, first_otk)
    two = alice.create_outbound_session(bob.identity_keys.curve25519, second_otk)
    message = one.encrypt("x")
    inbound, _ = bob.create_inbound_session(alice.identity_keys.curve25519, message.body)
    assert inbound.matches_prekey(message.body)
    assert not inbound.matches_prekey(two.encrypt("y").body)
    assert not inbound.matches_prekey("garbage")
    with pytest.raises(SessionCreationError):
        bob.create_inbound_session(alice.identity_keys.curve25519, message.body)  # key used
    with pytest.raises(SessionCreationError):
        bob.create_inbound_session(alice.identity_keys.curve25519, "AAAA")


def test_megolm_roundtrip_indexes_exports(backend: CryptoBackend) -> None:
    outbound = backend.create_outbound_group_session()
    inbound = backend.inbound_group_session(outbound.session_key)
    assert inbound.session_id == outbound.session_id
    messages = [outbound.encrypt(json.dumps({"n": i})) for i in range(4)]
    assert outbound.message_index == 4
    assert [megolm_message_index(m) for m in messages] == [0, 1, 2, 3]
    assert inbound.decrypt(messages[2]) == ('{"n": 2}', 2)
    late = backend.inbound_group_session(outbound.session_key)
    assert late.first_known_index == 4
    with pytest.raises(UnknownMessageIndexError) as info:
        late.decrypt(messages[1])
    assert info.value.first_known_index == 4 and info.value.message_index == 1
    exported = inbound.export_at(1)
    assert exported is not None
    imported = backend.import_inbound_group_session(exported)
    assert imported.first_known_index == 1
    assert imported.decrypt(messages[3])[1] == 3
    assert imported.export_at(0) is None
    with pytest.raises(MegolmDecryptionError):
        inbound.decrypt(messages[0][:-4] + "AAAA")
    with pytest.raises(SessionKeyError):
        backend.inbound_group_session("garbage")
    with pytest.raises(SessionKeyError):
        backend.inbound_group_session(exported)  # an export is not a signed session key
    restored = backend.inbound_group_session_from_pickle(inbound.pickle(KEY), KEY)
    assert restored.decrypt(messages[0])[1] == 0
    out_restored = backend.outbound_group_session_from_pickle(outbound.pickle(KEY), KEY)
    assert out_restored.message_index == 4


@pytest.mark.parametrize(("sender", "receiver"), [("olm", "vodozemac"), ("vodozemac", "olm")])
def test_olm_and_megolm_across_backends(sender: str, receiver: str) -> None:
    outbound, inbound = _pair(load_backend(sender), load_backend(receiver))
    assert outbound.decrypt(inbound.encrypt("back")) == "back"  # type: ignore[attr-defined]
    group = load_backend(sender).create_outbound_group_session()
    copy = load_backend(receiver).inbound_group_session(group.session_key)
    assert copy.decrypt(group.encrypt("é ✓")) == ("é ✓", 0)


def test_libolm_pickles_migrate_to_vodozemac_not_back() -> None:
    olm_backend, vz = load_backend("olm"), load_backend("vodozemac")
    account = olm_backend.create_account()
    account.generate_one_time_keys(3)
    migrated = vz.account_from_pickle(account.pickle(KEY), KEY)
    assert migrated.identity_keys == account.identity_keys
    # vodozemac names keys with 64-bit IDs: the keys survive, their IDs do not.
    assert sorted(migrated.one_time_keys().values()) == sorted(account.one_time_keys().values())
    outbound, inbound = _pair(olm_backend, olm_backend)
    session = vz.session_from_pickle(inbound.pickle(KEY), KEY)  # type: ignore[attr-defined]
    assert session.decrypt(outbound.encrypt("moved")) == "moved"  # type: ignore[attr-defined]
    group = olm_backend.create_outbound_group_session()
    copy = vz.inbound_group_session_from_pickle(
        olm_backend.inbound_group_session(group.session_key).pickle(KEY), KEY
    )
    assert copy.decrypt(group.encrypt("m")) == ("m", 0)
    with pytest.raises(PickleError):
        olm_backend.account_from_pickle(vz.create_account().pickle(KEY), KEY)
    with pytest.raises(PickleError):
        vz.outbound_group_session_from_pickle(group.pickle(KEY), KEY)


@pytest.mark.parametrize(
    ("left", "right"), [("olm", "olm"), ("olm", "vodozemac"), ("vodozemac", "vodozemac")]
)
def test_sas_agreement_and_macs(left: str, right: str) -> None:
    a, b = load_backend(left).create_sas(), load_backend(right).create_sas()
    a.set_their_public_key(b.public_key)
    b.set_their_public_key(a.public_key)
    info = "MATRIX_KEY_VERIFICATION_SAS|@a:x|A|ka|@b:y|B|kb|txn"
    assert a.generate_bytes(info, 6) == b.generate_bytes(info, 6)
    assert a.generate_bytes(info, 5) == a.generate_bytes(info, 6)[:5]
    for method in SasMacMethod:
        mac = a.calculate_mac("ed25519-key", "MATRIX_KEY_VERIFICATION_MAC...", method)
        assert b.verify_mac("ed25519-key", "MATRIX_KEY_VERIFICATION_MAC...", mac, method)
        assert not b.verify_mac("other-key", "MATRIX_KEY_VERIFICATION_MAC...", mac, method)
    v2 = a.calculate_mac("m", "i", SasMacMethod.HKDF_HMAC_SHA256_V2)
    assert len(b64decode(v2)) == 32


def test_sas_matches_vodozemac_and_libolm_natively() -> None:
    """Our X25519 SAS equals vodozemac's own emoji/decimals/MACs and libolm's buggy MAC."""
    ours = X25519Sas()
    native = vodozemac.Sas()
    established = native.diffie_hellman(vodozemac.Curve25519PublicKey.from_base64(ours.public_key))
    ours.set_their_public_key(native.public_key.to_base64())
    info = "MATRIX_KEY_VERIFICATION_SAS|info"
    six = ours.generate_bytes(info, 6)
    emoji = [(int.from_bytes(six, "big") >> (42 - 6 * i)) & 0x3F for i in range(7)]
    assert list(established.bytes(info).emoji_indices) == emoji
    b0, b1, b2, b3, b4 = six[:5]
    decimals = (
        (b0 << 5 | b1 >> 3) + 1000,
        ((b1 & 0x7) << 10 | b2 << 2 | b3 >> 6) + 1000,
        ((b3 & 0x3F) << 7 | b4 >> 1) + 1000,
    )
    assert tuple(established.bytes(info).decimals) == decimals
    assert established.calculate_mac("m", "i") == ours.calculate_mac("m", "i")
    assert established.calculate_mac_invalid_base64("m", "i") == ours.calculate_mac(
        "m", "i", SasMacMethod.HKDF_HMAC_SHA256
    )
    libolm = olm.Sas()
    ours2 = X25519Sas()
    libolm.set_their_pubkey(ours2.public_key)
    ours2.set_their_public_key(libolm.pubkey)
    for message in ("", "a", "ab", "abc", "ed25519:DEVICE,ed25519:MASTER"):
        assert libolm.calculate_mac(message, "info") == ours2.calculate_mac(
            message, "info", SasMacMethod.HKDF_HMAC_SHA256
        )


def test_sas_refuses_bad_keys(backend: CryptoBackend) -> None:
    sas = backend.create_sas()
    with pytest.raises(SasError):
        sas.generate_bytes("info", 6)
    with pytest.raises(SasError):
        sas.set_their_public_key("not a key")
    zero = b64encode(bytes(32))
    with pytest.raises(SasError):
        X25519Sas().set_their_public_key(zero)


def test_libolm_inplace_base64_shape() -> None:
    assert libolm_inplace_base64(b"") == ""
    assert len(libolm_inplace_base64(bytes(range(32)))) == 43
    assert libolm_inplace_base64(b"abc") == b64encode(b"abc")


@pytest.mark.parametrize(
    ("sender", "receiver"),
    [("olm", "vodozemac"), ("vodozemac", "olm"), ("olm", "olm"), ("vodozemac", "vodozemac")],
)
def test_pk_encryption_for_backups(sender: str, receiver: str) -> None:
    decryption = load_backend(receiver).create_pk_decryption()
    message = load_backend(sender).pk_encryption(decryption.public_key).encrypt('{"k":"v"}')
    assert decryption.decrypt(message) == '{"k":"v"}'
    private = decryption.private_key()
    again = load_backend(sender).pk_decryption_from_private_key(private)
    assert again.public_key == decryption.public_key
    assert again.decrypt(message) == '{"k":"v"}'
    tampered = PkMessage(message.ciphertext, "AAAAAAAAAAA", message.ephemeral_key)
    with pytest.raises(PkDecryptionError):
        decryption.decrypt(tampered)


def test_pk_signing_is_the_same_ed25519_everywhere() -> None:
    seed = secrets.token_bytes(32)
    a, b = (
        load_backend("olm").pk_signing_from_seed(seed),
        load_backend("vodozemac").pk_signing_from_seed(seed),
    )
    assert a.public_key == b.public_key
    message = signable_json({"usage": ["master"], "signatures": {"x": {}}})
    assert a.sign(message) == b.sign(message)
    for backend in (load_backend("olm"), load_backend("vodozemac")):
        assert backend.verify_ed25519(a.public_key, message, b.sign(message))


def test_reprs_hold_no_secrets(backend: CryptoBackend) -> None:
    decryption = backend.create_pk_decryption()
    private = b64encode(decryption.private_key())
    assert private not in repr(decryption)
    group = backend.create_outbound_group_session()
    assert group.session_key not in repr(group)
    assert "pickle" not in repr(backend.create_account())
