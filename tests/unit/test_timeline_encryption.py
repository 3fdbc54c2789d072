"""Encrypted events in the timeline: why they cannot be read, and decryption in place."""

from __future__ import annotations

from typing import Any

from tui_client.protocol.events import DECRYPTION_FAILURE, ENCRYPTION_INFO, RoomEvent
from tui_client.protocol.timeline import TimelineModel

from .diffs import Mirror
from .events_factory import ALICE, BOB, ME, event, text

CIPHER = {
    "algorithm": "m.megolm.v1.aes-sha2",
    "ciphertext": "AwgA",
    "session_id": "sess",
    "sender_key": "k",
    "device_id": "D",
}


def encrypted(
    event_id: str, *, sender: str = ALICE, failure: dict[str, Any] | None = None, **extra: Any
) -> RoomEvent:
    unsigned = {DECRYPTION_FAILURE: failure} if failure else None
    return event(
        event_id, "m.room.encrypted", {**CIPHER, **extra}, sender=sender, unsigned=unsigned
    )


def decrypted(
    event_id: str,
    event_type: str,
    content: dict[str, Any],
    *,
    sender: str = ALICE,
    trust: str = "verified",
) -> RoomEvent:
    info = {"trust": trust, "session_id": "sess"}
    return event(event_id, event_type, content, sender=sender, unsigned={ENCRYPTION_INFO: info})


def test_an_undecryptable_event_says_why() -> None:
    mirror = Mirror(TimelineModel(ME))
    failure = {"code": "missing_key", "reason": "the key has not arrived yet"}
    mirror.apply(mirror.model.reset([encrypted("$e", failure=failure), encrypted("$f")]))
    first, second = mirror.items
    assert first.kind == "encrypted" and first.encrypted
    assert first.body == "unable to decrypt: the key has not arrived yet"
    assert second.body == "encrypted message (waiting for the key)"


def test_decrypted_in_place_when_the_key_arrives() -> None:
    mirror = Mirror(TimelineModel(ME))
    mirror.apply(mirror.model.reset([text("$a", "before"), encrypted("$e"), text("$b", "after")]))
    mirror.apply(
        mirror.model.replace_event(
            decrypted("$e", "m.room.message", {"msgtype": "m.text", "body": "secret"})
        )
    )
    assert [i.body for i in mirror.items] == ["before", "secret", "after"]
    item = mirror.model.item("$e")
    assert item is not None and item.encrypted and item.trust == "verified" and item.kind == "text"


def test_unverified_sender_device_is_marked() -> None:
    mirror = Mirror(TimelineModel(ME))
    mirror.apply(
        mirror.model.reset(
            [
                decrypted(
                    "$e", "m.room.message", {"msgtype": "m.text", "body": "hi"}, trust="unverified"
                )
            ]
        )
    )
    assert mirror.items[0].trust == "unverified"


def test_a_decrypted_reaction_leaves_the_timeline_and_counts_under_its_target() -> None:
    mirror = Mirror(TimelineModel(ME))
    relates = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$t", "key": "👍"}}
    mirror.apply(mirror.model.reset([text("$t", "target"), encrypted("$r", sender=BOB, **relates)]))
    assert [i.key for i in mirror.items] == ["$t", "$r"]
    mirror.apply(mirror.model.replace_event(decrypted("$r", "m.reaction", relates, sender=BOB)))
    assert [i.key for i in mirror.items] == ["$t"]
    assert mirror.items[0].reactions[0].key == "👍" and mirror.items[0].reactions[0].count == 1


def test_a_decrypted_edit_applies_to_its_target() -> None:
    mirror = Mirror(TimelineModel(ME))
    relation = {"m.relates_to": {"rel_type": "m.replace", "event_id": "$t"}}
    original = decrypted("$t", "m.room.message", {"msgtype": "m.text", "body": "tpyo"})
    mirror.apply(mirror.model.reset([original, encrypted("$edit", **relation)]))
    assert [i.body for i in mirror.items] == ["tpyo"]
    new = {
        "msgtype": "m.text",
        "body": "* typo",
        "m.new_content": {"msgtype": "m.text", "body": "typo"},
        **relation,
    }
    mirror.apply(mirror.model.replace_event(decrypted("$edit", "m.room.message", new)))
    assert [i.body for i in mirror.items] == ["typo"] and mirror.items[0].edited


def test_a_decrypted_reply_parent_updates_the_quote() -> None:
    mirror = Mirror(TimelineModel(ME))
    reply = event(
        "$r",
        "m.room.message",
        {"msgtype": "m.text", "body": "yes", "m.relates_to": {"m.in_reply_to": {"event_id": "$p"}}},
        sender=BOB,
    )
    mirror.apply(mirror.model.reset([encrypted("$p"), reply]))
    mirror.apply(
        mirror.model.replace_event(
            decrypted("$p", "m.room.message", {"msgtype": "m.text", "body": "question?"})
        )
    )
    quote = mirror.model.item("$r")
    assert quote is not None and quote.reply is not None and quote.reply.body == "question?"


def test_replacing_an_unknown_event_changes_nothing() -> None:
    mirror = Mirror(TimelineModel(ME))
    mirror.apply(mirror.model.reset([text("$a", "a")]))
    assert (
        mirror.model.replace_event(
            decrypted("$zzz", "m.room.message", {"msgtype": "m.text", "body": "x"})
        )
        == []
    )
