"""The terminal's picture protocol from the setting, the environment and its answers, and
the byte sequences of each protocol (kitty placeholders, sixel, iTerm2)."""

from __future__ import annotations

import base64
import io
import os
import pty
import re
import threading

from PIL import Image

from tui_client.ui.graphics import (
    HALFBLOCKS,
    ITERM2,
    KITTY,
    PLACEHOLDER,
    SIXEL,
    choose_protocol,
    iterm2_sequence,
    kitty_lines,
    kitty_transmit,
    query_terminal,
    sixel_sequence,
)


def _png(size: tuple[int, int], colour: tuple[int, int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, colour).save(out, "PNG")
    return out.getvalue()


def test_the_protocol_follows_the_setting_then_the_terminal() -> None:
    kitty_env = {"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "3"}
    assert choose_protocol("auto", kitty_env, kitty_answered=True, da1=(62, 22)) == KITTY
    # Ghostty has placeholders too.
    assert (
        choose_protocol("auto", {"TERM_PROGRAM": "ghostty"}, kitty_answered=True, da1=(62,))
        == KITTY
    )
    # kitty graphics without placeholders (Konsole, WezTerm): sixel when offered.
    assert (
        choose_protocol("auto", {"TERM": "xterm-256color"}, kitty_answered=True, da1=(62, 4))
        == SIXEL
    )
    assert choose_protocol("auto", {"TERM": "xterm-256color"}, da1=(62, 4, 22)) == SIXEL
    assert choose_protocol("auto", {"TERM_PROGRAM": "iTerm.app"}, da1=(62, 22)) == ITERM2
    assert choose_protocol("auto", {"LC_TERMINAL": "iTerm2"}, da1=(62,)) == ITERM2
    assert choose_protocol("auto", {"TERM": "xterm-256color"}, da1=(62, 22)) == HALFBLOCKS
    # A terminal that said it is kitty but did not answer: trusted by its name.
    assert choose_protocol("auto", kitty_env) == KITTY
    # tmux and screen: half-blocks (no passthrough), whatever is outside.
    assert (
        choose_protocol("auto", {**kitty_env, "TMUX": "/tmp/x"}, kitty_answered=True) == HALFBLOCKS
    )
    # The setting wins.
    assert choose_protocol("sixel", kitty_env, kitty_answered=True) == SIXEL
    assert choose_protocol("halfblocks", kitty_env, kitty_answered=True) == HALFBLOCKS
    assert choose_protocol("off", kitty_env, kitty_answered=True) == HALFBLOCKS
    assert choose_protocol("kitty", {}) == KITTY


def _terminal(answer: bytes) -> tuple[int, threading.Thread, list[bytes]]:
    """A pty whose far end answers once it has read the queries."""
    master, slave = pty.openpty()
    asked: list[bytes] = []

    def far_end() -> None:
        data = b""
        while b"\x1b[c" not in data:
            data += os.read(master, 1024)
        asked.append(data)
        if answer:
            os.write(master, answer)

    thread = threading.Thread(target=far_end, daemon=True)
    thread.start()
    return slave, thread, asked


def test_the_terminal_is_asked_and_its_answers_read() -> None:
    slave, thread, asked = _terminal(b"\x1b_Gi=31;OK\x1b\\\x1b[6;18;9t\x1b[?62;4;22c")
    assert query_terminal(slave, timeout=5) == (True, (62, 4, 22), (9, 18))
    thread.join(5)
    assert asked[0].startswith(b"\x1b_Gi=31,") and asked[0].endswith(b"\x1b[16t\x1b[c")
    # A plain xterm: DA1 only.
    slave, thread, _ = _terminal(b"\x1b[?1;2c")
    assert query_terminal(slave, timeout=5) == (False, (1, 2), None)
    # A terminal that answers nothing: the timeout, then nothing known.
    slave, thread, _ = _terminal(b"")
    assert query_terminal(slave, timeout=0.3) == (False, None, None)


def test_kitty_sends_the_png_once_in_chunks_and_draws_numbered_cells() -> None:
    png = os.urandom(9000)  # any payload: chunked at 4096 base64 characters
    sequence = kitty_transmit(png, 0x123456, 16, 4)
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", sequence)
    assert chunks[0][0] == "a=T,U=1,f=100,t=d,i=1193046,c=16,r=4,q=2,m=1"
    assert [head for head, _ in chunks[1:]] == ["m=1,q=2", "m=0,q=2"]
    assert base64.b64decode("".join(data for _, data in chunks)) == png
    lines = kitty_lines(0x123456, 3, 2)
    assert len(lines) == 2
    (segment,) = lines[1]
    assert segment.style is not None and segment.style.color is not None
    assert segment.style.color.triplet == (0x12, 0x34, 0x56)  # the ID as the colour
    cells = segment.text.split(PLACEHOLDER)[1:]
    # Row 1 in each cell, then columns 0, 1, 2 (kitty's diacritics table).
    assert cells == ["\u030d\u0305", "\u030d\u030d", "\u030d\u030e"]


def test_sixel_draws_each_colour_band_by_band_and_skips_transparency() -> None:
    image = Image.new("RGBA", (4, 7), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    for x in range(4):
        image.putpixel((x, 6), (0, 0, 255, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    sequence = sixel_sequence(out.getvalue())
    assert sequence.startswith('\x1bP0;1;0q"1;1;4;7') and sequence.endswith("\x1b\\")
    colours = dict(re.findall(r"#(\d+);2;(\d+;\d+;\d+)", sequence))
    red = next(index for index, rgb in colours.items() if rgb == "100;0;0")
    blue = next(index for index, rgb in colours.items() if rgb == "0;0;100")
    bands = sequence.split("-")
    # First band (rows 0-5): red everywhere but the transparent pixel (row 0 of column 0).
    assert f"#{red}" + chr(63 + 0b111110) + chr(63 + 0b111111) * 3 in bands[0]
    # Second band (row 6): blue.
    assert f"#{blue}" + chr(63 + 1) * 4 in bands[1] or f"#{blue}!4" + chr(64) in bands[1]


def test_iterm2_sends_the_png_with_its_size_in_cells() -> None:
    png = _png((8, 4), (1, 2, 3, 255))
    sequence = iterm2_sequence(png, 8, 2)
    head, data = sequence.removeprefix("\x1b]1337;File=").removesuffix("\x07").split(":")
    assert head == f"inline=1;size={len(png)};width=8;height=2;preserveAspectRatio=1"
    assert base64.b64decode(data) == png


class _Driver:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, data: str) -> None:
        self.written.append(data)


class _App:
    def __init__(self) -> None:
        self._driver = _Driver()


def test_a_picture_is_sent_once_per_box_and_old_ones_are_deleted() -> None:
    from tui_client.ui.graphics import Graphics, Terminal

    app = _App()
    graphics = Graphics(Terminal(KITTY))
    png = _png((8, 4), (9, 9, 9, 255))
    first = graphics.kitty_image(app, png, 8, 2)
    again = graphics.kitty_image(app, png, 8, 2)
    assert first == again and len(app._driver.written) == 1  # sent once
    bigger = graphics.kitty_image(app, png, 16, 4)  # the viewer's box: another placement
    assert len(app._driver.written) == 2 and "c=16,r=4" in app._driver.written[1]
    assert bigger[0][0].style != first[0][0].style  # another image ID
    for n in range(1100):
        graphics.kitty_image(app, png + bytes([n % 256, n // 256]), 1, 1)
    deletes = [w for w in app._driver.written if w.startswith("\x1b_Ga=d,d=I,")]
    assert len(deletes) == 1102 - 1024  # beyond 1024 kept, the oldest deleted
    graphics.forget(app)
    assert sum(w.startswith("\x1b_Ga=d,d=I,") for w in app._driver.written) == 1102
