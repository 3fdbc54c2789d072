"""Directory chunks, room summaries, merging, links in messages, room creation bodies,
and the new request builders."""

from __future__ import annotations

from typing import Any

import pytest

from tui_client.protocol import requests as api
from tui_client.protocol.directory import (
    PublicRoom,
    join_rule_label,
    merge_rooms,
    parse_public_rooms,
    parse_room_chunk,
)
from tui_client.protocol.ids import InvalidIdentifier
from tui_client.protocol.links import find_room_links
from tui_client.protocol.room_create import (
    MEGOLM,
    RoomCreateOptions,
    create_room_body,
    validate_alias_localpart,
)

from .spec_examples import CLIENT_SERVER_API_DIR, load_document

V12_ROOM = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"


def _example(file: str, path: str, method: str) -> dict[str, Any]:
    spec = load_document(CLIENT_SERVER_API_DIR / file)
    response = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    if "examples" in response:
        value: dict[str, Any] = response["examples"]["response"]["value"]
        return value
    schema = load_document(CLIENT_SERVER_API_DIR / "definitions" / "public_rooms_response.yaml")
    example: dict[str, Any] = schema["example"]
    return example


def test_spec_public_rooms_example() -> None:
    page = parse_public_rooms(_example("list_public_rooms.yaml", "/publicRooms", "get"))
    assert (page.next_batch, page.prev_batch, page.total_estimate, page.skipped) == (
        "p190q",
        "p1902",
        115,
        0,
    )
    (room,) = page.rooms
    assert room == PublicRoom(
        room_id="!ol19s:bleecker.street",
        name="CHEESE",
        topic="Tasty tasty cheese",
        avatar_url="mxc://bleecker.street/CHEDDARandBRIE",
        num_joined_members=37,
        world_readable=True,
        guest_can_join=False,
        join_rule="public",
        room_type="m.space",
    )
    assert room.is_space and not room.is_restricted


