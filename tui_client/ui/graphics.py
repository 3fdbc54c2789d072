"""Pictures in pixels, for terminals that can draw them: kitty graphics, sixel, iTerm2.

Which one: the setting (``images.protocol`` in the config file, or ``$TUI_CLIENT_GRAPHICS``:
``auto``, ``kitty``, ``sixel``, ``iterm2``, ``halfblocks``; ``off`` is ``halfblocks``), and
on ``auto`` what the terminal says before the app starts (:func:`detect`): a kitty graphics
query and a DA1 query (``CSI c``, whose answer lists 4 when the terminal has sixel) are sent
together and read back until the DA1 answer (every terminal answers it), plus the
environment (``TERM``, ``TERM_PROGRAM``, ``KITTY_WINDOW_ID``, ``LC_TERMINAL``; tmux and
screen get half-blocks). Anything else: half-blocks (:mod:`.pictures`).

How each is drawn, and why:

- kitty (kitty, Ghostty): Unicode placeholders. The picture is sent once (a PNG, ``a=T``
  with ``U=1``: a virtual placement of C x R cells) through Textual's driver, and its cells
  are ordinary text: ``U+10EEEE`` with two diacritics (row, column), the image ID as the
  24-bit foreground colour. So the line-API timeline, the thread panel and the viewer draw
  it like any other line: it scrolls, is cropped and is covered by dialogs correctly.
- sixel and iTerm2 are pixels written at a cursor position: the terminal forgets them as
  soon as cells are drawn over them, and nothing tells Textual they are there. The
  timeline, which scrolls and repaints in part, keeps half-blocks there; the full-screen
  viewer (one still picture) reserves blank cells for the picture and writes it over them
  after each frame (:meth:`Graphics.after_frame`, from the app's ``post_display_hook``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import select
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style

__all__ = [
    "HALFBLOCKS",
    "ITERM2",
    "KITTY",
    "PROTOCOLS",
    "SIXEL",
    "Graphics",
    "choose_protocol",
    "detect",
    "graphics",
    "iterm2_sequence",
    "kitty_lines",
    "kitty_transmit",
    "set_graphics",
    "sixel_sequence",
]

KITTY, SIXEL, ITERM2, HALFBLOCKS = "kitty", "sixel", "iterm2", "halfblocks"
#: The setting's values (``off`` is read as ``halfblocks``).
PROTOCOLS = ("auto", KITTY, SIXEL, ITERM2, HALFBLOCKS)

Line = list[Segment]

#: The kitty graphics query sent at start (answered ``ESC _ G i=31;OK ESC \\`` by a
#: terminal that has the protocol) and the DA1 query after it.
KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
CELL_QUERY = "\x1b[16t"
DA1_QUERY = "\x1b[c"
_DA1_ANSWER = re.compile(rb"\x1b\[\?([0-9;]*)c")
_CELL_ANSWER = re.compile(rb"\x1b\[6;([0-9]+);([0-9]+)t")
_KITTY_ANSWER = re.compile(rb"\x1b_Gi=31;OK\x1b\\")

#: Pixels of a cell (across, down) when the terminal does not say.
DEFAULT_CELL = (10, 20)
#: Kitty's placeholder character, and the diacritics that number rows and columns
#: (kitty's gen/rowcolumn-diacritics.txt, the first 256: index i is value i).
PLACEHOLDER = "\U0010eeee"
_DIACRITICS = "".join(
    chr(int(code, 16))
    for code in (  # noqa: SIM905 (256 codes: a list literal would be 256 lines)
        "0305 030D 030E 0310 0312 033D 033E 033F 0346 034A 034B 034C 0350 0351 0352 0357 035B 0363 "
        "0364 0365 0366 0367 0368 0369 036A 036B 036C 036D 036E 036F 0483 0484 0485 0486 0487 0592 "
        "0593 0594 0595 0597 0598 0599 059C 059D 059E 059F 05A0 05A1 05A8 05A9 05AB 05AC 05AF 05C4 "
        "0610 0611 0612 0613 0614 0615 0616 0617 0657 0658 0659 065A 065B 065D 065E 06D6 06D7 06D8 "
        "06D9 06DA 06DB 06DC 06DF 06E0 06E1 06E2 06E4 06E7 06E8 06EB 06EC 0730 0732 0733 0735 0736 "
        "073A 073D 073F 0740 0741 0743 0745 0747 0749 074A 07EB 07EC 07ED 07EE 07EF 07F0 07F1 07F3 "
        "0816 0817 0818 0819 081B 081C 081D 081E 081F 0820 0821 0822 0823 0825 0826 0827 0829 082A "
        "082B 082C 082D 0951 0953 0954 0F82 0F83 0F86 0F87 135D 135E 135F 17DD 193A 1A17 1A75 1A76 "
        "1A77 1A78 1A79 1A7A 1A7B 1A7C 1B6B 1B6D 1B6E 1B6F 1B70 1B71 1B72 1B73 1CD0 1CD1 1CD2 1CDA "
        "1CDB 1CE0 1DC0 1DC1 1DC3 1DC4 1DC5 1DC6 1DC7 1DC8 1DC9 1DCB 1DCC 1DD1 1DD2 1DD3 1DD4 1DD5 "
        "1DD6 1DD7 1DD8 1DD9 1DDA 1DDB 1DDC 1DDD 1DDE 1DDF 1DE0 1DE1 1DE2 1DE3 1DE4 1DE5 1DE6 1DFE "
        "20D0 20D1 20D4 20D5 20D6 20D7 20DB 20DC 20E1 20E7 20E9 20F0 2CEF 2CF0 2CF1 2DE0 2DE1 2DE2 "
        "2DE3 2DE4 2DE5 2DE6 2DE7 2DE8 2DE9 2DEA 2DEB 2DEC 2DED 2DEE 2DEF 2DF0 2DF1 2DF2 2DF3 2DF4 "
        "2DF5 2DF6 2DF7 2DF8 2DF9 2DFA 2DFB 2DFC 2DFD 2DFE 2DFF A66F A67C A67D A6F0 A6F1 A8E0 A8E1 "
        "A8E2 A8E3 A8E4 A8E5 "
    ).split()
)
#: The largest picture in placeholder cells (the diacritics number 256 rows and columns).
MAX_CELLS = len(_DIACRITICS)


def choose_protocol(
    setting: str,
    env: Mapping[str, str],
    *,
    kitty_answered: bool = False,
    da1: tuple[int, ...] | None = None,
) -> str:
    """The protocol to draw with, from the setting, the environment and the terminal's
    answers (``da1``: the attributes of its DA1 answer, ``None`` without one)."""
    setting = (setting or "auto").strip().lower()
    if setting == "off":
        return HALFBLOCKS
    if setting in (KITTY, SIXEL, ITERM2, HALFBLOCKS):
        return setting
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if env.get("TMUX") or term.startswith(("screen", "tmux")):
        return HALFBLOCKS  # a multiplexer would need its own passthrough
    # Unicode placeholders: kitty (0.28 on) and Ghostty; other terminals with kitty
    # graphics (Konsole, WezTerm) draw images but not placeholders.
    placeholders = (
        term == "xterm-kitty"
        or "KITTY_WINDOW_ID" in env
        or program == "ghostty"
        or term == "xterm-ghostty"
    )
    if placeholders and (kitty_answered or da1 is None):
        return KITTY
    if da1 is not None and 4 in da1:
        return SIXEL
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return ITERM2
    return HALFBLOCKS


def _cell_from_winsize(fd: int) -> tuple[int, int] | None:
    try:
        import fcntl
        import termios

        rows, cols, width, height = struct.unpack(
            "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        )
    except (OSError, ImportError):
        return None
    if rows and cols and width and height:
        return max(1, width // cols), max(1, height // rows)
    return None


def query_terminal(
    fd: int, timeout: float = 0.5
) -> tuple[bool, tuple[int, ...] | None, tuple[int, int] | None]:
    """Ask the terminal on ``fd`` (raw mode for the while): whether it has kitty graphics,
    its DA1 attributes and its cell size in pixels. Reads until the DA1 answer or the
    timeout (a terminal that answers nothing: ``(False, None, None)``)."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    answer = b""
    try:
        tty.setraw(fd, termios.TCSANOW)
        os.write(fd, (KITTY_QUERY + CELL_QUERY + DA1_QUERY).encode())
        deadline = time.monotonic() + timeout
        while not _DA1_ANSWER.search(answer):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            answer += chunk
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    found = _DA1_ANSWER.search(answer)
    da1 = tuple(int(part) for part in found.group(1).split(b";") if part) if found else None
    cell_found = _CELL_ANSWER.search(answer)
    cell = None
    if cell_found:
        height, width = int(cell_found.group(1)), int(cell_found.group(2))
        cell = (width, height) if width and height else None
    return bool(_KITTY_ANSWER.search(answer)), da1, cell


