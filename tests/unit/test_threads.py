"""Threads in the pure layers: the thread relation, a thread's timeline model, unread counts per thread."""

from __future__ import annotations

from tui_client.engine.threads import is_thread_reply, thread_relation
from tui_client.protocol import requests as api
from tui_client.protocol.events import parse_event
from tui_client.protocol.sync import parse_sync
from tui_client.protocol.timeline import TimelineModel

ROOM = "!r:x"
ROOT = "$root"


def _event(
    event_id: str,
    body: str,
    ts: int,
    relates: dict[str, object] | None = None,
    sender: str = "@bob:x",
):
    content: dict[str, object] = {"msgtype": "m.text", "body": body}
    if relates:
        content["m.relates_to"] = relates
    raw = {
        "event_id": event_id,
        "type": "m.room.message",
        "sender": sender,
        "origin_server_ts": ts,
        "content": content,
    }
    return parse_event(raw, ROOM)


def test_thread_relation_falls_back_to_the_latest_event_or_says_the_reply() -> None:
    assert thread_relation(ROOT, "$latest") == {
        "rel_type": "m.thread",
        "event_id": ROOT,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$latest"},
    }
    assert thread_relation(ROOT, None)["m.in_reply_to"] == {"event_id": ROOT}
    assert thread_relation(ROOT, "$latest", reply_to="$one") == {
        "rel_type": "m.thread",
        "event_id": ROOT,
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": "$one"},
    }
    assert is_thread_reply({"m.relates_to": thread_relation(ROOT, None)}, ROOT)
    assert not is_thread_reply({"m.relates_to": thread_relation(ROOT, None)}, "$other")
    assert not is_thread_reply({"m.relates_to": {"m.in_reply_to": {"event_id": ROOT}}})


def test_a_thread_model_shows_the_replies_the_room_model_counts() -> None:
    events = [
        _event(ROOT, "root", 1),
        _event("$a", "first", 2, thread_relation(ROOT, ROOT)),
        _event("$b", "second", 3, thread_relation(ROOT, "$a", reply_to="$a")),
    ]
    room = TimelineModel("@me:x")
    room.reset(events)
    assert [(i.event_id, i.thread_count) for i in room.items] == [(ROOT, 2)]
    thread = TimelineModel("@me:x", thread_root=ROOT)
    thread.reset(events)
    assert [i.event_id for i in thread.items] == [ROOT, "$a", "$b"]
    # the falling-back reply quotes nothing; the real reply quotes its parent
    assert thread.items[1].reply is None
    assert thread.items[2].reply is not None and thread.items[2].reply.body == "first"
    # another thread's replies stay relations in this one
    other = TimelineModel("@me:x", thread_root="$elsewhere")
    other.reset(events)
    assert [i.event_id for i in other.items] == [ROOT]


def test_sync_reads_unread_counts_per_thread_and_keeps_the_room_total() -> None:
    batch = parse_sync(
        {
            "next_batch": "s1",
            "rooms": {
                "join": {
                    ROOM: {
                        "unread_notifications": {"notification_count": 1, "highlight_count": 0},
                        "unread_thread_notifications": {
                            ROOT: {"notification_count": 2, "highlight_count": 1},
                            "$quiet": {"notification_count": 0, "highlight_count": 0},
                            "$bad": "nope",
                        },
                    }
                }
            },
        }
    )
    room = batch.joined[0]
    assert room.thread_counts == {ROOT: (2, 1)}
    assert (room.notification_count, room.highlight_count) == (3, 1)


def test_requests_for_threads() -> None:
    request = api.relations(ROOM, ROOT, "m.thread", from_token="t1", limit=10)
    assert request.path == "/_matrix/client/v1/rooms/%21r%3Ax/relations/%24root/m.thread"
    assert dict(request.query) == {"dir": "b", "limit": "10", "from": "t1"}
    listing = api.threads(ROOM, include="participated")
    assert listing.path == "/_matrix/client/v1/rooms/%21r%3Ax/threads"
    assert dict(listing.query) == {"include": "participated", "limit": "20"}
    assert '"unread_thread_notifications":true' in api.sync_filter()
