"""TimelineModel: every change is checked by applying its diffs to a plain list."""

from __future__ import annotations

import random

import pytest

from tui_client.protocol.events import RoomEvent, UnknownEvent, parse_event
from tui_client.protocol.sanitize import is_clean
from tui_client.protocol.timeline import Diff, Reaction, ReplyQuote, SendState, TimelineModel

from .diffs import Mirror, apply_diffs
from .events_factory import (
    ALICE,
    BOB,
    ME,
    edit,
    event,
    reaction,
    redaction,
    reply,
    text,
    thread_reply,
)

TEXT = {"msgtype": "m.text", "body": "hello"}


def new(own: str = ME) -> Mirror:
    return Mirror(TimelineModel(own))


def own_echo(event_id: str, body: str, txn_id: str | None, **kwargs: object) -> RoomEvent:
    unsigned = {"transaction_id": txn_id} if txn_id else {}
    return text(event_id, body, sender=ME, unsigned=unsigned, **kwargs)  # type: ignore[arg-type]


# -- the diff helper itself ------------------------------------------------------------


def test_apply_diffs_helper_applies_each_op() -> None:
    model = TimelineModel(ME)
    a, b, c = (model.reset([text(f"${n}", n)])[0].items[0] for n in "abc")
    items = apply_diffs([], [Diff("insert", 0, a), Diff("insert", 1, c), Diff("insert", 1, b)])
    assert [i.key for i in items] == ["$a", "$b", "$c"]
    apply_diffs(items, [Diff("remove", 0)])
    assert [i.key for i in items] == ["$b", "$c"]
    apply_diffs(items, [Diff("reset", items=(a,))])
    assert items == [a]
    with pytest.raises(AssertionError):
        apply_diffs(items, [Diff("update", 0, b)])  # a different item at that index
    with pytest.raises(AssertionError):
        apply_diffs(items, [Diff("remove", 5)])


# -- loading ---------------------------------------------------------------------------


def test_reset_append_prepend_keep_order() -> None:
    m = new()
    diffs = m.apply(m.model.reset([text("$2", "two"), text("$3", "three")]))
    assert [d.op for d in diffs] == ["reset"]
    m.apply(m.model.append([text("$4", "four"), text("$5", "five")]))
    m.apply(m.model.prepend([text("$0", "zero"), text("$1", "one")]))
    assert m.keys == ["$0", "$1", "$2", "$3", "$4", "$5"]
    assert [i.body for i in m.items] == ["zero", "one", "two", "three", "four", "five"]
    assert m.model.first_event_id() == "$0"
    assert m.model.last_event_id() == "$5"
    # Known events are not added twice, wherever they come from.
    assert m.apply(m.model.append([text("$3", "three")])) == []
    assert m.apply(m.model.prepend([text("$1", "one"), text("$5", "five")])) == []
    m.apply(m.model.reset([text("$a", "a"), text("$a", "a"), text("$b", "b")]))
    assert m.keys == ["$a", "$b"]


def test_items_carry_the_event_fields() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "hi", sender=BOB, ts=42)]))
    item = m.items[0]
    assert (item.key, item.event_id, item.sender, item.ts, item.kind, item.body) == (
        "$1",
        "$1",
        BOB,
        42,
        "text",
        "hi",
    )
    assert item.event_type == "m.room.message"
    assert item.send_state is SendState.SENT and not item.is_local_echo
    assert m.model.item("$1") == item and m.model.item("$nope") is None
    assert m.model.has_event("$1") and not m.model.has_event("$2")


def test_drop_oldest_and_newest() -> None:
    m = new()
    m.apply(m.model.reset([text(f"${n}", str(n)) for n in range(6)]))
    m.apply(m.model.add_local_echo("t1", "m.room.message", TEXT, ts=5000))
    m.apply(m.model.drop_oldest(2))
    assert m.keys == ["$2", "$3", "$4", "$5", "~t1"]
    m.apply(m.model.drop_newest(2))
    assert m.keys == ["$2", "$3", "~t1"]  # local echoes stay
    assert m.model.last_event_id() == "$3"
    assert m.apply(m.model.drop_newest(0)) == []
    # Dropping more than there is stops at the local echoes.
    m.apply(m.model.drop_oldest(10))
    assert m.keys == ["~t1"]
    assert m.model.first_event_id() is None and m.model.last_event_id() is None
    m.apply(m.model.prepend([text("$0", "0"), text("$1", "1")]))
    assert m.keys == ["$0", "$1", "~t1"]


