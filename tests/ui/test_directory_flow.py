"""The directory and space view driven with Pilot against the real Synapse: search, join,
open; a restricted room joined after the offer to join its space first."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ConfirmDialog
from tui_client.ui.screens.directory import DirectoryScreen
from tui_client.ui.screens.space import SpaceScreen
from tui_client.ui.widgets.directory_list import DirectoryList
from tui_client.ui.widgets.space_tree import SpaceTree

from .test_flow import _room, until


def _create(synapse: SynapseServer, owner: RegisteredUser, body: dict[str, object]) -> str:
    status, answer = synapse.request_json(
        "POST", "/_matrix/client/v3/createRoom", body, owner.access_token
    )
    assert status == 200, answer
    return str(answer["room_id"])


def _set_state(
    synapse: SynapseServer,
    owner: RegisteredUser,
    room: str,
    event_type: str,
    key: str,
    content: dict[str, object],
) -> None:
    from urllib.parse import quote

    path = (
        f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state/{event_type}/{quote(key, safe='')}"
    )
    status, answer = synapse.request_json("PUT", path, content, owner.access_token)
    assert status == 200, answer


async def test_search_join_open_and_a_restricted_room(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    token = f"ui{secrets.token_hex(3)}"
    host = make_user("host", displayname="Host")
    findable = _create(
        synapse,
        host,
        {
            "preset": "public_chat",
            "visibility": "public",
            "name": f"Findable {token}",
            "topic": "Come in",
        },
    )
    space = _create(
        synapse,
        host,
        {
            "preset": "public_chat",
            "visibility": "public",
            "name": f"Club {token}",
            "creation_content": {"type": "m.space"},
        },
    )
    rules = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}
    lounge = _create(
        synapse,
        host,
        {
            "preset": "private_chat",
            "name": f"Lounge {token}",
            "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": rules}],
        },
    )
    _set_state(synapse, host, space, "m.space.child", lounge, {"via": [synapse.server_name]})
    # A room to open at start, so the chat screen is settled.
    user = make_user("visitor")
    _room(synapse, host, "Hello", [user.user_id])

    client = await MatrixClient.login(
        user.user_id, user.password, homeserver=synapse.base_url, base_dir=tmp_path
    )
    app = TuiClientApp(client=client, base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, DirectoryScreen), "the directory")
        screen = app.screen
        assert isinstance(screen, DirectoryScreen)
        await pilot.press("ctrl+f", *token, "enter")
        results = screen.query_one(DirectoryList)
        await until(pilot, lambda: set(results.rooms) == {findable, space}, "the search results")

        results.highlighted = results.order.index(findable)
        await pilot.press("j")
        await until(
            pilot,
            lambda: results.memberships.get(findable) == "join",
            "the join, seen through sync",
        )
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                app.chat_screen is not None
                and app.screen is app.chat_screen
                and app.chat_screen.current_room == findable
            ),
            "the room opened",
        )

        # The space: its members-only room is offered after joining the space.
        await pilot.press("f3")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, DirectoryScreen)
                and app.screen.query_one(DirectoryList).option_count > 0
            ),
            "the directory again",
        )
        directory = app.screen
        assert isinstance(directory, DirectoryScreen)
        await pilot.press("ctrl+f", *token, "enter")
        listed = directory.query_one(DirectoryList)
        await until(
            pilot, lambda: space in listed.rooms and listed.option_count == 2, "the space listed"
        )
        listed.highlighted = listed.order.index(space)
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, SpaceScreen)
                and app.screen.browser is not None
                and app.screen.browser.done
            ),
            "the space view",
        )
        view = app.screen
        assert isinstance(view, SpaceScreen)
        tree = view.query_one(SpaceTree)
        (hidden,) = [key for key, row in tree.rows.items() if row.room_id == lounge]
        assert tree.rows[hidden].info is None  # not described to a non-member
        tree.highlighted = tree.get_option_index(hidden)
        await pilot.press("j")
        await until(
            pilot,
            lambda: isinstance(app.screen, ConfirmDialog),
            "the offer to join the space first",
            timeout=20,
        )
        assert f"Club {token}" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("y")

        def in_both() -> bool:
            rooms = client.rooms
            return all(r in rooms and rooms[r].membership == "join" for r in (space, lounge))

        await until(pilot, in_both, "the space and the room joined")
        # Now a member, the view describes the room it could not before.
        await until(
            pilot,
            lambda: any(
                row.room_id == lounge and row.info is not None for row in tree.rows.values()
            ),
            "the room described",
        )
