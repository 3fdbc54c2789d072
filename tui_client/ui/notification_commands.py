"""Palette entries for notifications: the room's level, keywords, ignored users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from textual.app import App, SystemCommand
from textual.markup import escape as escape_markup

from ..engine.client import MatrixClient
from ..engine.notifications import level_label
from ..protocol.ids import is_user_id
from ..protocol.push_rules import LEVEL_ALL, LEVEL_MENTIONS, LEVEL_MUTE
from ..protocol.sanitize import clean_line
from .screens.dialogs import PromptDialog
from .screens.ignored import IgnoredUsersScreen

__all__ = ["commands"]


def commands(app: App[Any], client: MatrixClient, room_id: str | None) -> Iterable[SystemCommand]:
    """Notification entries of the command palette (Ctrl+P)."""
    service = client.notifications
    if room_id is not None:
        current = service.room_level(room_id)
        for level, title in (
            (LEVEL_ALL, "Notify: all messages"),
            (LEVEL_MENTIONS, "Notify: mentions and keywords"),
            (LEVEL_MUTE, "Notify: mute room"),
        ):
            if level != current:
                help_text = f"Notifications for this room (now: {level_label(current)})"
                yield SystemCommand(
                    title,
                    help_text,
                    partial(
                        _run,
                        app,
                        partial(service.set_room_level, room_id, level),
                        f"Room set to {level_label(level)}",
                    ),
                )
    keywords = service.keywords()
    yield SystemCommand(
        "Add notification keyword",
        "Be notified (and highlighted) when a message has this word",
        partial(_ask, app, "Keyword to be notified of:", service.add_keyword, "Keyword added: {}"),
    )
    if keywords:
        shown = ", ".join(clean_line(k, 40) for k in keywords[:10])
        yield SystemCommand(
            "Remove notification keyword",
            # Palette help is read as markup: keywords come from any of the user's clients.
            escape_markup(f"Now: {shown}"),
            partial(
                _ask,
                app,
                f"Keyword to remove ({shown}):",
                service.remove_keyword,
                "Keyword removed: {}",
            ),
        )
    yield SystemCommand(
        "Ignore user",
        "Hide someone's messages and invites",
        partial(
            _ask, app, "User ID to ignore (@name:server):", _checked(service.ignore), "Ignoring {}"
        ),
    )
    count = len(service.ignored)
    yield SystemCommand(
        "Ignored users",
        f"See who you ignore ({count} now) and stop ignoring them",
        partial(app.push_screen, IgnoredUsersScreen(client)),
    )
    if service.ignored:
        shown = ", ".join(clean_line(u, 60) for u in sorted(service.ignored)[:10])
        yield SystemCommand(
            "Stop ignoring user",
            escape_markup(f"Ignored: {shown}"),
            partial(
                _ask,
                app,
                f"User ID to show again ({shown}):",
                _checked(service.unignore),
                "No longer ignoring {}",
            ),
        )


def _checked(action: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    async def run(user_id: str) -> None:
        if not is_user_id(user_id):
            raise ValueError(f"{user_id!r} is not a user ID (@name:server)")
        await action(user_id)

    return run


def _ask(app: App[Any], title: str, action: Callable[[str], Awaitable[None]], done: str) -> None:
    def answered(value: str | None) -> None:
        value = (value or "").strip()
        if value:
            _run(app, partial(action, value), done.format(clean_line(value, 80)))

    app.push_screen(PromptDialog(title), answered)


def _run(app: App[Any], action: Callable[[], Awaitable[None]], done: str) -> None:
    async def work() -> None:
        try:
            await action()
        except Exception as error:
            app.notify(
                f"Could not change notifications: {clean_line(str(error), 200)}",
                severity="error",
                markup=False,
            )
            return
        app.notify(done, markup=False)

    app.run_worker(work(), exit_on_error=False)
