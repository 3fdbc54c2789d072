"""The real app with Pilot against Synapse: the status line names the sync that runs
(sliding sync, or sync v2), and the palette's "Sliding sync" entry switches to /sync v2
and back, live, with messages still arriving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.status_bar import StatusBar
from tui_client.ui.widgets.timeline import TimelineView

from ..integration.receipts_support import say
from .test_flow import _join, _room, until
from .test_push_alerts import _palette
from .test_read_receipts_flow import _log_in, server


def _status(app: TuiClientApp) -> str:
    return app.screen.query_one(StatusBar).render().plain


async def test_status_line_names_the_sync_and_the_palette_toggles_it(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    room = _room(synapse, bob, "Toggle", [alice.user_id])
    _join(synapse, alice, room)
    say(synapse, bob, room, "before the toggle", "t0")
    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _log_in(pilot, app, synapse, alice)
        timeline = screen.query_one(TimelineView)
        await until(
            pilot, lambda: any(i.body == "before the toggle" for i in timeline.items), "the message"
        )
        assert app.client is not None
        await until(
            pilot, lambda: "sliding sync" in _status(app), "sliding sync named in the status line"
        )
        assert app.client.sync_mode == "sliding sync"

        await _palette(pilot, app, "Sliding sync")
        await until(
            pilot, lambda: app.client is not None and app.client.sync_mode == "sync v2", "/sync v2"
        )
        await until(
            pilot,
            lambda: "sliding sync" not in _status(app) and "sync v2" in _status(app),
            "the status line naming sync v2",
        )
        assert "connected" in _status(app) or "syncing" in _status(app), _status(app)
        await until(pilot, lambda: "connected · sync v2" in _status(app), "connected over v2")
        # /sync v2 runs: a new message arrives, and the choice is kept.
        await server(lambda: say(synapse, bob, room, "over v2", "t1"))
        await until(
            pilot, lambda: any(i.body == "over v2" for i in timeline.items), "a message over v2"
        )
        assert not app.client.sliding_sync_allowed

        await _palette(pilot, app, "Sliding sync")
        await until(pilot, lambda: "sliding sync" in _status(app), "sliding sync named again")
        assert "sync v2" not in _status(app)
        assert app.client.sync_mode == "sliding sync"
        await server(lambda: say(synapse, bob, room, "over sliding sync again", "t2"))
        await until(
            pilot,
            lambda: any(i.body == "over sliding sync again" for i in timeline.items),
            "a message again",
        )
        assert [i.body for i in timeline.items].count("over v2") == 1