def test_dropped_events_keep_their_relations() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "one"), text("$2", "two")]))
    m.apply(m.model.append([reaction("$r", "$1", "👍"), edit("$e", "$1", "uno")]))
    m.apply(m.model.drop_oldest(1))
    assert m.keys == ["$2"]
    m.apply(m.model.prepend([text("$1", "one")]))
    item = m.by_key("$1")
    assert item.body == "uno" and item.edited
    assert item.reactions == (Reaction("👍", 1, (ALICE,), False),)


def test_prepended_relations_update_shown_targets() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "one")]))
    diffs = m.apply(m.model.prepend([text("$0", "zero"), reaction("$r", "$1", "🎉", sender=ME)]))
    assert {d.op for d in diffs} == {"insert", "update"}
    assert m.by_key("$1").reactions == (Reaction("🎉", 1, (ME,), True),)
    assert m.keys == ["$0", "$1"]


# -- local echo ------------------------------------------------------------------------


def test_local_echo_pending_sent_then_replaced_by_transaction_id() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "before")]))
    diffs = m.apply(
        m.model.add_local_echo(
            "txn1", "m.room.message", {"msgtype": "m.text", "body": "mine"}, ts=2000
        )
    )
    assert [d.op for d in diffs] == ["insert"]
    echo = m.by_key("~txn1")
    assert echo.is_local_echo and echo.send_state is SendState.PENDING
    assert (echo.event_id, echo.txn_id, echo.sender, echo.body) == (None, "txn1", ME, "mine")

    # Other people's messages arrive while ours is on its way: they go before it.
    m.apply(m.model.append([text("$2", "theirs")]))
    assert m.keys == ["$1", "$2", "~txn1"]

    diffs = m.apply(m.model.update_local_echo("txn1", SendState.SENT, event_id="$mine"))
    assert [d.op for d in diffs] == ["update"]
    echo = m.by_key("~txn1")
    assert echo.send_state is SendState.SENT and echo.event_id == "$mine"

    diffs = m.apply(m.model.append([own_echo("$mine", "mine", "txn1")]))
    assert [d.op for d in diffs] == ["remove", "insert"]
    assert m.keys == ["$1", "$2", "$mine"]
    remote = m.by_key("$mine")
    assert not remote.is_local_echo and remote.send_state is SendState.SENT
    assert remote.txn_id == "txn1" and remote.body == "mine"


def test_remote_echo_matched_by_transaction_id_while_still_pending() -> None:
    m = new()
    m.apply(m.model.add_local_echo("t", "m.room.message", TEXT, ts=1))
    m.apply(m.model.append([own_echo("$x", "hello", "t")]))
    assert m.keys == ["$x"]


def test_remote_echo_matched_by_event_id_without_transaction_id() -> None:
    m = new()
    m.apply(m.model.add_local_echo("t", "m.room.message", TEXT, ts=1))
    m.apply(
        m.model.add_local_echo("u", "m.room.message", {"msgtype": "m.text", "body": "second"}, ts=2)
    )
    m.apply(m.model.update_local_echo("t", SendState.SENT, event_id="$x"))
    # Synced from another device's point of view: no transaction_id in unsigned.
    diffs = m.apply(m.model.append([own_echo("$x", "hello", None)]))
    assert [d.op for d in diffs] == ["remove", "insert"]
    assert m.keys == ["$x", "~u"]


def test_remote_echo_before_send_answer() -> None:
    m = new()
    m.apply(m.model.add_local_echo("t", "m.room.message", TEXT, ts=1))
    m.apply(m.model.append([own_echo("$x", "hello", None)]))  # not recognisable yet
    assert m.keys == ["$x", "~t"]
    # The send answers with the event ID of an event already shown: the echo goes.
    diffs = m.apply(m.model.update_local_echo("t", SendState.SENT, event_id="$x"))
    assert [d.op for d in diffs] == ["remove"]
    assert m.keys == ["$x"]
    # An echo for an event already shown is not added at all.
    assert m.apply(m.model.add_local_echo("t2", "m.room.message", TEXT, ts=1, event_id="$x")) == []


