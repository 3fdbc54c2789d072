"""Images sent by someone else are drawn in the timeline in half-blocks, checked on Synapse:
a plain image (a server thumbnail, authenticated media) and one in an encrypted room
(downloaded in full, its hash checked, decrypted), read back from the screen: ``▀`` cells
whose colours are the picture's. Enter on the image opens the full-screen viewer."""

from __future__ import annotations

import io
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nio.crypto.attachments import encrypt_attachment as nio_encrypt
from PIL import Image
from rich.segment import Segment

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.pictures import image_service
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.image_viewer import ImageViewer
from tui_client.ui.widgets.member_list import MemberList
from tui_client.ui.widgets.room_list import RoomList
from tui_client.ui.widgets.timeline import TimelineView

from ..integration.e2ee_support import client_for, encrypted_room
from ..integration.test_attachments import upload
from .test_flow import _join, _room, until
from .test_read_receipts_flow import _log_in
from .test_threads_flow import _send

RED, GREEN, BLUE, YELLOW = (220, 20, 20), (20, 200, 40), (30, 40, 210), (230, 210, 30)


def quadrants_png(width: int = 16, height: int = 8) -> bytes:
    """A PNG in four flat quadrants: red and green above, blue and yellow below."""
    image = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            left, top = x < width // 2, y < height // 2
            image.putpixel((x, y), (RED if left else GREEN) if top else (BLUE if left else YELLOW))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def half_block_cells(
    timeline: TimelineView,
) -> list[list[tuple[tuple[int, int, int], tuple[int, int, int]]]]:
    """The rows of ``▀`` cells the timeline draws on screen: (upper, lower) colours each."""
    rows = []
    for y in range(timeline.size.height):
        strip = timeline.render_line(y)
        cells = []
        for segment in strip:
            assert isinstance(segment, Segment)
            if "▀" not in segment.text:
                continue
            style = segment.style
            assert style is not None and style.color is not None and style.bgcolor is not None
            upper, lower = style.color.get_truecolor(), style.bgcolor.get_truecolor()
            cells.extend(
                [((upper.red, upper.green, upper.blue), (lower.red, lower.green, lower.blue))]
                * len(segment.text)
            )
        if cells:
            rows.append(cells)
    return rows


def near(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, expected, strict=True))


def assert_quadrants(rows: list[list[tuple[tuple[int, int, int], tuple[int, int, int]]]]) -> None:
    # 16 x 8 pixels: 16 cells wide, 4 rows (two pixel rows a cell), not enlarged.
    assert len(rows) == 4 and all(len(row) == 16 for row in rows), [len(r) for r in rows]
    for index, row in enumerate(rows):
        left, right = (RED, GREEN) if index < 2 else (BLUE, YELLOW)
        assert all(near(up, left) and near(down, left) for up, down in row[:8]), row[:8]
        assert all(near(up, right) and near(down, right) for up, down in row[8:]), row[8:]


