"""The room list is painted from the cache before the crypto machine opens (issue 13), and
nothing waits on it meanwhile: a message typed to an encrypted room in that moment is
encrypted once the machine is open, never refused or sent in clear."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tui_client.engine.client import CACHE_FILE, MatrixClient
from tui_client.engine.paths import profile_dir
from tui_client.engine.storage import StorageUnavailable
from tui_client.protocol.events import ENCRYPTION_INFO
from tui_client.store.cache import Cache
from tui_client.store.records import OutboxEntry
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.threads import ThreadScreen
from tui_client.ui.widgets.room_list import RoomList
from tui_client.ui.widgets.timeline import TimelineView

from ..support.waiting import pilot_until
from .fake_world import ME, FakeHomeserver
from .test_first_minutes import toast_texts

SECRET = "!secretplans0000000000000000000000000000000003"


async def _opened_cache(folder: Path, server: FakeHomeserver, **options: Any) -> MatrixClient:
    """The profile's client with its room list loaded (open_cache), the machine not yet open."""
    client = MatrixClient.restore(base_dir=folder, transport=server.transport(), **options)
    assert client is not None
    await client.open_cache()
    return client


def _screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_the_room_list_is_painted_before_the_machine_opens(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    client = MatrixClient.restore(base_dir=fake_profile, transport=fake_server.transport())
    assert client is not None
    app = TuiClientApp(client=client, start_sync=True)
    release = asyncio.Event()
    painted_at_open: list[str] = []
    opening = client.encryption.open

    async def held_open() -> None:
        # What the terminal shows the moment the machine starts opening.
        painted_at_open.append(_screen_text(app) if isinstance(app.screen, ChatScreen) else "")
        # Bounded: an app that waits for the machine before its first paint goes on (and fails below).
        try:
            await asyncio.wait_for(release.wait(), 5)
        except TimeoutError:
            pass
        await opening()

    client.encryption.open = held_open  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot_until(pilot, lambda: bool(painted_at_open), "the machine starting to open", 10)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        assert chat.query_one(RoomList).option_count > 0
        # Painted, not only mounted: the room names are on the screen already.
        assert "Secret plans" in painted_at_open[0]
        assert "General" in painted_at_open[0]
        assert client.encryption.machine is None
        assert client.sync_loop is None  # no batch may be ingested without the machine

        # Typed now, to the encrypted room: it waits for the machine.
        entry = OutboxEntry(
            1, "early-txn", SECRET, "m.room.message", {"body": "early", "msgtype": "m.text"},
            "pending", None, None, 0, 0,
        )  # fmt: skip
        sending = asyncio.ensure_future(client._prepare_send(entry))
        await pilot.pause(0.1)
        assert not sending.done()

        release.set()
        event_type, content = await asyncio.wait_for(sending, 10)
        assert event_type == "m.room.encrypted"
        assert content["algorithm"] == "m.megolm.v1.aes-sha2"
        assert "early" not in str(content)
        assert client.encryption.machine is not None
        await pilot_until(pilot, lambda: client.sync_loop is not None, "sync started", 10)


def _store_clear_form(base_dir: Path, body: str) -> str:
    """Keep a decrypted form of the encrypted room's message in the profile's cache (as a
    sync with the machine open would have); its event ID."""
    cache = Cache(profile_dir("default", base_dir) / CACHE_FILE, own_user_id=ME)
    stored, _gap = cache.load_before(SECRET, None, 20)
    event = next(s.event for s in stored if s.event.get("type") == "m.room.encrypted")
    info = {"trust": "unverified", "session_id": "s", "device_id": "D"}
    clear = {
        **event,
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body},
        "unsigned": {ENCRYPTION_INFO: info},
    }
    cache.begin()
    cache.crypto_store().save_decrypted(event["event_id"], SECRET, "s", clear, info)
    cache.commit()
    cache.close()
    return str(event["event_id"])


