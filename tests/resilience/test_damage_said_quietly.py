"""A damaged cache is said once (the status line, the dialog); the services that meet it
afterwards do not add tracebacks to the log. The UI's image and link-preview services read
their settings as a background task when first used: a cache that no longer reads gave
"Task exception was never retrieved" with a CacheDamagedError traceback (seen in
test_damage_while_running.py's runs), and cross-signing's background work logged its
CacheDamagedError as "cross-signing work failed" with the traceback."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tui_client.engine.client import MatrixClient
from tui_client.engine.cross_signing import CrossSigningService
from tui_client.engine.dbthread import DatabaseThread
from tui_client.engine.images import MODE_THUMBNAILS, ImageService
from tui_client.engine.storage import CacheDamagedError
from tui_client.engine.url_previews import UrlPreviewService


class DamagedCache:
    """A cache whose every read meets a malformed page (as SQLCipher answers every read on
    a connection once a page failed its check)."""

    def get_meta(self, key: str) -> str | None:
        raise sqlite3.DatabaseError("database disk image is malformed")


@pytest.fixture
def db() -> Iterator[DatabaseThread]:
    thread = DatabaseThread()
    yield thread
    thread.shutdown()


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info is not None]


async def test_the_image_settings_of_a_damaged_cache_are_the_defaults(
    db: DatabaseThread, caplog: pytest.LogCaptureFixture
) -> None:
    client = SimpleNamespace(db=db, cache=DamagedCache())
    service = ImageService(cast(MatrixClient, client))
    await service.load_settings()  # raised CacheDamagedError
    assert service.mode == MODE_THUMBNAILS and service.avatars and service.copy_links
    assert not _tracebacks(caplog)


async def test_the_preview_settings_of_a_damaged_cache_are_the_defaults(
    db: DatabaseThread, caplog: pytest.LogCaptureFixture
) -> None:
    service = UrlPreviewService(cast(Any, None), cast(Any, DamagedCache()), db, rooms=lambda: {})
    await service.load_settings()  # raised CacheDamagedError
    assert service.plain and not service.encrypted
    assert not _tracebacks(caplog)


async def test_cross_signing_work_stopped_by_the_damage_is_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = object.__new__(CrossSigningService)  # only its background-task bookkeeping
    service._tasks = set()

    async def work() -> None:
        raise CacheDamagedError("database disk image is malformed")

    with caplog.at_level(logging.WARNING):
        service._spawn(work())
        while service._tasks:
            await asyncio.sleep(0)
    assert not _tracebacks(caplog), _tracebacks(caplog)
    assert any("the cache is damaged" in r.getMessage() for r in caplog.records)