def test_failed_echo_and_retry() -> None:
    m = new()
    m.apply(m.model.add_local_echo("t", "m.room.message", TEXT, ts=1))
    m.apply(m.model.update_local_echo("t", SendState.FAILED, error="M_FORBIDDEN: not allowed"))
    failed = m.by_key("~t")
    assert failed.send_state is SendState.FAILED and failed.error == "M_FORBIDDEN: not allowed"
    m.apply(m.model.update_local_echo("t", SendState.PENDING))
    retried = m.by_key("~t")
    assert retried.send_state is SendState.PENDING and retried.error is None
    assert m.apply(m.model.update_local_echo("unknown", SendState.SENT, event_id="$z")) == []
    m.apply(m.model.remove_local_echo("t"))
    assert m.keys == []
    assert m.apply(m.model.remove_local_echo("t")) == []


def test_local_echoes_survive_reset_unless_the_window_has_them() -> None:
    m = new()
    m.apply(m.model.add_local_echo("a", "m.room.message", TEXT, ts=1))
    m.apply(m.model.add_local_echo("b", "m.room.message", TEXT, ts=2))
    m.apply(m.model.update_local_echo("b", SendState.SENT, event_id="$b"))
    m.apply(m.model.reset([text("$1", "one"), own_echo("$b", "hello", "b")]))
    assert m.keys == ["$1", "$b", "~a"]
    m.apply(m.model.append([own_echo("$a", "hello", "a")]))
    assert m.keys == ["$1", "$b", "$a"]


def test_local_echo_of_a_reply_quotes_the_parent_and_strips_the_fallback() -> None:
    m = new()
    m.apply(m.model.reset([text("$p", "parent text\nsecond line")]))
    content = {
        "msgtype": "m.text",
        "body": f"> <{ALICE}> parent text\n\nmy answer",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$p"}},
    }
    m.apply(m.model.add_local_echo("t", "m.room.message", content, ts=5))
    echo = m.by_key("~t")
    assert echo.body == "my answer"
    assert echo.reply == ReplyQuote("$p", ALICE, "parent text")


def test_local_echo_of_another_type_is_one_neutral_line() -> None:
    m = new()
    m.apply(m.model.add_local_echo("t", "org.example\x1b[2J.custom", {}, ts=5))
    echo = m.by_key("~t")
    assert echo.kind == "unknown" and is_clean(echo.body) and "\n" not in echo.body


# -- edits -----------------------------------------------------------------------------


def test_edit_after_target() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "original")]))
    diffs = m.apply(m.model.append([edit("$e1", "$1", "fixed")]))
    assert [d.op for d in diffs] == ["update"]
    item = m.by_key("$1")
    assert item.body == "fixed" and item.edited
    assert m.keys == ["$1"]  # the edit is not a line of its own
    assert m.model.has_event("$e1")


def test_latest_edit_by_timestamp_wins_whatever_the_arrival_order() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "original")]))
    m.apply(m.model.append([edit("$late", "$1", "third", ts=3000)]))
    m.apply(m.model.append([edit("$early", "$1", "second", ts=2000)]))
    assert m.by_key("$1").body == "third"


def test_edits_by_someone_else_or_malformed_are_ignored() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "original")]))
    m.apply(m.model.append([edit("$e", "$1", "hijacked", sender=BOB)]))
    no_new_content = event(
        "$e2",
        "m.room.message",
        {"body": "* x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$1"}},
    )
    other_type = event(
        "$e3",
        "m.sticker",
        {
            "body": "x",
            "m.new_content": {"body": "sticker"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$1"},
        },
    )
    m.apply(m.model.append([no_new_content, other_type]))
    item = m.by_key("$1")
    assert item.body == "original" and not item.edited
    assert m.keys == ["$1"]


def test_edit_arriving_before_its_target() -> None:
    m = new()
    assert m.apply(m.model.append([edit("$e", "$1", "fixed")])) == []
    m.apply(m.model.append([text("$1", "original")]))
    item = m.by_key("$1")
    assert item.body == "fixed" and item.edited


def test_edit_given_as_a_known_relation_on_reset() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "original")], relations=[edit("$e", "$1", "fixed")]))
    assert m.by_key("$1").body == "fixed"


