"""Uploads on screen (no server: the fake homeserver, with /media/config and /upload
answered at the transport): the server's limit refuses a file before anything is sent,
a pasted path asks first and keeps the text if declined, the progress bar shows with
its speed and F8 cancels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from textual import events

from tui_client.store.uploads import uploads_pending
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ConfirmDialog
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.upload_bar import UploadBar, pasted_file

from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, wait_for


def screen_text(app: TuiClientApp) -> str:
    """What the terminal shows, as plain lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notes(app: TuiClientApp) -> list[str]:
    """The notifications shown (as toasts)."""
    assert all(not note.markup for note in app._notifications)
    return [note.message for note in app._notifications]


class UploadServer(FakeHomeserver):
    """The fake homeserver, with an upload limit and an upload that waits for the test."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.release = asyncio.Event()
        self.uploads: list[bytes] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/media/config"):
            return httpx.Response(200, json={"m.upload.size": self.limit})
        if path.endswith("/media/v3/upload"):
            self.requests.append(request)
            self.uploads.append(request.content)
            await self.release.wait()
            return httpx.Response(
                200, json={"content_uri": f"mxc://example.org/up{len(self.uploads)}"}
            )
        return await super().handle(request)


def test_pasted_file_names_an_absolute_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "my photo.png"
    target.write_bytes(b"x")
    assert pasted_file(str(target)) == target
    assert pasted_file(f"  {target}\n") == target
    assert pasted_file(f"'{target}'") == target
    assert pasted_file("file://" + str(target).replace(" ", "%20")) == target
    assert pasted_file(f"file://localhost{target}") == target
    assert pasted_file(f"file://elsewhere.example{target}") is None
    assert pasted_file(str(tmp_path)) is None  # a folder
    assert pasted_file(str(tmp_path / "missing.png")) is None
    assert pasted_file("my photo.png") is None  # relative
    assert pasted_file(f"{target}\n{target}") is None  # two lines: text
    assert pasted_file("see /etc/hostname") is None


async def test_the_servers_upload_limit_refuses_the_file_on_screen(
    fake_profile: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(5000))
    server = UploadServer(limit=4096)
    app = TuiClientApp(base_dir=fake_profile, transport=server.transport())
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        app.open_room(GENERAL)
        chat = app.chat_screen
        assert chat is not None
        await wait_for(pilot, lambda: chat.current_room == GENERAL, "General")
        composer = chat.query_one(Composer)
        composer.focus()
        await pilot.pause()
        composer.text = f"/upload {big}"
        composer.move_cursor(composer.document.end)
        await pilot.press("enter")
        refusal = "cannot send the file: big.bin is too large for this server: 5.0 KB, and it takes at most 4.1 KB"
        await wait_for(pilot, lambda: refusal in notes(app), "the refusal")
        assert server.uploads == []
        assert await chat.client.db.run(uploads_pending, chat.client.cache) == []


async def test_a_pasted_path_asks_then_uploads_with_a_bar_and_f8_cancels(
    fake_profile: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.bin"
    report.write_bytes(b"quarterly numbers " * 1000)
    server = UploadServer(limit=10_000_000)
    app = TuiClientApp(base_dir=fake_profile, transport=server.transport())
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        app.open_room(GENERAL)
        chat = app.chat_screen
        assert chat is not None
        client = chat.client
        await wait_for(pilot, lambda: chat.current_room == GENERAL, "General")
        composer = chat.query_one(Composer)
        composer.focus()
        composer.insert("look: ")

        # Declined: the pasted text goes into the composer after all.
        composer.post_message(events.Paste(str(report)))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        assert "Upload report.bin (18.0 KB) to this room?" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is chat, "the chat again")
        assert composer.text == f"look: {report}"
        assert server.uploads == []

        # Accepted: the bar shows while the server takes the file; F8 cancels it.
        composer.post_message(events.Paste(f"file://{report}"))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question again")
        await pilot.press("y")
        bar = chat.query_one(UploadBar)
        await wait_for(
            pilot, lambda: len(server.uploads) == 1 and "100%" in screen_text(app), "the bar"
        )
        line = next(line for line in screen_text(app).splitlines() if "report.bin" in line)
        assert (
            "Uploading report.bin" in line
            and "18.0 KB of 18.0 KB" in line
            and "/s" in line
            and "F8 cancel" in line
        )
        assert composer.text == f"look: {report}"  # the accepted paste was not inserted
        await pilot.press("f8")
        await wait_for(
            pilot, lambda: not bar.display and "Cancelled report.bin" in notes(app), "cancelled"
        )
        assert await client.db.run(uploads_pending, client.cache) == []
        assert [
            e
            for e in await client.db.run(client.cache.outbox)
            if e.content.get("body") == "report.bin"
        ] == []
        assert server.uploads[0] == report.read_bytes()

        # Again, and this time the server answers: the message is queued with the file's URI.
        composer.post_message(events.Paste(str(report)))
        await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question, third time"
        )
        await pilot.press("y")
        await wait_for(pilot, lambda: len(server.uploads) == 2, "the second upload")
        server.release.set()
        await wait_for(pilot, lambda: not bar.display, "the upload done")
        sent = [e for e in server.requests if "/send/m.room.message/" in e.url.path]
        assert any(
            b"mxc://example.org/up2" in e.content and b"report.bin" in e.content for e in sent
        )
