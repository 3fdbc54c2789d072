"""Pictures in the timeline: fetching, decoding and caching images to draw in cells.

An image (``m.image``, ``m.sticker``) is fetched as a server thumbnail (authenticated
media, the legacy route on older servers), or in full when the room is encrypted (the
sender's ``thumbnail_file`` when there is one) or the user asked for full images; an
encrypted file has its hash checked and is decrypted (:mod:`tui_client.crypto.attachments`).
Decoding (Pillow, :mod:`.image_decode`) runs in a thread, never on the event loop, after
size checks on the bytes and on the header, and keeps only the first frame of an animation. The result is
a :class:`Picture`: RGBA pixels sized to a box of terminal cells, two pixel rows per
cell (the UI draws them with ``▀``). Pictures are kept in a cache bounded by bytes.

Nothing here imports the UI: the engine, the benchmarks and tests use it headless.
"""

from __future__ import annotations

import asyncio
import io
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..crypto.attachments import AttachmentError, decrypt_attachment
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.media import Attachment, ImageRef, MediaError, parse_mxc
from .image_decode import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageDecodeError, decode_image
from .storage import StorageUnavailable

if TYPE_CHECKING:
    from PIL import Image

    from .client import MatrixClient

__all__ = [
    "AVATAR_CELLS",
    "AVATAR_SETTING",
    "COPY_SETTING",
    "IMAGE_MODES",
    "IMAGE_MODE_SETTING",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MODE_FULL",
    "MODE_OFF",
    "MODE_THUMBNAILS",
    "ImageDecodeError",
    "ImageService",
    "Picture",
    "PictureCache",
    "PictureKey",
    "blurhash_colour",
    "blurhash_picture",
    "cell_box",
    "decode_picture",
    "placeholder_rows",
]

MODE_OFF = "off"
MODE_THUMBNAILS = "thumbnails"
MODE_FULL = "full"
IMAGE_MODES = (MODE_OFF, MODE_THUMBNAILS, MODE_FULL)
#: The cache's meta keys of the images setting and of the clipboard setting.
IMAGE_MODE_SETTING = "image_mode"
COPY_SETTING = "osc52_copy"
AVATAR_SETTING = "avatars"
#: An avatar's box: 2 cells wide, one row (2 x 2 pixels in half-blocks).
AVATAR_CELLS = (2, 1)

#: The thumbnail size asked of the server (one of Synapse's default "scale" sizes).
THUMBNAIL_SIZE = (320, 240)


#: A picture's place in the cache: its image, its box (columns, rows), whether in full,
#: and the pixels per cell of its PNG (``None``: none).
PictureKey = tuple[str, int, int, bool, "tuple[int, int] | None"]


@dataclass(frozen=True, slots=True)
class Picture:
    """An image scaled to terminal cells: ``width`` columns, ``height`` pixel rows (two per
    cell row), RGBA bytes row by row; with ``png``, the same box in finer detail (a PNG,
    for terminals that draw pictures in pixels: kitty graphics, sixel, iTerm2)."""

    width: int
    height: int
    rgba: bytes
    png: bytes = b""

    @property
    def size(self) -> int:
        """Bytes held."""
        return len(self.rgba) + len(self.png)

    @property
    def rows(self) -> int:
        """Terminal rows it takes."""
        return (self.height + 1) // 2

    def pixel(self, x: int, y: int) -> tuple[int, int, int, int]:
        """The RGBA of one pixel."""
        at = (y * self.width + x) * 4
        r, g, b, a = self.rgba[at : at + 4]
        return r, g, b, a


def cell_box(width: int, height: int, max_cols: int, max_rows: int) -> tuple[int, int]:
    """The (columns, rows) an image of ``width`` x ``height`` pixels takes in a box of
    ``max_cols`` x ``max_rows`` cells, aspect kept (a cell holds 1 x 2 pixels), never
    enlarged."""
    scale = min(max_cols / width, (max_rows * 2) / height, 1.0)
    cols = max(1, min(max_cols, round(width * scale)))
    pixel_rows = max(1, min(max_rows * 2, round(height * scale)))
    return cols, (pixel_rows + 1) // 2


