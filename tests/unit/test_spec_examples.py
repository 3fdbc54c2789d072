"""Every official event example of the spec parses, renders safely and fits a timeline."""

from __future__ import annotations

import json
import re

import pytest

from tui_client.protocol.events import RoomEvent, UnknownEvent, parse_event
from tui_client.protocol.render import Rendered, describe
from tui_client.protocol.sanitize import is_clean
from tui_client.protocol.timeline import TimelineModel

from .diffs import Mirror
from .spec_examples import (
    EXAMPLES_DIR,
    example_names,
    load_example,
    ref_chain,
    room_event_example_names,
)

ALL_EXAMPLES = example_names()
ROOM_EVENT_EXAMPLES = room_event_example_names()
OTHER_EXAMPLES = [name for name in ALL_EXAMPLES if name not in ROOM_EVENT_EXAMPLES]
KINDS = {
    "text",
    "emote",
    "notice",
    "media",
    "state",
    "redacted",
    "encrypted",
    "unknown",
    "malformed",
}
# describe() turns a renderer exception into "... (SomeError)": that must never happen here.
_RENDERER_CRASH = re.compile(r"\((?:\w+Error|\w*Exception|\w+Warning)\)$")
OWN_USER = "@example:example.org"


def _has_ref(value: object) -> bool:
    if isinstance(value, dict):
        return "$ref" in value or any(_has_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_ref(v) for v in value)
    return False


def test_the_examples_are_all_found() -> None:
    # Guards against a loader that silently finds nothing (and so tests nothing).
    on_disk = {p.name for p in EXAMPLES_DIR.iterdir() if p.is_file()}
    assert set(ALL_EXAMPLES) == on_disk
    assert len(ALL_EXAMPLES) >= 80
    assert len(ROOM_EVENT_EXAMPLES) >= 45
    for expected in (
        "m.room.message$m.text.yaml",
        "m.room.member.yaml",
        "m.reaction.yaml",
        "m.room.redaction.yaml",
    ):
        assert expected in ROOM_EVENT_EXAMPLES


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_resolves_every_ref(name: str) -> None:
    data = load_example(name)
    assert not _has_ref(data)
    json.dumps(data)  # plain JSON values only


def test_ref_merge_keeps_the_examples_own_keys() -> None:
    message = load_example("m.room.message$m.text.yaml")
    # From core/room_event.json:
    assert message["event_id"] == "$143273582443PhrSn:example.org"
    assert message["sender"] == "@example:example.org"
    assert message["unsigned"]["age"] == 1234
    # The example's own keys win, and its content replaces the core placeholder content.
    assert message["type"] == "m.room.message"
    assert message["content"]["body"] == "This is an example text message"
    assert "key" not in message["content"]
    assert ref_chain("m.room.message$m.text.yaml") == ("room_event.json", "event.json")

    invite = load_example("m.room.member$invite_room_state.yaml")
    assert invite["type"] == "m.room.member"
    assert invite["state_key"] == "@alice:example.org"
    assert invite["content"]["membership"] == "invite"
    stripped = invite["unsigned"]["invite_room_state"]
    assert isinstance(stripped, list) and stripped[0]["type"] == "m.room.name"
    assert "state_event.json" in ref_chain("m.room.member$invite_room_state.yaml")


@pytest.mark.parametrize("name", ROOM_EVENT_EXAMPLES)
def test_room_event_example_parses_and_renders(name: str) -> None:
    raw = load_example(name)
    event = parse_event(raw)
    assert isinstance(event, RoomEvent), event
    assert event.event_id == raw["event_id"]
    assert event.type == raw["type"]
    assert event.sender == raw["sender"]
    assert event.content == raw["content"]
    assert event.origin_server_ts == raw["origin_server_ts"]
    assert event.room_id == raw["room_id"]
    assert event.is_state == ("state_key" in raw)

    for name_of in (None, lambda user_id: f"Name of {user_id}"):
        rendered = describe(event, name_of)
        assert isinstance(rendered, Rendered)
        assert rendered.kind in KINDS
        assert rendered.kind not in ("malformed", "redacted")
        assert rendered.body.strip()
        assert is_clean(rendered.body)
        assert not _RENDERER_CRASH.search(rendered.body), rendered.body


