"""Screens pushed over the chat that follow the engine's updates (the directory, a space,
the devices).

The app routes each update to them without importing them: they are imported when first
shown (issue 13, start-up).
"""

from __future__ import annotations

from ...engine.updates import Update


class FollowsUpdates:
    """A screen over the chat that the app hands every engine update while it is mounted."""

    def handle_update(self, update: Update) -> None:
        raise NotImplementedError


class DevicesView:
    """The devices screen: the security flow hands it every engine update and its bar's item."""

    def handle_update(self, update: Update) -> None:
        raise NotImplementedError
