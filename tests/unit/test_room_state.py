"""Room names, member names and power levels, by the spec's rules."""

from __future__ import annotations

import math

import pytest

from tui_client.protocol.room_state import (
    PowerLevels,
    RoomMembers,
    RoomSummary,
    room_display_name,
)
from tui_client.protocol.room_versions import rules_for

ME = "@me:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:example.org"


def summary(
    heroes: list[str] | None = None,
    names: dict[str, str | None] | None = None,
    joined: int = 0,
    invited: int = 0,
    **fields: object,
) -> RoomSummary:
    return RoomSummary(
        "!r:example.org",
        heroes=heroes or [],
        hero_names=names or {},
        joined_count=joined,
        invited_count=invited,
        **fields,  # type: ignore[arg-type]
    )


# -- "Calculating the display name for a room" -----------------------------------------


def test_rule_1_name() -> None:
    room = summary(
        [ALICE], {ALICE: "Alice"}, joined=2, name="Lobby", canonical_alias="#lobby:example.org"
    )
    assert room_display_name(room, ME) == "Lobby"


@pytest.mark.parametrize("empty_name", [None, "", "   ", "\x1b[2J", "\u202e"])
def test_rule_1_empty_name_falls_to_alias(empty_name: str | None) -> None:
    room = summary(
        [ALICE], {ALICE: "Alice"}, joined=2, name=empty_name, canonical_alias="#lobby:example.org"
    )
    assert room_display_name(room, ME) == "#lobby:example.org"


def test_rule_2_alias_must_be_valid() -> None:
    room = summary([ALICE], {ALICE: "Alice"}, joined=2, canonical_alias="not an alias")
    assert room_display_name(room, ME) == "Alice"


def test_name_is_sanitised_to_one_line() -> None:
    room = summary(name="Evil\x1b]0;title\x07\nRoom\u202e")
    assert room_display_name(room, ME) == "Evil Room"


@pytest.mark.parametrize(
    ("heroes", "joined", "invited", "expected"),
    [
        ([ALICE], 2, 0, "Alice"),
        ([ALICE, BOB], 3, 0, "Alice and Bob"),
        ([ALICE, BOB], 2, 1, "Alice and Bob"),  # invited members count too
        ([ALICE, BOB, CAROL], 4, 0, "Alice, Bob and Carol"),
        # Fewer heroes than other members: "and N others".
        ([ALICE], 3, 0, "Alice and 1 other"),
        ([ALICE, BOB], 1236, 0, "Alice, Bob and 1233 others"),
        # More heroes than other members (stale counts): the heroes alone.
        ([ALICE, BOB], 2, 0, "Alice and Bob"),
    ],
)
def test_rule_3_heroes(heroes: list[str], joined: int, invited: int, expected: str) -> None:
    names = {ALICE: "Alice", BOB: "Bob", CAROL: "Carol"}
    assert room_display_name(summary(heroes, names, joined, invited), ME) == expected


def test_rule_3_at_most_five_heroes_and_the_rest_counted() -> None:
    heroes = [f"@u{n}:example.org" for n in range(7)]
    names = {h: f"User {n}" for n, h in enumerate(heroes)}
    assert (
        room_display_name(summary(heroes, names, joined=8), ME)
        == "User 0, User 1, User 2, User 3, User 4 and 2 others"
    )
    assert (
        room_display_name(summary(heroes[:5], names, joined=6), ME)
        == "User 0, User 1, User 2, User 3 and User 4"
    )
    assert (
        room_display_name(summary(heroes[:5], names, joined=20), ME)
        == "User 0, User 1, User 2, User 3, User 4 and 14 others"
    )


def test_rule_3_heroes_without_display_name_use_their_id_and_own_user_is_skipped() -> None:
    room = summary([ME, ALICE, BOB], {ALICE: None}, joined=3)
    assert room_display_name(room, ME) == f"{ALICE} and {BOB}"


def test_rule_3_duplicate_hero_names_are_disambiguated() -> None:
    room = summary([ALICE, BOB, CAROL], {ALICE: "Sam", BOB: "Sam", CAROL: "Carol"}, joined=4)
    assert room_display_name(room, ME) == f"Sam ({ALICE}), Sam ({BOB}) and Carol"


def test_rule_3_hero_name_that_looks_like_a_user_id_is_disambiguated() -> None:
    room = summary([BOB], {BOB: ALICE}, joined=2)
    assert room_display_name(room, ME) == f"{ALICE} ({BOB})"


def test_rule_3_hero_names_are_sanitised() -> None:
    room = summary([ALICE], {ALICE: "Al\x1b[31mice\nX"}, joined=2)
    assert room_display_name(room, ME) == "Alice X"


