"""The real-Synapse harness itself: startup, registration, persistence across restarts."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tui_client.devtools.synapse import (
    RegisteredUser,
    RegistrationError,
    SynapseServer,
)

from ..support.users import MakeUser


def _whoami(server: SynapseServer, user: RegisteredUser) -> tuple[int, dict[str, object]]:
    return server.request_json("GET", "/_matrix/client/v3/account/whoami", token=user.access_token)


def test_server_answers_versions(synapse: SynapseServer) -> None:
    assert synapse.is_running
    assert synapse.base_url.startswith("http://127.0.0.1:")
    status, body = synapse.request_json("GET", "/_matrix/client/versions")
    assert status == 200
    assert isinstance(body["versions"], list)
    assert body["versions"]


def test_make_user_creates_unique_lowercase_users(make_user: MakeUser) -> None:
    first = make_user("Alice", displayname="Alice")
    second = make_user("Alice")
    assert first.localpart.startswith("alice")
    assert first.localpart == first.localpart.lower()
    assert first.user_id == f"@{first.localpart}:localhost"
    assert first.password == f"password-{first.localpart}"
    assert first.home_server == "localhost"
    assert second.user_id != first.user_id
    assert second.access_token != first.access_token


def test_whoami_returns_same_user_and_device(synapse: SynapseServer, make_user: MakeUser) -> None:
    user = make_user()
    status, body = _whoami(synapse, user)
    assert status == 200
    assert body["user_id"] == user.user_id
    assert body["device_id"] == user.device_id


def test_displayname_is_set(synapse: SynapseServer, make_user: MakeUser) -> None:
    user = make_user("bob", displayname="Bob Builder")
    status, body = synapse.request_json("GET", f"/_matrix/client/v3/profile/{user.user_id}")
    assert status == 200
    assert body["displayname"] == "Bob Builder"


def test_request_json_returns_http_errors(synapse: SynapseServer) -> None:
    status, body = synapse.request_json(
        "GET", "/_matrix/client/v3/account/whoami", token="not-a-token"
    )
    assert status == 401
    assert body["errcode"] == "M_UNKNOWN_TOKEN"


def test_registering_same_localpart_twice_fails(
    synapse: SynapseServer, make_user: MakeUser
) -> None:
    user = make_user("dup")
    with pytest.raises(RegistrationError, match="M_USER_IN_USE") as info:
        synapse.register_user(user.localpart, "another-password")
    assert info.value.status == 400
    assert info.value.errcode == "M_USER_IN_USE"
    assert info.value.localpart == user.localpart


def test_admin_token_is_a_server_admin(synapse: SynapseServer, make_user: MakeUser) -> None:
    user = make_user()
    token = synapse.admin_token
    assert synapse.admin_token == token  # registered once, then cached
    status, body = synapse.request_json(
        "GET", f"/_synapse/admin/v2/users/{user.user_id}", token=token
    )
    assert status == 200
    assert body["name"] == user.user_id
    # An ordinary user is refused by the same admin API.
    status, body = synapse.request_json(
        "GET", f"/_synapse/admin/v2/users/{user.user_id}", token=user.access_token
    )
    assert status == 403


@pytest.mark.synapse
def test_stop_and_restart_keep_url_and_data(tmp_path: Path) -> None:
    # A dedicated server, so the session-wide one is never interrupted.
    with SynapseServer(tmp_path / "hs") as server:
        url = server.base_url
        user = server.register_user("carol", "password-carol")
        assert _whoami(server, user)[0] == 200

        server.stop()
        assert not server.is_running
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{url}/_matrix/client/versions", timeout=2)

        server.restart()
        assert server.is_running
        assert server.base_url == url
        status, body = _whoami(server, user)
        assert status == 200
        assert body["user_id"] == user.user_id
        assert body["device_id"] == user.device_id

    assert not server.is_running
