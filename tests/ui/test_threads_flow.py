"""Threads in the real app against Synapse: read and answer a thread another user started,
the thread list, unread thread counts cleared by a threaded receipt."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.threads import ThreadListScreen, ThreadPanel
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.timeline import TimelineView

from .synapse_login import log_in
from .test_flow import _join, _room, until


def _send(
    synapse: SynapseServer, user: RegisteredUser, room_id: str, content: dict[str, Any], txn: str
) -> str:
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/send/m.room.message/{txn}"
    )
    status, answer = synapse.request_json("PUT", path, content, user.access_token)
    assert status == 200, answer
    return str(answer["event_id"])


def _in_thread(root: str, latest: str, body: str) -> dict[str, Any]:
    relation = {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": latest},
    }
    return {"msgtype": "m.text", "body": body, "m.relates_to": relation}


def _thread_events(
    synapse: SynapseServer, user: RegisteredUser, room_id: str, root: str
) -> list[dict[str, Any]]:
    path = f"/_matrix/client/v1/rooms/{urllib.parse.quote(room_id, safe='')}/relations/{urllib.parse.quote(root, safe='')}/m.thread?dir=b&limit=50"
    status, data = synapse.request_json("GET", path, None, user.access_token)
    assert status == 200, data
    return list(data["chunk"])


def _receipts_of(
    synapse: SynapseServer, reader: RegisteredUser, room_id: str, user_id: str
) -> list[dict[str, Any]]:
    """``user_id``'s read receipts in the room, as ``reader``'s full sync shows them."""
    status, data = synapse.request_json(
        "GET", "/_matrix/client/v3/sync?timeout=0", None, reader.access_token
    )
    assert status == 200, data
    room = data["rooms"]["join"].get(room_id, {})
    found = []
    for event in room.get("ephemeral", {}).get("events", []):
        if event["type"] != "m.receipt":
            continue
        for event_id, kinds in event["content"].items():
            receipt = kinds.get("m.read", {}).get(user_id)
            if receipt is not None:
                found.append({"event_id": event_id, **receipt})
    return found


async def test_a_thread_started_by_another_user_is_read_answered_listed_and_marked_read(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room = _room(synapse, bob, "Trips", [alice.user_id])
    _join(synapse, alice, room)
    _send(synapse, bob, room, {"msgtype": "m.text", "body": "before the thread"}, "m0")
    root = _send(synapse, bob, room, {"msgtype": "m.text", "body": "shall we plan the trip?"}, "t0")
    first = _send(synapse, bob, room, _in_thread(root, root, "how about June"), "t1")
    second = _send(synapse, bob, room, _in_thread(root, first, "or July"), "t2")

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await log_in(pilot, app, alice, synapse)
        client = app.client
        assert client is not None
        await until(
            pilot,
            lambda: screen.current_room == room and screen.view is not None,
            "the room to open",
        )
        timeline = screen.query_one("#timeline", TimelineView)
        await until(
            pilot,
            lambda: any(i.event_id == root and i.thread_count == 2 for i in timeline.items),
            "the root with 2 replies",
        )
        # The thread's replies are unread: counted per thread and marked on the root.
        await until(
            pilot, lambda: root in client.threads.unread_in(room), "the unread thread count"
        )
        # The screen learns it from a message posted after the engine's state changed.
        await until(pilot, lambda: root in timeline.thread_unread, "the root marked unread")

        # Open the thread from the root: the panel shows the root and both replies.
        timeline.focus()
        for _ in range(10):
            if timeline.selected_item is not None and timeline.selected_item.event_id == root:
                break
            await pilot.press("up")
        assert timeline.selected_item is not None and timeline.selected_item.event_id == root
        await pilot.press("t")
        await until(pilot, lambda: bool(screen.query(ThreadPanel)), "the thread panel")
        panel = screen.query_one(ThreadPanel)
        thread_timeline = panel.query_one("#thread-timeline", TimelineView)
        await until(
            pilot,
            lambda: (
                [i.body for i in thread_timeline.items]
                == ["shall we plan the trip?", "how about June", "or July"]
            ),
            "the thread's messages",
        )

        # Reading it sends a threaded receipt: the count clears (the server says so in sync).
        await until(
            pilot,
            lambda: root not in client.threads.unread_in(room),
            "the thread count to clear",
            timeout=30,
        )
        await until(pilot, lambda: root not in timeline.thread_unread, "the root's mark to go")
        receipts = await asyncio.to_thread(_receipts_of, synapse, bob, room, alice.user_id)
        assert any(r["event_id"] == second and r.get("thread_id") == root for r in receipts), (
            receipts
        )

        # Answer in the thread from its composer.
        composer = panel.query_one("#thread-composer", Composer)
        assert composer.has_focus
        await pilot.press(*"count me in", "enter")
        await until(
            pilot,
            lambda: any(i.body == "count me in" for i in thread_timeline.items),
            "the local echo",
        )
        await until(
            pilot,
            lambda: any(
                i.body == "count me in" and not i.is_local_echo for i in thread_timeline.items
            ),
            "the server's echo in the thread",
        )
        assert not any(i.body == "count me in" for i in timeline.items), (
            "a thread reply stays out of the main timeline"
        )
        events = await asyncio.to_thread(_thread_events, synapse, bob, room, root)
        ours = [e for e in events if e["sender"] == alice.user_id]
        assert len(ours) == 1, events
        assert ours[0]["content"]["body"] == "count me in"
        assert ours[0]["content"]["m.relates_to"] == {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": second},
        }

        # Bob answers again: live in the open panel.
        await asyncio.to_thread(
            _send,
            synapse,
            bob,
            room,
            _in_thread(root, ours[0]["event_id"], "great, June it is"),
            "t3",
        )
        await until(
            pilot,
            lambda: any(i.body == "great, June it is" for i in thread_timeline.items),
            "bob's live reply",
        )

        # Escape closes the panel; Ctrl+T lists the room's threads; Enter opens it again.
        await pilot.press("escape")
        await until(pilot, lambda: not screen.query(ThreadPanel), "the panel to close")
        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, ThreadListScreen), "the thread list")
        listing = app.screen
        assert isinstance(listing, ThreadListScreen)
        await until(
            pilot, lambda: [t.root_id for t in listing.threads] == [root], "the thread in the list"
        )
        summary = listing.threads[0]
        assert summary.root_body == "shall we plan the trip?"
        assert summary.count == 4 and summary.participated
        assert summary.latest_body == "great, June it is" and summary.latest_sender == bob.user_id
        assert listing.query_one(OptionList).highlighted == 0
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, ChatScreen) and bool(screen.query(ThreadPanel)),
            "the thread again",
        )