@pytest.mark.parametrize(
    ("heroes", "joined", "invited", "expected"),
    [
        ([], 1, 0, "Empty Room"),
        ([], 0, 0, "Empty Room"),
        ([ME], 1, 0, "Empty Room"),
        ([ALICE], 1, 0, "Empty Room (was Alice)"),
        ([ALICE, BOB], 1, 0, "Empty Room (was Alice and Bob)"),
        ([ALICE, BOB], 0, 1, "Empty Room (was Alice and Bob)"),
        (
            [f"@u{n}:x.org" for n in range(7)],
            1,
            0,
            "Empty Room (was @u0:x.org, @u1:x.org, @u2:x.org, @u3:x.org, @u4:x.org and 2 others)",
        ),
    ],
)
def test_rule_3_empty_room(heroes: list[str], joined: int, invited: int, expected: str) -> None:
    names = {ALICE: "Alice", BOB: "Bob"}
    assert room_display_name(summary(heroes, names, joined, invited), ME) == expected


def test_no_heroes_but_other_members() -> None:
    assert room_display_name(summary([], joined=2), ME) == "1 other member"
    assert room_display_name(summary([], joined=5), ME) == "4 other members"


def test_summary_apply_state_and_recompute_name() -> None:
    room = RoomSummary("!r:example.org", heroes=[ALICE], joined_count=2)
    assert room.recompute_name(ME) and room.display_name == ALICE
    assert room.apply_state(
        "m.room.member", ALICE, {"membership": "join", "displayname": "Alice"}, ALICE
    )
    assert not room.apply_state(
        "m.room.member", ALICE, {"membership": "join", "displayname": "Alice"}, ALICE
    )
    assert room.recompute_name(ME) and room.display_name == "Alice"
    assert not room.recompute_name(ME)
    assert room.apply_state("m.room.canonical_alias", "", {"alias": "#a:example.org"}, ALICE)
    room.recompute_name(ME)
    assert room.display_name == "#a:example.org"
    assert room.apply_state("m.room.name", "", {"name": "Named"}, ALICE)
    room.recompute_name(ME)
    assert room.display_name == "Named"
    assert room.apply_state("m.room.name", "", {}, ALICE)  # name removed
    room.recompute_name(ME)
    assert room.display_name == "#a:example.org"
    assert not room.apply_state("m.room.name", "not-empty", {"name": "x"}, ALICE)  # wrong state key
    assert room.apply_state("m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"}, ALICE)
    assert not room.apply_state("m.room.encryption", "", {}, ALICE) and room.encrypted
    assert room.apply_state(
        "m.room.create",
        "",
        {"type": "m.space", "room_version": "12", "additional_creators": [BOB, 5]},
        ALICE,
    )
    assert room.is_space and room.room_version == "12" and room.creators == [ALICE, BOB]
    copy = room.copy()
    copy.heroes.append(BOB)
    assert room.heroes == [ALICE]


# -- member names ----------------------------------------------------------------------


def join(name: str | None = None) -> dict[str, object]:
    content: dict[str, object] = {"membership": "join"}
    if name is not None:
        content["displayname"] = name
    return content


def test_member_without_display_name_uses_user_id() -> None:
    members = RoomMembers()
    members.update(ALICE, join())
    members.update(BOB, {"membership": "join", "displayname": None})
    members.update(CAROL, join(""))
    assert members.display_name(ALICE) == ALICE
    assert members.display_name(BOB) == BOB
    assert members.display_name(CAROL) == CAROL
    assert members.display_name("@stranger:example.org") == "@stranger:example.org"


def test_unique_name_is_used_as_is() -> None:
    members = RoomMembers()
    members.update(ALICE, join("Alice"))
    assert members.display_name(ALICE) == "Alice"


def test_clash_renames_both_and_unclash_restores_both() -> None:
    members = RoomMembers()
    members.update(ALICE, join("Alice"))
    members.update(BOB, join("Alice"))  # a second "Alice" joins: both disambiguated
    assert members.display_name(ALICE) == f"Alice ({ALICE})"
    assert members.display_name(BOB) == f"Alice ({BOB})"
    members.update(BOB, join("Bob"))  # the clash goes away: both plain again
    assert members.display_name(ALICE) == "Alice"
    assert members.display_name(BOB) == "Bob"
    members.update(CAROL, {"membership": "invite", "displayname": "Alice"})  # invited members count
    assert members.display_name(ALICE) == f"Alice ({ALICE})"
    members.update(CAROL, {"membership": "leave", "displayname": "Alice"})  # left members do not
    assert members.display_name(ALICE) == "Alice"
    members.update(CAROL, {"membership": "ban", "displayname": "Alice"})
    assert members.display_name(ALICE) == "Alice"
    # The one who left, if shown (old messages), is still told apart from the member.
    assert members.display_name(CAROL) == f"Alice ({CAROL})"


def test_display_name_that_looks_like_a_user_id_is_disambiguated() -> None:
    members = RoomMembers()
    members.update(BOB, join(ALICE))
    assert members.display_name(BOB) == f"{ALICE} ({BOB})"
    members.update(CAROL, join("@ not really"))
    assert members.display_name(CAROL) == "@ not really"


def test_member_names_are_sanitised() -> None:
    members = RoomMembers()
    members.update(ALICE, join("Al\x1b[8mice\u202e\nthe great"))
    assert members.display_name(ALICE) == "Alice the great"


