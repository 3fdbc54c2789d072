"""One typed dispatch table per receiver of the engine's updates.

The engine publishes :data:`~tui_client.engine.updates.Update` values; the app posts each
as one :class:`~.messages.EngineUpdate` into Textual's queue (so room-list and status
updates coalesce) and hands it to the screens and flows. Each of them routes it through
an :class:`UpdateRoutes` built once: ``routes.on(TypingChanged, self._typing)`` checks that
the handler takes that kind of update, and :meth:`UpdateRoutes.dispatch` calls the
handlers of the update's own class (no ``isinstance`` chain).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self, TypeVar

from ..engine.updates import Update

__all__ = ["UpdateRoutes"]

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
