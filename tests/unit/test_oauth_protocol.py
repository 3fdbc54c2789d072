"""The OAuth 2.0 pieces without I/O: the spec's metadata example, scopes, PKCE, the
device authorization and token answers, redirects and account management URLs."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from tui_client.protocol import oauth
from tui_client.protocol.oauth import (
    AuthMetadata,
    DeviceAuthorization,
    MetadataError,
    OAuthError,
    TokenResponse,
)

SPEC_EXAMPLE = {
    "issuer": "https://account.example.com/",
    "authorization_endpoint": "https://account.example.com/oauth2/auth",
    "token_endpoint": "https://account.example.com/oauth2/token",
    "registration_endpoint": "https://account.example.com/oauth2/clients/register",
    "device_authorization_endpoint": "https://account.example.com/oauth2/device",
    "revocation_endpoint": "https://account.example.com/oauth2/revoke",
    "response_types_supported": ["code"],
    "grant_types_supported": [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ],
    "response_modes_supported": ["query", "fragment"],
    "code_challenge_methods_supported": ["S256"],
    "account_management_uri": "https://account.example.com/manage",
    "account_management_actions_supported": [
        "org.matrix.profile",
        "org.matrix.devices_list",
        "org.matrix.device_view",
        "org.matrix.device_delete",
        "org.matrix.account_deactivate",
        "org.matrix.cross_signing_reset",
    ],
}


def test_spec_metadata_example() -> None:
    metadata = AuthMetadata.from_json(SPEC_EXAMPLE)
    assert metadata.issuer == "https://account.example.com/"
    assert metadata.offers_device_code and metadata.offers_code_with_pkce
    assert metadata.raw == SPEC_EXAMPLE


@pytest.mark.parametrize(
    "change",
    [
        {"token_endpoint": "http://account.example.com/oauth2/token"},
        {"issuer": None},
        {"registration_endpoint": 5},
        {"authorization_endpoint": "https://account.example.com/auth#x"},
    ],
)
def test_unusable_metadata_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(MetadataError):
        AuthMetadata.from_json({**SPEC_EXAMPLE, **change})
    with pytest.raises(MetadataError):
        AuthMetadata.from_json(["not", "an", "object"])


def test_without_device_grant_or_pkce() -> None:
    metadata = AuthMetadata.from_json(
        {
            **SPEC_EXAMPLE,
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["plain"],
        }
    )
    assert not metadata.offers_device_code
    assert not metadata.offers_code_with_pkce


def test_scope_names_the_api_and_the_device_stable_and_unstable() -> None:
    assert oauth.scope_for("AAABBBCCCDDD").split() == [
        "urn:matrix:client:api:*",
        "urn:matrix:client:device:AAABBBCCCDDD",
        "urn:matrix:org.matrix.msc2967.client:api:*",
        "urn:matrix:org.matrix.msc2967.client:device:AAABBBCCCDDD",
    ]
    device = oauth.new_device_id()
    assert len(device) == 10 and device.isalnum() and device.upper() == device


def test_client_metadata_is_a_native_client() -> None:
    metadata = oauth.client_metadata(["http://127.0.0.1/callback"])
    assert metadata["application_type"] == "native"
    assert metadata["client_uri"].startswith("https://")
    assert urlsplit(metadata["policy_uri"]).netloc == urlsplit(metadata["client_uri"]).netloc
    assert metadata["token_endpoint_auth_method"] == "none"
    assert set(metadata["grant_types"]) == {
        "authorization_code",
        "refresh_token",
        oauth.DEVICE_CODE_GRANT,
    }


def test_pkce_challenge_and_authorization_url() -> None:
    verifier = oauth.new_verifier()
    assert 43 <= len(verifier) <= 128
    digest = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    assert oauth.code_challenge(verifier) == digest
    url = oauth.authorization_url(
        AuthMetadata.from_json(SPEC_EXAMPLE),
        client_id="s6BhdRkqt3",
        redirect_uri="http://127.0.0.1:5555/callback",
        scope=oauth.scope_for("AAABBBCCCDDD"),
        state="st",
        verifier=verifier,
    )
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://account.example.com/oauth2/auth?")
    assert query["code_challenge"] == [digest]
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["scope"][0].startswith(
        "urn:matrix:client:api:* urn:matrix:client:device:AAABBBCCCDDD"
    )


def test_redirect_query() -> None:
    assert oauth.parse_redirect_query({"state": "s", "code": "c"}, "s") == "c"
    with pytest.raises(OAuthError) as raised:
        oauth.parse_redirect_query({"state": "other", "code": "c"}, "s")
    assert raised.value.error == "invalid_state"
    with pytest.raises(OAuthError) as raised:
        oauth.parse_redirect_query({"state": "s", "error": "access_denied"}, "s")
    assert raised.value.error == "access_denied"


def test_device_authorization_answer() -> None:
    grant = DeviceAuthorization.from_json(
        {
            "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://example.com/device",
            "verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
            "expires_in": 1800,
        }
    )
    assert grant.interval == 5.0 and grant.expires_in == 1800.0
    with pytest.raises(MetadataError):
        DeviceAuthorization.from_json({"device_code": "x", "user_code": "y"})
    with pytest.raises(MetadataError):
        DeviceAuthorization.from_json(
            {"device_code": "x", "user_code": "y", "verification_uri": "javascript:alert(1)"}
        )


def test_token_answer() -> None:
    tokens = TokenResponse.from_json(
        {"access_token": "a", "token_type": "Bearer", "expires_in": 300, "refresh_token": "r"}
    )
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("a", "r", 300.0)
    assert TokenResponse.from_json({"access_token": "a", "expires_in": True}).expires_in is None
    with pytest.raises(MetadataError):
        TokenResponse.from_json({"token_type": "Bearer"})
    with pytest.raises(MetadataError):
        TokenResponse.from_json({"access_token": "a", "token_type": "mac"})


def test_form_requests() -> None:
    metadata = AuthMetadata.from_json(SPEC_EXAMPLE)
    request = oauth.token_by_device_code(metadata, "cid", "dc")
    assert request.content_type == "application/x-www-form-urlencoded"
    assert parse_qs((request.content or b"").decode())["grant_type"] == [oauth.DEVICE_CODE_GRANT]
    assert not request.authenticated
    revoke = oauth.revoke(
        "https://account.example.com/oauth2/revoke", "cid", "tok", "refresh_token"
    )
    assert parse_qs((revoke.content or b"").decode()) == {
        "token": ["tok"],
        "token_type_hint": ["refresh_token"],
        "client_id": ["cid"],
    }


def test_account_management_url() -> None:
    metadata = AuthMetadata.from_json(SPEC_EXAMPLE)
    assert oauth.account_management_url(metadata) == "https://account.example.com/manage"
    assert (
        oauth.account_management_url(metadata, "cross_signing_reset")
        == "https://account.example.com/manage?action=org.matrix.cross_signing_reset"
    )
    assert oauth.account_management_url(metadata, "session", "ABC") == (
        "https://account.example.com/manage?action=org.matrix.device_view&device_id=ABC"
    )
    older = AuthMetadata.from_json(
        {**SPEC_EXAMPLE, "account_management_actions_supported": ["org.matrix.sessions_list"]}
    )
    assert oauth.account_management_url(older, "sessions").endswith(
        "action=org.matrix.sessions_list"
    )


def test_oauth_error_bodies() -> None:
    assert oauth.oauth_error({"error": "slow_down"}) == OAuthError("slow_down")
    assert oauth.oauth_error({"errcode": "M_UNKNOWN"}) is None
    assert oauth.oauth_error({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}) is None
