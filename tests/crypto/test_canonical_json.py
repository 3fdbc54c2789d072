"""Canonical JSON against the examples of the spec's appendices, and signing helpers."""

from __future__ import annotations

import json

import pytest

from tui_client.crypto import load_backend
from tui_client.crypto.signing import sign_json, verify_signed_json
from tui_client.protocol.canonical_json import CanonicalJsonError, canonical_json, signable_json

# appendices.md, "Canonical JSON" > "Examples": (input, expected canonical form).
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        '{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name":'
        ' "John Doe", "three_pids": [{"medium": "email", "address": "john.doe@example.org"},'
        ' {"medium": "msisdn", "address": "123456789"}]}}}',
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":'
        '[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},'
        '"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
]


@pytest.mark.parametrize(("given", "expected"), SPEC_EXAMPLES)
def test_spec_examples(given: str, expected: str) -> None:
    assert canonical_json(json.loads(given)) == expected.encode("utf-8")


@pytest.mark.parametrize("bad", [1.5, 2**53, -(2**53), {1: "x"}, {"a": object()}, float("nan")])
def test_values_outside_the_grammar_raise(bad: object) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(bad)


def test_signable_json_drops_signatures_and_unsigned() -> None:
    obj = {"b": 1, "signatures": {"x": {}}, "unsigned": {"age": 3}, "a": [1, 2]}
    assert signable_json(obj) == b'{"a":[1,2],"b":1}'


@pytest.mark.parametrize("backend_name", ["olm", "vodozemac"])
def test_sign_and_verify_json(backend_name: str) -> None:
    backend = load_backend(backend_name)
    account = backend.create_account()
    key = account.identity_keys.ed25519
    signed = sign_json({"a": 1, "unsigned": {"u": 1}}, "@me:x", "ed25519:DEV", account.sign)
    assert verify_signed_json(backend, signed, "@me:x", "ed25519:DEV", key)
    assert verify_signed_json(
        backend, {**signed, "unsigned": {"changed": True}}, "@me:x", "ed25519:DEV", key
    )
    assert not verify_signed_json(backend, {**signed, "a": 2}, "@me:x", "ed25519:DEV", key)
    assert not verify_signed_json(backend, signed, "@other:x", "ed25519:DEV", key)
    assert not verify_signed_json(backend, {**signed, "f": 1.5}, "@me:x", "ed25519:DEV", key)
