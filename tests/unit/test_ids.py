"""Identifiers and links, against the grammar and examples of the spec's appendices."""

from __future__ import annotations

import pytest

from tui_client.protocol.ids import (
    InvalidIdentifier,
    MatrixLink,
    is_event_id,
    is_room_alias,
    is_room_id,
    is_user_id,
    parse_link,
    parse_server_name,
    server_name_of,
    user_localpart,
)

V12_ROOM_ID = "!cssKh2emqgbfgtMjI08aqvbDqlxGPHqxuHDegijpIdI"

# -- server names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "matrix.org",
        "matrix.org:8888",
        "1.2.3.4",
        "1.2.3.4:1234",
        "[1234:5678::abcd]",
        "[1234:5678::abcd]:5678",
        "[::1]",
        "localhost",
        "localhost:65535",
        "a",
        "xn--bcher-kva.example",
        "MATRIX.ORG",
        "a" * 255,
    ],
)
def test_valid_server_names(name: str) -> None:
    assert parse_server_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ":8448",
        "matrix.org:",
        "matrix.org:65536",
        "matrix.org:123456",
        "matrix.org:port",
        "matrix org",
        "matrix_org",
        "matrix.org/path",
        "[::1",
        "::1",
        "[zz::1]",
        "a" * 256,
        "héllo.org",
        "matrix.org\n",
        "matrix.org:80:80",
    ],
)
def test_invalid_server_names(name: str) -> None:
    with pytest.raises(InvalidIdentifier, match="server name"):
        parse_server_name(name)


# -- user IDs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_id",
    [
        "@alice:example.org",
        "@alice:example.org:8448",
        "@a.b_c=d-e/f+g:example.org",
        "@0:1.2.3.4",
        "@bob:[::1]:8448",
        # Historical localparts: anything but ':' and NUL, even empty or odd.
        "@Alice:example.org",
        "@:example.org",
        "@ali ce:example.org",
        "@al\x01ice:example.org",
        "@日本:example.org",
        "@alice#1!$:example.org",
    ],
)
def test_valid_user_ids(user_id: str) -> None:
    assert is_user_id(user_id)


@pytest.mark.parametrize(
    "user_id",
    [
        "alice:example.org",
        "@alice",
        "@alice:",
        "@alice:exa mple.org",
        "@alice:example.org:notaport",
        "@al\x00ice:example.org",
        "@\ud800:example.org",  # a lone surrogate, as decoded JSON can contain
        "@alice:example.org\n",
        "#alice:example.org",
        "",
        "@",
        None,
        42,
        ["@alice:example.org"],
    ],
)
def test_invalid_user_ids(user_id: object) -> None:
    assert not is_user_id(user_id)


def test_user_id_length_is_counted_in_utf8_bytes() -> None:
    server = ":example.org"
    longest = "@" + "a" * (255 - 1 - len(server)) + server
    assert len(longest.encode()) == 255 and is_user_id(longest)
    assert not is_user_id("@a" + longest[1:])
    # 120 two-byte characters fit, 125 do not (len() alone would say they do).
    assert is_user_id("@" + "é" * 120 + ":ex.org")
    too_long = "@" + "é" * 125 + ":ex.org"
    assert len(too_long) < 255 < len(too_long.encode())
    assert not is_user_id(too_long)


def test_user_id_parts() -> None:
    assert user_localpart("@alice:example.org") == "alice"
    assert user_localpart("@:example.org") == ""
    assert server_name_of("@alice:example.org:8448") == "example.org:8448"
    assert server_name_of("#room:matrix.org") == "matrix.org"
    with pytest.raises(InvalidIdentifier, match="not a user ID"):
        user_localpart("alice")
    with pytest.raises(InvalidIdentifier):
        server_name_of("!room:example.org")
    with pytest.raises(InvalidIdentifier, match="server name"):
        server_name_of("@alice:bad server")


# -- rooms and events ------------------------------------------------------------------


@pytest.mark.parametrize(
    "room_id",
    [
        V12_ROOM_ID,
        "!abc:example.org",
        "!jEsUZKDJdhlrceRyVU:example.org",
        "!a",
        "!with/slash+plus:x.org",
    ],
)
def test_valid_room_ids(room_id: str) -> None:
    assert is_room_id(room_id)