def decode_picture(
    data: bytes,
    max_cols: int,
    max_rows: int,
    mimetype: str | None = None,
    detail: tuple[int, int] | None = None,
) -> Picture:
    """Decode an image's bytes and scale it into a box of cells (see :func:`cell_box`);
    with ``detail`` (pixels per cell, across and down), also a PNG of the box at that
    resolution (never enlarged past the image's own pixels).

    Runs in a worker thread. The checks before decoding (byte size, SVG and other formats
    refused, the header's pixel count) and the first frame are
    :func:`.image_decode.decode_image`'s. Raises :class:`ImageDecodeError`.
    """
    from PIL import Image  # Pillow and blurhash: when the first picture is drawn (issue 13)

    side = max(max_cols, max_rows * 2)
    if detail is not None:
        side = max(max_cols * detail[0], max_rows * detail[1])
    image = decode_image(data, mimetype, max_side=side)
    cols, rows = cell_box(image.width, image.height, max_cols, max_rows)
    png = b""
    if detail is not None:
        png = _detailed_png(image, cols * detail[0], rows * detail[1])
    target = (cols, min(rows * 2, max(1, round(image.height * cols / image.width))))
    frame = image.convert("RGBA")
    if frame.size != target:
        frame = frame.resize(
            target, Image.Resampling.BOX if frame.width >= target[0] else Image.Resampling.NEAREST
        )
    return Picture(frame.width, frame.height, frame.tobytes(), png)


def _detailed_png(image: Image.Image, max_width: int, max_height: int) -> bytes:
    from PIL import Image

    scale = min(max_width / image.width, max_height / image.height, 1.0)
    size = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[\\]^_{|}~"


@lru_cache(maxsize=512)
def blurhash_picture(blurhash: str, cols: int, rows: int) -> Picture | None:
    """A blurhash drawn as a picture of ``cols`` x ``rows`` cells (two pixels a cell row),
    for the box an image takes while it loads; ``None`` if it is malformed.

    Decoded small (a blurhash has a few components: its detail is gone at 16 x 12), then
    scaled to the box. Cached: the timeline asks again on every layout."""
    if len(blurhash) < 6 or len(blurhash) > 200 or any(c not in _BASE83 for c in blurhash):
        return None
    import blurhash as _blurhash  # type: ignore[import-untyped]
    from PIL import Image

    cols, rows = max(1, cols), max(1, rows)
    small = min(cols, 16), min(rows * 2, 12)
    try:
        pixels = _blurhash.decode(blurhash, *small)
    except (ValueError, KeyError, IndexError):
        return None
    data = bytes(
        max(0, min(255, int(channel))) for row in pixels for pixel in row for channel in pixel[:3]
    )
    image = Image.frombytes("RGB", small, data)
    if small != (cols, rows * 2):
        image = image.resize((cols, rows * 2), Image.Resampling.BILINEAR)
    return Picture(cols, rows * 2, image.convert("RGBA").tobytes())


def blurhash_colour(blurhash: str) -> tuple[int, int, int] | None:
    """The average colour of a blurhash (its DC component), for a placeholder while the
    image loads; ``None`` if it is malformed."""
    if len(blurhash) < 6:
        return None
    value = 0
    for char in blurhash[2:6]:
        digit = _BASE83.find(char)
        if digit < 0:
            return None
        value = value * 83 + digit
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