@dataclass(frozen=True, slots=True)
class Terminal:
    """What the terminal draws pictures with, and its cell size in pixels."""

    protocol: str = HALFBLOCKS
    cell: tuple[int, int] = DEFAULT_CELL


def detect(setting: str = "auto", env: Mapping[str, str] | None = None) -> Terminal:
    """The terminal's picture protocol (see the module's note); queries the terminal only
    when the setting is ``auto`` and stdin and stdout are a terminal."""
    env = os.environ if env is None else env
    setting = env.get("TUI_CLIENT_GRAPHICS") or setting
    cell = None
    kitty_answered, da1 = False, None
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        cell = _cell_from_winsize(sys.stdout.fileno())
    if setting.strip().lower() == "auto" and interactive:
        try:
            kitty_answered, da1, asked_cell = query_terminal(sys.stdin.fileno())
        except OSError:
            pass
        else:
            cell = cell or asked_cell
    protocol = choose_protocol(setting, env, kitty_answered=kitty_answered, da1=da1)
    if setting.strip().lower() == "auto" and not interactive:
        protocol = HALFBLOCKS
    return Terminal(protocol, cell or DEFAULT_CELL)


# -- kitty -------------------------------------------------------------------------------


def kitty_transmit(png: bytes, image_id: int, cols: int, rows: int) -> str:
    """Send a PNG as image ``image_id`` with a virtual placement of ``cols`` x ``rows``
    cells for Unicode placeholders (quiet: the terminal answers nothing)."""
    data = base64.standard_b64encode(png).decode("ascii")
    chunks = [data[at : at + 4096] for at in range(0, len(data), 4096)] or [""]
    out = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        if index == 0:
            head = f"a=T,U=1,f=100,t=d,i={image_id},c={cols},r={rows},q=2,m={more}"
        else:
            head = f"m={more},q=2"
        out.append(f"\x1b_G{head};{chunk}\x1b\\")
    return "".join(out)