@pytest.mark.parametrize("via_apply_redaction", [False, True])
def test_redacting_an_edit_reverts_to_the_previous_version(via_apply_redaction: bool) -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "original")]))
    m.apply(
        m.model.append([edit("$e1", "$1", "second", ts=2000), edit("$e2", "$1", "third", ts=3000)])
    )
    assert m.by_key("$1").body == "third"

    def redact(target: str, rid: str) -> list[Diff]:
        if via_apply_redaction:
            return m.model.apply_redaction(redaction(rid, target))
        return m.model.append([redaction(rid, target)])

    diffs = m.apply(redact("$e2", "$r1"))
    assert [d.op for d in diffs] == ["update"]
    assert m.by_key("$1").body == "second"
    m.apply(redact("$e1", "$r2"))
    item = m.by_key("$1")
    assert item.body == "original" and not item.edited


def test_reply_quote_follows_an_edit_of_the_parent() -> None:
    m = new()
    m.apply(m.model.reset([text("$p", "typo"), reply("$r", "$p", "answer")]))
    m.apply(m.model.append([edit("$e", "$p", "fixed")]))
    assert m.by_key("$r").reply == ReplyQuote("$p", ALICE, "fixed")


# -- redactions ------------------------------------------------------------------------


@pytest.mark.parametrize("in_content", [True, False])
def test_redacted_message_shows_message_deleted(in_content: bool) -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "secret"), text("$2", "other")]))
    m.apply(m.model.append([reaction("$rx", "$1", "👍"), edit("$e", "$1", "edited secret")]))
    diffs = m.apply(m.model.append([redaction("$red", "$1", in_content=in_content)]))
    assert [d.op for d in diffs] == ["update"]
    item = m.by_key("$1")
    assert (item.kind, item.body) == ("redacted", "message deleted")
    assert item.reactions == () and not item.edited and item.reply is None
    assert "secret" not in repr(item)
    assert m.by_key("$2").body == "other"
    assert m.keys == ["$1", "$2"]  # the redaction is not a line of its own


def test_redaction_before_its_target() -> None:
    m = new()
    assert m.apply(m.model.append([redaction("$red", "$1")])) == []
    m.apply(m.model.append([text("$1", "secret")]))
    item = m.by_key("$1")
    assert item.kind == "redacted" and item.body == "message deleted"
    # Also when the target is paged in later.
    m2 = new()
    m2.apply(m2.model.reset([text("$2", "newer")]))
    m2.apply(m2.model.apply_redaction(redaction("$red", "$1")))
    m2.apply(m2.model.prepend([text("$1", "secret")]))
    assert m2.by_key("$1").kind == "redacted"


def test_server_redacted_event_renders_deleted() -> None:
    m = new()
    redacted = event("$1", "m.room.message", {}, unsigned={"redacted_because": {"event_id": "$r"}})
    m.apply(m.model.reset([redacted]))
    assert (m.items[0].kind, m.items[0].body) == ("redacted", "message deleted")


@pytest.mark.parametrize("via_apply_redaction", [False, True])
def test_redacting_a_reaction_decrements_its_count(via_apply_redaction: bool) -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "hi")]))
    m.apply(
        m.model.append(
            [reaction("$a", "$1", "👍", sender=ALICE), reaction("$b", "$1", "👍", sender=ME)]
        )
    )
    assert m.by_key("$1").reactions == (Reaction("👍", 2, (ALICE, ME), True),)
    red = redaction("$red", "$b", sender=ME)
    diffs = m.apply(m.model.apply_redaction(red) if via_apply_redaction else m.model.append([red]))
    assert [d.op for d in diffs] == ["update"]
    assert m.by_key("$1").reactions == (Reaction("👍", 1, (ALICE,), False),)
    m.apply(m.model.append([redaction("$red2", "$a")]))
    assert m.by_key("$1").reactions == ()


def test_redacted_reaction_arriving_later_is_not_counted() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "hi")]))
    m.apply(m.model.append([redaction("$red", "$a")]))
    assert m.apply(m.model.append([reaction("$a", "$1", "👍")])) == []
    assert m.by_key("$1").reactions == ()


def test_redacting_a_reply_parent_updates_the_quote() -> None:
    m = new()
    m.apply(m.model.reset([text("$p", "parent"), reply("$r", "$p", "child")]))
    assert m.by_key("$r").reply == ReplyQuote("$p", ALICE, "parent")
    m.apply(m.model.append([redaction("$red", "$p")]))
    quote = m.by_key("$r").reply
    assert quote is not None and quote.body == "message deleted"