async def test_plain_and_encrypted_images_are_drawn_in_half_blocks_and_open_in_the_viewer(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    picture = quadrants_png()

    plain = _room(synapse, bob, "Pictures", [alice.user_id])
    _join(synapse, alice, plain)
    image_event = _send(
        synapse,
        bob,
        plain,
        {
            "msgtype": "m.image",
            "body": "quadrants.png",
            "url": upload(synapse, bob, picture),
            "info": {"mimetype": "image/png", "w": 16, "h": 8, "size": len(picture)},
        },
        "img1",
    )

    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        assert app.client is not None
        await until(
            pilot, lambda: screen.current_room == plain and screen.view is not None, "the room"
        )
        timeline = screen.query_one("#timeline", TimelineView)
        await until(
            pilot,
            lambda: any(i.event_id == image_event for i in timeline.items),
            "the image message",
        )
        await until(
            pilot, lambda: len(half_block_cells(timeline)) == 4, "the picture drawn", timeout=20
        )
        assert_quadrants(half_block_cells(timeline))

        # Images off (the palette's setting): the message is its text line only.
        await image_service(app.client).set_mode("off")
        await until(pilot, lambda: not half_block_cells(timeline), "the picture gone")
        assert any(
            "quadrants.png" in timeline.render_line(y).text for y in range(timeline.size.height)
        )
        await image_service(app.client).set_mode("thumbnails")
        await until(
            pilot, lambda: len(half_block_cells(timeline)) == 4, "the picture back", timeout=20
        )

        # Enter on the selected image: the whole screen, bigger; Escape comes back.
        timeline.focus()
        timeline.select_event(image_event)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ImageViewer), "the viewer")
        viewer = app.screen
        await until(
            pilot,
            lambda: any("▀" in s.text for s in viewer.query_one("#picture").render_line(20)),
            "the full picture",
        )
        drawn = [viewer.query_one("#picture").render_line(y) for y in range(40)]
        wide = max(sum(len(s.text) for s in strip if "▀" in s.text) for strip in drawn)
        assert wide == 16  # never enlarged past its pixels: the whole of it, sharp
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back to the room")

        # An encrypted room: bob's client encrypts the message, matrix-nio the file.
        bob_client = await client_for(synapse, bob, tmp_path / "bob")
        try:
            secret = await encrypted_room(bob_client, "Secret pictures", [alice.user_id])
            await until(pilot, lambda: secret in app.client.rooms, "the invite")  # type: ignore[union-attr]
            await app.client.join(secret)
            await until(
                pilot, lambda: bob_client.rooms[secret].joined_count == 2, "alice in the room"
            )
            ciphertext, keys = nio_encrypt(picture)
            file = {
                "v": "v2",
                "key": keys["key"],
                "iv": keys["iv"],
                "hashes": keys["hashes"],
                "url": upload(synapse, bob, ciphertext),
            }
            await bob_client.send_event(
                secret,
                "m.room.message",
                {
                    "msgtype": "m.image",
                    "body": "secret.png",
                    "file": file,
                    "info": {"mimetype": "image/png", "w": 16, "h": 8},
                },
            )
            screen.open_room(secret)
            await until(
                pilot,
                lambda: (
                    screen.current_room == secret
                    and any(
                        i.image is not None and i.image.original.encrypted is not None
                        for i in timeline.items
                    )
                ),
                "the encrypted image",
            )
            await until(
                pilot,
                lambda: len(half_block_cells(timeline)) == 4,
                "the decrypted picture drawn",
                timeout=20,
            )
            assert_quadrants(half_block_cells(timeline))
        finally:
            await bob_client.close()


def recording_handler(folder: Path) -> Path:
    """A stand-in for the system's handler: records its argument, the file's mode and bytes."""
    script = folder / "handler.py"
    script.write_text(
        "#!" + sys.executable + "\n"
        "import os, sys, pathlib\n"
        f"out = pathlib.Path({str(folder)!r})\n"
        "target = sys.argv[1]\n"
        "if os.path.exists(target):\n"
        "    (out / 'mode').write_text(oct(os.stat(target).st_mode & 0o777) + ' ' + oct(os.stat(os.path.dirname(os.path.dirname(target))).st_mode & 0o777))\n"
        "    (out / 'copy').write_bytes(pathlib.Path(target).read_bytes())\n"
        "(out / 'args').open('a').write(target + '\\n')\n"
    )
    script.chmod(0o700)
    return script


