"""The space graph and hierarchies: spec examples, ordering, loops, malformed links, size."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tui_client.protocol.spaces import (
    MAX_WALK,
    Hierarchy,
    SpaceChild,
    SpaceGraph,
    SpaceParent,
    order_children,
    parse_hierarchy,
    parse_space_child,
    parse_space_parent,
    restricted_allow_rooms,
    valid_order,
)

from .spec_examples import CLIENT_SERVER_API_DIR, load_document, load_example

SPACE = "!space:example.org"


def child_event(
    room: str, *, via: object = ("example.org",), ts: int = 0, **content: Any
) -> dict[str, Any]:
    body: dict[str, Any] = dict(content)
    if via is not None:
        body["via"] = list(via) if isinstance(via, tuple) else via
    return {
        "type": "m.space.child",
        "state_key": room,
        "content": body,
        "origin_server_ts": ts,
        "sender": "@a:example.org",
    }


def link(
    space: str, room: str, *, order: str | None = None, ts: int = 0, suggested: bool = False
) -> SpaceChild:
    return SpaceChild(space, room, ("example.org",), order, suggested, ts)


# -- parsing ------------------------------------------------------------------------


def test_spec_examples_of_child_and_parent_parse() -> None:
    example = load_example("m.space.child.yaml")
    child = parse_space_child(SPACE, example)
    assert child is not None
    assert (child.space_id, child.room_id, child.via, child.order, child.suggested) == (
        SPACE,
        "!roomid:example.org",
        ("example.org", "other.example.org"),
        "lexicographically_compare_me",
        True,
    )
    assert (child.origin_server_ts, child.sender) == (
        example["origin_server_ts"],
        example["sender"],
    )
    parent = parse_space_parent("!room:example.org", load_example("m.space.parent.yaml"))
    assert parent is not None
    assert (parent.space_id, parent.via, parent.canonical) == (
        "!parent_roomid:example.org",
        ("example.org", "other.example.org"),
        True,
    )


@pytest.mark.parametrize(
    "event",
    [
        child_event("!a:x.org", via=None),  # no via: the spec's way to remove a child
        child_event("!a:x.org", via=[]),
        child_event("!a:x.org", via="x.org"),  # not a list
        child_event("!a:x.org", via=[1, None, {"a": 1}]),  # nothing usable in it
        child_event("!a:x.org", via=["not a server!"]),
        child_event("not-a-room-id"),
        child_event(""),
        {"type": "m.space.child", "state_key": "!a:x.org", "content": "oops"},
        {"type": "m.space.child", "state_key": None, "content": {"via": ["x.org"]}},
        {"type": "m.room.name", "state_key": "!a:x.org", "content": {"via": ["x.org"]}},
        {},  # redacted to nothing
        None,
        "a string",
        [],
    ],
)
def test_unusable_child_events_link_nothing(event: object) -> None:
    assert parse_space_child(SPACE, event) is None


def test_child_fields_of_the_wrong_type_are_ignored() -> None:
    event = child_event(
        "!a:x.org",
        via=["x.org", 7, "bad server!", "x.org", "y.org:8448"],
        suggested="yes",
        order=12,
    )
    event["origin_server_ts"] = "yesterday"
    child = parse_space_child(SPACE, event)
    assert child is not None
    assert child.via == ("x.org", "y.org:8448")
    assert (child.suggested, child.order, child.origin_server_ts) == (False, None, 0)


@pytest.mark.parametrize(
    ("order", "valid"),
    [
        (" ", True),
        ("~", True),
        ("a" * 50, True),
        ("a" * 51, False),
        ("", True),
        ("é", False),
        ("\x1f", False),
        ("\x7f", False),
        (None, False),
        (5, False),
    ],
)
def test_valid_order(order: object, valid: bool) -> None:
    assert (valid_order(order) is not None) is valid


def test_restricted_allow_rooms() -> None:
    content = {
        "join_rule": "restricted",
        "allow": [
            {"type": "m.room_membership", "room_id": "!space:x.org"},
            {"type": "m.room_membership", "room_id": "!space:x.org"},
            {"type": "m.room_membership", "room_id": "not a room"},
            {"type": "org.example.other", "room_id": "!other:x.org"},
            "junk",
        ],
    }
    assert restricted_allow_rooms(content) == ("!space:x.org",)
    assert restricted_allow_rooms({**content, "join_rule": "knock_restricted"}) == ("!space:x.org",)
    assert restricted_allow_rooms({**content, "join_rule": "public"}) == ()
    assert restricted_allow_rooms({"join_rule": "restricted", "allow": "nope"}) == ()
    assert restricted_allow_rooms(None) == ()


# -- ordering -----------------------------------------------------------------------


def test_ordering_follows_the_spec_example() -> None:
    # The example of "Ordering of children within a space", verbatim.
    events = [
        {
            "type": "m.space.child",
            "state_key": "!b:example.org",
            "origin_server_ts": 1640341000000,
            "content": {"order": " ", "via": ["example.org"]},
        },
        {
            "type": "m.space.child",
            "state_key": "!a:example.org",
            "origin_server_ts": 1640141000000,
            "content": {"order": "aaaa", "via": ["example.org"]},
        },
        {
            "type": "m.space.child",
            "state_key": "!c:example.org",
            "origin_server_ts": 1640841000000,
            "content": {"order": "first", "via": ["example.org"]},
        },
        {
            "type": "m.space.child",
            "state_key": "!e:example.org",
            "origin_server_ts": 1640641000000,
            "content": {"via": ["example.org"]},
        },
        {
            "type": "m.space.child",
            "state_key": "!d:example.org",
            "origin_server_ts": 1640741000000,
            "content": {"via": ["example.org"]},
        },
    ]
    children = [c for c in (parse_space_child(SPACE, e) for e in events) if c is not None]
    assert [c.room_id for c in order_children(children)] == [
        "!b:example.org",
        "!a:example.org",
        "!c:example.org",
        "!e:example.org",
        "!d:example.org",
    ]


def test_ordering_ties_break_on_timestamp_then_room_id() -> None:
    children = [
        link(SPACE, "!z:x.org", order="same", ts=5),
        link(SPACE, "!y:x.org", order="same", ts=1),
        link(SPACE, "!b:x.org", order="same", ts=1),
        link(SPACE, "!n:x.org", ts=3),
        link(SPACE, "!m:x.org", ts=3),
        # An invalid order counts as none.
        SpaceChild(SPACE, "!k:x.org", ("x.org",), valid_order("ünicode"), False, 2),
    ]
    assert [c.room_id for c in order_children(children)] == [
        "!b:x.org",
        "!y:x.org",
        "!z:x.org",
        "!k:x.org",
        "!m:x.org",
        "!n:x.org",
    ]


def test_code_point_order_not_locale_order() -> None:
    children = [
        link(SPACE, "!1:x.org", order="a"),
        link(SPACE, "!2:x.org", order="B"),
        link(SPACE, "!3:x.org", order="~"),
    ]
    assert [c.room_id for c in order_children(children)] == ["!2:x.org", "!1:x.org", "!3:x.org"]


# -- the graph ------------------------------------------------------------------------


def test_nested_spaces_descendants_and_tree() -> None:
    graph = SpaceGraph(
        [
            link("!top:x", "!sub:x", order="2"),
            link("!top:x", "!room1:x", order="1"),
            link("!sub:x", "!room2:x"),
            link("!sub:x", "!subsub:x"),
            link("!subsub:x", "!room3:x"),
        ],
        spaces={"!top:x", "!sub:x", "!subsub:x"},
    )
    assert graph.descendants("!top:x") == [
        "!room1:x",
        "!sub:x",
        "!room2:x",
        "!subsub:x",
        "!room3:x",
    ]
    assert graph.descendants("!top:x", max_depth=1) == ["!room1:x", "!sub:x"]
    assert graph.contains("!top:x", "!room3:x") and not graph.contains("!sub:x", "!room1:x")
    assert graph.parents_of("!room2:x") == {"!sub:x"}
    joined = {"!top:x", "!sub:x", "!subsub:x"}
    assert graph.top_level(joined) == ["!top:x"]
    rows = graph.tree(["!top:x"], include=lambda r: r in joined)
    assert [(r.room_id, r.depth, r.parent) for r in rows] == [
        ("!top:x", 0, None),
        ("!sub:x", 1, "!top:x"),
        ("!subsub:x", 2, "!sub:x"),
    ]


def test_a_space_that_contains_itself() -> None:
    graph = SpaceGraph([link("!s:x", "!s:x"), link("!s:x", "!r:x")], spaces={"!s:x"})
    assert graph.descendants("!s:x") == ["!r:x"]
    assert graph.top_level(["!s:x"]) == ["!s:x"]
    assert [r.room_id for r in graph.tree(["!s:x"])] == ["!s:x", "!r:x"]


def test_loops_between_spaces_end_every_walk() -> None:
    # a -> b -> c -> a, and each holds a room.
    graph = SpaceGraph(
        [
            link("!a:x", "!b:x"),
            link("!b:x", "!c:x"),
            link("!c:x", "!a:x"),
            link("!a:x", "!ra:x"),
            link("!b:x", "!rb:x"),
            link("!c:x", "!rc:x"),
        ],
        spaces={"!a:x", "!b:x", "!c:x"},
    )
    assert set(graph.descendants("!a:x")) == {"!b:x", "!c:x", "!ra:x", "!rb:x", "!rc:x"}
    assert set(graph.descendants("!b:x")) == {"!a:x", "!c:x", "!ra:x", "!rb:x", "!rc:x"}
    # Every space is in another: the lowest room ID becomes the top, so none is lost.
    assert graph.top_level(["!a:x", "!b:x", "!c:x"]) == ["!a:x"]
    rows = graph.tree(["!a:x"])
    assert [r.room_id for r in rows] == ["!a:x", "!b:x", "!c:x", "!rc:x", "!rb:x", "!ra:x"]
    # Two separate loops give two tops.
    other = SpaceGraph(
        [link("!p:x", "!q:x"), link("!q:x", "!p:x"), link("!a:x", "!b:x"), link("!b:x", "!a:x")]
    )
    assert other.top_level(["!q:x", "!p:x", "!b:x", "!a:x"]) == ["!a:x", "!p:x"]


def test_a_room_in_two_spaces_appears_under_both() -> None:
    graph = SpaceGraph([link("!a:x", "!r:x"), link("!b:x", "!r:x"), link("!a:x", "!b:x")])
    assert graph.parents_of("!r:x") == {"!a:x", "!b:x"}
    assert [(r.room_id, r.depth) for r in graph.tree(["!a:x"])] == [
        ("!a:x", 0),
        ("!b:x", 1),
        ("!r:x", 2),
        ("!r:x", 1),
    ]
    assert graph.descendants("!a:x") == ["!b:x", "!r:x"]


def test_parent_claims_need_a_child_link_or_power() -> None:
    claim = SpaceParent("!room:x", "!space:x", ("x",), canonical=True, sender="@mod:x")
    stranger = SpaceParent("!other:x", "!space:x", ("x",), sender="@nobody:x")
    graph = SpaceGraph([], [claim, stranger], trust_parent=lambda p: p.sender == "@mod:x")
    assert graph.parents_of("!room:x") == {"!space:x"}
    assert graph.parents_of("!other:x") == frozenset()
    assert graph.canonical_parent("!room:x") == "!space:x"
    assert graph.descendants("!space:x") == ["!room:x"]
    # Without anyone to vouch for it, a claim alone counts for nothing.
    assert SpaceGraph([], [claim]).parents_of("!room:x") == frozenset()
    # A matching child link is enough.
    assert (
        SpaceGraph([link("!space:x", "!room:x")], [claim]).canonical_parent("!room:x") == "!space:x"
    )


def test_canonical_parent_tiebreak_is_lowest_room_id() -> None:
    claims = [SpaceParent("!r:x", s, ("x",), canonical=True) for s in ("!zz:x", "!aa:x", "!mm:x")]
    graph = SpaceGraph([link(s.space_id, "!r:x") for s in claims], claims)
    assert graph.canonical_parent("!r:x") == "!aa:x"


def test_duplicate_links_keep_the_newest() -> None:
    graph = SpaceGraph(
        [link(SPACE, "!r:x", order="old", ts=1), link(SPACE, "!r:x", order="new", ts=2)]
    )
    assert [c.order for c in graph.children_of(SPACE)] == ["new"]


def test_thousands_of_children() -> None:
    count = 5000
    children = [
        link(SPACE, f"!room{n:05d}:x", order=f"{(n * 7919) % count:05d}", ts=n)
        for n in range(count)
    ]
    graph = SpaceGraph(children, spaces={SPACE})
    descendants = graph.descendants(SPACE)
    rows = graph.tree([SPACE])
    assert len(descendants) == count and len(rows) == count + 1
    orders = [c.order for c in graph.children_of(SPACE)]
    assert orders == sorted(orders)
    assert graph.parents_of("!room04999:x") == {SPACE}


def test_walks_are_bounded() -> None:
    # A long chain of nested spaces: deeper than the recursion limit, and a fan-out.
    depth = sys.getrecursionlimit() + 500
    chain = [link(f"!s{n}:x", f"!s{n + 1}:x") for n in range(depth)]
    graph = SpaceGraph(chain)
    assert len(graph.descendants("!s0:x")) == depth
    assert len(graph.descendants("!s0:x", limit=100)) == 100
    rows = graph.tree(["!s0:x"], max_depth=32)
    assert len(rows) == 33
    wide = SpaceGraph([link(SPACE, f"!r{n}:x") for n in range(MAX_WALK + 10)])
    assert len(wide.tree([SPACE])) == MAX_WALK


# -- hierarchies ------------------------------------------------------------------------


def _hierarchy_example() -> dict[str, Any]:
    spec = load_document(CLIENT_SERVER_API_DIR / "space_hierarchy.yaml")
    response = spec["paths"]["/rooms/{roomId}/hierarchy"]["get"]["responses"]["200"]
    example: dict[str, Any] = response["content"]["application/json"]["examples"]["response"][
        "value"
    ]
    return example


def test_spec_hierarchy_example_parses() -> None:
    page = parse_hierarchy(_hierarchy_example())
    assert page.next_batch == "next_batch_token"
    (room,) = page.rooms
    assert room.info.room_id == "!space:example.org" and room.info.is_space
    assert room.info.name == "The First Space" and room.info.num_joined_members == 42
    assert [c.room_id for c in room.children] == ["!a:example.org"]


def _room(
    room_id: str, *children: dict[str, Any], room_type: str | None = None, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": 1,
        "world_readable": False,
        "guest_can_join": False,
        "children_state": list(children),
        **extra,
    }
    if room_type:
        data["room_type"] = room_type
    return data


def test_hierarchy_rows_depth_first_with_suggested_and_pages() -> None:
    tree = Hierarchy(SPACE)
    tree.add_page(
        parse_hierarchy(
            {
                "rooms": [
                    _room(
                        SPACE,
                        child_event("!sub:x", order="b"),
                        child_event("!general:x", order="a", suggested=True),
                        child_event("!hidden:x", order="c"),
                        room_type="m.space",
                        name="Top",
                    ),
                    _room("!sub:x", child_event("!deep:x"), room_type="m.space", name="Sub"),
                ],
                "next_batch": "t1",
            }
        )
    )
    # Not complete: children not described yet are left out.
    assert [(r.room_id, r.depth) for r in tree.rows()] == [(SPACE, 0), ("!sub:x", 1)]
    fresh = tree.add_page(
        parse_hierarchy(
            {
                "rooms": [
                    _room("!deep:x", name="Deep"),
                    _room("!general:x", name="General", join_rule="public"),
                ]
            }
        )
    )
    assert [r.room_id for r in fresh] == ["!deep:x", "!general:x"]
    assert tree.complete
    rows = tree.rows()
    assert [(r.room_id, r.depth, r.suggested, r.info is not None) for r in rows] == [
        (SPACE, 0, False, True),
        ("!general:x", 1, True, True),
        ("!sub:x", 1, False, True),
        ("!deep:x", 2, False, True),
        # Listed by the space but never described: a room the user may not see yet.
        ("!hidden:x", 1, False, False),
    ]
    assert [r.room_id for r in tree.suggested_rooms()] == ["!general:x"]
    assert tree.spaces_listing("!hidden:x") == [SPACE]
    assert rows[1].via == ("example.org",)


def test_hierarchy_max_depth_does_not_report_undescribed_children_below_it() -> None:
    tree = Hierarchy(SPACE, max_depth=1)
    tree.add_page(
        parse_hierarchy(
            {
                "rooms": [
                    _room(SPACE, child_event("!sub:x"), room_type="m.space"),
                    _room("!sub:x", child_event("!deep:x"), room_type="m.space"),
                ]
            }
        )
    )
    assert [(r.room_id, r.depth) for r in tree.rows()] == [(SPACE, 0), ("!sub:x", 1)]


def test_hierarchy_loops_and_duplicates() -> None:
    tree = Hierarchy("!a:x")
    tree.add_page(
        parse_hierarchy(
            {
                "rooms": [
                    _room(
                        "!a:x",
                        child_event("!b:x"),
                        child_event("!a:x"),
                        child_event("!r:x"),
                        room_type="m.space",
                    ),
                    _room("!b:x", child_event("!a:x"), child_event("!r:x"), room_type="m.space"),
                    _room("!r:x"),
                    _room("!r:x"),  # the same room twice in a page
                    {"room_id": "bogus"},
                    "junk",
                ]
            }
        )
    )
    rows = tree.rows()
    assert [(r.room_id, r.depth) for r in rows] == [
        ("!a:x", 0),
        ("!b:x", 1),
        ("!r:x", 2),
        ("!r:x", 1),
    ]
    assert len({r.key for r in rows}) == len(rows)


def test_hierarchy_with_thousands_of_children_and_malformed_ones() -> None:
    count = 3000
    children = [child_event(f"!r{n}:x", ts=n) for n in range(count)]
    children += [child_event("!nope:x", via=None), {"state_key": 5}, "junk", child_event("nope")]
    rooms = [_room(SPACE, *children, room_type="m.space")] + [
        _room(f"!r{n}:x") for n in range(count)
    ]
    page = parse_hierarchy({"rooms": rooms})
    assert len(page.rooms) == count + 1
    assert len(page.rooms[0].children) == count
    tree = Hierarchy(SPACE)
    tree.add_page(page)
    rows = tree.rows()
    assert len(rows) == count + 1
    assert [r.room_id for r in rows[1:4]] == ["!r0:x", "!r1:x", "!r2:x"]


@pytest.mark.parametrize(
    "data", [None, [], "x", {"rooms": "nope"}, {"rooms": [None, 5]}, {"next_batch": 7}]
)
def test_malformed_hierarchy_answers_are_empty_pages(data: object) -> None:
    page = parse_hierarchy(data)
    assert page.rooms == () and page.next_batch is None
