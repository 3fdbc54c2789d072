"""Request builders: paths encoded once, tokens never in the request, joins routed."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from tui_client.protocol import requests as api
from tui_client.protocol.requests import Request

ROOM = "!room/with+odd?chars#:example.org"
EVENT = "$abc+def/ghi=="
USER = "@alice/bob+x:example.org"
V12_ROOM = "!cssKh2emqgbfgtMjI08aqvbDqlxGPHqxuHDegijpIdI"


def all_requests() -> list[Request]:
    content = {"msgtype": "m.text", "body": "hi"}
    return [
        api.versions(),
        api.well_known(),
        api.login_password(USER, "hunter2", device_id="DEV", device_name="tui"),
        api.logout(),
        api.whoami(),
        api.sync(
            since="s1",
            timeout_ms=30000,
            filter_json=api.sync_filter(),
            full_state=True,
            set_presence="online",
        ),
        api.sync(since=None, timeout_ms=0),
        api.messages(ROOM, from_token="t1", limit=10, to_token="t0"),
        api.send_event(ROOM, "m.room.message", "txn/1", content),
        api.send_state(ROOM, "m.room.name", "", {"name": "x"}),
        api.get_state_event(ROOM, "m.room.member", USER),
        api.get_event(ROOM, EVENT),
        api.members(ROOM, at="t1"),
        api.redact(ROOM, EVENT, "txn2", reason="spam"),
        api.join(ROOM, via=["a.org", "b.org"], reason="hi"),
        api.leave(ROOM, reason="bye"),
        api.forget(ROOM),
        api.invite(ROOM, USER, reason="come"),
        api.kick(ROOM, USER, reason="out"),
        api.ban(ROOM, USER, reason="out"),
        api.set_displayname(USER, "Alice"),
        api.get_profile(USER),
        api.receipt(ROOM, EVENT),
        api.read_markers(ROOM, EVENT, read=EVENT),
        api.typing(ROOM, USER, True),
        api.typing(ROOM, USER, False),
        api.create_room({"preset": "private_chat"}),
        api.resolve_alias("#room/x:example.org"),
        api.set_account_data(USER, "m.direct", {}),
    ]


@pytest.mark.parametrize("request_", all_requests(), ids=lambda r: f"{r.method} {r.path}")
def test_no_access_token_anywhere(request_: Request) -> None:
    assert "access_token" not in request_.path
    assert all(
        "access_token" not in key and "access_token" not in value for key, value in request_.query
    )
    assert "access_token" not in json.dumps(request_.body)
    assert request_.method in ("GET", "POST", "PUT", "DELETE")
    assert request_.path.startswith(("/_matrix/", "/.well-known/"))
    assert "?" not in request_.path and "#" not in request_.path
    for key, value in request_.query:
        assert isinstance(key, str) and isinstance(value, str)


@pytest.mark.parametrize("request_", all_requests(), ids=lambda r: f"{r.method} {r.path}")
def test_path_segments_are_encoded(request_: Request) -> None:
    for segment in request_.path.split("/"):
        for raw in (ROOM, EVENT, USER):
            assert raw not in segment  # only ever in its encoded form
        assert not any(c in segment for c in "!$@+#?= :")


def test_room_event_and_user_ids_round_trip() -> None:
    get = api.get_event(ROOM, EVENT)
    assert (
        get.path
        == "/_matrix/client/v3/rooms/%21room%2Fwith%2Bodd%3Fchars%23%3Aexample.org/event/%24abc%2Bdef%2Fghi%3D%3D"
    )
    *_, room, _, event = get.path.split("/")
    assert (unquote(room), unquote(event)) == (ROOM, EVENT)
    profile = api.get_profile(USER)
    assert unquote(profile.path.rsplit("/", 1)[1]) == USER
    state = api.get_state_event(ROOM, "m.room.member", USER)
    assert state.path.endswith("/state/m.room.member/%40alice%2Fbob%2Bx%3Aexample.org")
    assert api.send_state(ROOM, "m.room.name", "", {}).path.endswith("/state/m.room.name/")
    assert api.get_event(V12_ROOM, EVENT).path.startswith(
        f"/_matrix/client/v3/rooms/%21{V12_ROOM[1:]}/event/"
    )


def test_send_and_redact_are_idempotent_by_transaction_id() -> None:
    send = api.send_event(ROOM, "m.room.message", "t/1", {"body": "x"})
    assert send.method == "PUT" and send.path.endswith("/send/m.room.message/t%2F1")
    assert send.body == {"body": "x"}
    redact = api.redact(ROOM, EVENT, "t2", reason="spam")
    assert redact.method == "PUT" and redact.path.endswith("/redact/%24abc%2Bdef%2Fghi%3D%3D/t2")
    assert redact.body == {"reason": "spam"}
    assert api.redact(ROOM, EVENT, "t3").body == {}


def test_join_sends_via_and_server_name() -> None:
    join = api.join("#room:example.org", via=["a.org", "b.org:8448"])
    assert join.method == "POST"
    assert join.path == "/_matrix/client/v3/join/%23room%3Aexample.org"
    assert join.query == (
        ("via", "a.org"),
        ("via", "b.org:8448"),
        ("server_name", "a.org"),
        ("server_name", "b.org:8448"),
    )
    assert join.body == {}
    assert api.join(V12_ROOM).query == ()
    assert api.join(V12_ROOM, reason="hello").body == {"reason": "hello"}
    assert api.join(V12_ROOM, via=iter(["x.org"])).query == (
        ("via", "x.org"),
        ("server_name", "x.org"),
    )


def test_sync_request() -> None:
    sync = api.sync(since="s1", timeout_ms=30000, filter_json=api.sync_filter(20))
    assert sync.method == "GET" and sync.path == "/_matrix/client/v3/sync"
    query = dict(sync.query)
    assert query["since"] == "s1" and query["timeout"] == "30000"
    assert json.loads(query["filter"])["room"]["timeline"]["limit"] == 20
    assert json.loads(query["filter"])["room"]["state"]["lazy_load_members"] is True
    assert sync.timeout == 30.0 and sync.authenticated
    first = api.sync(since=None, timeout_ms=0)
    assert "since" not in dict(first.query) and "full_state" not in dict(first.query)
    assert dict(api.sync(since=None, timeout_ms=0, full_state=True).query)["full_state"] == "true"


def test_unauthenticated_requests() -> None:
    assert not api.versions().authenticated
    assert not api.well_known().authenticated
    login = api.login_password("@alice:example.org", "pw", device_id="D")
    assert not login.authenticated
    assert login.body["identifier"] == {"type": "m.id.user", "user": "@alice:example.org"}
    assert login.body["device_id"] == "D" and "initial_device_display_name" not in login.body
    for request_ in all_requests():
        if request_.path.endswith(("/login", "/versions", "/.well-known/matrix/client")):
            continue
        assert request_.authenticated, request_.path


def test_messages_query() -> None:
    query = api.messages(ROOM, from_token="t1", direction="f", limit=5).query
    assert dict(query)["from"] == "t1" and dict(query)["dir"] == "f" and dict(query)["limit"] == "5"
    assert "to" not in dict(query)
    assert json.loads(dict(query)["filter"]) == {"lazy_load_members": True}


def test_typing_and_members() -> None:
    assert api.typing(ROOM, USER, True, 5000).body == {"typing": True, "timeout": 5000}
    assert api.typing(ROOM, USER, False).body == {"typing": False}
    assert dict(api.members(ROOM).query) == {"not_membership": "leave"}
    assert api.members(ROOM, not_membership=None).query == ()