def test_context_parent_already_redacted_does_not_leak() -> None:
    m = new()
    m.apply(m.model.reset([reply("$r", "$p", "child")]))
    m.apply(m.model.apply_redaction(redaction("$red", "$p")))
    m.apply(m.model.add_context([text("$p", "secret parent")]))
    quote = m.by_key("$r").reply
    assert quote is not None and quote.body == "message deleted"


def test_redaction_without_target_or_of_unknown_event_is_harmless() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "hi")]))
    m.apply(m.model.append([event("$red", "m.room.redaction", {})]))
    m.apply(m.model.append([redaction("$red2", "$never-seen")]))
    m.apply(m.model.apply_redaction(event("$red3", "m.room.redaction", {"redacts": 5})))
    assert m.by_key("$1").body == "hi" and m.keys == ["$1"]


# -- reactions -------------------------------------------------------------------------


def test_reactions_aggregate_with_counts_and_mine() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "hi")]))
    m.apply(
        m.model.append(
            [
                reaction("$a", "$1", "👍", sender=ALICE),
                reaction("$b", "$1", "👍", sender=BOB),
                reaction("$c", "$1", "❤️", sender=ME),
                reaction("$d", "$1", "👍", sender=ALICE),  # the same again: counted once
            ]
        )
    )
    assert m.by_key("$1").reactions == (
        Reaction("👍", 2, (ALICE, BOB), False),
        Reaction("❤️", 1, (ME,), True),
    )
    # Redacting one of the duplicates keeps Alice's reaction.
    m.apply(m.model.append([redaction("$r", "$a")]))
    thumbs = m.by_key("$1").reactions[0]
    assert (thumbs.key, thumbs.count, set(thumbs.senders), thumbs.mine) == (
        "👍",
        2,
        {ALICE, BOB},
        False,
    )


def test_reaction_before_target_and_sanitised_key() -> None:
    m = new()
    m.apply(m.model.append([reaction("$a", "$1", "\x1b[31m👍\u202e")]))
    m.apply(m.model.append([text("$1", "hi")]))
    (only,) = m.by_key("$1").reactions
    assert only.key == "👍" and only.count == 1


def test_malformed_reactions_are_hidden_and_harmless() -> None:
    m = new()
    m.apply(m.model.reset([text("$1", "hi")]))
    no_key = event(
        "$a", "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$1"}}
    )
    bad_relates = event("$b", "m.reaction", {"m.relates_to": "nope"})
    no_target = event(
        "$c", "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "key": "x"}}
    )
    m.apply(m.model.append([no_key, bad_relates, no_target]))
    assert m.keys == ["$1"] and m.by_key("$1").reactions == ()


# -- replies ---------------------------------------------------------------------------


def test_reply_quotes_parent_in_window_and_strips_fallback() -> None:
    m = new()
    m.apply(m.model.reset([text("$p", "first line\nsecond line")]))
    m.apply(m.model.append([reply("$r", "$p", "the answer", fallback="first line")]))
    item = m.by_key("$r")
    assert item.body == "the answer"
    assert item.reply == ReplyQuote("$p", ALICE, "first line")


def test_reply_to_missing_parent_then_context() -> None:
    m = new()
    m.apply(m.model.reset([reply("$r", "$p", "the answer", fallback="hidden")]))
    item = m.by_key("$r")
    assert item.reply == ReplyQuote("$p", None, None)
    assert item.body == "the answer"
    assert m.model.reply_targets_missing() == ["$p"]
    diffs = m.apply(m.model.add_context([text("$p", "the question")]))
    assert [d.op for d in diffs] == ["update"]
    assert m.by_key("$r").reply == ReplyQuote("$p", ALICE, "the question")
    assert m.model.reply_targets_missing() == []
    assert m.keys == ["$r"]  # context is not shown
    assert m.model.has_event("$p")


def test_reply_resolves_when_parent_is_paged_in() -> None:
    m = new()
    m.apply(m.model.reset([reply("$r", "$p", "answer")]))
    m.apply(m.model.prepend([text("$p", "question")]))
    assert m.keys == ["$p", "$r"]
    assert m.by_key("$r").reply == ReplyQuote("$p", ALICE, "question")
    assert m.model.reply_targets_missing() == []


