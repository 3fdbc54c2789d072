"""Textual messages carrying the engine's updates into the UI loop."""

from __future__ import annotations

from textual.message import Message
from textual.message_pump import MessagePump

from ..engine.formatting import Pill
from ..engine.room_view import RoomView
from ..engine.updates import Update


class EngineUpdates(Message):
    """Updates of one account published since the last frame took them (:class:`UpdateBatch`).

    ``batch.source`` is the client (the account) they came from: with several accounts in
    the window, the app hands them to that account's screens only.

    One message however many updates the engine published meanwhile: a first sync of
    1,000 rooms published over a thousand in one go, each a Textual message with its
    dispatch, the room list rebuilt for each room list update.
    """

    def __init__(self, batch: UpdateBatch) -> None:
        super().__init__()
        self.batch = batch


class UpdateBatch:
    """The engine's updates of one account, gathered until the UI loop takes them.

    The engine publishes on the UI's event loop (the thread this is called on); the first
    update after a :meth:`take` posts one :class:`EngineUpdates` to ``app``.
    """

    __slots__ = ("_app", "_pending", "source")

    def __init__(self, app: MessagePump, source: object) -> None:
        self._app = app
        self.source = source
        self._pending: list[Update] = []

    def __call__(self, update: Update) -> None:
        self._pending.append(update)
        if len(self._pending) == 1:
            self._app.post_message(EngineUpdates(self))

    def take(self) -> list[Update]:
        """The updates gathered so far, oldest first; a new message is posted for the next."""
        taken, self._pending = self._pending, []
        return taken


class RoomOpened(Message):
    """A room view finished loading from the cache."""

    def __init__(self, view: RoomView) -> None:
        super().__init__()
        self.view = view


class ActionFailed(Message):
    """Something the user asked for failed; the text says what."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ComposerSubmitted(Message, namespace="composer"):
    """The user pressed Enter with this text (already taken out of the composer), or ran a
    command line (``:me waves``); handled as ``on_composer_submitted`` (``Composer.Submitted``).

    ``mentions`` are the members and rooms completed in it that are still there, each
    a pill at its offset in ``text``.
    """

    def __init__(self, text: str, mentions: list[Pill] | None = None) -> None:
        super().__init__()
        self.text = text
        self.mentions = mentions or []
