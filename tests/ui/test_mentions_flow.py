"""The real app against Synapse: a mention completed from the keyboard (``@bo`` Tab) is sent
as a pill with m.mentions, markdown as formatted_body, and a reaction chosen twice from
the timeline is taken back."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.protocol.timeline import SendState
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ReactionDialog
from tui_client.ui.widgets.composer import Composer
from tui_client.ui.widgets.timeline import TimelineView

from .synapse_login import log_in
from .test_flow import _join, _room, until


def _messages(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> list[dict[str, Any]]:
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/messages?dir=b&limit=50"
    )
    status, data = synapse.request_json("GET", path, None, user.access_token)
    assert status == 200, data
    return list(data["chunk"])


async def test_complete_a_mention_from_the_keyboard_and_read_the_pill_back(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice")
    bob = make_user("bob", displayname="Bob")
    carol = make_user("carol", displayname="Carol")
    room = _room(synapse, bob, "Pills", [alice.user_id, carol.user_id])
    _join(synapse, alice, room)
    _join(synapse, carol, room)

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await log_in(pilot, app, alice, synapse)
        await until(
            pilot,
            lambda: screen.current_room == room and screen.view is not None,
            "the room to open",
        )
        assert screen.view is not None
        view = screen.view
        await until(
            pilot,
            lambda: bob.user_id in view.members and carol.user_id in view.members,
            "the members",
        )

        composer = screen.query_one(Composer)
        composer.focus()
        await pilot.press(*"@bo", "tab")
        assert composer.text == "Bob "
        await pilot.press(*"look at **this** :tada", "tab", "enter")
        timeline = screen.query_one(TimelineView)
        body = "Bob look at **this** 🎉"
        await until(
            pilot,
            lambda: any(
                i.body == body and i.send_state is SendState.SENT and not i.is_local_echo
                for i in timeline.items
            ),
            "the message to be sent",
        )
        sent = [
            e
            for e in await asyncio.to_thread(_messages, synapse, bob, room)
            if e["content"].get("body") == body
        ]
        assert len(sent) == 1
        content = sent[0]["content"]
        assert content["format"] == "org.matrix.custom.html"
        assert content["formatted_body"] == (
            f'<a href="https://matrix.to/#/{bob.user_id}">Bob</a> look at <strong>this</strong> 🎉'
        )
        assert content["m.mentions"] == {"user_ids": [bob.user_id]}

        # Select it in the timeline, + and 1 react with 👍; + and 1 again take ours back.
        event_id = sent[0]["event_id"]
        await pilot.press("escape")
        await until(pilot, lambda: timeline.has_focus, "the timeline focused")
        await pilot.press("up")
        await until(pilot, lambda: timeline.selected_key == event_id, "our message selected")

        async def react() -> None:
            await pilot.press("plus")
            await until(
                pilot, lambda: isinstance(app.screen, ReactionDialog), "the reaction dialog"
            )
            await pilot.press("1")
            await until(pilot, lambda: app.screen is screen, "the dialog closed")

        def mine() -> bool:
            return any(
                i.event_id == event_id and any(r.mine and r.key == "👍" for r in i.reactions)
                for i in timeline.items
            )

        await react()
        await until(pilot, mine, "our reaction")
        await react()
        await until(pilot, lambda: not mine(), "our reaction taken back")
        path = f"/_matrix/client/v1/rooms/{urllib.parse.quote(room, safe='')}/relations/{urllib.parse.quote(event_id, safe='')}/m.annotation"
        status, relations = await asyncio.to_thread(
            synapse.request_json, "GET", path, None, bob.access_token
        )
        assert status == 200 and relations["chunk"] == [], relations

        # Up in the empty composer edits it; the mention stays a pill in the edit.
        composer.focus()
        await pilot.press("up")
        await until(pilot, lambda: composer.text == body, "the message in the composer")
        await pilot.press(*" ok", "enter")
        await until(
            pilot,
            lambda: any(i.event_id == event_id and i.edited for i in timeline.items),
            "the edit",
        )
        edits = [
            e["content"]
            for e in await asyncio.to_thread(_messages, synapse, bob, room)
            if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
        ]
        assert len(edits) == 1
        assert edits[0]["m.new_content"]["formatted_body"] == (
            f'<a href="https://matrix.to/#/{bob.user_id}">Bob</a> look at <strong>this</strong> 🎉 ok'
        )
        assert edits[0]["m.new_content"]["m.mentions"] == {"user_ids": [bob.user_id]}
        assert edits[0]["m.mentions"] == {}
