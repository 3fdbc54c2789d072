"""Push rule evaluation against the spec: its default rules, its examples, and edge cases."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tui_client.protocol.push_rules import (
    DEFAULT_RULES,
    LEVEL_ALL,
    LEVEL_MENTIONS,
    LEVEL_MUTE,
    PushActions,
    PushContext,
    PushRuleSet,
    glob_matches,
    level_changes,
    lookup_path,
    split_path,
)
from tui_client.protocol.room_state import PowerLevels

from .spec_examples import SPEC_ROOT, load_example

PUSH_MD = SPEC_ROOT / "content" / "client-server-api" / "modules" / "push.md"
ME = "@alice:example.org"
ROOM = "!room:example.org"
LEGACY = {".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.contains_user_name"}


def spec_default_rules() -> dict[str, list[dict[str, Any]]]:
    """The ``Definition:`` JSON blocks of push.md's predefined rules, per kind, in order."""
    text = PUSH_MD.read_text(encoding="utf-8")
    override = text.split("##### Default Override Rules", 1)[1].split(
        "##### Default Underride Rules", 1
    )[0]
    underride = text.split("##### Default Underride Rules", 1)[1].split("#### Push Rules: API", 1)[
        0
    ]

    def blocks(section: str) -> list[dict[str, Any]]:
        return [
            json.loads(b)
            for b in re.findall(r"Definition:\s*```json\n(.*?)```", section, re.DOTALL)
        ]

    return {"override": blocks(override), "underride": blocks(underride)}


