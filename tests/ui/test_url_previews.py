"""Link previews (the server's /preview_url faked at the transport): a muted line with the
page's title and description under a message with a link in a plain room, cleaned of
escape sequences; none asked for in an encrypted room unless turned on; a palette
toggle turns them off; an answer is asked once and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tui_client.protocol.url_preview import parse_preview
from tui_client.ui.app import TuiClientApp
from tui_client.ui.url_previews import preview_service
from tui_client.ui.widgets.timeline import TimelineView

from .fake_world import Clock, FakeHomeserver, build_sync, make_profile
from .test_snapshots import wait_for

PLAIN = "!links0000000000000000000000000000000000000013"
SECRET = "!secretlinks00000000000000000000000000000014"
ME = "@alice:example.org"


class PreviewServer(FakeHomeserver):
    """The fake homeserver, answering /preview_url with a hostile page's OpenGraph data."""

    def __init__(self) -> None:
        super().__init__()
        self.previewed: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/media/preview_url"):
            url = request.url.params["url"]
            self.previewed.append(url)
            return httpx.Response(
                200,
                json={
                    "og:title": "Release \x1b[31mnotes\x1b]52;c;ZXZpbA==\x07 2.1",
                    "og:description": "What changed\nin this release\x9b2J",
                    "og:site_name": "example.com",
                    "og:image": "mxc://example.com/abc",
                },
            )
        return await super().handle(request)


def _room(clock: Clock, room: str, name: str, *, encrypted: bool, ts: int) -> dict[str, Any]:
    state = [
        clock.event(room, ME, "m.room.create", {"room_version": "12"}, state_key=""),
        clock.event(room, ME, "m.room.name", {"name": name}, state_key=""),
        clock.event(room, ME, "m.room.member", {"membership": "join"}, state_key=ME),
    ]
    if encrypted:
        state.append(
            clock.event(
                room, ME, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, state_key=""
            )
        )
    link = clock.event(
        room,
        "@bob:example.org",
        "m.room.message",
        {"msgtype": "m.text", "body": f"see https://example.com/{name}/notes"},
    )
    link["origin_server_ts"] = ts
    return {"state": {"events": state}, "timeline": {"events": [link], "limited": False}}


def _profile(base: Path) -> None:
    clock = Clock()
    rooms = {
        PLAIN: _room(clock, PLAIN, "links", encrypted=False, ts=1795790000000),
        SECRET: _room(clock, SECRET, "secret", encrypted=True, ts=1795790001000),
    }
    make_profile(base, build_sync(rooms))


def _shown(timeline: TimelineView) -> str:
    return "\n".join(
        "".join(s.text for s in timeline.render_line(y)) for y in range(timeline.size.height)
    )


def test_a_preview_answer_is_cleaned_and_bounded() -> None:
    preview = parse_preview(
        "https://x", {"og:title": "a\x1b[2Jb", "og:description": "d" * 1000, "og:image:width": 3}
    )
    assert preview is not None
    assert (
        preview.title == "ab"
        and len(preview.description) == 240
        and preview.description.endswith("…")
    )
    assert parse_preview("https://x", {"og:title": 5, "og:description": ["x"]}) is None
    assert parse_preview("https://x", ["not", "an", "object"]) is None


async def test_previews_in_plain_rooms_only_and_the_toggle(
    tmp_path: Path, memory_keyring: None
) -> None:
    _profile(tmp_path)
    server = PreviewServer()
    app = TuiClientApp(base_dir=tmp_path, transport=server.transport())
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None
        timeline = chat.query_one(TimelineView)

        # An encrypted room: nothing asked (the spec's privacy note), no line.
        app.open_room(SECRET)
        await wait_for(
            pilot,
            lambda: chat.current_room == SECRET and "secret/notes" in _shown(timeline),
            "the secret room",
        )
        await pilot.pause(0.3)
        assert server.previewed == [] and "↗" not in _shown(timeline)

        # A plain room: the line under the message, muted, cleaned of the page's escapes.
        app.open_room(PLAIN)
        await wait_for(
            pilot,
            lambda: chat.current_room == PLAIN and "↗" in _shown(timeline),
            "the preview line",
        )
        assert server.previewed == ["https://example.com/links/notes"]
        line = next(line for line in _shown(timeline).splitlines() if "↗" in line)
        assert "↗ example.com: Release notes 2.1 — What changed in this release" in line
        assert "\x1b" not in _shown(timeline) and "\x9b" not in _shown(timeline)
        row = next(
            y
            for y in range(timeline.size.height)
            if "↗" in "".join(s.text for s in timeline.render_line(y))
        )
        styles = [s.style for s in timeline.render_line(row) if "Release" in s.text]
        assert styles and styles[0] is not None and styles[0].italic

        # Cached: opening the room again does not ask again.
        app.open_room(SECRET)
        await wait_for(pilot, lambda: chat.current_room == SECRET, "the secret room again")
        app.open_room(PLAIN)
        await wait_for(
            pilot, lambda: chat.current_room == PLAIN and "↗" in _shown(timeline), "the line again"
        )
        assert server.previewed == ["https://example.com/links/notes"]

        # The palette's toggle turns them off (kept in the cache), and on in encrypted rooms.
        service = preview_service(chat.client)
        commands = {c.title: c for c in app.get_system_commands(chat)}
        commands["Link previews: on → off"].callback()
        await wait_for(
            pilot, lambda: not service.plain and "↗" not in _shown(timeline), "previews off"
        )
        assert await chat.client.db.run(chat.client.cache.get_meta, "url_previews") == "off"
        commands["Link previews in encrypted rooms: off → on"].callback()
        await wait_for(pilot, lambda: service.encrypted, "previews on in encrypted rooms")
        app.open_room(SECRET)
        await wait_for(
            pilot,
            lambda: chat.current_room == SECRET and "↗" in _shown(timeline),
            "the secret room's preview",
        )
        assert server.previewed == [
            "https://example.com/links/notes",
            "https://example.com/secret/notes",
        ]
