"""Images: scroll a room of 500 images (half-blocks, then kitty placeholders) against a
room of 500 text messages.

Both rooms are shown by the real :class:`~tui_client.ui.widgets.timeline.TimelineView` in a
small Textual app (no engine: the items are built directly, and the image service's fetch
returns a PNG made here, so the network is not measured; decoding runs in its worker
threads as it does for a user). From the newest message, PageUp to the oldest and back
down, a key at a time, waiting for the images on screen to load. An event-loop monitor
records the longest stall (the worst frame); the image cache's size at the end is printed
next to its bound. The kitty run decodes each picture with its PNG too (at 10 x 20 pixels
a cell) and draws placeholder cells; what it would write to a terminal is not written
(headless), so it measures the client's side only.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from typing import Any

from PIL import Image

from tui_client.engine import gc_policy
from tui_client.engine.images import ImageService, decode_picture
from tui_client.protocol.media import ImageRef
from tui_client.protocol.timeline import TimelineItem

from ._harness import sized

MESSAGES = sized(500, 40)
ROUNDS = sized(3, 1)
CACHE_BYTES = 32 * 1024 * 1024


def _png(seed: int) -> bytes:
    """A 320 x 240 PNG (the thumbnail size asked of servers), different for every seed:
    gradients turned and tinted per seed, so every picture has colours of its own."""
    size = (320, 240)
    ramp = Image.linear_gradient("L").resize(size)
    channels = [
        ramp.rotate((seed * 37 + k * 120) % 360).point(lambda v, k=k: (v + seed * (k + 3)) % 256)
        for k in range(3)
    ]
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, "PNG")
    return out.getvalue()


class LocalImages(ImageService):
    """The image service with the network replaced by PNGs made in memory."""

    def __init__(self, pngs: list[bytes]) -> None:
        super().__init__(None, max_bytes=CACHE_BYTES)
        self.pngs = pngs
        self.fetched = 0

    async def fetch(self, ref: ImageRef, *, full: bool) -> bytes:
        self.fetched += 1
        await asyncio.sleep(0.005)  # a download on the loopback, roughly
        return self.pngs[int(ref.original.media_id.rsplit("_", 1)[1])]


def _items(count: int, images: bool) -> list[TimelineItem]:
    from tui_client.protocol.media import parse_image

    items = []
    base = 1_795_000_000_000
    for n in range(count):
        sender = f"@user{n % 5}:example.org"
        if images:
            content = {
                "msgtype": "m.image",
                "body": f"photo {n}.png",
                "url": f"mxc://example.org/photo_{n}",
                "info": {"w": 640, "h": 480, "mimetype": "image/png"},
            }
            items.append(
                TimelineItem(
                    f"$e{n}",
                    f"$e{n}",
                    None,
                    sender,
                    base + n * 60_000,
                    "media",
                    f"[image] photo {n}.png",
                    "m.room.message",
                    image=parse_image("m.room.message", content),
                )
            )
        else:
            items.append(
                TimelineItem(
                    f"$e{n}",
                    f"$e{n}",
                    None,
                    sender,
                    base + n * 60_000,
                    "text",
                    f"message number {n} " * 3,
                    "m.room.message",
                )
            )
    return items


def _on_screen(timeline: Any) -> set[str]:
    top = round(timeline.scroll_y)
    keys = set()
    for y in range(top, top + timeline.size.height):
        index = timeline.item_at_line(y)
        if index is not None:
            keys.add(timeline.items[index].key)
    return keys


async def measure(images: bool, pngs: list[bytes], kitty: bool = False) -> dict[str, Any]:
    """Scroll one room to the top and back; the worst stall, keys, cache size."""
    from textual import events
    from textual.app import App, ComposeResult

    from tui_client.ui.graphics import HALFBLOCKS, KITTY, Terminal, set_graphics
    from tui_client.ui.widgets.timeline import TimelineView

    set_graphics(Terminal(KITTY if kitty else HALFBLOCKS, (10, 20)))

    # The collector as the app sets it up (engine/gc_policy.py), from the same state each time.
    gc_policy.reset()
    gc_policy.configure()
    service = LocalImages(pngs)
    if kitty:
        service.detail = (10, 20)
    # Pillow's plugins load on its first decode: once per process, not per image.
    decode_picture(pngs[0], 8, 4)

    class Bench(App[None]):
        def compose(self) -> ComposeResult:
            view = TimelineView(id="timeline")
            view.images = service
            yield view

    app = Bench()
    stalls: list[float] = []
    keys: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        timeline = app.query_one(TimelineView)
        timeline.reached_start = True
        opening = time.perf_counter()
        timeline.set_items(_items(MESSAGES, images))
        timeline.focus()
        await pilot.pause()
        for _ in range(5000):
            if not service._loading and not any(
                key in timeline._unloaded for key in _on_screen(timeline)
            ):
                break
            await asyncio.sleep(0.002)
        opened_ms = (time.perf_counter() - opening) * 1000
        running = True

        async def monitor() -> None:
            last = time.perf_counter()
            while running:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                stalls.append(now - last)
                last = now

        watcher = asyncio.ensure_future(monitor())
        meter = gc_policy.PauseMeter().__enter__()

        def waiting_on_screen() -> bool:
            top = round(timeline.scroll_y)
            for y in range(top, top + timeline.size.height):
                index = timeline.item_at_line(y)
                if index is not None and timeline.items[index].key in timeline._unloaded:
                    return True
            return False

        def settled() -> bool:
            return (
                not waiting_on_screen() and not service._loading and timeline._message_queue.empty()
            )

        per_key: list[float] = []
        mark = 0
        for key in ["pageup"] * (timeline.virtual_size.height // 38 + 2) + ["pagedown"] * 6:
            start = time.perf_counter()
            app._driver.send_message(events.Key(key, None))  # type: ignore[union-attr]
            calm = 0
            while calm < 2:
                await asyncio.sleep(0.001)
                calm = calm + 1 if settled() else 0
            keys.append((time.perf_counter() - start) * 1000)
            per_key.append(max(stalls[mark:], default=0.0) * 1000)
            mark = len(stalls)
        running = False
        await watcher
        meter.__exit__()
    set_graphics(Terminal())
    return {
        "worst_ms": max(stalls) * 1000,
        "key_median_ms": statistics.median(keys),
        "cache_bytes": service.cache.bytes,
        "cached": len(service.cache),
        "fetched": service.fetched,
        "keys": len(keys),
        "first_pictures_ms": opened_ms,
        "gc_passes": meter.passes,
        "gc_worst_ms": meter.worst_ms,
        "per_key_worst_ms": per_key,
    }


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Both rooms, ``rounds`` times alternately."""
    pngs = [_png(seed) for seed in range(MESSAGES)]  # every picture its own, colours too
    with_images, text_only, kitty = [], [], []
    for _ in range(rounds):
        with_images.append(asyncio.run(measure(True, pngs)))
        text_only.append(asyncio.run(measure(False, pngs)))
        kitty.append(asyncio.run(measure(True, pngs, kitty=True)))
    return {"images": with_images, "text": text_only, "kitty": kitty}


