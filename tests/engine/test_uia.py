"""User-interactive auth, with the server's answers injected at the transport.

(The real flows, a device signed out and a cross-signing identity replaced with the
password, run against Synapse in tests/integration/test_devices.py and
test_verification.py.)
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tui_client.engine.uia import (
    AuthCancelled,
    AuthChallenge,
    AuthUnsupported,
    UserInteractiveAuth,
    fixed_password,
    password_auth,
)
from tui_client.net.http import HomeserverConnection
from tui_client.protocol import requests as api
from tui_client.protocol.errors import MatrixError

ME = "@alice:example.org"


def _challenge(
    *flows: list[str], completed: list[str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"flows": [{"stages": f} for f in flows], "session": "S1", "params": {}, **extra}
    if completed:
        body["completed"] = completed
    return httpx.Response(401, json=body)


def _connection(answers: list[httpx.Response], seen: list[dict[str, Any]]) -> HomeserverConnection:
    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return answers.pop(0)

    return HomeserverConnection(
        "https://hs.example.org", "token", transport=httpx.MockTransport(handle)
    )


async def test_the_password_stage_is_completed_with_the_session() -> None:
    seen: list[dict[str, Any]] = []
    connection = _connection([_challenge(["m.login.password"]), httpx.Response(200, json={})], seen)
    prompts: list[str] = []

    async def ask(prompt: str) -> str | None:
        prompts.append(prompt)
        return "hunter2"

    auth = UserInteractiveAuth(connection, ME, ask)
    await auth.send(lambda a: api.delete_devices(["D1"], a), purpose="Sign out the device D1")
    assert seen[0] == {"devices": ["D1"]}
    assert seen[1]["auth"] == password_auth(ME, "hunter2", "S1")
    assert seen[1]["auth"]["identifier"] == {"type": "m.id.user", "user": ME}
    assert prompts == [f"Sign out the device D1: confirm with the password of {ME}"]


async def test_no_challenge_means_no_prompt() -> None:
    seen: list[dict[str, Any]] = []
    connection = _connection([httpx.Response(200, json={"ok": True})], seen)
    auth = UserInteractiveAuth(connection, ME, None)
    assert await auth.send(lambda a: api.delete_devices(["D1"], a), purpose="x") == {"ok": True}


async def test_a_flow_the_client_cannot_do_is_refused_plainly() -> None:
    seen: list[dict[str, Any]] = []
    connection = _connection([_challenge(["m.login.sso"])], seen)
    auth = UserInteractiveAuth(connection, ME, fixed_password("never asked"))
    with pytest.raises(AuthUnsupported, match=r"m\.login\.sso"):
        await auth.send(lambda a: api.delete_devices(["D1"], a), purpose="x")
    assert len(seen) == 1


async def test_declining_and_having_no_prompt_make_no_second_request() -> None:
    for ask in (fixed_password(""), None):
        seen: list[dict[str, Any]] = []
        connection = _connection([_challenge(["m.login.password"])], seen)
        with pytest.raises(AuthCancelled):
            await UserInteractiveAuth(connection, ME, ask).send(
                lambda a: api.delete_devices(["D1"], a), purpose="x"
            )
        assert len(seen) == 1


async def test_other_errors_pass_through() -> None:
    seen: list[dict[str, Any]] = []
    connection = _connection(
        [httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"})], seen
    )
    with pytest.raises(MatrixError) as caught:
        await UserInteractiveAuth(connection, ME, fixed_password("p")).send(
            lambda a: api.delete_devices(["D1"], a), purpose="x"
        )
    assert caught.value.errcode == "M_FORBIDDEN"


def test_the_challenge_reads_what_remains() -> None:
    error = MatrixError.from_response(
        401,
        {
            "flows": [
                {"stages": ["m.login.recaptcha", "m.login.password"]},
                {"stages": ["m.login.sso"]},
            ],
            "completed": ["m.login.recaptcha"],
            "session": "S",
        },
    )
    challenge = AuthChallenge.from_error(error)
    assert challenge is not None and challenge.session == "S"
    assert challenge.remaining() == [("m.login.password",)]
    assert challenge.password_suffices
    assert (
        AuthChallenge.from_error(MatrixError.from_response(401, {"errcode": "M_UNKNOWN_TOKEN"}))
        is None
    )
