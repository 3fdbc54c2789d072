"""describe(): every event becomes one safe line (or block) of plain text."""

from __future__ import annotations

import pytest

from tui_client.protocol.events import parse_event
from tui_client.protocol.render import Rendered, describe, message_body, strip_reply_fallback
from tui_client.protocol.sanitize import is_clean

from .events_factory import ALICE, BOB, event

NAMES = {ALICE: "Alice", BOB: "Bob"}


def name_of(user_id: str) -> str:
    return NAMES.get(user_id, user_id)


def member(
    sender: str, target: str, content: dict[str, object], prev: dict[str, object] | None = None
) -> Rendered:
    unsigned = {"prev_content": prev} if prev is not None else None
    return describe(
        event("$m", "m.room.member", content, sender=sender, state_key=target, unsigned=unsigned),
        name_of,
    )


@pytest.mark.parametrize(
    ("sender", "target", "content", "prev", "body"),
    [
        (ALICE, ALICE, {"membership": "join", "displayname": "Alice"}, None, "Alice joined"),
        (ALICE, ALICE, {"membership": "join"}, None, f"{ALICE} joined"),
        (
            ALICE,
            ALICE,
            {"membership": "join", "displayname": "Al"},
            {"membership": "join", "displayname": "Alice"},
            "Alice changed their display name to Al",
        ),
        (
            ALICE,
            ALICE,
            {"membership": "join", "displayname": "Al"},
            {"membership": "join"},
            f"{ALICE} set their display name to Al",
        ),
        (
            ALICE,
            ALICE,
            {"membership": "join"},
            {"membership": "join", "displayname": "Alice"},
            "Alice removed their display name",
        ),
        (
            ALICE,
            ALICE,
            {"membership": "join", "avatar_url": "mxc://x/2"},
            {"membership": "join", "avatar_url": "mxc://x/1"},
            f"{ALICE} changed their avatar",
        ),
        (ALICE, BOB, {"membership": "invite", "displayname": "Bob"}, None, "Alice invited Bob"),
        (
            ALICE,
            BOB,
            {"membership": "invite", "reason": "come\nhere"},
            None,
            f"Alice invited {BOB}: come here",
        ),
        (
            BOB,
            BOB,
            {"membership": "leave"},
            {"membership": "invite"},
            f"{BOB} rejected the invitation",
        ),
        (
            BOB,
            BOB,
            {"membership": "leave"},
            {"membership": "join", "displayname": "Bob"},
            "Bob left",
        ),
        (
            BOB,
            BOB,
            {"membership": "leave"},
            {"membership": "knock"},
            f"{BOB} withdrew their request to join",
        ),
        (ALICE, BOB, {"membership": "leave"}, {"membership": "join"}, f"Alice removed {BOB}"),
        (
            ALICE,
            BOB,
            {"membership": "leave", "reason": "spam"},
            {"membership": "ban"},
            f"Alice unbanned {BOB}: spam",
        ),
        (
            ALICE,
            BOB,
            {"membership": "leave"},
            {"membership": "invite"},
            f"Alice withdrew {BOB}'s invitation",
        ),
        (
            ALICE,
            BOB,
            {"membership": "leave"},
            {"membership": "knock"},
            f"Alice rejected {BOB}'s request to join",
        ),
        (ALICE, BOB, {"membership": "ban", "reason": "spam"}, None, f"Alice banned {BOB}: spam"),
        (
            BOB,
            BOB,
            {"membership": "knock", "reason": "let me in"},
            None,
            f"{BOB} asked to join: let me in",
        ),
        (BOB, BOB, {"membership": "dance"}, None, f"{BOB}'s membership changed"),
    ],
)
def test_membership_lines(
    sender: str, target: str, content: dict[str, object], prev: dict[str, object] | None, body: str
) -> None:
    rendered = member(sender, target, content, prev)
    assert rendered == Rendered("state", body)


def test_hostile_names_and_topics_are_inert() -> None:
    evil = "Ev\x1b[2Jil\u202e\nname"
    joined = member(ALICE, ALICE, {"membership": "join", "displayname": evil})
    assert joined.body == "Evil name joined"
    topic = describe(
        event("$t", "m.room.topic", {"topic": "a\x1b]52;c;eA==\x07b\nc"}, state_key="")
    )
    assert topic.body.endswith("changed the topic to: ab c")
    for rendered in (joined, topic):
        assert is_clean(rendered.body) and "\n" not in rendered.body


