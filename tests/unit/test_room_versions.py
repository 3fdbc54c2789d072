"""The redaction algorithm of every room version, checked against the spec's own text.

The expected rules are read from ``content/rooms/v<N>.md`` and the fragments it includes
(``content/rooms/fragments/v*-redactions.md``), so a table typed into the code cannot
agree with a table typed into the test by accident.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tui_client.protocol.room_versions import redact, rules_for

ROOMS_DIR = Path("/work/shared/matrix-spec/content/rooms")
VERSIONS = [str(n) for n in range(1, 13)]


@dataclass(frozen=True)
class SpecRules:
    top_level: frozenset[str]
    content: dict[str, frozenset[str]]  # event type -> allowed content keys
    all_content: frozenset[str]  # event types that keep their whole content
    signed_invite: bool  # m.room.member keeps third_party_invite.signed


def _redaction_text(version: str) -> str:
    page = (ROOMS_DIR / f"v{version}.md").read_text(encoding="utf-8")
    included = re.findall(r'rver-fragment name="(v\d+-redactions)"', page)
    if included:
        return (ROOMS_DIR / "fragments" / f"{included[0]}.md").read_text(encoding="utf-8")
    # Version 8 writes its algorithm out in full.
    start = page.index("The full redaction algorithm follows.")
    return page[start : page.index("\n## ", start)]


def spec_rules(version: str) -> SpecRules:
    text = _redaction_text(version)
    head, _, tail = text.partition("The content object")
    top_level = frozenset(re.findall(r"^-\s+`([a-z_]+)`\s*$", head, re.MULTILINE))
    content: dict[str, frozenset[str]] = {}
    all_content: set[str] = set()
    signed_invite = False
    for bullet in re.split(r"\n-\s+", tail)[1:]:
        bullet = " ".join(bullet.split())
        event_type = re.findall(r"`([^`]+)`", bullet)[0]
        rule, _, additionally = bullet.partition("Additionally")
        if "allows all keys" in rule:
            all_content.add(event_type)
            continue
        allows = rule.split("allows", 1)[1]
        content[event_type] = frozenset(re.findall(r"`([^`]+)`", allows))
        if "`signed` key of the `third_party_invite`" in additionally:
            signed_invite = True
    return SpecRules(top_level, content, frozenset(all_content), signed_invite)


def test_the_spec_text_is_parsed() -> None:
    v1, v11 = spec_rules("1"), spec_rules("11")
    assert (
        "membership" in v1.top_level and "prev_state" in v1.top_level and "origin" in v1.top_level
    )
    assert "membership" not in v11.top_level and "origin" not in v11.top_level
    assert len(v1.top_level) == 15 and len(v11.top_level) == 12
    assert v1.content["m.room.create"] == {"creator"}
    assert v1.content["m.room.aliases"] == {"aliases"}
    assert "m.room.aliases" not in spec_rules("6").content
    assert spec_rules("8").content["m.room.join_rules"] == {"join_rule", "allow"}
    assert spec_rules("9").content["m.room.member"] == {
        "membership",
        "join_authorised_via_users_server",
    }
    assert v11.all_content == {"m.room.create"}
    assert "invite" in v11.content["m.room.power_levels"]
    assert v11.content["m.room.redaction"] == {"redacts"}
    assert v11.signed_invite and not spec_rules("10").signed_invite
    assert spec_rules("12") == v11


ALL_TYPES = sorted(
    {t for v in VERSIONS for t in (*spec_rules(v).content, *spec_rules(v).all_content)}
    | {"m.room.message", "m.room.name", "m.reaction", "org.example.custom"}
)
ALL_CONTENT_KEYS = sorted(
    {k for v in VERSIONS for keys in spec_rules(v).content.values() for k in keys}
)
ALL_TOP_LEVEL = sorted({k for v in VERSIONS for k in spec_rules(v).top_level})


def full_event(event_type: str) -> dict[str, object]:
    """An event with every key any version protects, and some no version does."""
    event: dict[str, object] = {key: f"top-{key}" for key in ALL_TOP_LEVEL}
    content: dict[str, object] = {key: {"nested": [key]} for key in ALL_CONTENT_KEYS}
    content["third_party_invite"] = {
        "display_name": "Alice",
        "signed": {"mxid": "@a:x", "token": "t"},
    }
    content["body"] = "secret"
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": "$x"}
    event.update(
        type=event_type,
        content=content,
        redacts="$top-level-redacts",
        unsigned={"age": 5, "transaction_id": "txn", "m.relations": {"secret": True}},
        extra_top_level="gone",
    )
    return event


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_redaction_matches_the_spec(version: str, event_type: str) -> None:
    spec = spec_rules(version)
    event = full_event(event_type)
    original = copy.deepcopy(event)
    because = {"event_id": "$redaction", "type": "m.room.redaction"}
    redacted = redact(event, version, because)
    assert event == original  # the input is not modified

    expected_top = {k for k in event if k in spec.top_level}
    assert set(redacted) == expected_top | {"unsigned"}
    for key in expected_top - {"content"}:
        assert redacted[key] == event[key]

    content = event["content"]
    assert isinstance(content, dict)
    if event_type in spec.all_content:
        expected_content = content
    else:
        allowed = spec.content.get(event_type, frozenset())
        expected_content = {k: v for k, v in content.items() if k in allowed}
        if event_type == "m.room.member" and spec.signed_invite:
            expected_content["third_party_invite"] = {
                "signed": content["third_party_invite"]["signed"]
            }
    assert redacted["content"] == expected_content
    assert redacted["unsigned"] == {"redacted_because": because, "transaction_id": "txn"}


def test_redacted_content_is_a_copy() -> None:
    event = full_event("m.room.power_levels")
    redacted = redact(event, "11")
    redacted["content"]["users"]["nested"].append("changed")
    assert event["content"]["users"] == {"nested": ["users"]}  # type: ignore[index]


@pytest.mark.parametrize(
    ("version", "kept"),
    [
        ("1", {"creator": "@a:x"}),
        ("10", {"creator": "@a:x"}),
        (
            "11",
            {
                "creator": "@a:x",
                "room_version": "11",
                "m.federate": False,
                "predecessor": {"room_id": "!o:x"},
            },
        ),
        (
            "12",
            {
                "creator": "@a:x",
                "room_version": "11",
                "m.federate": False,
                "predecessor": {"room_id": "!o:x"},
            },
        ),
    ],
)
def test_create_keeps_all_content_from_v11(version: str, kept: dict[str, object]) -> None:
    content = {
        "creator": "@a:x",
        "room_version": "11",
        "m.federate": False,
        "predecessor": {"room_id": "!o:x"},
    }
    assert redact({"type": "m.room.create", "content": content}, version)["content"] == kept


@pytest.mark.parametrize(
    ("version", "has_invite"),
    [("1", False), ("6", False), ("10", False), ("11", True), ("12", True)],
)
def test_power_levels_keep_invite_from_v11(version: str, has_invite: bool) -> None:
    content = {"ban": 50, "invite": 0, "notifications": {"room": 50}}
    redacted = redact({"type": "m.room.power_levels", "content": content}, version)["content"]
    assert redacted == ({"ban": 50, "invite": 0} if has_invite else {"ban": 50})


@pytest.mark.parametrize(
    ("version", "keeps"), [("1", False), ("10", False), ("11", True), ("12", True)]
)
def test_redaction_keeps_redacts_from_v11(version: str, keeps: bool) -> None:
    event = {
        "type": "m.room.redaction",
        "redacts": "$t",
        "content": {"redacts": "$t", "reason": "spam"},
    }
    redacted = redact(event, version)
    assert redacted["content"] == ({"redacts": "$t"} if keeps else {})
    assert "redacts" not in redacted  # never protected at the top level


def test_odd_inputs() -> None:
    assert redact({"type": "m.room.message", "content": "nope"}, "11")["content"] == {}
    assert redact({"content": {"a": 1}}, "11") == {"content": {}, "unsigned": {}}
    assert redact(
        {"type": "m.room.member", "content": {"membership": "join", "third_party_invite": "x"}},
        "11",
    )["content"] == {"membership": "join"}


@pytest.mark.parametrize(
    ("version", "same_as"),
    [(None, "1"), ("", "1"), ("org.matrix.hydra.11", "12"), ("13", "12"), ("²", "12"), ("٣", "12")],
)
def test_unknown_versions(version: str | None, same_as: str) -> None:
    rules, reference = rules_for(version), rules_for(same_as)
    assert rules.content_keys == reference.content_keys
    assert rules.top_level_keys == reference.top_level_keys
    assert rules.creators_have_infinite_power == reference.creators_have_infinite_power
