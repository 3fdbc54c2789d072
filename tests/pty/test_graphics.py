"""Pictures in the real app on a pseudo-terminal that identifies itself: as kitty (it
answers the kitty graphics query, TERM=xterm-kitty) the timeline's image is sent as a PNG
and drawn as Unicode placeholder cells whose colour is its ID; as a sixel terminal (its DA1
answer lists 4) the viewer writes the picture as sixel, the timeline keeps half-blocks.
Images are sent by another client through Synapse, in a plain room (a server thumbnail)
and an encrypted one (the file decrypted after its hash is checked). The bytes checked are
those the app writes to the terminal."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nio.crypto.attachments import encrypt_attachment as nio_encrypt
from PIL import Image

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient

from ..integration.e2ee_support import client_for, encrypted_room
from ..integration.test_attachments import upload
from ..ui.test_inline_images import BLUE, GREEN, RED, YELLOW, near, quadrants_png
from ..ui.test_threads_flow import _send
from .app import PtyApp
from .test_composer_burst import log_in_on_pty, make_room

T = TypeVar("T")

KITTY_ANSWERS = {b"\x1b_Gi=31,": b"\x1b_Gi=31;OK\x1b\\", b"\x1b[c": b"\x1b[?62;22c"}
SIXEL_ANSWERS = {b"\x1b[c": b"\x1b[?62;4;22c", b"\x1b[16t": b"\x1b[6;20;10t"}
KITTY_ENV = {"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1", "COLORTERM": "truecolor"}
SIXEL_ENV = {"TERM": "xterm-256color", "TERM_PROGRAM": "", "KITTY_WINDOW_ID": ""}
PLACEHOLDER = "\U0010eeee".encode()


class Loop:
    """An event loop in a thread, for the other client (it syncs while the app runs)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def other_loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.stop()


def image_content(synapse: SynapseServer, bob: RegisteredUser, picture: bytes) -> dict[str, Any]:
    return {
        "msgtype": "m.image",
        "body": "quadrants.png",
        "url": upload(synapse, bob, picture),
        "info": {"mimetype": "image/png", "size": len(picture)},
    }


def encrypted_image_content(
    synapse: SynapseServer, bob: RegisteredUser, picture: bytes
) -> dict[str, Any]:
    ciphertext, keys = nio_encrypt(picture)
    file = {
        "v": "v2",
        "key": keys["key"],
        "iv": keys["iv"],
        "hashes": keys["hashes"],
        "url": upload(synapse, bob, ciphertext),
    }
    return {
        "msgtype": "m.image",
        "body": "secret.png",
        "file": file,
        "info": {"mimetype": "image/png"},
    }