@pytest.mark.parametrize(
    "room_id",
    [
        "",
        "!",
        "room:example.org",
        "#room:example.org",
        "!a\x00b",
        "!" + "a" * 255,
        "!\udc00",
        None,
        1,
    ],
)
def test_invalid_room_ids(room_id: object) -> None:
    assert not is_room_id(room_id)


@pytest.mark.parametrize(
    "event_id",
    [
        "$143273582443PhrSn:example.org",
        "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk",
        "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg",
    ],
)
def test_valid_event_ids(event_id: str) -> None:
    assert is_event_id(event_id)


@pytest.mark.parametrize("event_id", ["", "$", "event", "!room", "$a\x00", "$\ud800", None])
def test_invalid_event_ids(event_id: object) -> None:
    assert not is_event_id(event_id)


@pytest.mark.parametrize(
    ("alias", "valid"),
    [
        ("#room:example.org", True),
        ("#room:example.org:8448", True),
        ("#日本語:example.org", True),
        ("#:example.org", True),
        ("#room", False),
        ("#room:", False),
        ("#room:bad server", False),
        ("#ro\x00om:example.org", False),
        ("#room:example.org\n", False),
        ("room:example.org", False),
        ("#" + "a" * 250 + ":example.org", False),
        ("#\ud800:example.org", False),
        (None, False),
    ],
)
def test_room_aliases(alias: object, valid: bool) -> None:
    assert is_room_alias(alias) is valid


# -- links (spec appendices, "URIs") ---------------------------------------------------

ALIAS = MatrixLink("room_alias", "#somewhere:example.org")
ROOM = MatrixLink("room_id", "!somewhere:example.org", via=("elsewhere.ca",))
EVENT_TO = MatrixLink(
    "room_id", "!somewhere:example.org", event_id="$event:example.org", via=("elsewhere.ca",)
)
USER = MatrixLink("user", "@alice:example.org")


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        # matrix.to examples, as written in the spec...
        ("https://matrix.to/#/%23somewhere:example.org", ALIAS),
        ("https://matrix.to/#/!somewhere:example.org?via=elsewhere.ca", ROOM),
        (
            "https://matrix.to/#/!somewhere:example.org/$event:example.org?via=elsewhere.ca",
            EVENT_TO,
        ),
        ("https://matrix.to/#/@alice:example.org", USER),
        # ...and fully encoded.
        ("https://matrix.to/#/%23somewhere%3Aexample.org", ALIAS),
        ("https://matrix.to/#/%21somewhere%3Aexample.org?via=elsewhere.ca", ROOM),
        (
            "https://matrix.to/#/%21somewhere%3Aexample.org/%24event%3Aexample.org?via=elsewhere.ca",
            EVENT_TO,
        ),
        ("https://matrix.to/#/%40alice%3Aexample.org", USER),
        # Historically unencoded, as clients should still accept.
        ("https://matrix.to/#/#somewhere:example.org", ALIAS),
        ("http://matrix.to/#/@alice:example.org", USER),
        ("  https://matrix.to/#/@alice:example.org  ", USER),
        ("HTTPS://MATRIX.TO/#/@alice:example.org", USER),
        # matrix: URI examples.
        ("matrix:r/somewhere:example.org", ALIAS),
        ("matrix:roomid/somewhere:example.org?via=elsewhere.ca", ROOM),
        (
            "matrix:roomid/somewhere:example.org/e/event?via=elsewhere.ca",
            MatrixLink(
                "room_id", "!somewhere:example.org", event_id="$event", via=("elsewhere.ca",)
            ),
        ),
        (
            "matrix:u/alice:example.org?action=chat",
            MatrixLink("user", "@alice:example.org", action="chat"),
        ),
        # Encoded matrix: URIs, the authority form, and the old type names.
        ("matrix:r/somewhere%3Aexample.org", ALIAS),
        ("matrix://example.org/r/somewhere:example.org", ALIAS),
        ("matrix:room/somewhere:example.org", ALIAS),
        ("matrix:user/alice:example.org", USER),
        (
            "matrix:roomid/somewhere:example.org/event/event?via=elsewhere.ca",
            MatrixLink(
                "room_id", "!somewhere:example.org", event_id="$event", via=("elsewhere.ca",)
            ),
        ),
        # Bare identifiers.
        ("#somewhere:example.org", ALIAS),
        ("@alice:example.org", USER),
        ("!somewhere:example.org", MatrixLink("room_id", "!somewhere:example.org")),
    ],
)
def test_parse_link_spec_examples(link: str, expected: MatrixLink) -> None:
    assert parse_link(link) == expected