def test_member_lists() -> None:
    members = RoomMembers()
    members.update(BOB, join("bob"))
    members.update(ALICE, join("Alice"))
    members.update(CAROL, {"membership": "invite"})
    members.update("@dan:example.org", {"membership": "leave"})
    members.update("@eve:example.org", {"membership": 5})  # nonsense: treated as left
    assert [m.user_id for m in members.joined()] == [ALICE, BOB]
    assert [m.user_id for m in members.invited()] == [CAROL]
    assert len(members) == 5 and ALICE in members and "@zed:x" not in members
    eve = members.get("@eve:example.org")
    assert eve is not None and eve.membership == "leave"
    assert {m.user_id for m in members.all()} == {
        ALICE,
        BOB,
        CAROL,
        "@dan:example.org",
        "@eve:example.org",
    }


# -- power levels ----------------------------------------------------------------------


def test_defaults_without_a_power_levels_event() -> None:
    levels = PowerLevels(None, creators=[ALICE])
    assert levels.user_level(ALICE) == 100
    assert levels.user_level(BOB) == 0
    assert levels.event_level("m.room.name", is_state=True) == 0
    assert levels.event_level("m.room.message", is_state=False) == 0
    assert levels.required("invite") == 0
    assert (levels.required("kick"), levels.required("ban"), levels.required("redact")) == (
        50,
        50,
        50,
    )
    assert levels.can_send(BOB, "m.room.topic", is_state=True)


def test_defaults_with_an_empty_power_levels_event() -> None:
    levels = PowerLevels({}, creators=[ALICE])
    assert levels.user_level(ALICE) == 0  # the event's users map rules now
    assert levels.event_level("m.room.name", is_state=True) == 50
    assert levels.event_level("m.room.message", is_state=False) == 0
    assert levels.required("invite") == 0
    assert not levels.can_send(BOB, "m.room.name", is_state=True)


SPEC_EXAMPLE_LEVELS = {
    "ban": 50,
    "events": {"m.room.name": 100, "m.room.power_levels": 100},
    "events_default": 0,
    "invite": 50,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@example:localhost": 100},
    "users_default": 0,
}


def test_levels_from_the_spec_example() -> None:
    levels = PowerLevels(SPEC_EXAMPLE_LEVELS)
    admin = "@example:localhost"
    assert levels.user_level(admin) == 100 and levels.user_level(ALICE) == 0
    assert levels.can_send(admin, "m.room.name", is_state=True)
    assert not levels.can_send(ALICE, "m.room.name", is_state=True)
    assert levels.can_send(ALICE, "m.room.message")
    assert levels.event_level("m.room.topic", is_state=True) == 50
    assert levels.can(admin, "invite") and not levels.can(ALICE, "invite")


def test_string_levels_from_old_room_versions() -> None:
    levels = PowerLevels(
        {
            "users": {ALICE: "75", BOB: " 20 ", CAROL: "lots"},
            "users_default": "10",
            "kick": "60",
            "ban": True,
            "events": {"m.room.topic": "25"},
            "state_default": [],
        }
    )
    assert levels.user_level(ALICE) == 75
    assert levels.user_level(BOB) == 20
    assert levels.user_level(CAROL) == 0  # unparseable: the default for a listed user
    assert levels.user_level("@dan:example.org") == 10
    assert levels.required("kick") == 60
    assert levels.required("ban") == 50  # a boolean is not a level
    assert levels.event_level("m.room.topic", is_state=True) == 25
    assert levels.event_level("m.room.name", is_state=True) == 50


def test_can_act_on_needs_a_strictly_higher_level() -> None:
    levels = PowerLevels({"users": {ALICE: 100, BOB: 50, CAROL: 50}, "kick": 50, "ban": 60})
    assert levels.can_act_on(ALICE, BOB, "kick")
    assert not levels.can_act_on(BOB, CAROL, "kick")  # equal level
    assert not levels.can_act_on(BOB, ALICE, "kick")
    assert not levels.can_act_on(BOB, "@nobody:example.org", "ban")  # 50 < ban level 60
    assert levels.can_act_on(BOB, "@nobody:example.org", "kick")


def test_v12_creators_have_infinite_power() -> None:
    rules = rules_for("12")
    assert rules.creators_have_infinite_power and not rules.room_id_has_domain
    assert not rules_for("11").creators_have_infinite_power
    levels = PowerLevels(
        {"users": {ALICE: 0, BOB: 100}, "kick": 50},
        creators=[ALICE, CAROL],
        creators_have_infinite_power=rules.creators_have_infinite_power,
    )
    assert levels.user_level(ALICE) == math.inf  # the users map cannot lower a creator
    assert levels.can_act_on(ALICE, BOB, "kick")
    assert not levels.can_act_on(BOB, ALICE, "kick")  # 100 is not above a creator
    assert not levels.can_act_on(ALICE, CAROL, "ban")  # creators cannot remove each other
    assert levels.can_send(ALICE, "m.room.power_levels", is_state=True)
    old = PowerLevels({"users": {ALICE: 0}}, creators=[ALICE], creators_have_infinite_power=False)
    assert old.user_level(ALICE) == 0