def wait_bytes(app: PtyApp, check: Callable[[bytes], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check(bytes(app.output))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the app never wrote {what}; the screen:\n{app.text()}")


def assert_quadrants_png(png: bytes) -> None:
    """A PNG of the picture (any size): red, green above; blue, yellow below."""
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    assert width >= 16 and height >= 8 and width == 2 * height, image.size
    for (x, y), colour in {
        (width // 4, height // 4): RED,
        (3 * width // 4, height // 4): GREEN,
        (width // 4, 3 * height // 4): BLUE,
        (3 * width // 4, 3 * height // 4): YELLOW,
    }.items():
        pixel = image.getpixel((x, y))
        assert isinstance(pixel, tuple) and near(pixel[:3], colour), (x, y, pixel)


_TRANSMIT = re.compile(
    rb"\x1b_Ga=T,U=1,f=100,t=d,i=(\d+),c=(\d+),r=(\d+),q=2,m=(\d);([^\x1b]*)\x1b\\"
)
_MORE = re.compile(rb"\x1b_Gm=(\d),q=2;([^\x1b]*)\x1b\\")


def kitty_images(output: bytes) -> list[tuple[int, int, int, bytes]]:
    """The images sent with a virtual placement: (ID, columns, rows, PNG)."""
    images = []
    for found in _TRANSMIT.finditer(output):
        data, more, at = found.group(5), found.group(4), found.end()
        while more == b"1":
            chunk = _MORE.match(output, at)
            if chunk is None:
                break
            more, at = chunk.group(1), chunk.end()
            data += chunk.group(2)
        if more == b"0":
            images.append(
                (
                    int(found.group(1)),
                    int(found.group(2)),
                    int(found.group(3)),
                    base64.b64decode(data),
                )
            )
    return images


def placeholder_rows(output: bytes, image_id: int) -> int:
    """How many rows of placeholders for ``image_id`` the app drew: a 24-bit foreground of
    the ID, then U+10EEEE cells each with a row and a column diacritic."""
    colour = f"38;2;{image_id >> 16 & 255};{image_id >> 8 & 255};{image_id & 255}".encode()
    rows = set()
    text = output.decode("utf-8", "replace")
    for found in re.finditer(r"\x1b\[([0-9;]*)m((?:\U0010eeee[\u0300-\uffff]{2})+)", text):
        if colour.decode() not in found.group(1):
            continue
        cells = found.group(2).split("\U0010eeee")[1:]
        rows.update(cell[0] for cell in cells)
        columns = [cell[1] for cell in cells]
        assert len(set(columns)) == len(columns)  # each cell its own column
    return len(rows)


def start_app(
    synapse: SynapseServer,
    alice: RegisteredUser,
    tmp_path: Path,
    env: dict[str, str],
    answers: dict[bytes, bytes],
) -> PtyApp:
    return PtyApp.for_account(
        str(tmp_path / "data"),
        synapse.base_url,
        alice.user_id,
        size=(100, 40),
        env=env,
        answers=answers,
    )


def send_image(
    synapse: SynapseServer,
    bob: RegisteredUser,
    room_id: str,
    encrypted: bool,
    bob_client: MatrixClient | None,
    loop: Loop,
    picture: bytes,
) -> None:
    if not encrypted:
        _send(synapse, bob, room_id, image_content(synapse, bob, picture), "img")
        return
    assert bob_client is not None
    content = encrypted_image_content(synapse, bob, picture)
    loop.run(bob_client.send_event(room_id, "m.room.message", content))


def prepare_room(
    synapse: SynapseServer,
    bob: RegisteredUser,
    alice: RegisteredUser,
    encrypted: bool,
    loop: Loop,
    tmp_path: Path,
) -> tuple[str, MatrixClient | None]:
    if not encrypted:
        return make_room(synapse, bob, "Pictures", alice), None
    bob_client = loop.run(client_for(synapse, bob, tmp_path / "bob"))
    room_id = loop.run(encrypted_room(bob_client, "Pictures", [alice.user_id]))
    status, body = synapse.request_json(
        "POST",
        f"/_matrix/client/v3/join/{urllib.parse.quote(room_id, safe='')}",
        {},
        alice.access_token,
    )
    assert status == 200, body
    return room_id, bob_client


@contextlib.contextmanager
def picture_sent(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    loop: Loop,
    encrypted: bool,
    env: dict[str, str],
    answers: dict[bytes, bytes],
    picture: bytes,
) -> Iterator[PtyApp]:
    """Alice's app on a terminal that answers as ``answers`` say, logged in, once Bob (his
    own client) has sent the quadrants picture to their room."""
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room_id, bob_client = prepare_room(synapse, bob, alice, encrypted, loop, tmp_path)
    try:
        with start_app(synapse, alice, tmp_path, env, answers) as app:
            log_in_on_pty(app, alice, "Pictures")
            send_image(synapse, bob, room_id, encrypted, bob_client, loop, picture)
            yield app
    finally:
        if bob_client is not None:
            loop.run(bob_client.close())


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_kitty_terminal_gets_the_picture_and_placeholder_cells(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    other_loop: Loop,
    encrypted: bool,
) -> None:
    picture = quadrants_png(64, 32)
    with picture_sent(
        synapse, make_user, tmp_path, other_loop, encrypted, KITTY_ENV, KITTY_ANSWERS, picture
    ) as app:
        app.wait_for("quadrants.png" if not encrypted else "secret.png")
        images = wait_bytes(app, kitty_images, "a kitty image")
        ((image_id, cols, rows, png),) = images
        # 64 x 32 pixels in the timeline's box (40 x 12 cells at most, the body's width at
        # 100 columns): aspect kept (a cell is 1 x 2), as many cells as half-blocks take.
        assert cols <= 40 and 4 <= rows <= 12 and abs(cols - 4 * rows) <= 1, (cols, rows)
        assert_quadrants_png(png)
        wait_bytes(app, lambda out: placeholder_rows(out, image_id) == rows, "the placeholder rows")
        # Not the half-block form.
        assert "▀" not in app.text()
        # The app asked the terminal first (and drew in 24-bit colour to carry the ID).
        assert app.output.index(b"\x1b_Gi=31,") < app.output.index(b"\x1b_Ga=T")

        # The viewer (Shift+Tab to the timeline, Up to the image, Enter): the picture in its
        # own box of the 100 x 40 screen, 64 x 16 cells (never enlarged), as placeholders.
        app.write(b"\x1b[Z")
        time.sleep(0.3)
        app.write(b"\x1b[A")
        time.sleep(0.3)
        app.write(b"\r")
        viewed = wait_bytes(app, lambda out: kitty_images(out)[1:], "the viewer's kitty image")
        ((viewer_id, cols, rows, png),) = viewed
        assert (cols, rows) == (64, 16) and viewer_id != image_id
        assert_quadrants_png(png)
        wait_bytes(app, lambda out: placeholder_rows(out, viewer_id) == 16, "16 rows in the viewer")


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_sixel_terminal_views_the_picture_in_sixel_and_keeps_half_blocks_inline(
    synapse: SynapseServer,
    make_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    other_loop: Loop,
    encrypted: bool,
) -> None:
    with picture_sent(
        synapse,
        make_user,
        tmp_path,
        other_loop,
        encrypted,
        SIXEL_ENV,
        SIXEL_ANSWERS,
        quadrants_png(),
    ) as app:
        # In the timeline: half-blocks (read from the screen).
        app.wait_for(lambda screen: screen.count("▀" * 16) == 4, timeout=30)
        assert b"\x1bP" not in app.output and b"\x1b_Ga=" not in app.output
        # The viewer: the image selected (Shift+Tab to the timeline, Up), Enter.
        app.write(b"\x1b[Z")
        time.sleep(0.3)
        app.write(b"\x1b[A")
        time.sleep(0.3)
        app.write(b"\r")
        sixel = wait_bytes(
            app,
            lambda out: re.search(rb"\x1bP0;1;0q\"1;1;(\d+);(\d+)(.*?)\x1b\\", out, re.DOTALL),
            "a sixel image",
        )
        width, height = int(sixel.group(1)), int(sixel.group(2))
        # Never enlarged past the image's own pixels.
        assert (width, height) == (16, 8)
        body = sixel.group(3)
        colours = {
            tuple(int(v) * 255 // 100 for v in found)
            for found in re.findall(rb"#\d+;2;(\d+);(\d+);(\d+)", body)
        }
        for expected in (RED, GREEN, BLUE, YELLOW):
            assert any(near(colour, expected) for colour in colours), (expected, colours)  # type: ignore[arg-type]
        # Written at a cursor position (saved and restored around it).
        before = app.output[: sixel.start()]
        assert re.search(rb"\x1b7\x1b\[\d+;\d+H$", before)