def test_reply_resolves_when_parent_arrives_live() -> None:
    m = new()
    m.apply(m.model.append([reply("$r", "$p", "answer")]))
    m.apply(m.model.append([text("$p", "question")]))
    assert m.by_key("$r").reply == ReplyQuote("$p", ALICE, "question")


def test_long_parent_is_quoted_on_one_short_line() -> None:
    m = new()
    m.apply(m.model.reset([text("$p", "x" * 500 + "\nmore"), reply("$r", "$p", "ok")]))
    quote = m.by_key("$r").reply
    assert quote is not None and quote.body is not None
    assert "\n" not in quote.body and len(quote.body) <= 120


def test_fallback_only_stripped_on_replies() -> None:
    m = new()
    m.apply(m.model.reset([text("$q", "> quoted\n\nnot a reply")]))
    assert m.items[0].body == "> quoted\n\nnot a reply"


# -- threads ---------------------------------------------------------------------------


def test_thread_replies_hidden_and_counted_under_root() -> None:
    m = new()
    m.apply(m.model.reset([text("$root", "root")]))
    diffs = m.apply(m.model.append([thread_reply("$t1", "$root", "one")]))
    assert [d.op for d in diffs] == ["update"]
    m.apply(m.model.append([thread_reply("$t2", "$root", "two")]))
    assert m.keys == ["$root"]
    assert m.by_key("$root").thread_count == 2
    m.apply(m.model.append([redaction("$red", "$t1")]))
    assert m.by_key("$root").thread_count == 1


def test_thread_reply_before_root_and_bundled_count() -> None:
    m = new()
    m.apply(m.model.append([thread_reply("$t1", "$root", "one")]))
    bundled = event(
        "$root", "m.room.message", TEXT, unsigned={"m.relations": {"m.thread": {"count": 7}}}
    )
    m.apply(m.model.append([bundled]))
    assert m.by_key("$root").thread_count == 7  # the server's count covers ours
    plain = new()
    plain.apply(plain.model.append([thread_reply("$t1", "$root", "one")]))
    plain.apply(plain.model.append([text("$root", "root")]))
    assert plain.by_key("$root").thread_count == 1
    weird = event(
        "$w", "m.room.message", TEXT, unsigned={"m.relations": {"m.thread": {"count": True}}}
    )
    plain.apply(plain.model.append([weird]))
    assert plain.by_key("$w").thread_count == 0


# -- odd events ------------------------------------------------------------------------


def test_unknown_event_type_is_one_neutral_line() -> None:
    m = new()
    m.apply(m.model.reset([event("$x", "org.example.\x1b]0;pwned\x07thing\nnext", {"a": 1})]))
    item = m.items[0]
    assert item.kind == "unknown"
    assert "\n" not in item.body and is_clean(item.body)
    assert "org.example." in item.body and "pwned" not in item.body


@pytest.mark.parametrize(
    "raw",
    [
        {"event_id": "$m1", "type": 5, "sender": ALICE, "content": {}},
        {"event_id": "$m2", "type": "m.room.message", "sender": ALICE, "content": "body"},
        {"event_id": "$m3", "type": "m.room.message", "content": {}},
        {"type": "m.room.message", "sender": ALICE, "content": {}},
        ["not", "an", "event"],
        None,
    ],
)
def test_malformed_events_do_not_break_anything(raw: object) -> None:
    malformed = parse_event(raw)
    assert isinstance(malformed, UnknownEvent)
    m = new()
    m.apply(m.model.reset([text("$1", "one"), malformed]))
    m.apply(m.model.append([malformed, text("$2", "two")]))
    m.apply(m.model.prepend([malformed]))
    m.apply(m.model.append([reaction("$r", "$1", "👍")]))
    kinds = [i.kind for i in m.items]
    assert kinds.count("malformed") == 1
    assert m.by_key("$1").reactions[0].count == 1
    bad = next(i for i in m.items if i.kind == "malformed")
    assert bad.body.startswith("malformed event") and is_clean(bad.body)
    m.apply(m.model.drop_oldest(3))
    m.apply(m.model.drop_newest(3))
    assert m.keys == []


def test_malformed_events_without_id_are_distinct() -> None:
    m = new()
    first, second = parse_event({"type": "x"}), parse_event({"type": "x"})
    m.apply(m.model.append([first, second]))
    assert len(m.items) == 2