async def test_decrypted_forms_in_the_cache_show_before_the_machine_opens(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """The encrypted room's messages decrypted in an earlier run are read on the screen
    (its timeline, and a thread opened from one) while the machine is still opening."""
    event_id = _store_clear_form(fake_profile, "the plan is in the drawer")
    client = MatrixClient.restore(base_dir=fake_profile, transport=fake_server.transport())
    assert client is not None
    app = TuiClientApp(client=client, start_sync=True)
    release = asyncio.Event()
    opening = client.encryption.open
    started: list[bool] = []

    async def held_open() -> None:
        started.append(True)
        await release.wait()
        await opening()

    client.encryption.open = held_open  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot_until(pilot, lambda: bool(started), "the machine starting to open", 10)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        ready = asyncio.ensure_future(client.encryption.ready())
        chat.open_room(SECRET)
        timeline = chat.query_one("#timeline", TimelineView)
        await pilot_until(
            pilot,
            lambda: any(i.event_id == event_id for i in timeline.items),
            "the encrypted room's message",
            10,
            describe=lambda: _screen_text(app),
        )
        shown = _screen_text(app)
        assert "the plan is in the drawer" in shown, shown
        assert "encrypted message" not in shown, shown

        # A thread opened from it shows it too (its root is read from the cache).
        timeline.focus()
        for _ in range(10):
            if timeline.selected_item is not None and timeline.selected_item.event_id == event_id:
                break
            await pilot.press("up")
        await pilot.press("t")
        await pilot_until(
            pilot,
            lambda: isinstance(app.screen, ThreadScreen) and app.screen.panel.view is not None,
            "the thread",
            10,
        )
        await pilot.pause()
        shown = _screen_text(app)
        assert "Thread" in shown and "the plan is in the drawer" in shown, shown
        assert "encrypted message" not in shown, shown
        assert client.encryption.machine is None
        assert not ready.done()  # the machine the client said it would open is waited for

        release.set()
        await asyncio.wait_for(ready, 10)
        assert client.encryption.available


async def test_a_machine_that_cannot_open_ends_the_wait(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    client = await _opened_cache(fake_profile, fake_server, crypto_backend="no-such")
    ready = asyncio.ensure_future(client.encryption.ready())
    await client.open_services()
    await asyncio.wait_for(ready, 5)
    assert not client.encryption.available
    assert client.encryption.error is not None
    assert not client.encryption.stored_forms_readable
    await client.close()


async def test_sync_never_starts_before_the_machine_is_open(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    client = await _opened_cache(fake_profile, fake_server)
    with pytest.raises(RuntimeError, match="open_services"):
        client.start()
    assert client.sync_loop is None
    await client.close()


async def test_a_machine_that_cannot_open_is_said_on_an_80x24_screen(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    # A misspelt $TUI_CLIENT_CRYPTO_BACKEND: the room list is painted from the cache, the
    # machine then fails to open, and the screen says why and what to do.
    client = MatrixClient.restore(
        base_dir=fake_profile, transport=fake_server.transport(), crypto_backend="no-such"
    )
    assert client is not None
    app = TuiClientApp(client=client, start_sync=True)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:

        def said() -> str:
            return " ".join(toast_texts(pilot))

        await pilot_until(pilot, lambda: "unset it" in said(), "the failure said in full", 10)
        assert said() == (
            "End-to-end encryption is off: unknown crypto backend 'no-such' (choose from olm, "
            "vodozemac). Set TUI_CLIENT_CRYPTO_BACKEND to vodozemac or olm, or unset it."
        ), said()
        shown = _screen_text(app)
        assert "Secret plans" in shown and "General" in shown, shown
        assert client.encryption.machine is None


async def test_an_account_that_cannot_finish_opening_says_so(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    """The machine, devices and sync token are read after the first paint: a disk that
    fails then is said on the screen (it was swallowed by the worker: no sync, no word)."""
    client = MatrixClient.restore(base_dir=fake_profile, transport=fake_server.transport())
    assert client is not None
    app = TuiClientApp(client=client, start_sync=True)

    async def failing_open() -> None:
        raise StorageUnavailable("disk I/O error")

    client.devices.open = failing_open  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24), notifications=True) as pilot:

        def said() -> str:
            return " ".join(toast_texts(pilot))

        await pilot_until(pilot, lambda: "start tui_client again" in said(), "the failure", 10)
        assert "Could not finish opening the account: disk I/O error" in said(), said()
        assert "Secret plans" in _screen_text(app)  # the room list stays
        assert client.sync_loop is None
