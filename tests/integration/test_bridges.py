"""Bridged networks against a real Synapse with the fake ``fakeirc`` application service:
the networks offered, the directory per network, joining through a location lookup,
finding a bridged user, and the bridge state and puppets of a joined room."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from textual.widgets import Input, OptionList, Static

from tui_client.engine.client import MatrixClient
from tui_client.engine.directory import bridged_protocols, lookup_location, lookup_users
from tui_client.protocol.bridges import bridge_label, is_bridged_user
from tui_client.protocol.thirdparty import ALL_NETWORKS, MATRIX_NETWORK, directory_networks
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.bridge_join import BridgeJoinDialog
from tui_client.ui.screens.dialogs import ChoiceDialog
from tui_client.ui.screens.directory import DirectoryScreen
from tui_client.ui.widgets.directory_list import DirectoryList
from tui_client.ui.widgets.member_list import MemberList
from tui_client.ui.widgets.room_header import RoomHeader
from tui_client.ui.widgets.room_list import RoomList, room_segments
from tui_client.ui.widgets.timeline import TimelineView

from ..engine.support import ClientPool, Wire, login, wait_until
from ..ui.test_flow import _room, until
from .fake_bridge import (
    CHANNELS,
    NETWORK,
    NETWORK_DESC,
    PROTOCOL,
    PUPPET_SAYS,
    BridgedWorld,
    bridged_world,
)

__all__ = ["bridged_world"]


async def test_networks_directory_location_join_and_bridge_state(
    bridged_world: BridgedWorld, wire: Wire, pool: ClientPool, tmp_path: Path
) -> None:
    synapse, bridge = bridged_world.synapse, bridged_world.bridge
    user = synapse.register_user("explorer", "password-explorer")
    client = pool.add(await login(synapse, user, tmp_path, wire=wire))

    protocols = await bridged_protocols(client)
    assert [p.name for p in protocols] == [PROTOCOL]
    (protocol,) = protocols
    assert protocol.location_fields == ("network", "channel")
    assert protocol.user_fields == ("network", "nickname")
    assert protocol.field_types["channel"].placeholder == "#channel"
    assert protocol.field_types["channel"].accepts("#chan") and not protocol.field_types[
        "channel"
    ].accepts("chan")
    networks = directory_networks(protocols)
    assert [n.label for n in networks] == ["Matrix", "All networks", f"{PROTOCOL}: {NETWORK_DESC}"]
    assert networks[2].instance_id == bridge.instance_id

    bridged_ids = {room.room_id for room in bridge.rooms.values()}
    matrix = client.browse_directory(network=MATRIX_NETWORK)
    await matrix.load_until(100)
    assert not bridged_ids & {r.room_id for r in matrix.rooms}  # not in the Matrix list
    fakenet = client.browse_directory(network=networks[2])
    await fakenet.load_until(100)
    assert {r.room_id for r in fakenet.rooms} == bridged_ids
    everything = client.browse_directory(network=ALL_NETWORKS, search="other")
    await everything.load_until(100)
    assert {r.room_id for r in everything.rooms} == {bridge.rooms["#other"].room_id}
    sent = [json.loads(r.body) for r in wire.requests if r.path.endswith("/publicRooms")]
    assert sent[1]["third_party_instance_id"] == bridge.instance_id
    assert sent[-1]["include_all_networks"] is True and "third_party_instance_id" not in sent[-1]
    assert "include_all_networks" not in sent[0] and "third_party_instance_id" not in sent[0]

    # Join #chan the way the bridge asks: by its network and channel, to an alias.
    (location,) = await lookup_location(client, PROTOCOL, {"network": NETWORK, "channel": "#chan"})
    assert location.alias == bridge.rooms["#chan"].alias
    assert (
        await lookup_location(client, PROTOCOL, {"network": NETWORK, "channel": "#nowhere"}) == []
    )
    room_id = await client.join(location.alias)
    assert room_id == bridge.rooms["#chan"].room_id
    await wait_until(
        lambda: client.rooms.get(room_id) is not None and bool(client.rooms[room_id].bridge_list),
        what="the bridge state",
    )
    summary = client.rooms[room_id]
    assert [bridge_label(b) for b in summary.bridge_list] == [
        f"⇄ {PROTOCOL} · {NETWORK_DESC} · #chan"
    ]
    assert summary.bridge_list[0].external_url == "https://irc.example/chan"
    assert is_bridged_user(bridge.puppet, summary.bridge_list)
    assert not is_bridged_user(user.user_id, summary.bridge_list)

    # A bridged user found by nickname.
    assert await lookup_users(client, PROTOCOL, {"network": NETWORK, "nickname": "bob"}) == [
        f"@{PROTOCOL}_bob:{synapse.server_name}"
    ]
    assert len(CHANNELS) == len(bridge.rooms)


async def test_directory_network_chooser_location_join_and_bridged_room_on_screen(
    bridged_world: BridgedWorld, tmp_path: Path
) -> None:
    """Pilot: F3, n chooses the bridged network, its rooms are listed; b asks for the
    channel (an unknown one is refused in the dialog), #chan is joined and opened; the
    header and the room list show the bridge, the member list marks the puppet."""
    synapse, bridge = bridged_world.synapse, bridged_world.bridge
    user = synapse.register_user("pilot", "password-pilot")
    host = synapse.register_user("pilothost", "password-pilothost")
    _room(synapse, host, "Plain room", [user.user_id])
    chan = bridge.rooms["#chan"].room_id

    client = await MatrixClient.login(
        user.user_id, user.password, homeserver=synapse.base_url, base_dir=tmp_path
    )
    app = TuiClientApp(client=client, base_dir=tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, DirectoryScreen), "the directory")
        screen = app.screen
        assert isinstance(screen, DirectoryScreen)
        await until(
            pilot,
            lambda: (
                screen.protocols is not None and screen.browser is not None and screen.browser.done
            ),
            "the networks",
        )
        results = screen.query_one(DirectoryList)
        assert not set(results.rooms) & {
            r.room_id for r in bridge.rooms.values()
        }  # Matrix only by default
        await pilot.press("down", "n")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the network chooser")
        choices = app.screen.query_one(OptionList)
        labels = [str(choices.get_option_at_index(i).prompt) for i in range(choices.option_count)]
        assert labels == ["• Matrix", "  All networks", f"  {PROTOCOL}: {NETWORK_DESC}"]
        choices.highlighted = 2
        await pilot.press("enter")
        await until(
            pilot,
            lambda: set(results.rooms) == {r.room_id for r in bridge.rooms.values()},
            "the bridged rooms",
        )
        title = screen.query_one("#directory-title", Static).render()
        assert f"⇄ {PROTOCOL}: {NETWORK_DESC}" in str(title)

        # Join a channel by its fields: the network comes from the chosen instance.
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BridgeJoinDialog), "the channel dialog")
        dialog = app.screen
        assert isinstance(dialog, BridgeJoinDialog)
        assert dialog.fields() == {"network": NETWORK, "channel": ""}
        await pilot.press(*"#nowhere", "enter")
        status = dialog.query_one("#bridge-join-status", Static)
        await until(pilot, lambda: "knows no channel" in str(status.render()), "the refusal")
        assert app.screen is dialog
        dialog.query_one("#bridge-field-channel", Input).value = "#chan"
        await pilot.press("enter")
        chat = app.chat_screen
        assert chat is not None
        await until(
            pilot,
            lambda: app.screen is chat and chat.current_room == chan,
            "the bridged room opened",
            timeout=30,
        )

        header = chat.query_one(RoomHeader)
        expected = f"⇄ {PROTOCOL} · {NETWORK_DESC} · #chan"
        await until(pilot, lambda: expected in header.render().plain, "the bridge in the header")
        assert "<https://irc.example/chan>" in header.render().plain
        rooms = chat.query_one(RoomList)

        def listed() -> str:
            return "\n".join(rooms.render_line(y).text for y in range(rooms.size.height))

        # The list is narrow: the row keeps half for the name and cuts the bridge.
        await until(
            pilot,
            lambda: f"⇄ {PROTOCOL} ·" in listed(),
            "the bridge in the room list",
            on_timeout=listed,
        )
        wide = "".join(segment.text for segment in room_segments(client.rooms[chan], 60))
        assert wide == f"#chan on {NETWORK_DESC} ⇄ {PROTOCOL} · #chan"
        assert listed().count("⇄") == 1  # the plain room is not marked

        # The puppet's message: its sender marked as bridged in the name column.
        timeline = chat.query_one(TimelineView)

        def said() -> list[str]:
            lines = (timeline.render_line(y).text for y in range(timeline.size.height))
            return [line for line in lines if PUPPET_SAYS in line]

        await until(
            pilot, lambda: bool(said()), "the puppet's message", on_timeout=lambda: str(said())
        )
        assert "⇄ fakeirc_" in said()[0], said()

        await pilot.press("f2")
        members = chat.query_one(MemberList)

        def member_line(user_id: str) -> str:
            index = members.get_option_index(user_id)
            return str(members.get_option_at_index(index).prompt)

        await until(
            pilot,
            lambda: bridge.puppet in {o.id for o in members.options},
            "the puppet in the member list",
        )
        # The mark follows the name (presence, once known, may follow the mark).
        assert "fakeirc_alice ⇄" in member_line(bridge.puppet), member_line(bridge.puppet)
        assert "⇄" not in member_line(user.user_id)


async def test_direct_chat_with_a_bridged_user_from_the_palette(
    bridged_world: BridgedWorld, tmp_path: Path
) -> None:
    """Pilot: the palette's "bridged user" command asks the bridge's user fields; an
    unknown nickname is refused in the dialog; alice's puppet is found and invited to a
    new direct chat (read back from Synapse)."""
    synapse, bridge = bridged_world.synapse, bridged_world.bridge
    user = synapse.register_user("dmer", "password-dmer")
    host = synapse.register_user("dmhost", "password-dmhost")
    _room(synapse, host, "Plain room", [user.user_id])
    client = await MatrixClient.login(
        user.user_id, user.password, homeserver=synapse.base_url, base_dir=tmp_path
    )
    app = TuiClientApp(client=client, base_dir=tmp_path)
    async with app.run_test(size=(140, 36)) as pilot:
        await until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        chat = app.chat_screen
        assert chat is not None
        await pilot.press("ctrl+p")
        await pilot.press(*"bridged user")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BridgeJoinDialog), "the user dialog")
        dialog = app.screen
        assert isinstance(dialog, BridgeJoinDialog)
        assert dialog.fields() == {"network": NETWORK, "nickname": ""}
        await pilot.press(*"nobody-here", "enter")
        status = dialog.query_one("#bridge-join-status", Static)
        await until(pilot, lambda: "knows no user" in str(status.render()), "the refusal")
        dialog.query_one("#bridge-field-nickname", Input).value = "alice"
        await pilot.press("enter")
        await until(
            pilot,
            lambda: chat.current_room is not None and client.rooms[chat.current_room].is_dm,
            "the direct chat opened",
        )
        room = chat.current_room
        assert room is not None
        path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state/m.room.member/{quote(bridge.puppet, safe='')}"
        status_code, member = synapse.request_json("GET", path, None, user.access_token)
        assert (
            status_code == 200 and member["membership"] == "invite" and member["is_direct"] is True
        )
