"""Textual messages carrying the engine's updates into the UI loop."""

from __future__ import annotations

from textual.message import Message

from ..engine.formatting import Pill
from ..engine.room_view import RoomView
from ..engine.updates import RoomListChanged, SyncState, Update


class EngineUpdate(Message):
    """An update from the engine. Status and room-list updates coalesce (latest wins).

    ``source`` is the client (the account) it came from: with several accounts in the
    window, the app hands it to that account's screens only, and only updates of the
    same account coalesce.
    """

    def __init__(self, update: Update, source: object = None) -> None:
        super().__init__()
        self.update = update
        self.source = source

    def can_replace(self, message: Message) -> bool:
        """A newer room list or sync status makes an older queued one pointless."""
        if not isinstance(message, EngineUpdate) or message.source is not self.source:
            return False
        for kind in (SyncState, RoomListChanged):
            if isinstance(self.update, kind) and isinstance(message.update, kind):
                return True
        return False


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