def message(body: str, sender: str = "@bob:example.org", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": sender,
        "room_id": ROOM,
        "event_id": "$e",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def context(**options: Any) -> PushContext:
    options.setdefault("member_count", 5)
    return PushContext(ME, **options)


DEFAULTS = PushRuleSet.from_account_data(None, ME)


# -- the spec's default rules -------------------------------------------------------


def test_default_rules_are_the_specs_in_its_order() -> None:
    spec = spec_default_rules()
    assert len(spec["override"]) == 10 and len(spec["underride"]) == 5
    for kind in ("override", "underride"):
        ours = [r for r in DEFAULT_RULES[kind] if r["rule_id"] not in LEGACY]
        assert ours == spec[kind], kind


def test_rule_order_master_first_then_user_rules_before_defaults() -> None:
    content = {
        "global": {
            "override": [{"rule_id": "mine", "conditions": [], "actions": [], "enabled": True}],
            "underride": [{"rule_id": "later", "conditions": [], "actions": ["notify"]}],
        }
    }
    rules = PushRuleSet.from_account_data(content, ME).rules
    ids = [(r.kind, r.rule_id) for r in rules]
    assert ids[0] == ("override", ".m.rule.master")
    assert ids[1] == ("override", "mine")
    assert ids.index(("override", ".m.rule.suppress_edits")) < ids.index(
        ("content", ".m.rule.contains_user_name")
    )
    assert ids.index(("underride", "later")) < ids.index(("underride", ".m.rule.call"))
    assert ids[-1] == ("underride", ".m.rule.encrypted")


def test_spec_m_push_rules_example_is_read() -> None:
    example = load_example("m.push_rules.yaml")
    rules = PushRuleSet.from_account_data(example["content"], "@alice:example.com")
    # The example's server rules replace ours (its .m.rule.call is not highlighted, its
    # master is disabled); the defaults it leaves out are still there.
    call = rules.find("underride", ".m.rule.call")
    assert call is not None and call.actions[-1] == {"set_tweak": "highlight", "value": False}
    assert rules.find("override", ".m.rule.tombstone") is not None
    mention = message("hi", **{"m.mentions": {"user_ids": ["@alice:example.com"]}})
    actions = rules.evaluate(mention, PushContext("@alice:example.com", member_count=5))
    assert actions.notify and actions.highlight and actions.sound == "default"


def test_server_rules_override_defaults_and_unknown_ones_keep_their_place() -> None:
    content = {
        "global": {
            "override": [
                {
                    "rule_id": ".m.rule.master",
                    "default": True,
                    "enabled": True,
                    "conditions": [],
                    "actions": [],
                },
                {
                    "rule_id": ".m.rule.suppress_notices",
                    "default": True,
                    "enabled": False,
                    "conditions": [],
                    "actions": [],
                },
                {
                    "rule_id": ".org.example.rule",
                    "default": True,
                    "enabled": True,
                    "conditions": [],
                    "actions": [],
                },
            ]
        }
    }
    rules = PushRuleSet.from_account_data(content, ME)
    ids = [r.rule_id for r in rules.of_kind("override")]
    assert ids.index(".org.example.rule") == ids.index(".m.rule.suppress_notices") + 1
    # master enabled: nothing notifies
    assert rules.evaluate(message("hi"), context()) == PushActions(
        rule_id=".m.rule.master", kind="override"
    )


# -- what the defaults do -------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "count", "expected"),
    [
        (message("hello"), 5, (True, False, None, ".m.rule.message")),
        (message("hello"), 2, (True, False, "default", ".m.rule.room_one_to_one")),
        (message("hello", msgtype="m.notice"), 2, (False, False, None, ".m.rule.suppress_notices")),
        (
            message("hi", **{"m.mentions": {"user_ids": [ME]}}),
            5,
            (True, True, "default", ".m.rule.is_user_mention"),
        ),
        (
            message("hi", **{"m.mentions": {"user_ids": ["@carol:example.org"]}}),
            5,
            (True, False, None, ".m.rule.message"),
        ),
        (
            {
                **message("* fixed"),
                "content": {
                    "body": "* hi",
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
                },
            },
            5,
            (False, False, None, ".m.rule.suppress_edits"),
        ),
        (
            {"type": "m.reaction", "sender": "@bob:example.org", "content": {}},
            2,
            (False, False, None, ".m.rule.reaction"),
        ),
        (
            {
                "type": "m.room.member",
                "state_key": ME,
                "sender": "@bob:example.org",
                "content": {"membership": "invite"},
            },
            5,
            (True, False, "default", ".m.rule.invite_for_me"),
        ),
        (
            {
                "type": "m.room.member",
                "state_key": "@carol:example.org",
                "sender": "@bob:example.org",
                "content": {"membership": "join"},
            },
            2,
            (False, False, None, ".m.rule.member_event"),
        ),
        (
            {
                "type": "m.room.tombstone",
                "state_key": "",
                "sender": "@bob:example.org",
                "content": {"replacement_room": "!n:x"},
            },
            5,
            (True, True, None, ".m.rule.tombstone"),
        ),
        (
            {
                "type": "m.room.tombstone",
                "state_key": "x",
                "sender": "@bob:example.org",
                "content": {},
            },
            5,
            (False, False, None, None),
        ),
        (
            {
                "type": "m.room.server_acl",
                "state_key": "",
                "sender": "@bob:example.org",
                "content": {},
            },
            5,
            (False, False, None, ".m.rule.room.server_acl"),
        ),
        (
            {"type": "m.call.invite", "sender": "@bob:example.org", "content": {}},
            5,
            (True, False, "ring", ".m.rule.call"),
        ),
        (
            {"type": "m.room.encrypted", "sender": "@bob:example.org", "content": {}},
            2,
            (True, False, "default", ".m.rule.encrypted_room_one_to_one"),
        ),
        (
            {"type": "m.room.encrypted", "sender": "@bob:example.org", "content": {}},
            3,
            (True, False, None, ".m.rule.encrypted"),
        ),
        # legacy: our localpart as a word in the body
        (message("alice: lunch?"), 5, (True, True, "default", ".m.rule.contains_user_name")),
        # ... but not when the message says whom it mentions
        (message("alice: lunch?", **{"m.mentions": {}}), 5, (True, False, None, ".m.rule.message")),
        (message("malice aforethought"), 5, (True, False, None, ".m.rule.message")),
    ],
)
def test_default_outcomes(event: dict[str, Any], count: int, expected: tuple[Any, ...]) -> None:
    actions = DEFAULTS.evaluate(event, context(member_count=count))
    assert (actions.notify, actions.highlight, actions.sound, actions.rule_id) == expected


def test_own_events_never_notify() -> None:
    assert (
        DEFAULTS.evaluate(
            message("alice", sender=ME, **{"m.mentions": {"user_ids": [ME]}}), context()
        ).notify
        is False
    )


