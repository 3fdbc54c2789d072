"""Hostile media: every file below gives a plain error or a bounded image, quickly."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image

from tui_client.engine.image_decode import ImageDecodeError, decode_image, image_header

# Generous: a bomb that got decoded would take tens of seconds and gigabytes.
TIME_LIMIT = 3.0


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png(
    width: int, height: int, rows: Iterator[bytes], *, bit_depth: int = 1, color_type: int = 0
) -> bytes:
    """A PNG written row by row (so a huge plane of zeros never sits in memory)."""
    compressor = zlib.compressobj(9)
    idat = bytearray()
    for row in rows:
        idat += compressor.compress(row)
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", bytes(idat))
        + _chunk(b"IEND", b"")
    )


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _timed_error(data: bytes, mimetype: str | None = None, **options: object) -> str:
    start = time.monotonic()
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, mimetype, **options)  # type: ignore[arg-type]
    assert time.monotonic() - start < TIME_LIMIT
    return str(caught.value)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 16,000 x 16,000 one-bit pixels (256 megapixels) of zeros: about 30 KB on disk.
    side = 16_000
    row = b"\x00" + bytes(side // 8)
    bomb = _png(side, side, (row for _ in range(side)))
    assert len(bomb) < 100_000
    message = _timed_error(bomb, "image/png")
    assert "too large to decode" in message


def test_bomb_just_over_our_budget_is_refused_even_below_pillows() -> None:
    # 7,000 x 7,000 = 49 megapixels: above our 40 MP budget, below Pillow's own error.
    side = 7_000
    row = b"\x00" + bytes((side + 7) // 8)
    data = _png(side, side, (row for _ in range(side)))
    assert "too large to decode" in _timed_error(data, "image/png")


def test_png_header_claiming_60000_square() -> None:
    # A valid signature and IHDR for 60,000 x 60,000 RGB, and almost no data.
    data = _png(60_000, 60_000, iter([b"\x00" * 10]), bit_depth=8, color_type=2)
    message = _timed_error(data, "image/png")
    assert "too large to decode" in message
    with pytest.raises(ImageDecodeError, match="header claims too many pixels"):
        image_header(data, "image/png")
    assert image_header(_encoded(Image.new("L", (7, 5)), "PNG"), "image/png") == ("PNG", 7, 5)


def test_truncated_jpeg() -> None:
    picture = Image.radial_gradient("L").resize((400, 300)).convert("RGB")
    jpeg = _encoded(picture, "JPEG", quality=90)
    message = _timed_error(jpeg[: len(jpeg) // 2], "image/jpeg")
    assert message == "damaged image (the file is truncated)"


def test_svg_is_never_decoded() -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert "SVG image: not shown" in _timed_error(svg, "image/svg+xml")
    # Claimed as a PNG, sniffed as SVG all the same.
    assert "SVG image: not shown" in _timed_error(svg, "image/png")
    assert "SVG image: not shown" in _timed_error(b"  <svg><script>alert(1)</script></svg>", None)


def test_wrong_mimetype_is_sniffed() -> None:
    png = _encoded(Image.new("RGB", (30, 20), (200, 10, 10)), "PNG")
    image = decode_image(png, "image/jpeg")
    assert image.size == (30, 20) and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (200, 10, 10)
    message = _timed_error(b"hello, this is text and not an image at all", "image/png")
    assert message == "not an image that can be shown (unknown or damaged format)"


def test_thumbnail_larger_than_its_original_is_bounded() -> None:
    # The event says the original is 64 x 48; the "thumbnail" is 2,000 x 1,500.
    big = _encoded(Image.new("RGB", (2000, 1500), (0, 0, 255)), "PNG")
    image = decode_image(big, "image/png", max_side=800, original_size=(64, 48))
    assert image.size == (64, 48)
    # Without the original's size, bounded by max_side, aspect kept.
    assert decode_image(big, "image/png", max_side=800).size == (800, 600)


def test_too_many_bytes_refused_before_opening() -> None:
    png = _encoded(Image.new("RGB", (10, 10)), "PNG")
    assert "too large to show" in _timed_error(png + bytes(2000), "image/png", max_bytes=1000)


def test_first_frame_of_an_animation_and_alpha_kept() -> None:
    frames = [
        Image.new("RGB", (40, 40), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    ]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decode_image(out.getvalue(), "image/gif")
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 0, 0)
    clear = _encoded(Image.new("RGBA", (8, 8), (1, 2, 3, 0)), "PNG")
    assert decode_image(clear, "image/png").mode == "RGBA"


def test_large_jpeg_decoded_small() -> None:
    photo = Image.linear_gradient("L").resize((3000, 2000)).convert("RGB")
    image = decode_image(_encoded(photo, "JPEG"), "image/jpeg", max_side=300)
    assert max(image.size) == 300 and image.size == (300, 200)