# -- state lines -----------------------------------------------------------------------


def test_state_events_use_name_of() -> None:
    names = {ALICE: "Alice", BOB: "Bob"}
    model = TimelineModel(ME, lambda user_id: names.get(user_id, user_id))
    m = Mirror(model)
    m.apply(model.reset([event("$n", "m.room.name", {"name": "Lobby"}, sender=BOB, state_key="")]))
    assert m.items[0].kind == "state"
    assert m.items[0].body == "Bob changed the room name to Lobby"


# -- random walk -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_random_operations_keep_diffs_consistent(seed: int) -> None:
    rng = random.Random(seed)
    model = TimelineModel(ME)
    m = Mirror(model)
    ids = [f"${n}" for n in range(30)]
    senders = [ME, ALICE, BOB]
    counter = iter(range(10**6))

    def some_id() -> str:
        return rng.choice(ids)

    def random_event() -> RoomEvent | UnknownEvent:
        eid = f"$ev{next(counter)}" if rng.random() < 0.3 else some_id()
        kind = rng.randrange(8)
        sender = rng.choice(senders)
        if kind == 0:
            return edit(eid, some_id(), f"edit {eid}", sender=sender, ts=rng.randrange(5000))
        if kind == 1:
            return reaction(eid, some_id(), rng.choice("ab"), sender=sender)
        if kind == 2:
            return redaction(eid, some_id(), in_content=rng.random() < 0.5)
        if kind == 3:
            return reply(eid, some_id(), "reply", sender=sender)
        if kind == 4:
            return thread_reply(eid, some_id(), "in thread", sender=sender)
        if kind == 5:
            return parse_event({"event_id": eid, "type": "broken"})
        txn = rng.choice(["t1", "t2", "t3", None])
        unsigned = {"transaction_id": txn} if txn and sender == ME else None
        return text(eid, f"text {eid}", sender=sender, ts=rng.randrange(5000), unsigned=unsigned)

    for _ in range(120):
        op = rng.randrange(11)
        if op <= 2:
            m.apply(model.append([random_event() for _ in range(rng.randrange(1, 4))]))
        elif op == 3:
            m.apply(model.prepend([random_event() for _ in range(rng.randrange(1, 4))]))
        elif op == 4:
            m.apply(model.drop_oldest(rng.randrange(3)))
        elif op == 5:
            m.apply(model.drop_newest(rng.randrange(3)))
        elif op == 6:
            txn = rng.choice(["t1", "t2", "t3"])
            m.apply(
                model.add_local_echo(
                    txn, "m.room.message", TEXT, ts=1, event_id=rng.choice([None, some_id()])
                )
            )
        elif op == 7:
            state = rng.choice(list(SendState))
            m.apply(
                model.update_local_echo(
                    rng.choice(["t1", "t2", "t3"]), state, event_id=rng.choice([None, some_id()])
                )
            )
        elif op == 8:
            m.apply(model.apply_redaction(redaction(f"$red{next(counter)}", some_id())))
        elif op == 9:
            m.apply(model.add_context([text(some_id(), "context")]))
        elif rng.random() < 0.3:
            m.apply(model.reset([random_event() for _ in range(rng.randrange(6))]))
        else:
            m.apply(model.remove_local_echo(rng.choice(["t1", "t2", "t3"])))
        for item in m.items:
            assert is_clean(item.body)
            if item.key.startswith("~"):
                assert item.is_local_echo
        # Local echoes always come last.
        flags = [i.is_local_echo for i in m.items]
        assert flags == sorted(flags)


@pytest.mark.parametrize(
    ("redacter", "has_power", "applies"),
    [
        (ALICE, False, True),
        ("@admin:example.org", False, True),
        ("@mallory:evil.example", False, False),
        ("@mod:other.example", True, True),
    ],
)
def test_redactions_follow_the_room_power_levels(
    redacter: str, has_power: bool, applies: bool
) -> None:
    mirror = Mirror(
        TimelineModel(ME, may_redact_others=lambda user: has_power and user == redacter)
    )
    mirror.apply(mirror.model.reset([text("$t", "still here?", sender=ALICE)]))
    mirror.apply(mirror.model.append([redaction("$r", "$t", sender=redacter)]))
    item = mirror.model.item("$t")
    assert item is not None
    assert (item.kind == "redacted") is applies