async def press_on(
    pilot: Any, timeline: TimelineView, event_id: str, key: str, done: Callable[[], bool], what: str
) -> None:
    """Select a message and press a key until ``done`` holds (a sync that replaces the
    timeline's items may take the selection away between the two)."""
    for _ in range(10):
        timeline.focus()
        timeline.select_event(event_id)
        await pilot.press(key)
        for _ in range(60):
            if done():
                return
            await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_o_opens_a_file_through_a_private_copy_and_a_link_in_the_handler(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    handled = tmp_path / "handled"
    handled.mkdir()
    monkeypatch.setenv("BROWSER", str(recording_handler(handled)))
    room = _room(synapse, bob, "Files", [alice.user_id])
    _join(synapse, alice, room)
    data = b"%PDF-1.4 pretend report\n" * 40
    file_event = _send(
        synapse,
        bob,
        room,
        {
            "msgtype": "m.file",
            "body": "report.pdf",
            "url": upload(synapse, bob, data),
            "info": {"size": len(data)},
        },
        "f1",
    )
    link_event = _send(
        synapse,
        bob,
        room,
        {"msgtype": "m.text", "body": "the notes: https://example.org/notes?id=1."},
        "l1",
    )

    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        timeline = screen.query_one("#timeline", TimelineView)
        await until(
            pilot, lambda: any(i.event_id == link_event for i in timeline.items), "the messages"
        )

        def args() -> list[str]:
            return (
                (handled / "args").read_text().splitlines() if (handled / "args").exists() else []
            )

        await press_on(
            pilot,
            timeline,
            file_event,
            "o",
            (handled / "copy").exists,
            "the handler run on the file",
        )
        assert (handled / "copy").read_bytes() == data
        assert (handled / "mode").read_text() == "0o600 0o700"  # the file, and the private folder
        opened = Path(args()[0])
        assert opened.name == "report.pdf" and opened.read_bytes() == data

        url = "https://example.org/notes?id=1"  # (the full stop after it is not part of it)
        await press_on(
            pilot, timeline, link_event, "o", lambda: url in args(), "the handler run on the link"
        )
        assert set(args()) == {str(opened), url}

        # O copies the link (OSC 52, through the app's clipboard).
        await press_on(
            pilot, timeline, link_event, "O", lambda: app.clipboard == url, "the link copied"
        )

        # The palette turns copying off (kept in the cache); O then says so on screen.
        await pilot.press("ctrl+p")
        await pilot.press(*"Copy links with O")
        await pilot.pause(0.5)
        await pilot.press("enter")
        assert app.client is not None
        await until(pilot, lambda: not image_service(app.client).copy_links, "copying turned off")  # type: ignore[arg-type]
        assert await app.client.db.run(app.client.cache.get_meta, "osc52_copy") == "off"
        app.copy_to_clipboard("")
        await press_on(
            pilot,
            timeline,
            link_event,
            "O",
            lambda: any(
                "Copying to the clipboard is turned off" in n.message for n in app._notifications
            ),
            "the refusal on screen",
        )
        assert app.clipboard == ""


async def test_room_avatars_are_drawn_in_the_room_list_kept_on_disk_and_can_be_turned_off(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    avatar = upload(synapse, bob, quadrants_png())
    room = _room(synapse, bob, "Painted", [alice.user_id])
    _join(synapse, alice, room)
    path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room, safe='')}/state/m.room.avatar"
    status, answer = synapse.request_json("PUT", path, {"url": avatar}, bob.access_token)
    assert status == 200, answer
    # Bob's own avatar (his member event carries it): a flat yellow picture.
    flat = io.BytesIO()
    Image.new("RGB", (8, 8), YELLOW).save(flat, "PNG")
    bob_avatar = upload(synapse, bob, flat.getvalue())
    profile = f"/_matrix/client/v3/profile/{urllib.parse.quote(bob.user_id, safe='')}/avatar_url"
    status, answer = synapse.request_json(
        "PUT", profile, {"avatar_url": bob_avatar}, bob.access_token
    )
    assert status == 200, answer

    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(120, 40)) as pilot:
        await _log_in(pilot, app, synapse, alice)
        assert app.client is not None
        rooms = app.screen.query_one(RoomList)

        def avatar_cells() -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
            for y in range(rooms.size.height):
                strip = rooms.render_line(y)
                if "Painted" in strip.text:
                    cells = []
                    for segment in strip:
                        if (
                            "▀" in segment.text
                            and segment.style
                            and segment.style.color
                            and segment.style.bgcolor
                        ):
                            up, down = (
                                segment.style.color.get_truecolor(),
                                segment.style.bgcolor.get_truecolor(),
                            )
                            cells += [
                                ((up.red, up.green, up.blue), (down.red, down.green, down.blue))
                            ] * len(segment.text)
                    return cells
            return []

        # 2 cells of half-blocks: the picture's four quadrants, 2 x 2 pixels.
        await until(
            pilot,
            lambda: len(avatar_cells()) == 2,
            "the room's avatar",
            timeout=20,
            on_timeout=lambda: repr(
                (
                    [rooms.render_line(y).text for y in range(6)],
                    [s.avatar_url for s in app.client.rooms.values()],  # type: ignore[union-attr]
                    image_service(app.client)._avatars,  # type: ignore[arg-type]
                )
            ),
        )
        (top_left, bottom_left), (top_right, bottom_right) = avatar_cells()
        assert (
            near(top_left, RED)
            and near(top_right, GREEN)
            and near(bottom_left, BLUE)
            and near(bottom_right, YELLOW)
        )
        # Kept on disk: the next start draws it without asking the server.
        stored = await app.client.db.run(app.client.cache.get_avatar, avatar)
        assert stored is not None and stored[:2] == (2, 2)

        # The member list: Bob's avatar before his name.
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        await until(pilot, lambda: chat.current_room == room, "the room open")
        if not chat.query(MemberList) or not chat.query_one(MemberList).display:
            chat.action_toggle_members()
        members = chat.query_one(MemberList)

        def bob_cells() -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
            for y in range(members.size.height):
                strip = members.render_line(y)
                if "Bob" in strip.text:
                    return [
                        (s.style.color.get_truecolor()[:3], s.style.bgcolor.get_truecolor()[:3])  # type: ignore[union-attr]
                        for s in strip
                        for _ in s.text
                        if "▀" in s.text
                    ]
            return []

        await until(
            pilot, lambda: len(bob_cells()) == 2, "Bob's avatar in the member list", timeout=20
        )
        assert all(near(up, YELLOW) and near(down, YELLOW) for up, down in bob_cells())

        await image_service(app.client).set_avatars(False)
        await until(pilot, lambda: not avatar_cells(), "the avatar gone")
        await until(pilot, lambda: not bob_cells(), "Bob's avatar gone")
        assert await app.client.db.run(app.client.cache.get_meta, "avatars") == "off"


