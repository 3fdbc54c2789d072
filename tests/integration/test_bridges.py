"""Bridged networks against a real Synapse with the fake ``fakeirc`` application service:
the networks offered, the directory per network, joining through a location lookup,
finding a bridged user, and the bridge state and puppets of a joined room."""

from __future__ import annotations

import json
from pathlib import Path

from tui_client.engine.directory import bridged_protocols, lookup_location, lookup_users
from tui_client.protocol.bridges import bridge_label, is_bridged_user
from tui_client.protocol.thirdparty import ALL_NETWORKS, MATRIX_NETWORK, directory_networks

from ..engine.support import ClientPool, Wire, login, wait_until
from .fake_bridge import CHANNELS, NETWORK, NETWORK_DESC, PROTOCOL, BridgedWorld, bridged_world

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
