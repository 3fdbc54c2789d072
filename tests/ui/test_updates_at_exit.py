"""Engine updates still queued when the app shuts down are dropped, not applied to screens
being taken apart (Pilot's run_test shuts the app down while its message loop still runs;
the sync keeps publishing meanwhile)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui_client.engine.updates import PresenceChanged, TypingChanged
from tui_client.ui.app import TuiClientApp
from tui_client.ui.messages import UpdateBatch

from .fake_world import FakeHomeserver
from .test_snapshots import GENERAL, _app, _settle


async def test_updates_queued_at_exit_do_not_crash_the_app(
    fake_profile: Path, fake_server: FakeHomeserver
) -> None:
    app: TuiClientApp = _app(fake_profile, fake_server)
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        app.open_room(GENERAL)
        await _settle(pilot, GENERAL)

        batch = UpdateBatch(app, None)

        async def publish() -> None:
            # As a running sync does: updates keep coming while the app shuts down.
            n = 0
            while not app._closed:
                n += 1
                update = (
                    TypingChanged(GENERAL, (f"@u{n}:example.org",))
                    if n % 2
                    else PresenceChanged(frozenset({f"@u{n}:example.org"}))
                )
                batch(update)
                await asyncio.sleep(0)

        publisher = asyncio.ensure_future(publish())
        await pilot.pause(0.1)
    # Leaving the block shut the app down; an update applied to a pruned screen would
    # have been raised there.
    await publisher
