"""Warnings that hold for as long as the setup does (no keyring, no key backup) are said
once per data folder: on later starts they are published as a quiet
:class:`~.updates.Reminder` for the status line, and the encryption health screen keeps
telling them."""

from __future__ import annotations

from .core import Core
from .updates import Notice, Reminder

__all__ = ["say_once"]

_SAID = "said:"


async def say_once(core: Core, key: str, level: str, text: str) -> None:
    """Publish ``text`` as a :class:`Notice` the first time ``key`` is said in this
    profile's cache, and as a :class:`Reminder` every time after."""
    meta = _SAID + key
    if await core.db.run(core.cache.get_meta, meta) is None:
        await core.db.run(core.cache.set_meta, meta, "1")
        core.publish(Notice(level, text))
    else:
        core.publish(Reminder(level, text))