class PictureCache:
    """Decoded pictures, least recently used dropped first past ``max_bytes``."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._pictures: OrderedDict[PictureKey, Picture] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pictures)

    def get(self, key: PictureKey) -> Picture | None:
        """A cached picture (now the most recently used)."""
        picture = self._pictures.get(key)
        if picture is not None:
            self._pictures.move_to_end(key)
        return picture

    def put(self, key: PictureKey, picture: Picture) -> None:
        """Keep a picture, dropping the least recently used past the bound."""
        old = self._pictures.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._pictures[key] = picture
        self.bytes += picture.size
        while self.bytes > self.max_bytes and len(self._pictures) > 1:
            _, dropped = self._pictures.popitem(last=False)
            self.bytes -= dropped.size


class ImageService:
    """Loads pictures for the UI: one fetch per image at a time, at most ``parallel``
    fetches, results (and failures) remembered. The mode (off / thumbnails / full) is kept
    in the cache's meta table."""

    def __init__(
        self, client: MatrixClient | None, *, max_bytes: int = 32 * 1024 * 1024, parallel: int = 4
    ) -> None:
        self.client = client
        self.cache = PictureCache(max_bytes)
        self.failed: dict[PictureKey, str] = {}
        self.mode = MODE_THUMBNAILS
        #: Whether ``O`` may copy links to the terminal's clipboard (OSC 52).
        self.copy_links = True
        #: Whether rooms' and users' avatars are drawn.
        self.avatars = True
        self._avatars: dict[str, Picture | None] = {}
        self._avatar_tasks: dict[str, asyncio.Task[None]] = {}
        #: Called when the settings change (views draw their pictures again).
        self.listeners: list[weakref.WeakMethod[Callable[[], None]]] = []
        self._loading: dict[PictureKey, asyncio.Task[Picture | None]] = {}
        self._slots = asyncio.Semaphore(parallel)
        #: Pixels per cell (across, down) of the PNG each picture also gets, for a terminal
        #: that draws pixels (kitty graphics, sixel, iTerm2); ``None``: half-blocks only.
        self.detail: tuple[int, int] | None = None

    def set_detail(self, detail: tuple[int, int] | None) -> None:
        """Decode pictures with (or without) a detailed PNG from now on."""
        if detail != self.detail:
            self.detail = detail
            self.cache = PictureCache(self.cache.max_bytes)
            self.failed.clear()
            self._changed()

    async def load_settings(self) -> None:
        """Read the images setting (thumbnails when unset)."""
        if self.client is None:
            return
        try:
            mode = await self.client.db.run(self.client.cache.get_meta, IMAGE_MODE_SETTING)
            copy = await self.client.db.run(self.client.cache.get_meta, COPY_SETTING)
            avatars = await self.client.db.run(self.client.cache.get_meta, AVATAR_SETTING)
        except StorageUnavailable:  # a damaged cache (the status line says it): the defaults
            return
        before = self.mode, self.avatars
        self.mode = mode if mode in IMAGE_MODES else MODE_THUMBNAILS
        self.copy_links = copy != "off"
        self.avatars = avatars != "off"
        if (self.mode, self.avatars) != before:
            self._changed()

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (a bound method, held weakly) when the images setting changes."""
        self.listeners.append(weakref.WeakMethod(callback))

    def _changed(self) -> None:
        alive = []
        for reference in self.listeners:
            callback = reference()
            if callback is not None:
                alive.append(reference)
                callback()
        self.listeners = alive

    async def set_avatars(self, shown: bool) -> None:
        """Draw avatars or not (kept across restarts)."""
        if self.client is not None:
            await self.client.db.run(
                self.client.cache.set_meta, AVATAR_SETTING, "on" if shown else "off"
            )
        if shown != self.avatars:
            self.avatars = shown
            self._changed()

    def avatar(self, mxc: str | None) -> Picture | None:
        """An avatar's pixels if loaded (``None``: none, failed, or not loaded yet)."""
        return self._avatars.get(mxc) if mxc else None

    def request_avatar(self, mxc: str, done: Callable[[str], None]) -> None:
        """Load an avatar (the disk cache, else a server thumbnail, kept on disk after);
        ``done(mxc)`` on the event loop once it is there. Asked once per run."""
        if mxc in self._avatars or mxc in self._avatar_tasks or self.client is None:
            return
        task = self._avatar_tasks[mxc] = asyncio.get_running_loop().create_task(
            self._load_avatar(mxc)
        )
        task.add_done_callback(lambda _task: done(mxc))

    async def _load_avatar(self, mxc: str) -> None:
        assert self.client is not None
        client = self.client
        picture: Picture | None = None
        try:
            stored = await client.db.run(client.cache.get_avatar, mxc)
            if stored is not None:
                width, height, rgba = stored
                picture = Picture(width, height, rgba) if len(rgba) == width * height * 4 else None
            else:
                server, media_id = parse_mxc(mxc)
                async with self._slots:
                    picture = await self._fetch_avatar(server, media_id)
                await client.db.run(
                    client.cache.put_avatar,
                    mxc,
                    picture.width,
                    picture.height,
                    picture.rgba,
                    int(time.time() * 1000),
                )
        except (ImageDecodeError, MediaError, MatrixError, NetworkError):
            picture = None  # no avatar drawn: the row keeps its blank cells
        finally:
            self._avatar_tasks.pop(mxc, None)
        self._avatars[mxc] = picture

    async def _fetch_avatar(self, server: str, media_id: str) -> Picture:
        small = AVATAR_CELLS[0] * 4, AVATAR_CELLS[1] * 4
        try:
            data = await self._send_fallback(
                api.thumbnail_media(server, media_id, 32, 32),
                api.thumbnail_media(server, media_id, 32, 32, legacy=True),
            )
            picture = await asyncio.to_thread(decode_picture, data, *small)
        except (MatrixError, ImageDecodeError):
            # No thumbnail (too small to thumbnail, or a format the server does not):
            # the original, with the same checks.
            data = await self._send_fallback(
                api.download_media(server, media_id),
                api.download_media(server, media_id, legacy=True),
            )
            picture = await asyncio.to_thread(decode_picture, data, *small)
        # Squared to the pixels drawn, whatever its shape.
        return await asyncio.to_thread(_square, picture, AVATAR_CELLS[0], AVATAR_CELLS[1] * 2)

    async def set_copy_links(self, allowed: bool) -> None:
        """Allow or forbid copying links to the clipboard (kept across restarts)."""
        if self.client is not None:
            await self.client.db.run(
                self.client.cache.set_meta, COPY_SETTING, "on" if allowed else "off"
            )
        self.copy_links = allowed

    async def set_mode(self, mode: str) -> None:
        """``off``, ``thumbnails`` or ``full`` (kept across restarts)."""
        if mode not in IMAGE_MODES:
            raise ValueError(f"unknown image mode {mode!r}")
        if self.client is not None:
            await self.client.db.run(self.client.cache.set_meta, IMAGE_MODE_SETTING, mode)
        changed = mode != self.mode
        self.mode = mode
        if changed:
            self.cache = PictureCache(self.cache.max_bytes)
            self.failed.clear()
            self._changed()

    def _key(
        self, ref: ImageRef, cols: int, rows: int, full: bool, detail: tuple[int, int] | None = None
    ) -> PictureKey:
        return ref.key, cols, rows, full or self.mode == MODE_FULL, detail or self.detail

    def peek(
        self, ref: ImageRef, cols: int, rows: int, *, full: bool = False
    ) -> Picture | str | None:
        """The picture if loaded, the reason it failed, or ``None`` (not loaded yet)."""
        key = self._key(ref, cols, rows, full)
        picture = self.cache.get(key)
        if picture is not None:
            return picture
        return self.failed.get(key)

    def request(
        self,
        ref: ImageRef,
        cols: int,
        rows: int,
        done: Callable[[ImageRef], None],
        *,
        full: bool = False,
    ) -> None:
        """Start loading (if not loaded nor loading); ``done(ref)`` is called on the event
        loop when it is ready or failed."""
        key = self._key(ref, cols, rows, full)
        if key in self.failed or self.cache.get(key) is not None:
            return
        task = self._loading.get(key)
        if task is None:
            task = self._loading[key] = asyncio.get_running_loop().create_task(
                self._load(key, ref, cols, rows)
            )
        task.add_done_callback(lambda _task: done(ref))

    async def picture(
        self,
        ref: ImageRef,
        cols: int,
        rows: int,
        *,
        full: bool = False,
        detail: tuple[int, int] | None = None,
    ) -> Picture:
        """Load (or take from the cache) a picture (with a PNG at ``detail`` pixels per cell
        if given); raises :class:`ImageDecodeError` with the reason it cannot be shown."""
        key = self._key(ref, cols, rows, full, detail)
        cached = self.cache.get(key)
        if cached is None:
            task = self._loading.get(key)
            if task is None:
                task = self._loading[key] = asyncio.get_running_loop().create_task(
                    self._load(key, ref, cols, rows)
                )
            # (shielded: a caller that gives up, such as a viewer reloading at a new size,
            # must not cancel the load others wait on)
            cached = await asyncio.shield(task)
        if cached is None:
            raise ImageDecodeError(self.failed.get(key, "the image could not be loaded"))
        return cached

    async def _load(self, key: PictureKey, ref: ImageRef, cols: int, rows: int) -> Picture | None:
        try:
            async with self._slots:
                data = await self.fetch(ref, full=key[3])
                try:
                    picture = await asyncio.to_thread(
                        decode_picture, data, cols, rows, ref.original.mimetype, key[4]
                    )
                except ImageDecodeError:
                    if key[3] or ref.original.encrypted is not None:
                        raise
                    # The server's thumbnail is not a picture (a server that answers
                    # anything on that route): the original, with the same checks.
                    data = await self.fetch(ref, full=True)
                    picture = await asyncio.to_thread(
                        decode_picture, data, cols, rows, ref.original.mimetype, key[4]
                    )
        except (ImageDecodeError, MediaError, AttachmentError) as error:
            self.failed[key] = str(error)
            return None
        except (MatrixError, NetworkError) as error:
            self.failed[key] = f"the image could not be downloaded ({error})"
            return None
        finally:
            self._loading.pop(key, None)
        self.cache.put(key, picture)
        return picture

    async def fetch(self, ref: ImageRef, *, full: bool) -> bytes:
        """The image's bytes (decrypted): a server thumbnail of a plain image, else the
        sender's encrypted thumbnail or the file itself."""
        if self.client is None:
            raise MediaError("not connected")
        original = ref.original
        if not full and original.encrypted is None:
            try:
                return await self._send_fallback(
                    api.thumbnail_media(original.server, original.media_id, *THUMBNAIL_SIZE),
                    api.thumbnail_media(
                        original.server, original.media_id, *THUMBNAIL_SIZE, legacy=True
                    ),
                )
            except MatrixError:
                pass  # no thumbnail (a format the server does not thumbnail): the original
        source: Attachment = original
        if (
            not full
            and original.encrypted is not None
            and ref.thumbnail is not None
            and ref.thumbnail.encrypted is not None
        ):
            source = ref.thumbnail
        if source.size is not None and source.size > MAX_IMAGE_BYTES:
            raise ImageDecodeError(f"the image is too large to show ({source.size:,} bytes)")
        data = await self._send_fallback(
            api.download_media(source.server, source.media_id),
            api.download_media(source.server, source.media_id, legacy=True),
        )
        if source.encrypted is not None:
            data = await asyncio.to_thread(decrypt_attachment, data, source.encrypted)
        return data

    async def _send_fallback(self, request: api.Request, legacy: api.Request) -> bytes:
        assert self.client is not None
        try:
            return await self.client.connection.send_raw(request)
        except MatrixError as error:
            # Servers without authenticated media (before Matrix 1.11) do not know the route.
            if error.errcode not in ("M_UNRECOGNIZED", "M_NOT_FOUND") and error.status not in (
                404,
                405,
            ):
                raise
            return await self.client.connection.send_raw(legacy)


def _square(picture: Picture, width: int, height: int) -> Picture:
    from PIL import Image

    image = Image.frombytes("RGBA", (picture.width, picture.height), picture.rgba)
    image = image.resize((width, height), Image.Resampling.BOX)
    return Picture(width, height, image.tobytes())


def placeholder_rows(ref: ImageRef, max_cols: int, max_rows: int) -> tuple[int, int]:
    """The (columns, rows) to keep for an image before it loads: from the size its sender
    gave, else one row."""
    if ref.width and ref.height:
        return cell_box(ref.width, ref.height, max_cols, max_rows)
    return min(max_cols, 12), 1