def test_room_mention_needs_the_senders_power() -> None:
    event = message("@room lunch", **{"m.mentions": {"room": True}})
    levels = PowerLevels(
        {"users": {"@bob:example.org": 50, "@eve:example.org": 10}, "notifications": {"room": 20}}
    )
    assert (
        DEFAULTS.evaluate(event, context(power_levels=levels)).rule_id == ".m.rule.is_room_mention"
    )
    assert DEFAULTS.evaluate(event, context(power_levels=levels)).highlight
    low = {**event, "sender": "@eve:example.org"}
    assert DEFAULTS.evaluate(low, context(power_levels=levels)).rule_id == ".m.rule.message"
    # default required level 50; string levels of old rooms accepted
    levels = PowerLevels({"users": {"@bob:example.org": "50"}})
    assert DEFAULTS.evaluate(event, context(power_levels=levels)).highlight
    levels = PowerLevels({"users": {"@bob:example.org": 49}})
    assert not DEFAULTS.evaluate(event, context(power_levels=levels)).highlight
    # no power levels known: never
    assert not DEFAULTS.evaluate(event, context()).highlight
    # legacy @room in the body (no m.mentions)
    levels = PowerLevels({"users": {"@bob:example.org": 100}})
    assert (
        DEFAULTS.evaluate(message("hey @room!"), context(power_levels=levels)).rule_id
        == ".m.rule.roomnotif"
    )
    assert (
        DEFAULTS.evaluate(message("hey@room"), context(power_levels=levels)).rule_id
        == ".m.rule.message"
    )


@pytest.mark.parametrize(
    ("body", "name", "highlight"),
    [
        ("Mad Hatter, tea?", "Mad Hatter", True),
        ("tea, mad hatter?", "Mad Hatter", True),
        ("MAD HATTER", "Mad Hatter", True),
        ("Mad Hatters tea", "Mad Hatter", False),
        ("_Mad Hatter", "Mad Hatter", False),
        ("Mad Hatter2", "Mad Hatter", False),
        ("(Mad Hatter)", "Mad Hatter", True),
        ("Mad  Hatter", "Mad Hatter", False),
        ("ask Dr. A.", "Dr. A.", True),
        ("ask Dr. A. now", "Dr. A.", True),
        ("ask Dr. A.x", "Dr. A.", False),  # the character after the name must be a boundary
        ("ask Dr. Ab", "dr. a*", False),  # a display name is literal, not a glob
        ("nothing", "", False),
    ],
)
def test_display_name_word_boundaries(body: str, name: str, highlight: bool) -> None:
    actions = DEFAULTS.evaluate(message(body), context(display_name=name))
    assert actions.highlight is highlight
    assert (actions.rule_id == ".m.rule.contains_display_name") is highlight


# -- conditions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        # the spec's example: content.topic with lunc?*
        ("lunc?*", "Lunch plans", True),
        ("lunc?*", "LUNCH", True),
        ("lunc?*", " lunch", False),
        ("lunc?*", "lunc", False),
        ("*", "", True),
        ("?", "", False),
        ("?", "é", True),
        ("a*b", "ab", True),
        ("a*b", "a\nb", True),
        ("a*b", "abc", False),
        ("a**b", "axxb", True),
        ("a.b", "axb", False),
        ("[ab]", "a", False),
        ("[ab]", "[AB]", True),
        ("(x|y)+", "(x|y)+", True),
        ("m.room.*", "m.room.message", True),
        ("m.room.*", "m.roomy", False),
        ("ÉCOLE", "école", True),
    ],
)
def test_glob_whole_value(pattern: str, value: str, matches: bool) -> None:
    assert glob_matches(pattern, value) is matches


@pytest.mark.parametrize(
    ("pattern", "body", "matches"),
    [
        # the spec's example: content.body with ex*ple
        ("ex*ple", "An example event.", True),
        ("ex*ple", "exple", True),
        ("ex*ple", "An exciting triple-whammy", True),
        ("ex*ple", "An examples event", False),
        ("cake", "I like cake", True),
        ("cake", "I like cakes", False),
        ("cake", "cupcake", False),
        ("cake", "cake_walk", False),
        ("cake", "cake-walk", True),
        ("cake", "CAKE!", True),
        ("cake*lie", "the cake is a lie", True),
        ("cake*lie", "the cake is a liar", False),
        ("c?ke", "coke", True),
        ("c?ke", "cke", False),
    ],
)
def test_glob_body_word_boundaries(pattern: str, body: str, matches: bool) -> None:
    assert glob_matches(pattern, body, word_boundary=True) is matches
    rule = {"kind": "event_match", "key": "content.body", "pattern": pattern}
    rules = PushRuleSet.from_account_data(
        {"global": {"override": [{"rule_id": "x", "conditions": [rule], "actions": ["notify"]}]}},
        ME,
    )
    assert (rules.evaluate(message(body), context()).rule_id == "x") is matches


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("content.body", ("content", "body")),
        ("content.m\\.relates_to.rel_type", ("content", "m.relates_to", "rel_type")),
        ("content.m\\\\foo", ("content", "m\\foo")),
        ("content.m\\\\.foo", ("content", "m\\", "foo")),
        ("content.m\\x", ("content", "m\\x")),
        ("content.", ("content", "")),
        ("a\\", ("a\\",)),
    ],
)
def test_dotted_paths(path: str, parts: tuple[str, ...]) -> None:
    assert split_path(path) == parts


