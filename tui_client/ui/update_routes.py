"""One typed dispatch table per receiver of the engine's updates.

The engine publishes :data:`~tui_client.engine.updates.Update` values; the app gathers
those of a frame (:class:`~.messages.UpdateBatch`, one Textual message), drops the ones a
later update supersedes (:func:`coalesce`) and hands each of the rest to the screens and flows. Each of them routes it through
an :class:`UpdateRoutes` built once: ``routes.on(TypingChanged, self._typing)`` checks that
the handler takes that kind of update, and :meth:`UpdateRoutes.dispatch` calls the
handlers of the update's own class (no ``isinstance`` chain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Self, TypeVar

from ..engine.updates import RoomListChanged, SyncState, TypingChanged, Update

__all__ = ["UpdateRoutes", "coalesce"]

U = TypeVar("U")


class UpdateRoutes:
    """Handlers by update class, in the order they were added."""

    __slots__ = ("_routes",)

    def __init__(self) -> None:
        self._routes: dict[type, list[Callable[[Any], None]]] = {}

    def on(self, kind: type[U], handler: Callable[[U], None]) -> Self:
        """Call ``handler`` with every update of class ``kind``."""
        self._routes.setdefault(kind, []).append(handler)
        return self

    def dispatch(self, update: Update) -> bool:
        """Hand ``update`` to its handlers; False if it has none here."""
        handlers = self._routes.get(type(update))
        if not handlers:
            return False
        for handler in handlers:
            handler(update)
        return True

    def kinds(self) -> frozenset[type]:
        """The update classes routed here."""
        return frozenset(self._routes)


def _superseding_key(update: Update) -> tuple[str, str] | None:
    """Updates with the same key: only the latest matters (each says the whole state)."""
    if isinstance(update, RoomListChanged):
        return ("rooms", "")
    if isinstance(update, SyncState):
        return ("sync", "")
    if isinstance(update, TypingChanged):
        return ("typing", update.room_id)
    return None


def coalesce(updates: Sequence[Update]) -> list[Update]:
    """The updates of one UI frame, without those a later one makes pointless: an older
    room list (its ``changed`` rooms go to the newest one), sync status, or who types in a
    room. The rest keep their order. A first sync of 1,000 rooms publishes one
    :class:`TypingChanged` a room and several room lists in a frame: each was a Textual
    message, the room list rebuilt for each."""
    seen: set[tuple[str, str]] = set()
    changed: set[str] = set()
    kept: list[Update] = []
    newest_list = -1
    for update in reversed(updates):
        key = _superseding_key(update)
        if isinstance(update, RoomListChanged):
            changed |= update.changed
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
            if isinstance(update, RoomListChanged):
                newest_list = len(kept)
        kept.append(update)
    if newest_list >= 0:
        newest = kept[newest_list]
        assert isinstance(newest, RoomListChanged)
        if newest.changed != changed:
            kept[newest_list] = dataclasses.replace(newest, changed=frozenset(changed))
    kept.reverse()
    return kept