def _id_colour(image_id: int) -> Color:
    rgb = (image_id >> 16) & 255, (image_id >> 8) & 255, image_id & 255
    return Color(
        f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}", ColorType.TRUECOLOR, triplet=ColorTriplet(*rgb)
    )


def kitty_lines(image_id: int, cols: int, rows: int) -> list[Line]:
    """The placeholder cells of image ``image_id``: ``rows`` lines of ``cols`` cells."""
    cols, rows = min(cols, MAX_CELLS), min(rows, MAX_CELLS)
    style = Style(color=_id_colour(image_id))
    return [
        [
            Segment(
                "".join(PLACEHOLDER + _DIACRITICS[row] + _DIACRITICS[col] for col in range(cols)),
                style,
            )
        ]
        for row in range(rows)
    ]


# -- sixel and iTerm2 ---------------------------------------------------------------------


_SIXEL_CHARS = bytes(range(63, 63 + 64)) + bytes(192)
_RUNS = re.compile(rb"(.)\1{3,}", re.DOTALL)


def sixel_sequence(png: bytes) -> str:
    """A picture as sixel (up to 255 colours; transparent pixels left as they are).

    Each band of six pixel rows is written colour by colour; a colour's six rows are
    combined as big integers of 0/1 bytes (no per-pixel Python loop)."""
    from PIL import Image  # when the first sixel picture is drawn (issue 13)

    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGBA")
    width, height = image.size
    paletted = image.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    palette = paletted.getpalette() or []
    # Transparent pixels take index 255, which is never drawn.
    mask = image.getchannel("A").point(lambda a: 255 if a < 128 else 0).convert("1")
    paletted.paste(255, mask=mask)
    pixels = paletted.tobytes()
    out = [f'\x1bP0;1;0q"1;1;{width};{height}']
    for index in sorted(set(pixels) - {255}):
        r, g, b = palette[3 * index : 3 * index + 3]
        out.append(f"#{index};2;{r * 100 // 255};{g * 100 // 255};{b * 100 // 255}")
    tables: dict[int, bytes] = {}
    for band in range(0, height, 6):
        rows = [pixels[y * width : (y + 1) * width] for y in range(band, min(band + 6, height))]
        colours = sorted(set(b"".join(rows)) - {255})
        parts = []
        for index in colours:
            table = tables.get(index)
            if table is None:
                table = tables[index] = bytes(1 if value == index else 0 for value in range(256))
            value = 0
            for bit, row in enumerate(rows):
                value |= int.from_bytes(row.translate(table)) << bit
            line = value.to_bytes(width).translate(_SIXEL_CHARS)
            line = _RUNS.sub(lambda run: b"!%d%c" % (len(run.group(0)), run.group(1)[0]), line)
            parts.append(f"#{index}" + line.decode("ascii"))
        out.append("$".join(parts) + "-")
    out.append("\x1b\\")
    return "".join(out)