async def test_the_dm_header_shows_the_other_persons_avatar_while_avatars_are_on(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    from tui_client.ui.widgets.room_header import RoomHeader

    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    flat = io.BytesIO()
    Image.new("RGB", (8, 8), GREEN).save(flat, "PNG")
    profile = f"/_matrix/client/v3/profile/{urllib.parse.quote(bob.user_id, safe='')}/avatar_url"
    status, answer = synapse.request_json(
        "PUT", profile, {"avatar_url": upload(synapse, bob, flat.getvalue())}, bob.access_token
    )
    assert status == 200, answer
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "trusted_private_chat", "invite": [alice.user_id], "is_direct": True},
        bob.access_token,
    )
    assert status == 200, body
    dm = str(body["room_id"])
    _join(synapse, alice, dm)
    direct = f"/_matrix/client/v3/user/{urllib.parse.quote(alice.user_id, safe='')}/account_data/m.direct"
    status, answer = synapse.request_json("PUT", direct, {bob.user_id: [dm]}, alice.access_token)
    assert status == 200, answer

    app = TuiClientApp(base_dir=tmp_path / "alice")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        assert app.client is not None
        await until(pilot, lambda: screen.current_room == dm and screen.view is not None, "the DM")
        header = screen.query_one(RoomHeader)

        def avatar() -> list[Any]:
            strip = header.render_line(0)
            return [s for s in strip if isinstance(s, Segment) and "▀" in s.text]

        await until(pilot, lambda: bool(avatar()), "Bob's avatar in the header", timeout=20)
        (segment,) = avatar()
        assert segment.text == "▀▀"
        assert segment.style is not None and segment.style.color is not None
        upper = segment.style.color.get_truecolor()
        assert near((upper.red, upper.green, upper.blue), GREEN)
        assert (
            "Bob" in header.render_line(0).text and "(direct message)" in header.render_line(0).text
        )

        await image_service(app.client).set_avatars(False)
        await until(pilot, lambda: not avatar(), "the avatar gone from the header")
        assert "Bob" in header.render_line(0).text
