"""URL previews in the timeline: a muted line under a message with a link (its title
and description, already cleaned by protocol/url_preview.py), the one
:class:`~tui_client.engine.url_previews.UrlPreviewService` per client, and the palette's
two settings."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from typing import Any, Protocol, cast

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.app import App, SystemCommand

from ..engine.client import MatrixClient
from ..engine.url_previews import UrlPreviewService
from ..protocol.timeline import TimelineItem
from ..protocol.url_preview import UrlPreview

__all__ = ["preview_line", "preview_service", "preview_url_of", "url_preview_commands"]

#: The kinds of message whose links get a preview.
PREVIEWED_KINDS = frozenset({"text", "emote", "notice"})

_loading: set[asyncio.Task[None]] = set()
_services: weakref.WeakKeyDictionary[MatrixClient, UrlPreviewService] = weakref.WeakKeyDictionary()


def preview_service(client: MatrixClient) -> UrlPreviewService:
    """The URL preview service of a client (made on first use, its settings loaded)."""
    service = _services.get(client)
    if service is None:
        service = _services[client] = UrlPreviewService(
            client.connection, client.cache, client.db, rooms=lambda: client.rooms
        )
        task = asyncio.get_running_loop().create_task(service.load_settings())
        _loading.add(task)
        task.add_done_callback(_loading.discard)
    return service


def preview_url_of(item: TimelineItem) -> str | None:
    """The link of a message to preview: its first web link, never one under a spoiler
    (a message with a spoiler gets no preview: its plain body holds the hidden text)."""
    if item.kind not in PREVIEWED_KINDS or item.is_local_echo:
        return None
    from ..protocol.links import has_spoiler  # with the HTML parser, after the first paint
    from ..protocol.web_links import web_links

    if item.formatted is not None and has_spoiler(item.formatted):
        return None
    urls = web_links(item.body, item.formatted, spoilers=False, limit=1)
    return urls[0] if urls else None


def preview_line(preview: UrlPreview, width: int, colour: str) -> list[Segment]:
    """The muted line under the message: ``↗ Site: Title — description``, cut to ``width``."""
    title = preview.title or preview.description
    text = (
        f"↗ {preview.site_name}: {title}"
        if preview.site_name and preview.site_name not in title
        else f"↗ {title}"
    )
    if preview.title and preview.description:
        text += f" — {preview.description}"
    if cell_len(text) > width:
        text = set_cell_size(text, max(1, width - 1)) + "…"
    return [Segment(text, Style(color=colour, italic=True))]


class _Redrawable(Protocol):
    def refresh_names(self) -> None: ...


def url_preview_commands(app: App[Any], client: MatrixClient) -> Iterable[SystemCommand]:
    """The palette's entries: previews in plain rooms, and in encrypted rooms."""
    service = preview_service(client)

    def redraw() -> None:
        # By name: the timeline widget imports this module.
        for screen in app.screen_stack:
            for timeline in screen.query("TimelineView"):
                cast(_Redrawable, timeline).refresh_names()

    async def toggle(encrypted: bool) -> None:
        if encrypted:
            await service.set_encrypted(not service.encrypted)
            state = "on" if service.encrypted else "off"
            app.notify(f"Link previews in encrypted rooms: {state}", markup=False, timeout=4)
        else:
            await service.set_plain(not service.plain)
            app.notify(
                f"Link previews: {'on' if service.plain else 'off'}", markup=False, timeout=4
            )
        redraw()

    yield SystemCommand(
        f"Link previews: {'on → off' if service.plain else 'off → on'}",
        "A line with the title of a linked page under its message (the server fetches it)",
        lambda: app.run_worker(toggle(False), exit_on_error=False),
    )
    yield SystemCommand(
        f"Link previews in encrypted rooms: {'on → off' if service.encrypted else 'off → on'}",
        "Off by default: asking tells the server which links you read",
        lambda: app.run_worker(toggle(True), exit_on_error=False),
    )