def test_spec_room_summary_example() -> None:
    room = parse_room_chunk(_example("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "get"))
    assert room is not None
    assert (room.membership, room.encryption, room.room_version) == ("invite", MEGOLM, "9001")


def test_chunks_with_wrong_types_keep_what_is_usable() -> None:
    room = parse_room_chunk(
        {
            "room_id": V12_ROOM,
            "name": 5,
            "topic": "",
            "canonical_alias": "not an alias",
            "num_joined_members": "lots",
            "world_readable": "yes",
            "join_rule": None,
            "allowed_room_ids": ["!space:x.org", 7, "nope"],
            "room_type": ["m.space"],
        }
    )
    assert room == PublicRoom(room_id=V12_ROOM, allowed_room_ids=("!space:x.org",))
    assert room.display_name == V12_ROOM
    assert parse_room_chunk({"room_id": "no sigil"}) is None
    assert parse_room_chunk("junk") is None


def test_a_page_drops_unusable_and_duplicate_chunks() -> None:
    page = parse_public_rooms(
        {
            "chunk": [
                {"room_id": "!a:x"},
                {"room_id": "!a:x"},
                None,
                {"name": "no id"},
                {"room_id": "!b:x"},
            ],
            "next_batch": "",
            "total_room_count_estimate": True,
        }
    )
    assert [r.room_id for r in page.rooms] == ["!a:x", "!b:x"]
    assert (page.skipped, page.next_batch, page.total_estimate) == (3, None, None)
    assert parse_public_rooms(["not", "a", "page"]).rooms == ()


def test_untrusted_names_are_cleaned_for_display() -> None:
    room = PublicRoom(
        room_id="!a:x",
        name="[bold]Evil[/bold]\x1b[31m\u202eroom\nname",
        topic="line one\nline two\x07",
    )
    assert room.display_name == "[bold]Evil[/bold]room name"
    assert room.topic_line == "line one line two"
    assert PublicRoom(room_id="!a:x", name="  ", canonical_alias="#a:x").display_name == "#a:x"


def test_merge_keeps_first_description_and_records_servers() -> None:
    known: dict[str, PublicRoom] = {}
    first = merge_rooms(
        known, [PublicRoom("!a:x", name="A"), PublicRoom("!b:x", name="B")], "one.org"
    )
    again = merge_rooms(
        known, [PublicRoom("!b:x", name="B elsewhere"), PublicRoom("!c:x", name="C")], "two.org"
    )
    assert [r.room_id for r in first] == ["!a:x", "!b:x"]
    assert [r.room_id for r in again] == ["!c:x"]
    assert known["!b:x"].name == "B" and known["!b:x"].servers == ("one.org", "two.org")
    merge_rooms(known, [PublicRoom("!b:x")], "two.org")
    assert known["!b:x"].servers == ("one.org", "two.org")


@pytest.mark.parametrize(
    ("rule", "label"),
    [
        ("public", "public"),
        ("invite", "invite only"),
        ("restricted", "space members"),
        ("knock", "ask to join"),
        ("weird\x1b[31m", "weird"),
    ],
)
def test_join_rule_labels(rule: str, label: str) -> None:
    assert join_rule_label(rule) == label


# -- links ------------------------------------------------------------------------------


def test_room_links_in_a_message() -> None:
    text = (
        "Join https://matrix.to/#/%23dev%3Aexample.org, or (https://matrix.to/#/!abc:x.org?via=x.org&via=y.org). "
        f"Also matrix:roomid/{V12_ROOM[1:]}?via=example.org and #general:example.org! "
        "Not rooms: https://matrix.to/#/@bob:x.org, email bob#x:y and a #hashtag, https://example.org/#/#x:y "
        "again #general:example.org"
    )
    links = find_room_links(text)
    assert [(link.identifier, link.via) for link in links] == [
        ("#dev:example.org", ()),
        ("!abc:x.org", ("x.org", "y.org")),
        (V12_ROOM, ("example.org",)),
        ("#general:example.org", ()),
    ]
    assert find_room_links("nothing here") == []


# -- creating rooms ---------------------------------------------------------------------


def test_private_rooms_are_created_encrypted() -> None:
    body = create_room_body(
        RoomCreateOptions(name=" Plans ", topic="secret", invite=("@bob:x.org",))
    )
    assert body == {
        "preset": "private_chat",
        "visibility": "private",
        "name": "Plans",
        "topic": "secret",
        "invite": ["@bob:x.org"],
        "initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        ],
    }


def test_public_rooms_are_published_and_not_encrypted_by_default() -> None:
    body = create_room_body(RoomCreateOptions(name="Lobby", alias_localpart="#lobby", public=True))
    assert body == {
        "preset": "public_chat",
        "visibility": "public",
        "name": "Lobby",
        "room_alias_name": "lobby",
    }
    encrypted = create_room_body(RoomCreateOptions(public=True, encrypted=True))
    assert encrypted["initial_state"][0]["content"] == {"algorithm": MEGOLM}
    clear = create_room_body(RoomCreateOptions(encrypted=False))
    assert "initial_state" not in clear


def test_dm_space_and_parent_bodies() -> None:
    dm = create_room_body(RoomCreateOptions(invite=("@bob:x.org",), is_direct=True))
    assert (dm["preset"], dm["is_direct"], dm["initial_state"][0]["type"]) == (
        "trusted_private_chat",
        True,
        "m.room.encryption",
    )
    with pytest.raises(InvalidIdentifier):
        create_room_body(RoomCreateOptions(is_direct=True))
    space = create_room_body(RoomCreateOptions(name="S", space=True, public=True))
    assert space["creation_content"] == {"type": "m.space"}
    assert space["power_level_content_override"]["events_default"] == 100
    child = create_room_body(RoomCreateOptions(parent_space="!s:x.org", parent_via=("x.org",)))
    assert child["initial_state"][-1] == {
        "type": "m.space.parent",
        "state_key": "!s:x.org",
        "content": {"via": ["x.org"], "canonical": True},
    }


@pytest.mark.parametrize("bad", ["", "two words", "a\x00b", "#", "x" * 300])
def test_bad_aliases_and_invitees_are_refused(bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        validate_alias_localpart(bad)
    assert validate_alias_localpart("#team:example.org") == "team"
    with pytest.raises(InvalidIdentifier):
        create_room_body(RoomCreateOptions(invite=("bob",)))


# -- requests -----------------------------------------------------------------------------


def test_public_rooms_request() -> None:
    request = api.public_rooms(server="matrix.org", limit=50, since="tok", search_term="rust")
    assert (request.method, request.path) == ("POST", "/_matrix/client/v3/publicRooms")
    assert request.query == (("server", "matrix.org"),)
    assert request.body == {"limit": 50, "since": "tok", "filter": {"generic_search_term": "rust"}}
    assert api.public_rooms().query == () and api.public_rooms().body == {}
    spaces = api.public_rooms(room_types=["m.space", None])
    assert spaces.body == {"filter": {"room_types": ["m.space", None]}}


def test_hierarchy_summary_knock_requests() -> None:
    request = api.space_hierarchy(
        V12_ROOM, from_token="n1", limit=20, max_depth=2, suggested_only=True
    )
    assert (
        request.path
        == "/_matrix/client/v1/rooms/%2131hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM/hierarchy"
    )
    assert request.query == (
        ("suggested_only", "true"),
        ("limit", "20"),
        ("max_depth", "2"),
        ("from", "n1"),
    )
    assert api.space_hierarchy(V12_ROOM).query == ()
    summary = api.room_summary("#a:x.org", via=["x.org", "y.org"])
    assert summary.path == "/_matrix/client/v1/room_summary/%23a%3Ax.org"
    assert summary.query == (("via", "x.org"), ("via", "y.org"))
    knock = api.knock(V12_ROOM, via=["x.org"], reason="please")
    assert knock.path.startswith("/_matrix/client/v3/knock/%21") and knock.body == {
        "reason": "please"
    }
    assert api.unban("!r:x", "@b:x").body == {"user_id": "@b:x"}