def condition_rule_set(*conditions: dict[str, Any]) -> PushRuleSet:
    return PushRuleSet.from_account_data(
        {
            "global": {
                "override": [
                    {"rule_id": "x", "conditions": list(conditions), "actions": ["notify"]}
                ]
            }
        },
        ME,
    )


def matches(event: dict[str, Any], *conditions: dict[str, Any], **options: Any) -> bool:
    return condition_rule_set(*conditions).evaluate(event, context(**options)).rule_id == "x"


def test_event_property_is_spec_example() -> None:
    create = {
        "type": "m.room.create",
        "sender": "@bob:x",
        "state_key": "",
        "content": {"m.federate": True, "room_version": "1"},
    }
    cond = {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    assert matches(create, cond)
    for value in ("true", 1):
        assert not matches({**create, "content": {"m.federate": value}}, cond)
    # without the escape the path looks for content.m.federate
    assert not matches(create, {**cond, "key": "content.m.federate"})
    assert matches(
        {**create, "content": {"m": {"federate": True}}}, {**cond, "key": "content.m.federate"}
    )
    assert matches(
        {**create, "content": {"n": None}},
        {"kind": "event_property_is", "key": "content.n", "value": None},
    )
    assert not matches(create, {"kind": "event_property_is", "key": "content.n", "value": None})
    assert not matches(
        {**create, "content": {"n": 1}},
        {"kind": "event_property_is", "key": "content.n", "value": True},
    )
    assert not matches(
        {**create, "content": {"n": [1]}},
        {"kind": "event_property_is", "key": "content.n", "value": [1]},
    )
    assert not matches(
        {**create, "content": {"n": 2**53}},
        {"kind": "event_property_is", "key": "content.n", "value": 2**53},
    )
    backslash = {**create, "content": {"m\\foo": "x"}}
    assert matches(
        backslash, {"kind": "event_property_is", "key": "content.m\\\\foo", "value": "x"}
    )


def test_event_property_contains_spec_example() -> None:
    event = {
        "type": "m.room.canonical_alias",
        "sender": "@b:x",
        "content": {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com"]},
    }
    cond = {
        "kind": "event_property_contains",
        "key": "content.alt_aliases",
        "value": "#myroom:example.com",
    }
    assert matches(event, cond)
    assert not matches(event, {**cond, "value": ":example.com"})
    assert not matches({**event, "content": {"alt_aliases": "#myroom:example.com"}}, cond)
    assert matches(
        {**event, "content": {"alt_aliases": [{"x": 1}, True, "#myroom:example.com"]}}, cond
    )
    assert not matches({**event, "content": {"alt_aliases": [1]}}, {**cond, "value": True})


def test_event_match_needs_a_string() -> None:
    star = {"kind": "event_match", "key": "content.topic", "pattern": "*"}
    assert matches({"type": "m.room.topic", "sender": "@b:x", "content": {"topic": ""}}, star)
    assert not matches({"type": "m.room.topic", "sender": "@b:x", "content": {"topic": None}}, star)
    assert not matches({"type": "m.room.topic", "sender": "@b:x", "content": {}}, star)
    assert not matches({"type": "m.room.topic", "sender": "@b:x", "content": {"topic": 5}}, star)


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<10", 9, True),
        ("<10", 10, False),
        (">10", 11, True),
        (">10", 10, False),
        ("<=10", 10, True),
        ("<=10", 11, False),
        (">=10", 10, True),
        (">=10", 9, False),
        ("=2", 2, False),
        ("!=2", 3, False),
        ("two", 2, False),
        ("", 0, False),
        (" 2", 2, False),
        (2, 2, False),
    ],
)
def test_room_member_count(spec: Any, count: int, expected: bool) -> None:
    event = message("x")
    assert matches(event, {"kind": "room_member_count", "is": spec}, member_count=count) is expected


def test_unknown_or_malformed_conditions_never_match() -> None:
    event = message("x")
    assert not matches(event, {"kind": "org.example.future"})
    assert not matches(event, {"kind": "event_match", "key": "type"})
    assert not matches(event, {"kind": "event_match", "pattern": "*"})
    assert not matches(event, {})
    assert matches(event)  # no conditions: always