def main() -> None:
    """Print the images benchmark."""
    report = run()
    images, text = report["images"], report["text"]
    worst_images = statistics.median(r["worst_ms"] for r in images)
    worst_text = statistics.median(r["worst_ms"] for r in text)
    print(
        f"images: {MESSAGES:,}-image room vs {MESSAGES:,}-message text room, PageUp to the top and 6 PageDowns"
    )
    print(
        f"  worst frame (loop stall)      {worst_images:8.1f} ms   vs {worst_text:8.1f} ms   ratio {worst_images / worst_text:.2f}"
    )
    print(
        f"  key to settled, median        {statistics.median(r['key_median_ms'] for r in images):8.1f} ms"
        f"   vs {statistics.median(r['key_median_ms'] for r in text):8.1f} ms"
    )
    last = images[-1]
    print(
        f"  GC passes gen0/1/2 scrolling  {'/'.join(map(str, last['gc_passes'])):>10}   vs {'/'.join(map(str, text[-1]['gc_passes'])):>10}"
        f"   longest pass {max(last['gc_worst_ms']):.1f} ms vs {max(text[-1]['gc_worst_ms']):.1f} ms"
    )
    print(
        f"  first pictures on screen      {statistics.median(r['first_pictures_ms'] for r in images):8.1f} ms"
        " (set_items to the last on screen drawn)"
    )
    print(
        f"  image cache at the end        {last['cache_bytes'] / 1024:8.0f} KiB ({last['cached']} pictures, {last['fetched']} fetched;"
        f" bound {CACHE_BYTES // (1024 * 1024)} MiB)"
    )
    kitty = report["kitty"]
    worst_kitty = statistics.median(r["worst_ms"] for r in kitty)
    print(
        f"  kitty placeholders: worst frame {worst_kitty:6.1f} ms   ratio to text {worst_kitty / worst_text:.2f};"
        f" cache {kitty[-1]['cache_bytes'] / 1024:.0f} KiB ({kitty[-1]['cached']} pictures with PNGs)"
    )


if __name__ == "__main__":
    main()
