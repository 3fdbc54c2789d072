"""A full disk as the user meets it (Pilot, 80x24, the data folder on a small tmpfs filled
to the last byte): the status line says so, a message typed then is refused with the
reason and stays in the composer, the room reads from the cache, and once space is back
the status line clears by itself, what arrived meanwhile shows, and the message sends.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import SynapseServer
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.composer import Composer

from ..engine.support import join, send_text
from ..integration.e2ee_support import client_for
from ..ui.synapse_login import until
from ..ui.test_login_errors import screen_text
from .disk_faults import fill_now, free, small_disk


def _status_line(app: TuiClientApp) -> str:
    lines = [line for line in screen_text(app).splitlines() if " ● " in line]
    return lines[-1] if lines else ""


async def test_full_disk_on_screen(synapse: SynapseServer, make_user: Any, tmp_path: Path) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    with small_disk(tmp_path / "disk") as disk:
        alice = await client_for(synapse, alice_user, disk / "alice")
        alice.storage.interval = 0.5
        room = await alice.create_room(
            {"name": "Disk", "preset": "private_chat", "invite": [bob_user.user_id]}
        )
        app = TuiClientApp(client=alice, base_dir=disk / "alice")
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await until(
                    pilot,
                    lambda: (
                        app.chat_screen is not None
                        and app.chat_screen.view is not None
                        and app.chat_screen.current_room == room
                    ),
                    "the room",
                )
                chat = app.chat_screen
                assert chat is not None
                await fill_now(disk, alice)
                # Something to store: bob joins and writes.
                join(synapse, bob_user, room)
                send_text(synapse, bob_user, room, "written meanwhile", "full-1")
                await until(
                    pilot,
                    lambda: "the disk is full" in _status_line(app),
                    "the status line to say the disk is full",
                    on_timeout=lambda: _status_line(app),
                )
                assert "nothing new is saved" in _status_line(app)
                composer = chat.query_one(Composer)
                composer.focus()
                await pilot.press(*"my typed words")
                await pilot.press("enter")
                await until(
                    pilot,
                    lambda: any(
                        "Not sent: the disk is full" in n.message for n in app._notifications
                    ),
                    "the refusal as a toast",
                )
                await until(
                    pilot,
                    lambda: composer.text == "my typed words",
                    "the text back in the composer",
                )
                free(disk)
                await until(
                    pilot,
                    lambda: (
                        "disk is full" not in _status_line(app)
                        and "written meanwhile" in screen_text(app)
                    ),
                    "space back: the status line clears and the message shows",
                    on_timeout=lambda: _status_line(app),
                )
                composer.focus()
                await pilot.press("enter")
                await until(
                    pilot,
                    lambda: composer.text == "" and "my typed words" in screen_text(app),
                    "sent",
                )
        finally:
            free(disk)
            if not app.is_running:
                with contextlib.suppress(RuntimeError):  # the app may have closed it
                    await alice.close()