def test_parse_link_actions() -> None:
    assert parse_link("matrix:r/somewhere:example.org?action=join").action == "join"
    assert parse_link(
        "matrix:roomid/somewhere:example.org?action=join&via=a.org&via=b.org"
    ) == MatrixLink("room_id", "!somewhere:example.org", via=("a.org", "b.org"), action="join")
    assert parse_link("https://matrix.to/#/%23somewhere:example.org?action=join").action == "join"
    # Meaningless or unknown actions are ignored.
    assert parse_link("matrix:u/alice:example.org?action=join").action is None
    assert parse_link("matrix:r/somewhere:example.org?action=chat").action is None
    assert parse_link("matrix:r/somewhere:example.org?action=delete").action is None
    assert parse_link("https://matrix.to/#/@alice:example.org?action=evil").action is None


def test_parse_link_v12_room_ids_and_slashes() -> None:
    assert parse_link(f"https://matrix.to/#/{V12_ROOM_ID}?via=example.org") == MatrixLink(
        "room_id", V12_ROOM_ID, via=("example.org",)
    )
    assert parse_link(f"matrix:roomid/{V12_ROOM_ID[1:]}").identifier == V12_ROOM_ID
    assert parse_link(V12_ROOM_ID).kind == "room_id"
    # Decoding may expose '/' in event IDs of older room versions.
    slashed = "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk"
    for form in (
        slashed,
        slashed.replace("/", "%2F"),
        slashed.replace("$", "%24").replace("/", "%2F"),
    ):
        assert parse_link(f"https://matrix.to/#/!r:example.org/{form}").event_id == slashed


def test_parse_link_via_drops_invalid_servers() -> None:
    link = parse_link(
        "https://matrix.to/#/!r:example.org?via=good.org&via=bad%20server&via=other.org:8448"
    )
    assert link.via == ("good.org", "other.org:8448")


def test_parse_link_ignores_invalid_event_ids() -> None:
    assert parse_link("matrix:roomid/somewhere:example.org/e/").event_id is None
    assert parse_link("https://matrix.to/#/!somewhere:example.org/notanevent").event_id is None


@pytest.mark.parametrize(
    "link",
    [
        ALIAS,
        ROOM,
        EVENT_TO,
        USER,
        MatrixLink("room_id", V12_ROOM_ID, via=("a.org", "b.org:8448")),
        MatrixLink("room_id", "!r:x.org", event_id="$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk"),
        MatrixLink("room_alias", "#with?question&amp:example.org"),
    ],
)
def test_matrix_to_round_trip(link: MatrixLink) -> None:
    url = link.to_matrix_to()
    assert url.startswith("https://matrix.to/#/")
    # Components are percent-encoded: a '/' only separates the room from the event.
    path = url.removeprefix("https://matrix.to/#/").split("?")[0]
    assert len(path.split("/")) == (2 if link.event_id else 1)
    assert parse_link(url) == link


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "   ",
        "hello",
        "somewhere:example.org",
        "https://example.org/#/@alice:example.org",
        "https://matrix.to/#/",
        "https://matrix.to/#/%2Bgroup%3Aexample.org",
        "https://matrix.to/#/+group:example.org",
        "https://matrix.to/#/@alice",
        "matrix:",
        "matrix:x/abc",
        "matrix:u/alice",
        "matrix:r",
        "matrix:roomid/",
        "#noserver",
        "@alice:bad server",
        "!",
        "@\ud800:example.org",
    ],
)
def test_parse_link_rejects_junk_with_clear_errors(junk: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_link(junk)
    message = str(caught.value)
    assert message
    assert any(
        word in message for word in ("room", "user", "URI", "link", "alias", "identifier", "empty")
    )
