"""Decoding untrusted images into small, bounded Pillow images.

Everything we draw comes from other people's servers, so every limit is checked before
the pixels are decoded: the size of the file, then the dimensions its header claims
(read by ``Image.open`` without loading), against a pixel budget well below what a
decompression bomb needs. SVG is never decoded (a document, not an image: scripts,
external references, billion-laughs entities). The claimed mimetype is only a hint:
the bytes are sniffed, so a PNG sent as ``image/jpeg`` still shows, and a text file
sent as ``image/png`` is refused.

:func:`decode_image` is CPU-bound and may take a few hundred milliseconds on a large
photo: call it in a worker thread (``asyncio.to_thread`` or a Textual thread worker),
never on the event loop.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "ImageDecodeError",
    "decode_image",
    "image_header",
    "is_svg",
]

#: The largest file decoded (a thumbnail is far smaller; a full image rarely larger).
MAX_IMAGE_BYTES = 50 * 1024 * 1024
#: The most pixels an image header may claim (a 40-megapixel photo decodes; a
#: 20,000 x 20,000 compressed plane of zeros does not).
MAX_IMAGE_PIXELS = 40_000_000
#: The formats we let Pillow sniff for: raster formats with well-trodden decoders.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")


class ImageDecodeError(ValueError):
    """The image is not shown; the message says why, in words a user can read."""


def is_svg(data: bytes, mimetype: str | None = None) -> bool:
    """Whether ``data`` is (or claims to be) SVG: by its mimetype or by its first bytes."""
    if mimetype is not None and "svg" in mimetype.lower():
        return True
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg"):
        return True
    return head.startswith((b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in data[:4096].lower()


def _source(data: bytes | Path) -> IO[bytes]:
    return io.BytesIO(data) if isinstance(data, bytes) else data.open("rb")


def image_header(
    data: bytes | Path, mimetype: str | None = None, *, max_bytes: int = MAX_IMAGE_BYTES
) -> tuple[str, int, int]:
    """The sniffed format and the dimensions the header claims, nothing decoded.

    ``data`` is the file's bytes or its path (read lazily). Raises
    :class:`ImageDecodeError` for SVG, a file over ``max_bytes``, or bytes that are not
    an image of an allowed format (``OSError`` if the path cannot be read).
    """
    if isinstance(data, bytes):
        head, size = data[:4096], len(data)
    else:
        size = data.stat().st_size
        with data.open("rb") as start:
            head = start.read(4096)
    if is_svg(head, mimetype):
        raise ImageDecodeError("SVG image: not shown (open it with o)")
    # Pillow is imported when the first image is read (issue 13: not at start-up).
    from PIL import Image, UnidentifiedImageError

    # Pillow's own guard (a warning above this, an error above twice this) as a second line.
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    if size > max_bytes:
        raise ImageDecodeError(f"image too large to show ({size:,} bytes; at most {max_bytes:,})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _source(data) as handle, Image.open(handle, formats=ALLOWED_FORMATS) as image:
                return str(image.format), int(image.width), int(image.height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(
            "image too large to decode (its header claims too many pixels)"
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "not an image that can be shown (unknown or damaged format)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDecodeError(f"damaged image ({_reason(error)})") from None


def decode_image(
    data: bytes | Path,
    mimetype: str | None = None,
    *,
    max_side: int = 1024,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    original_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode ``data`` (bytes, or a path read lazily) into an RGB or RGBA image at most ``max_side`` pixels on its longest
    side (aspect kept; the first frame of an animation). Blocking: run it in a thread.

    ``mimetype`` is what the sender claimed; the bytes decide. ``original_size`` is the
    ``w``/``h`` of the image a thumbnail stands for: a thumbnail larger than its original
    is shrunk to that size rather than trusted. Raises :class:`ImageDecodeError` with a
    plain reason (SVG, too many bytes or pixels, not an image, truncated or damaged).
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    _, width, height = image_header(data, mimetype, max_bytes=max_bytes)
    if width < 1 or height < 1:
        raise ImageDecodeError("damaged image (no pixels)")
    if width * height > max_pixels:
        raise ImageDecodeError(f"image too large to decode ({width:,} x {height:,} pixels)")
    from PIL import Image, ImageFile, UnidentifiedImageError  # imported by image_header

    bound = max_side
    if original_size is not None and original_size[0] > 0 and original_size[1] > 0:
        bound = min(bound, max(original_size))
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageDecodeError("refusing to decode: Pillow was set to accept truncated images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _source(data) as handle, Image.open(handle, formats=ALLOWED_FORMATS) as image:
                image.seek(0)
                if image.format == "JPEG":
                    # Decode at a reduced DCT scale when the result is small anyway.
                    image.draft("RGB", (bound, bound))
                image.load()
                has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                result = image.convert("RGBA" if has_alpha else "RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("image too large to decode (too many pixels)") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "not an image that can be shown (unknown or damaged format)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        raise ImageDecodeError(f"damaged image ({_reason(error)})") from None
    if max(result.size) > bound:
        result.thumbnail((bound, bound), Image.Resampling.LANCZOS)
    return result


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if "truncated" in text.lower() or isinstance(error, EOFError):
        return "the file is truncated"
    # Pillow's messages are ASCII and short; keep only printable characters anyway.
    return "".join(c for c in text[:120] if c.isprintable())