def test_message_bodies() -> None:
    assert message_body({"msgtype": "m.text", "body": "a\nb"}) == Rendered("text", "a\nb")
    assert message_body({"msgtype": "m.emote", "body": "waves"}) == Rendered("emote", "waves")
    assert message_body({"msgtype": "m.notice", "body": "bot"}) == Rendered("notice", "bot")
    assert message_body({"msgtype": "org.custom", "body": "fallback"}) == Rendered(
        "text", "fallback"
    )
    assert message_body({"msgtype": "m.text"}) == Rendered("unknown", "sent a message with no text")
    assert message_body({"msgtype": "m.text", "body": 5}).kind == "unknown"
    assert message_body(
        {"msgtype": "m.image", "body": "cat.png", "info": {"size": 2048}}
    ) == Rendered("media", "[image] cat.png (2.0 KB)")
    assert message_body(
        {"msgtype": "m.file", "body": "x", "filename": "report.pdf", "info": {"size": 10}}
    ) == Rendered("media", "[file] report.pdf (10 B)")
    assert message_body({"msgtype": "m.file", "body": "", "info": {"size": -1}}) == Rendered(
        "media", "[file] file"
    )
    assert message_body({"msgtype": "m.video", "body": "v\x1b[2J\nx", "info": "bad"}) == Rendered(
        "media", "[video] v x"
    )


def test_reply_fallback() -> None:
    assert strip_reply_fallback("> <@a:x> quoted\n> more\n\nanswer\nline 2") == "answer\nline 2"
    assert strip_reply_fallback("> <@a:x> quoted\nanswer") == "answer"
    assert strip_reply_fallback("no quote") == "no quote"
    assert strip_reply_fallback(">not a fallback") == ">not a fallback"
    reply = event(
        "$r",
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "> <@a:x> q\n\nanswer",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$p"}},
        },
    )
    assert describe(reply).body == "answer"


def test_odd_events_never_raise() -> None:
    odd = [
        event("$1", "m.room.message", {"msgtype": ["list"], "body": {"dict": 1}}),
        event("$2", "m.room.member", {"membership": None, "displayname": 5}, state_key=""),
        event("$3", "m.room.name", {"name": None}, state_key=""),
        event("$4", "m.room.power_levels", {"users": "x"}, state_key=""),
        event("$5", "m.reaction", {"m.relates_to": {"key": ["x"]}}),
        event("$6", "m.call.weird", {}),
        event("$7", "m.sticker", {"body": None}),
        event("$8", "m.space.child", {"via": "x"}, state_key="!c:x"),
        event(
            "$9",
            "m.room.member",
            {"membership": "join"},
            state_key="@a:x",
            unsigned={"prev_content": "nope"},
        ),
    ]
    for item in odd:
        rendered = describe(item, name_of)
        assert rendered.body and is_clean(rendered.body)
    malformed = parse_event({"event_id": "$x", "type": "\x1b[2Jbad", "content": {}})
    rendered = describe(malformed)
    assert rendered.kind == "malformed" and is_clean(rendered.body)


def test_a_failing_name_lookup_does_not_break_rendering() -> None:
    def broken(user_id: str) -> str:
        raise KeyError(user_id)

    rendered = describe(event("$n", "m.room.name", {"name": "x"}, state_key=""), broken)
    assert rendered == Rendered("unknown", "event of type m.room.name (KeyError)")


def test_space_state_lines_name_the_room_when_it_is_known() -> None:
    parent = event("$p", "m.space.parent", {"via": ["example.org"]}, state_key="!space:example.org")
    child = event("$c", "m.space.child", {"via": ["example.org"]}, state_key="!child:example.org")
    unknown = event(
        "$u", "m.space.parent", {"via": ["example.org"]}, state_key="!elsewhere:example.org"
    )
    removed = event("$r", "m.space.child", {}, state_key="!child:example.org")
    rooms = {"!space:example.org": "Project Space", "!child:example.org": "Design\x1b[2J\u202e"}

    def room_name(room_id: str) -> str | None:
        return rooms.get(room_id)

    assert (
        describe(parent, name_of, room_name).body == "Alice set the parent space to Project Space"
    )
    assert describe(child, name_of, room_name).body == "Alice added Design to the space"
    assert describe(removed, name_of, room_name).body == "Alice removed Design from the space"
    # Not known (a space we are not in): the ID, as before.
    assert (
        describe(unknown, name_of, room_name).body
        == "Alice set the parent space to !elsewhere:example.org"
    )
    assert describe(parent, name_of).body == "Alice set the parent space to !space:example.org"
    for item in (parent, child, unknown, removed):
        assert is_clean(describe(item, name_of, room_name).body)
    # A lookup that fails is a renderer bug, not a reason to lose the line.
    assert describe(parent, name_of, lambda room_id: {}[room_id]).kind == "unknown"
