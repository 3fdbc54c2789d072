"""Waiting for a condition: the one polling loop of the test suite.

Each helper fails the test with ``what`` (and, for the app, the screen's text when a
``describe`` callable is given) if the condition does not hold in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.app import App
from textual.pilot import Pilot

__all__ = ["pilot_until", "ui_caught_up", "until", "until_async"]


def _what(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


async def until(
    predicate: Callable[[], bool],
    what: str | Callable[[], str] = "condition",
    timeout: float = 30.0,
    *,
    step: float = 0.05,
) -> None:
    """Poll ``predicate`` on the running event loop until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {_what(what)}")
        await asyncio.sleep(step)


async def until_async(
    predicate: Callable[[], Awaitable[bool]],
    what: str | Callable[[], str] = "condition",
    timeout: float = 30.0,
    *,
    step: float = 0.05,
) -> None:
    """Like :func:`until` for a predicate that must be awaited (a cache query)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {_what(what)}")
        await asyncio.sleep(step)


async def pilot_until(
    pilot: Pilot[None],
    predicate: Callable[[], bool],
    what: str | Callable[[], str],
    timeout: float = 30.0,
    *,
    describe: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` between the app's refreshes (``pilot.pause``) until it holds;
    the failure says what ``describe()`` returns (the screen's text, say)."""
    for _ in range(max(1, int(timeout / 0.05))):
        if predicate():
            return
        await pilot.pause(0.05)
    detail = f"; {describe()}" if describe is not None else ""
    raise AssertionError(f"timed out waiting for {_what(what)}{detail}")


async def ui_caught_up(app: App[Any]) -> None:
    """Wait until the app has handled every message posted to it before now: the engine's
    updates (which the app receives as messages, after the engine's own state changed)
    included. What the UI does about an update is then on screen, or never will be."""
    handled = asyncio.Event()
    if app.call_later(handled.set):  # (queued behind the messages already posted)
        await handled.wait()
