"""The search query syntax, highlighting, and ``/search``/``/context`` shapes (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from tui_client.protocol.search import (
    context_request,
    highlight_spans,
    parse_context,
    parse_query,
    parse_search_response,
    search_request,
)

from .spec_examples import CLIENT_SERVER_API_DIR


def _ms(*args: int, tz: timezone = UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def test_words_phrases_and_filters() -> None:
    q = parse_query(
        'lunch "next friday"  from:@bob:example.org in:#food:example.org in:!abc:x.y after:2024-05-01 before:2024-06-01 pizz*',
        tz=UTC,
    )
    assert q.words == ("lunch", "pizz*")
    assert q.phrases == ("next friday",)
    assert q.senders == ("@bob:example.org",)
    assert q.rooms == ("#food:example.org", "!abc:x.y")
    assert q.after_ts == _ms(2024, 5, 1)
    assert q.before_ts == _ms(2024, 6, 1)
    assert q.problems == ()
    assert q.has_text
    assert q.search_term() == 'lunch pizz "next friday"'
    assert q.terms() == ("lunch", "pizz*", "next friday")


def test_dates_are_days_in_the_given_zone() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert parse_query("after:2024-01-31", tz=plus2).after_ts == _ms(2024, 1, 31, tz=plus2)
    # Two bounds of one kind: the narrower wins.
    q = parse_query("after:2024-01-01 after:2024-02-01 before:2024-03-01 before:2024-04-01", tz=UTC)
    assert (q.after_ts, q.before_ts) == (_ms(2024, 2, 1), _ms(2024, 3, 1))
    # Local time by default: the same day as the local calendar says.
    local = parse_query("before:2024-07-04").before_ts
    assert local is not None and datetime.fromtimestamp(local / 1000).timetuple()[:4] == (
        2024,
        7,
        4,
        0,
    )


def test_what_is_not_understood_is_said_and_not_searched() -> None:
    q = parse_query("from:bob in:general before:2024-13-01 after:yesterday hello", tz=UTC)
    assert q.words == ("hello",)
    assert q.senders == () and q.rooms == ()
    assert q.before_ts is None and q.after_ts is None
    assert len(q.problems) == 4
    assert "from:" in q.problems[0] and "in:" in q.problems[1]
    assert "2024-13-01" in q.problems[2] and "yesterday" in q.problems[3]


def test_odd_input_never_raises() -> None:
    assert parse_query("") == parse_query("   ")
    assert not parse_query('""').has_text
    q = parse_query('"unterminated phrase here')
    assert q.phrases == ("unterminated phrase here",)
    # Other key:value words are plain words (a URL, a time).
    assert parse_query("https://example.org 10:30").words == ("https://example.org", "10:30")
    assert parse_query("FROM:@a:b").senders == ("@a:b",)


def test_highlight_spans_whole_words_prefixes_phrases_case_and_accents() -> None:
    text = "Café CAFE cafeteria, the next   Friday; nextfriday"
    assert highlight_spans(text, ["cafe"]) == [(0, 4), (5, 9)]
    assert highlight_spans(text, ["cafe*"]) == [(0, 4), (5, 9), (10, 19)]
    assert [text[a:b] for a, b in highlight_spans(text, ["next friday"])] == ["next   Friday"]
    assert highlight_spans(text, ["nothing"]) == []
    assert highlight_spans("a.b", ["*", "", ".*"]) == []
    # Overlaps merged.
    assert highlight_spans("hello world", ["hello", "hello world"]) == [(0, 11)]


def test_search_request_shape() -> None:
    q = parse_query('martians "and men" from:@a:b')
    request = search_request(q, ["!r:x"], next_batch="NB", limit=10)
    assert request.method == "POST" and request.path == "/_matrix/client/v3/search"
    assert request.query == (("next_batch", "NB"),)
    criteria = request.body["search_categories"]["room_events"]
    assert criteria["search_term"] == 'martians "and men"'
    assert criteria["filter"] == {"rooms": ["!r:x"], "limit": 10, "senders": ["@a:b"]}
    assert criteria["order_by"] == "recent" and criteria["keys"] == ["content.body"]
    assert search_request(q, ["!r:x"]).query == ()


def _spec_response_example() -> dict[str, object]:
    text = (CLIENT_SERVER_API_DIR / "search.yaml").read_text()
    start = text.index('"search_categories": {\n                      "room_events"')
    block = "{" + text[start : text.index('"400":')].rsplit("}", 1)[0] + "}"
    block = block.replace(
        '"$ref": "../../event-schemas/examples/m.room.message$m.text.yaml"',
        '"type": "m.room.message"',
    )
    return json.loads(block)


def test_parse_the_specs_search_example_and_bad_shapes() -> None:
    page = parse_search_response(_spec_response_example())
    assert page.highlights == ("martians", "men")
    assert page.next_batch == "5FdgFsd234dfgsdfFD"
    assert page.count == 1224
    assert [(h.event_id, h.room_id, h.rank) for h in page.hits] == [
        ("$144429830826TWwbB:localhost", "!qPewotXpIctQySfjSy:localhost", 0.00424866)
    ]
    for bad in (
        None,
        [],
        {"search_categories": []},
        {"search_categories": {"room_events": {"results": [1, {"result": {}}]}}},
    ):
        assert parse_search_response(bad).hits == ()


def test_context_request_and_answer() -> None:
    request = context_request("!r:x", "$e/1", limit=5)
    assert request.path == "/_matrix/client/v3/rooms/%21r%3Ax/context/%24e%2F1"
    assert request.query == (("limit", "5"),)
    page = parse_context(
        {
            "event": {"event_id": "$e"},
            "events_before": [{"event_id": "$b1"}, {"event_id": "$b2"}, "junk"],
            "events_after": [{"event_id": "$a1"}],
            "start": "s",
            "end": "e",
        }
    )
    assert page.event == {"event_id": "$e"}
    assert [e["event_id"] for e in page.before] == ["$b2", "$b1"]
    assert [e["event_id"] for e in page.after] == ["$a1"]
    assert (page.start, page.end) == ("s", "e")
    assert parse_context("nope").event is None