def iterm2_sequence(png: bytes, cols: int, rows: int) -> str:
    """A picture as iTerm2's inline image (OSC 1337) filling ``cols`` x ``rows`` cells."""
    data = base64.standard_b64encode(png).decode("ascii")
    return (
        f"\x1b]1337;File=inline=1;size={len(png)};width={cols};height={rows};"
        f"preserveAspectRatio=1:{data}\x07"
    )


# -- the app's side --------------------------------------------------------------------


class Graphics:
    """The terminal's protocol for one app, and what it has been sent."""

    def __init__(self, terminal: Terminal | None = None, detected: Terminal | None = None) -> None:
        self.terminal = terminal or Terminal()
        #: What the terminal was found to have at start (the palette switches between it
        #: and half-blocks).
        self.detected = detected or self.terminal
        #: Kitty image IDs by picture (its PNG's digest, not the PNG: the picture cache
        #: bounds what is held, and box), most recently drawn last.
        self._ids: OrderedDict[tuple[bytes, int, int], int] = OrderedDict()
        # IDs start at a random point: another program's images keep theirs.
        self._next_id = int.from_bytes(os.urandom(3)) % 0xE00000 + 0x100000
        #: (screen, x, y, sequence) written over the cells a viewer keeps blank, after
        #: each frame while that screen is shown.
        self.overlay: tuple[Any, int, int, str] | None = None

    @property
    def protocol(self) -> str:
        """kitty, sixel, iterm2 or halfblocks."""
        return self.terminal.protocol

    @property
    def detail(self) -> tuple[int, int] | None:
        """Pixels per cell for pictures' PNGs, ``None`` for half-blocks only."""
        if self.protocol == HALFBLOCKS:
            return None
        width, height = self.terminal.cell
        return min(max(width, 4), 32), min(max(height, 8), 64)

    def kitty_image(self, app: Any, png: bytes, cols: int, rows: int) -> list[Line]:
        """The placeholder lines of a picture, sending it first if the terminal does not
        have it yet."""
        # (one virtual placement per image: the same picture in another box, as in the
        # viewer, is another image)
        key = (hashlib.blake2b(png, digest_size=16).digest(), cols, rows)
        image_id = self._ids.get(key)
        if image_id is None:
            image_id = self._ids[key] = self._next_id
            self._next_id = self._next_id + 1 if self._next_id < 0xFFFFFF else 0x100000
            write(app, kitty_transmit(png, image_id, min(cols, MAX_CELLS), min(rows, MAX_CELLS)))
            while len(self._ids) > 1024:
                _, dropped = self._ids.popitem(last=False)
                write(app, f"\x1b_Ga=d,d=I,i={dropped},q=2\x1b\\")
        else:
            self._ids.move_to_end(key)
        return kitty_lines(image_id, cols, rows)

    def after_frame(self, app: Any) -> None:
        """Write the viewer's sixel or iTerm2 picture over its blank cells (called after
        each frame Textual writes)."""
        if self.overlay is None:
            return
        screen, x, y, sequence = self.overlay
        if app.screen is not screen:
            return
        write(app, f"\x1b7\x1b[{y + 1};{x + 1}H{sequence}\x1b8")

    def forget(self, app: Any) -> None:
        """Delete the images sent (the app is ending)."""
        for image_id in self._ids.values():
            write(app, f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\")
        self._ids.clear()


def write(app: Any, data: str) -> None:
    """Write to the terminal through Textual's driver (in order with its frames)."""
    driver = getattr(app, "_driver", None)
    if driver is not None:  # (a headless driver writes nothing)
        driver.write(data)


_graphics = Graphics()


def graphics() -> Graphics:
    """The process's graphics (half-blocks unless :func:`set_graphics` was called)."""
    return _graphics


def set_graphics(terminal: Terminal, detected: Terminal | None = None) -> Graphics:
    """Draw with this terminal's protocol from now on (``detected``: what the terminal
    has, when this is a switch away from it)."""
    global _graphics
    _graphics = Graphics(terminal, detected)
    if terminal.protocol == KITTY:
        # The image ID is the foreground colour, so colours must reach the terminal as
        # they are (kitty and Ghostty have 24-bit colour): no downgrade to 256 colours.
        os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "truecolor")
        constants = sys.modules.get("textual.constants")
        if constants is not None and getattr(constants, "COLOR_SYSTEM", "auto") == "auto":
            setattr(constants, "COLOR_SYSTEM", "truecolor")  # noqa: B010 (read at App())
    return _graphics
