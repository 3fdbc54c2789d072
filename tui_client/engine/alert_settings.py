"""How the user wants to be alerted of a notification: the settings, kept in the cache.

The push rules (engine/notifications.py) decide *what* notifies; these settings decide
*how* the UI says it: not at all (``off``), with the terminal's bell (``bell``), or with a
desktop notification (``desktop``: a terminal escape or D-Bus, the bell as a fallback);
and whether a notification shows the message's text (``always``, ``unencrypted`` rooms
only, the default, or ``never``). Kept in the cache's meta table like the typing setting.
"""

from __future__ import annotations

from ..store.cache import Cache
from .dbthread import DatabaseThread

__all__ = [
    "MODES",
    "MODE_BELL",
    "MODE_DESKTOP",
    "MODE_OFF",
    "MODE_SETTING",
    "TEXTS",
    "TEXT_ALWAYS",
    "TEXT_NEVER",
    "TEXT_SETTING",
    "TEXT_UNENCRYPTED",
    "AlertSettings",
]

MODE_OFF = "off"
MODE_BELL = "bell"
MODE_DESKTOP = "desktop"
MODES = (MODE_OFF, MODE_BELL, MODE_DESKTOP)

TEXT_ALWAYS = "always"
TEXT_UNENCRYPTED = "unencrypted"
TEXT_NEVER = "never"
TEXTS = (TEXT_ALWAYS, TEXT_UNENCRYPTED, TEXT_NEVER)

#: The cache's meta keys.
MODE_SETTING = "notification_alerts"
TEXT_SETTING = "notification_text"


class AlertSettings:
    """The alert mode and the message-text setting (see the module documentation)."""

    def __init__(self, cache: Cache, db: DatabaseThread) -> None:
        self._cache = cache
        self._db = db
        self.mode = MODE_DESKTOP
        self.text = TEXT_UNENCRYPTED

    async def load(self) -> None:
        """Read both settings (the defaults where unset or unknown)."""
        mode = await self._db.run(self._cache.get_meta, MODE_SETTING)
        text = await self._db.run(self._cache.get_meta, TEXT_SETTING)
        self.mode = mode if mode in MODES else MODE_DESKTOP
        self.text = text if text in TEXTS else TEXT_UNENCRYPTED

    async def set_mode(self, mode: str) -> None:
        """``off``, ``bell`` or ``desktop`` (kept across restarts)."""
        if mode not in MODES:
            raise ValueError(f"unknown alert mode {mode!r}")
        await self._db.run(self._cache.set_meta, MODE_SETTING, mode)
        self.mode = mode

    async def set_text(self, text: str) -> None:
        """``always``, ``unencrypted`` or ``never`` (kept across restarts)."""
        if text not in TEXTS:
            raise ValueError(f"unknown message-text setting {text!r}")
        await self._db.run(self._cache.set_meta, TEXT_SETTING, text)
        self.text = text

    def shows_text(self, encrypted: bool) -> bool:
        """True if a notification of a message in such a room may show its text."""
        return self.text == TEXT_ALWAYS or (self.text == TEXT_UNENCRYPTED and not encrypted)
