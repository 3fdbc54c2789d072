"""Chat screen behaviour that needs no server: which room opens, keys that must win."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.switcher import RoomSwitcher
from tui_client.ui.widgets.composer import Composer

from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, wait_for

RANDOM = "!random00000000000000000000000000000000000004"


async def test_the_last_open_room_is_reopened_at_start(fake_profile: Path) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        app.open_room(RANDOM)
        chat = app.chat_screen
        assert chat is not None
        await wait_for(
            pilot, lambda: chat.view is not None and chat.view.room_id == RANDOM, "Random"
        )
    again = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with again.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: again.chat_screen is not None and again.chat_screen.view is not None,
            "a room",
        )
        assert again.chat_screen is not None and again.chat_screen.current_room == RANDOM


async def test_ctrl_k_opens_the_switcher_even_while_typing(fake_profile: Path) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        composer = app.screen.query_one(Composer)
        composer.focus()
        await pilot.press(*"half a sentence")
        await pilot.press("ctrl+k")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomSwitcher), "the switcher")
        await pilot.press(*"general", "enter")
        chat = app.chat_screen
        assert chat is not None
        await wait_for(pilot, lambda: chat.current_room == GENERAL, "General")
        assert composer.text == "half a sentence"


async def test_room_list_by_keyboard_and_mouse(fake_profile: Path) -> None:
    from tui_client.ui.widgets.room_list import RoomList

    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None
        rooms = chat.query_one(RoomList)
        order = rooms.room_ids
        assert order[0] == "!bookclub000000000000000000000000000000000006"  # invites first
        rooms.focus()
        await pilot.press("home", "down", "down", "enter")
        await wait_for(pilot, lambda: chat.current_room == order[2], "the third room by keyboard")
        # Row 0 is the INVITES heading: a click on a heading opens nothing.
        await pilot.click(RoomList, offset=(5, 0))
        await pilot.pause(0.1)
        assert chat.current_room == order[2]
        # The row of the first room is 1: click it.
        await pilot.click(RoomList, offset=(5, 1))
        await wait_for(pilot, lambda: chat.current_room == order[0], "the first room by mouse")


def _room_list_rows(app: TuiClientApp) -> list[str]:
    """The room list's rows as the screen shows them (the column left of the timeline)."""
    import html
    import re

    rows: dict[str, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(
        r'<text[^>]*? x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', app.export_screenshot()
    ):
        rows.setdefault(y, []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    lines = [
        "".join(text for _x, text in sorted(parts))
        for _y, parts in sorted(rows.items(), key=lambda r: float(r[0]))
    ]
    return [line.split("│")[1] for line in lines if line.count("│") >= 2]


async def test_a_room_opened_from_elsewhere_is_marked_in_the_room_list(fake_profile: Path) -> None:
    """A room opened by the switcher, a link or a notice (not from the list) gets the list's
    marker and cursor at once, not at the list's next update."""
    from tui_client.ui.widgets.room_list import RoomList

    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        app.app_focus = False  # no read mark (which would redraw the list anyway)
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None
        first = chat.current_room
        assert first is not None and first != GENERAL
        await wait_for(
            pilot,
            lambda: any(row.startswith("▌Bob") for row in _room_list_rows(app)),
            "Bob's DM marked",
        )
        app.open_room(GENERAL)
        await wait_for(
            pilot, lambda: chat.view is not None and chat.view.room_id == GENERAL, "General"
        )
        marked = [row.strip() for row in _room_list_rows(app) if row.startswith("▌")]
        assert [row.split()[0] for row in marked] == ["▌General"], _room_list_rows(app)
        rooms = chat.query_one(RoomList)
        rooms.focus()
        await pilot.press("enter")  # the cursor is on General: Enter keeps it open
        await pilot.pause(0.1)
        assert chat.current_room == GENERAL


async def test_a_first_start_opens_a_room_once_the_first_sync_brings_them(
    tmp_path: Path, memory_keyring: None
) -> None:
    import asyncio
    import json

    import httpx

    from tui_client.engine.client import SESSION_FILE, SessionInfo
    from tui_client.engine.paths import profile_dir
    from tui_client.engine.secrets import SecretStore

    from .fake_world import ME, build_sync

    folder = profile_dir("default", tmp_path)
    (folder / SESSION_FILE).write_text(
        json.dumps(SessionInfo(ME, "DEV", "https://matrix.example.org").to_json())
    )
    SecretStore(folder, ME).set("access_token", "token")
    first_sync = build_sync()

    async def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            if "since" in request.url.params:
                await asyncio.sleep(3600)
            return httpx.Response(200, json=first_sync)
        return httpx.Response(200, json={})

    app = TuiClientApp(base_dir=tmp_path, transport=httpx.MockTransport(server))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room to open",
        )
        chat = app.chat_screen
        assert chat is not None and chat.current_room is not None
        assert app.client is not None and app.client.rooms[chat.current_room].membership == "join"


async def test_typing_notices_follow_the_composer_and_can_be_turned_off(fake_profile: Path) -> None:
    import json

    server = FakeHomeserver()
    app = TuiClientApp(base_dir=fake_profile, transport=server.transport())

    def notices() -> list[tuple[str, bool]]:
        return [
            (r.url.path.split("/rooms/")[1].split("/")[0], json.loads(r.content)["typing"])
            for r in server.requests
            if r.method == "PUT" and "/typing/" in r.url.path
        ]

    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None and app.client is not None
        room = chat.current_room
        assert room is not None
        composer = app.screen.query_one(Composer)
        composer.focus()
        await pilot.press(*"hello")
        await wait_for(pilot, lambda: len(notices()) == 1, "one notice for five keys")
        assert notices() == [(room, True)]
        # Switching rooms stops it; Enter (sending) after typing elsewhere stops that one.
        app.open_room(RANDOM)
        await wait_for(
            pilot, lambda: chat.current_room == RANDOM and len(notices()) == 2, "stopped"
        )
        assert notices()[1] == (room, False)
        composer.focus()
        await pilot.press(*"hi", "enter")
        await wait_for(pilot, lambda: notices()[-1] == (RANDOM, False), "stopped by sending")
        # Turned off from the command palette: kept, and nothing more is sent.
        await app.action_toggle_typing()
        assert not app.client.typing.enabled
        count = len(notices())
        await pilot.press(*"quiet")
        await pilot.pause(0.3)
        assert len(notices()) == count
        assert await app.client.db.run(app.client.cache.get_meta, "send_typing_notices") == "0"


async def test_a_receipt_moves_the_seen_by_line(fake_profile: Path) -> None:
    from tui_client.ui.widgets.timeline import TimelineView

    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        app.open_room(GENERAL)
        chat = app.chat_screen
        assert chat is not None
        await wait_for(
            pilot, lambda: chat.view is not None and chat.view.room_id == GENERAL, "General"
        )
        assert chat.view is not None
        timeline = chat.query_one(TimelineView)

        def shown() -> str:
            return "\n".join(
                "".join(s.text for s in timeline.render_line(y))
                for y in range(timeline.size.height)
            )

        assert "Seen by Carol" in shown()
        last = next(
            item
            for item in reversed(timeline.items)
            if item.sender == "@dave:example.org" and item.kind == "text"
        )
        assert last.event_id is not None
        # Carol reads on to Dave's message: her mark moves there.
        await chat.view.apply_receipts([("@carol:example.org", last.event_id)])
        await wait_for(
            pilot,
            lambda: "Seen by Carol" in shown().split("Dave")[-1],
            "Carol's mark under Dave's message",
        )
        assert shown().count("Seen by") == 1


async def test_s_saves_the_selected_file(
    tmp_path: Path, memory_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_client.ui.widgets.timeline import TimelineView

    from .fake_world import Clock, build_sync, make_profile

    room = "!files000000000000000000000000000000000000008"
    clock = Clock()
    me = "@alice:example.org"
    state = [
        clock.event(room, me, "m.room.create", {"room_version": "12"}, state_key=""),
        clock.event(room, me, "m.room.name", {"name": "Files"}, state_key=""),
        clock.event(room, me, "m.room.member", {"membership": "join"}, state_key=me),
    ]
    files = [
        clock.event(
            room,
            "@bob:example.org",
            "m.room.message",
            {"msgtype": "m.file", "body": "report.pdf", "url": "mxc://example.org/report1"},
        ),
        clock.event(
            room,
            "@bob:example.org",
            "m.room.message",
            {"msgtype": "m.file", "body": "gone.pdf", "url": "mxc://example.org/gone1"},
        ),
    ]
    for event in files:
        event["origin_server_ts"] = 1795790000000 + len(event["event_id"])  # the newest room
    make_profile(
        tmp_path,
        build_sync(
            {room: {"state": {"events": state}, "timeline": {"events": files, "limited": False}}}
        ),
    )
    monkeypatch.setenv("TUI_CLIENT_DOWNLOADS", str(tmp_path / "dl"))
    server = FakeHomeserver()
    server.media["report1"] = b"%PDF-1.7 quarterly"
    app = TuiClientApp(base_dir=tmp_path, transport=server.transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        app.open_room(room)
        chat = app.chat_screen
        assert chat is not None
        timeline = chat.query_one(TimelineView)
        await wait_for(
            pilot,
            lambda: (
                chat.current_room == room
                and len([i for i in timeline.items if i.kind == "media"]) == 2
            ),
            "the files",
        )
        report, gone = [i for i in timeline.items if i.kind == "media"]
        timeline.focus()
        timeline.selected_key = report.key
        await pilot.press("s")
        await wait_for(
            pilot, lambda: any("Saved to" in n.message for n in app._notifications), "saved"
        )
        assert (tmp_path / "dl" / "report.pdf").read_bytes() == b"%PDF-1.7 quarterly"
        # A file the server no longer has: said plainly.
        timeline.selected_key = gone.key
        await pilot.press("s")
        await wait_for(
            pilot,
            lambda: any("Could not save the file" in n.message for n in app._notifications),
            "the error",
        )
        assert not (tmp_path / "dl" / "gone.pdf").exists()


async def test_a_live_mention_or_direct_message_elsewhere_is_told(fake_profile: Path) -> None:
    from tui_client.engine.updates import RoomListChanged

    dm = "!dmwithbob000000000000000000000000000000000002"
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]

    def chat_counts() -> object:
        return app.chat_screen._counts if app.chat_screen is not None else None

    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: (
                app.chat_screen is not None
                and app.chat_screen.view is not None
                and app.is_connected
            ),
            "a room",
        )
        client = app.client
        assert client is not None and client.sync_loop is not None
        await wait_for(pilot, lambda: chat_counts() is not None, "the first sync (alerts armed)")
        app.open_room(RANDOM)
        chat = app.chat_screen
        assert chat is not None
        await wait_for(pilot, lambda: chat.current_room == RANDOM, "Random")

        def bump(room_id: str, notifications: int, highlights: int) -> None:
            summary = client.rooms[room_id].copy()
            summary.notification_count += notifications
            summary.highlight_count += highlights
            client.rooms[room_id] = summary
            client.publish(RoomListChanged(tuple(client.rooms.values()), frozenset({room_id})))

        app.clear_notifications()
        bump(GENERAL, 1, 0)  # a plain message in a group: counted, no alert
        bump(GENERAL, 1, 1)  # a mention
        bump(dm, 1, 0)  # a direct message
        bump(RANDOM, 1, 1)  # the room on screen: nothing
        await pilot.pause(0.2)
        messages = sorted(n.message for n in app._notifications)
        assert messages == [
            "New message from Bob (Ctrl+K to go there)",
            "You were mentioned in General (Ctrl+K to go there)",
        ]
        # Counts alone ring nothing: the bell is the notifier's, for events (ui/notify.py).
        assert rings == []
