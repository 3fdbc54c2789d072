"""Pure pieces of pictures: images parsed from the spec's examples, the cell box, the
picture cache's bound, web links of a message, the handler command, half-block lines."""

from __future__ import annotations

import io

from PIL import Image

from tui_client.engine.images import (
    Picture,
    PictureCache,
    blurhash_colour,
    cell_box,
    decode_picture,
)
from tui_client.engine.opener import handler_command
from tui_client.protocol.html import parse_html
from tui_client.protocol.media import parse_image
from tui_client.protocol.web_links import web_links
from tui_client.ui.pictures import picture_lines

from .spec_examples import load_example


def test_images_and_stickers_from_the_spec_examples() -> None:
    image = parse_image("m.room.message", load_example("m.room.message$m.image.yaml")["content"])
    assert image is not None and not image.sticker
    assert (image.original.server, image.original.media_id) == ("example.org", "JWEIFJgwEIhweiWJE")
    assert (image.width, image.height, image.thumbnail) == (394, 398, None)
    sticker = parse_image("m.sticker", load_example("m.sticker.yaml")["content"])
    assert sticker is not None and sticker.sticker and (sticker.width, sticker.height) == (140, 200)
    assert (
        sticker.thumbnail is not None and sticker.thumbnail.media_id == "sHhqkFCvSkFwtmvtETOtKnLP"
    )
    # Not images: a file, a text, a malformed URI, nonsense sizes ignored.
    assert (
        parse_image("m.room.message", {"msgtype": "m.file", "body": "a", "url": "mxc://a.org/b"})
        is None
    )
    assert (
        parse_image("m.room.message", {"msgtype": "m.image", "body": "a", "url": "https://a.org/b"})
        is None
    )
    odd = parse_image(
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "a",
            "url": "mxc://a.org/b",
            "info": {"w": -5, "h": True, "xyz.amorgan.blurhash": "\x1b]52"},
        },
    )
    assert odd is not None and (odd.width, odd.height, odd.blurhash) == (None, None, None)


def test_cell_box_keeps_the_aspect_and_never_enlarges() -> None:
    assert cell_box(640, 480, 40, 12) == (32, 12)  # 32 x 24 pixels
    assert cell_box(16, 8, 40, 12) == (16, 4)  # small: as it is
    assert cell_box(4000, 10, 40, 12) == (40, 1)  # a sliver stays one row
    picture = decode_picture(_png((300, 100), (10, 20, 30)), 40, 12)
    assert (picture.width, picture.height, picture.rows) == (40, 13, 7)
    assert picture.pixel(0, 0) == (10, 20, 30, 255)


def test_the_cache_drops_the_least_recently_used_past_its_bound() -> None:
    cache = PictureCache(max_bytes=130)
    for n in range(3):
        cache.put((f"mxc://a/{n}", 1, 1, False), Picture(5, 2, bytes(40)))
    assert cache.bytes == 120
    cache.get(("mxc://a/0", 1, 1, False))  # now the most recent
    cache.put(("mxc://a/3", 1, 1, False), Picture(5, 2, bytes(40)))
    assert cache.bytes == 120 and len(cache) == 3
    assert (
        cache.get(("mxc://a/0", 1, 1, False)) is not None
        and cache.get(("mxc://a/1", 1, 1, False)) is None
    )


def test_half_blocks_take_the_upper_pixel_as_foreground_and_leave_transparency() -> None:
    rgba = bytes([255, 0, 0, 255, 0, 0, 0, 0]) + bytes([0, 0, 255, 255, 0, 255, 0, 255])
    (line,) = picture_lines(Picture(2, 2, rgba))
    first, second = line
    assert first.text == "▀" and first.style is not None
    assert first.style.color is not None and first.style.color.get_truecolor()[:3] == (255, 0, 0)
    assert first.style.bgcolor is not None and first.style.bgcolor.get_truecolor()[:3] == (
        0,
        0,
        255,
    )
    # Transparent above: the lower half only, on the terminal's own background.
    assert second.text == "▄" and second.style is not None and second.style.bgcolor is None
    assert blurhash_colour("LEHV6nWB2yk8pyo0adR*.7kCMdnj") == (151, 150, 149)


def test_web_links_of_a_message() -> None:
    body = "see https://example.org/a?b=1. and (http://x.org/y) and https://matrix.to/#/#room:a.org"
    assert web_links(body) == ["https://example.org/a?b=1", "http://x.org/y"]
    document = parse_html(
        '<a href="https://docs.example/page">docs</a> <span data-mx-spoiler>https://hidden.example/</span>'
    )
    assert web_links("docs https://hidden.example/", document, spoilers=False) == [
        "https://docs.example/page"
    ]
    assert web_links("\x1b]8;;https://evil\x07", None) == []


def test_the_handler_is_browser_then_open_then_xdg_open() -> None:
    assert handler_command({"BROWSER": "firefox --new-tab:lynx"}, "linux") == [
        "firefox",
        "--new-tab",
    ]
    assert handler_command({}, "darwin") == ["open"]
    assert handler_command({}, "linux") == ["xdg-open"]


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def test_a_blurhash_is_drawn_as_a_picture_while_the_image_loads() -> None:
    import blurhash

    from tui_client.engine.images import blurhash_picture
    from tui_client.protocol.media import parse_image
    from tui_client.ui.pictures import placeholder_lines

    # Red on the left, blue on the right: the blurhash an uploader computes of it.
    pixels = [[[220, 20, 20]] * 16 + [[30, 40, 210]] * 16 for _ in range(16)]
    hash_ = blurhash.encode(pixels, components_x=4, components_y=3)
    picture = blurhash_picture(hash_, 16, 4)
    assert picture is not None and (picture.width, picture.rows) == (16, 4)
    left, right = picture.pixel(1, 4), picture.pixel(14, 4)
    assert left[0] > 150 and left[2] < 100, left  # reddish
    assert right[2] > 150 and right[0] < 100, right  # bluish
    for bad in ("", "LEHV6", "LEHV6nWB2yk8pyo0adR*.7kCMdnj\x1b[2J", "é" * 30, "L" * 300):
        assert blurhash_picture(bad, 16, 4) is None

    ref = parse_image(
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "a.png",
            "url": "mxc://example.org/a",
            "info": {"w": 32, "h": 16, "xyz.amorgan.blurhash": hash_},
        },
    )
    assert ref is not None
    lines = placeholder_lines(ref, 16, 4, "loading…", "#888888")
    assert len(lines) == 4
    assert "".join(s.text for s in lines[0]).startswith("loading…")
    # The other rows are the blurhash in half-blocks: red then blue, not one flat colour.
    colours = [s.style.color.get_truecolor() for s in lines[2] if s.style and s.style.color]
    assert colours[0].red > 150 and colours[-1].blue > 150, colours
    assert sum(len(s.text) for s in lines[2]) == 16
