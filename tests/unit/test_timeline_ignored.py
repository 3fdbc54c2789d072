"""TimelineModel with hidden senders (ignored users): their messages, reactions, edits
and thread replies are not shown; their state events are; a reset follows the list."""

from __future__ import annotations

from tui_client.protocol.timeline import HIDDEN_QUOTE, TimelineModel

from .diffs import Mirror
from .events_factory import ALICE, BOB, ME, edit, event, reaction, reply, text, thread_reply


def hiding(users: set[str], own: str = ME, **kwargs: object) -> Mirror:
    return Mirror(TimelineModel(own, hidden_sender=users.__contains__, **kwargs))  # type: ignore[arg-type]


def join(event_id: str, user: str) -> object:
    return event(event_id, "m.room.member", {"membership": "join"}, sender=user, state_key=user)


def test_messages_of_hidden_senders_are_not_shown_anywhere_they_arrive() -> None:
    m = hiding({BOB})
    m.apply(m.model.reset([text("$a1", "from alice"), text("$b1", "from bob", sender=BOB)]))
    m.apply(m.model.append([text("$b2", "bob live", sender=BOB), text("$a2", "alice live")]))
    m.apply(m.model.prepend([text("$b0", "bob older", sender=BOB), text("$a0", "alice older")]))
    assert m.keys == ["$a0", "$a1", "$a2"]
    assert all(item.sender == ALICE for item in m.items)


def test_state_events_of_hidden_senders_still_show() -> None:
    m = hiding({BOB})
    m.apply(m.model.reset([join("$j", BOB), text("$b1", "hi", sender=BOB)]))  # type: ignore[list-item]
    assert m.keys == ["$j"]


def test_reactions_edits_and_thread_replies_of_hidden_senders_do_not_count() -> None:
    m = hiding({BOB})
    m.apply(m.model.reset([text("$a1", "alice")]))
    m.apply(
        m.model.append(
            [
                reaction("$r1", "$a1", "👍", sender=BOB),
                reaction("$r2", "$a1", "🎉", sender=ALICE),
                thread_reply("$t1", "$a1", "bob in thread", sender=BOB),
                edit("$e1", "$a1", "bob edits alice", sender=BOB),
            ]
        )
    )
    item = m.items[0]
    assert [r.key for r in item.reactions] == ["🎉"]
    assert item.thread_count == 0
    assert not item.edited and item.body == "alice"
    assert m.keys == ["$a1"]


def test_a_reply_to_a_hidden_message_quotes_it_as_hidden_and_does_not_ask_for_it() -> None:
    m = hiding({BOB})
    m.apply(
        m.model.reset(
            [text("$b1", "secret words", sender=BOB), reply("$a2", "$b1", "answer", sender=ALICE)]
        )
    )
    assert m.keys == ["$a2"]
    quote = m.items[0].reply
    assert quote is not None and quote.body == HIDDEN_QUOTE
    assert "secret" not in (quote.body or "")
    assert m.model.reply_targets_missing() == []


def test_changing_the_list_then_resetting_hides_and_shows_again() -> None:
    ignored: set[str] = set()
    m = hiding(ignored)
    window = [text("$a1", "alice"), text("$b1", "bob", sender=BOB)]
    relations = [reaction("$r1", "$a1", "👍", sender=BOB)]
    m.apply(m.model.reset(window, relations))
    m.apply(
        m.model.add_local_echo("t1", "m.room.message", {"msgtype": "m.text", "body": "mine"}, 5)
    )
    assert m.keys == ["$a1", "$b1", "~t1"]
    assert [r.key for r in m.items[0].reactions] == ["👍"]
    ignored.add(BOB)
    m.apply(m.model.reset(window, relations))
    assert m.keys == ["$a1", "~t1"]  # our local echo stays
    assert m.items[0].reactions == ()
    ignored.discard(BOB)
    m.apply(m.model.reset(window, relations))
    assert m.keys == ["$a1", "$b1", "~t1"]
    assert [r.key for r in m.items[0].reactions] == ["👍"]


def test_we_are_never_hidden_and_no_predicate_hides_nothing() -> None:
    m = hiding({ME, BOB})
    m.apply(m.model.reset([text("$m1", "mine", sender=ME)]))
    assert m.keys == ["$m1"]
    plain = Mirror(TimelineModel(ME))
    plain.apply(plain.model.reset([text("$b1", "bob", sender=BOB)]))
    assert plain.keys == ["$b1"]


def test_a_thread_model_hides_the_hidden_senders_replies() -> None:
    m = hiding({BOB}, thread_root="$root")
    m.apply(
        m.model.reset(
            [
                text("$root", "root"),
                thread_reply("$t1", "$root", "bob", sender=BOB),
                thread_reply("$t2", "$root", "alice", sender=ALICE),
            ]
        )
    )
    assert m.keys == ["$root", "$t2"]