def test_disabled_rules_never_match_and_historical_actions_are_ignored() -> None:
    content = {
        "global": {
            "override": [
                {"rule_id": "off", "enabled": False, "conditions": [], "actions": ["notify"]},
                {"rule_id": "old", "conditions": [], "actions": ["dont_notify", "coalesce"]},
            ]
        }
    }
    actions = PushRuleSet.from_account_data(content, ME).evaluate(message("x"), context())
    assert actions == PushActions(rule_id="old", kind="override")
    assert (
        PushActions.from_actions(["notify", {"set_tweak": "highlight", "value": "yes"}]).highlight
        is False
    )


# -- the spec's API examples as rules --------------------------------------------------


def spec_example_rules() -> PushRuleSet:
    return PushRuleSet.from_account_data(
        {
            "global": {
                "override": [
                    {
                        "rule_id": "U2VlIHlvdSBpbiBUaGUgRHVrZQ",
                        "conditions": [
                            {"kind": "event_match", "key": "content.body", "pattern": "beer"},
                            {"kind": "room_member_count", "is": "<=10"},
                        ],
                        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}],
                    }
                ],
                "content": [
                    {
                        "rule_id": "U3BvbmdlIGNha2UgaXMgYmVzdA",
                        "pattern": "cake*lie",
                        "actions": ["notify"],
                    },
                    {
                        "rule_id": "SSByZWFsbHkgbGlrZSBjYWtl",
                        "pattern": "cake",
                        "actions": ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}],
                    },
                ],
                "room": [{"rule_id": "!dj234r78wl45Gh4D:matrix.org", "actions": []}],
                "sender": [{"rule_id": "@spambot:matrix.org", "actions": []}],
            }
        },
        ME,
    )


def test_spec_api_examples() -> None:
    rules = spec_example_rules()
    assert rules.evaluate(message("time for cake"), context()).sound == "cakealarm.wav"
    assert rules.evaluate(message("the cake is a lie"), context()).sound is None
    assert rules.evaluate(message("beer?"), context(member_count=10)).sound == "beeroclock.wav"
    assert rules.evaluate(message("beer?"), context(member_count=11)).rule_id == ".m.rule.message"
    quiet_room = {**message("hello"), "room_id": "!dj234r78wl45Gh4D:matrix.org"}
    assert not rules.evaluate(quiet_room, context()).notify
    assert not rules.evaluate(message("hello", sender="@spambot:matrix.org"), context()).notify
    # content rules come before room rules: a keyword still notifies in a quiet room
    assert rules.evaluate({**quiet_room, "content": {"body": "cake"}}, context()).notify


# -- per-room levels and keywords (Element's shapes) -----------------------------------


def apply(changes: Any, content: dict[str, Any]) -> dict[str, Any]:
    """What the server would store after ``level_changes``."""
    scope = content.setdefault("global", {})
    for method, kind, rule_id, body in changes:
        rules = [r for r in scope.get(kind, []) if r["rule_id"] != rule_id]
        if method == "PUT":
            rules.insert(0, {"rule_id": rule_id, "default": False, "enabled": True, **body})
        scope[kind] = rules
    return content


def test_room_levels_round_trip() -> None:
    content: dict[str, Any] = {}
    mention = message("hi", **{"m.mentions": {"user_ids": [ME]}})
    for level, plain, mentioned in (
        (LEVEL_MENTIONS, False, True),
        (LEVEL_MUTE, False, False),
        (LEVEL_ALL, True, True),
    ):
        content = apply(level_changes(ROOM, level), content)
        rules = PushRuleSet.from_account_data(content, ME)
        assert rules.room_level(ROOM) == level
        assert rules.room_level("!other:example.org") == LEVEL_ALL
        assert rules.evaluate(message("hello"), context()).notify is plain
        assert rules.evaluate(mention, context()).highlight is mentioned
    # Element's older mute (dont_notify) reads as mute too
    old = {
        "global": {
            "override": [
                {
                    "rule_id": ROOM,
                    "conditions": [{"kind": "event_match", "key": "room_id", "pattern": ROOM}],
                    "actions": ["dont_notify"],
                }
            ]
        }
    }
    assert PushRuleSet.from_account_data(old, ME).room_level(ROOM) == LEVEL_MUTE
    loud = {
        "global": {
            "room": [
                {"rule_id": ROOM, "actions": ["notify", {"set_tweak": "sound", "value": "default"}]}
            ]
        }
    }
    assert PushRuleSet.from_account_data(loud, ME).room_level(ROOM) == LEVEL_ALL


def test_lookup_path_absent_and_present() -> None:
    event = {"content": {"a": {"b": 1}}}
    assert lookup_path(event, "content.a.b") == 1
    assert lookup_path(event, "content.a.c") is lookup_path(event, "content.x.y")
    assert lookup_path(event, "content.a.b.c") is lookup_path(event, "nothing")
