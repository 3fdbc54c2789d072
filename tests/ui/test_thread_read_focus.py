"""The thread panel marks a thread read as the main timeline does, checked on Synapse: only
while the terminal has focus, only while the panel is on screen, and only up to the last
reply visible in the panel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual import events

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.help import HelpScreen
from tui_client.ui.screens.threads import ThreadPanel
from tui_client.ui.widgets.timeline import TimelineView

from ..integration.receipts_support import receipts_by_thread, say
from .test_flow import _join, _room, until
from .test_read_receipts_flow import _log_in
from .test_threads_flow import _in_thread, _send


async def test_the_thread_panel_marks_read_only_what_is_seen_with_focus(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room = _room(synapse, bob, "Threads", [alice.user_id])
    _join(synapse, alice, room)
    root = say(synapse, bob, room, "a long thread", "root")
    replies = []
    for n in range(40):
        latest = replies[-1] if replies else root
        replies.append(_send(synapse, bob, room, _in_thread(root, latest, f"reply {n}"), f"r{n}"))

    def thread_receipt() -> str | None:
        return receipts_by_thread(synapse, bob, room, alice.user_id).get(("m.read", root))

    async def on_server(what: Callable[[], object]) -> object:
        return await asyncio.to_thread(what)

    async def bob_replies(first: int, count: int) -> list[str]:
        sent = []
        for n in range(first, first + count):
            latest = replies[-1]
            event_id = await asyncio.to_thread(
                _send, synapse, bob, room, _in_thread(root, latest, f"reply {n}"), f"r{n}"
            )
            replies.append(event_id)
            sent.append(event_id)
        return sent

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(140, 30)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        assert app.client is not None
        await until(
            pilot, lambda: screen.current_room == room and screen.view is not None, "the room"
        )
        timeline = screen.query_one("#timeline", TimelineView)
        await until(pilot, lambda: any(i.event_id == root for i in timeline.items), "the root")
        timeline.focus()
        for _ in range(10):
            if timeline.selected_item is not None and timeline.selected_item.event_id == root:
                break
            await pilot.press("up")
        await pilot.press("t")
        await until(pilot, lambda: bool(screen.query(ThreadPanel)), "the thread panel")
        panel = screen.query_one(ThreadPanel)
        thread_timeline = panel.query_one("#thread-timeline", TimelineView)
        await until(
            pilot,
            lambda: any(i.event_id == replies[-1] for i in thread_timeline.items),
            "the thread's replies",
        )
        # Focused and at the end: read up to the newest reply.
        await until(
            pilot,
            lambda: thread_timeline.last_visible_event_id() == replies[-1],
            "the newest reply on screen",
        )
        assert thread_timeline.virtual_size.height > thread_timeline.size.height  # it scrolls
        await until(pilot, lambda: thread_receipt() == replies[-1], "the thread read", timeout=15)

        # The terminal loses focus: a new reply shows in the panel, nothing is marked.
        app.post_message(events.AppBlur())
        await until(pilot, lambda: not app.app_focus, "the blur")
        read_before = replies[-1]
        (unfocused,) = await bob_replies(40, 1)
        await until(
            pilot,
            lambda: thread_timeline.last_visible_event_id() == unfocused,
            "the new reply on screen",
        )
        await pilot.pause(2.5)
        assert await on_server(thread_receipt) == read_before

        # Focus back: marked up to it.
        app.post_message(events.AppFocus())
        await until(
            pilot, lambda: thread_receipt() == unfocused, "read with the focus back", timeout=15
        )

        # Scrolled up in the panel: replies arriving below the screen are not marked...
        thread_timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.2)
        assert thread_timeline.last_visible_event_id() in replies[:30]
        later = await bob_replies(41, 6)
        await until(
            pilot,
            lambda: any(i.event_id == later[-1] for i in thread_timeline.items),
            "the later replies",
        )
        await pilot.pause(2.5)
        assert await on_server(thread_receipt) == unfocused

        # ... and scrolled down to some of them: marked up to the last one on screen.
        for _ in range(60):
            if thread_timeline.last_visible_event_id() in later[1:-1]:
                break
            thread_timeline.scroll_relative(y=1, animate=False, immediate=True)
            await pilot.pause(0.05)
        visible = thread_timeline.last_visible_event_id()
        assert visible in later[1:-1], visible
        await until(pilot, lambda: thread_receipt() == visible, "read up to the screen", timeout=15)
        await pilot.pause(1.5)
        assert await on_server(thread_receipt) == visible

        # Another screen over the panel: a reply at the end is not marked until it is back.
        thread_timeline.scroll_end(animate=False, immediate=True)
        await until(pilot, lambda: thread_receipt() == later[-1], "read to the end", timeout=15)
        await app.push_screen(HelpScreen())
        (covered,) = await bob_replies(47, 1)
        await until(
            pilot,
            lambda: any(i.event_id == covered for i in thread_timeline.items),
            "the covered reply",
        )
        await pilot.pause(2.5)
        assert await on_server(thread_receipt) == later[-1]
        app.pop_screen()
        await until(pilot, lambda: thread_receipt() == covered, "read once shown", timeout=15)