@pytest.mark.parametrize("name", ROOM_EVENT_EXAMPLES)
def test_room_event_example_in_a_timeline(name: str) -> None:
    event = parse_event(load_example(name))
    reset = Mirror(TimelineModel(OWN_USER))
    reset.apply(reset.model.reset([event]))
    appended = Mirror(TimelineModel(OWN_USER))
    appended.apply(appended.model.append([event]))
    appended.apply(appended.model.append([event]))  # a duplicate changes nothing
    assert appended.items == reset.items
    prepended = Mirror(TimelineModel(OWN_USER))
    prepended.apply(prepended.model.prepend([event]))
    assert prepended.items == reset.items
    for item in reset.items:
        assert item.body.strip()
        assert is_clean(item.body)
    hidden = event.type in ("m.reaction", "m.room.redaction")
    assert len(reset.items) == (0 if hidden else 1)


def test_all_room_event_examples_in_one_timeline() -> None:
    events = [parse_event(load_example(name)) for name in ROOM_EVENT_EXAMPLES]
    # The examples share event IDs; give each its own so that every one is shown.
    unique = [
        parse_event({**load_example(name), "event_id": f"$example-{index}"})
        for index, name in enumerate(ROOM_EVENT_EXAMPLES)
    ]
    for batch in (events, unique):
        mirror = Mirror(TimelineModel(OWN_USER))
        mirror.apply(mirror.model.reset(batch))
        live = Mirror(TimelineModel(OWN_USER))
        for event in batch:
            live.apply(live.model.append([event]))
        older = Mirror(TimelineModel(OWN_USER))
        older.apply(older.model.prepend(batch))
        assert [i.key for i in live.items] == [i.key for i in mirror.items]
        assert [i.key for i in older.items] == [i.key for i in mirror.items]
        for item in mirror.items:
            assert is_clean(item.body) and item.body.strip()
    hidden = sum(1 for e in unique if e.type in ("m.reaction", "m.room.redaction"))
    assert len(mirror.items) == len(unique) - hidden


@pytest.mark.parametrize("name", OTHER_EXAMPLES)
def test_non_room_event_example_is_unknown_and_harmless(name: str) -> None:
    raw = load_example(name)
    event = parse_event(raw)
    # These are EDUs, account data, to-device events or stripped state: no event ID.
    assert isinstance(event, UnknownEvent)
    rendered = describe(event)
    assert rendered.kind == "malformed"
    assert is_clean(rendered.body)
    mirror = Mirror(TimelineModel(OWN_USER))
    mirror.apply(mirror.model.append([event]))
    mirror.apply(mirror.model.prepend([event]))
    mirror.apply(mirror.model.reset([event]))


_MESSAGE_KINDS = {
    "m.text": "text",
    "m.emote": "emote",
    "m.notice": "notice",
    "m.server_notice": "notice",
    "m.image": "media",
    "m.file": "media",
    "m.audio": "media",
    "m.video": "media",
    "m.location": "media",
    "m.key.verification.request": "notice",
}


@pytest.mark.parametrize(
    "name", [n for n in ROOM_EVENT_EXAMPLES if n.startswith("m.room.message$")]
)
def test_message_examples_render_their_text(name: str) -> None:
    raw = load_example(name)
    content = raw["content"]
    rendered = describe(parse_event(raw))
    assert rendered.kind == _MESSAGE_KINDS[content["msgtype"]]
    if rendered.kind in ("text", "emote") or content["msgtype"] == "m.notice":
        assert rendered.body == content["body"]
    elif rendered.kind == "media":
        assert (content.get("filename") or content["body"]) in rendered.body


def test_specific_examples_render_what_they_mean() -> None:
    def body(name: str) -> str:
        return describe(parse_event(load_example(name))).body

    assert body("m.room.name.yaml").endswith("The room name")
    assert "An interesting room topic" in body("m.room.topic.yaml")
    assert body("m.room.member.yaml") == "Alice Margatroid joined"
    assert "invited Alice Margatroid" in body("m.room.member$invite_room_state.yaml")
    assert "#somewhere:localhost" in body("m.room.canonical_alias.yaml")
    assert body("m.reaction.yaml") == "reacted with 👍"
    assert describe(parse_event(load_example("m.room.encrypted$megolm.yaml"))).kind == "encrypted"
    redaction = parse_event(load_example("m.room.redaction.yaml"))
    assert isinstance(redaction, RoomEvent)
    assert redaction.redacts == "$fukweghifu23:localhost"
    reaction = parse_event(load_example("m.reaction.yaml"))
    assert isinstance(reaction, RoomEvent) and reaction.relation is not None
    assert (reaction.relation.rel_type, reaction.relation.event_id, reaction.relation.key) == (
        "m.annotation",
        "$some_event_id",
        "👍",
    )
