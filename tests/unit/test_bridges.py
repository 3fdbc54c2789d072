"""The bridge-state parser (m.bridge / uk.half-shot.bridge) and the puppet rule."""

from __future__ import annotations

import json

from tui_client.protocol.bridges import (
    Bridge,
    bridge_label,
    is_bridged_user,
    parse_bridge,
    puppet_prefix,
)
from tui_client.protocol.room_state import RoomSummary

# MSC2346's example.
SPEC_LIKE = {
    "bridgebot": "@appservicebot:matrix.org",
    "creator": "@alice:matrix.org",
    "protocol": {
        "id": "irc",
        "displayname": "IRC",
        "external_url": "https://en.wikipedia.org/wiki/IRC",
    },
    "network": {
        "id": "freenode",
        "displayname": "Freenode",
        "external_url": "https://freenode.net",
    },
    "channel": {
        "id": "#python",
        "displayname": "#python",
        "external_url": "https://webchat.freenode.net?channels=python",
    },
}


def test_parses_the_msc_example() -> None:
    bridge = parse_bridge("m.bridge", SPEC_LIKE, "@someone:matrix.org")
    assert bridge == Bridge(
        protocol="IRC",
        network="Freenode",
        channel="#python",
        external_url="https://webchat.freenode.net?channels=python",
        bridgebot="@appservicebot:matrix.org",
    )
    assert bridge_label(bridge) == "⇄ IRC · Freenode · #python"


def test_falls_back_to_ids_and_sender() -> None:
    content = {"protocol": {"id": "fakeirc"}, "channel": {"id": "#chan"}}
    bridge = parse_bridge("uk.half-shot.bridge", content, "@fakeirc_bot:localhost")
    assert bridge is not None
    assert (bridge.protocol, bridge.network, bridge.channel) == ("fakeirc", None, "#chan")
    assert bridge.bridgebot == "@fakeirc_bot:localhost"
    assert bridge_label(bridge) == "⇄ fakeirc · #chan"


def test_hostile_names_become_one_clean_line() -> None:
    content = {
        "protocol": {"id": "irc", "displayname": "I\x1b[31mRC\x07"},
        "network": {"displayname": "Net\nwork\u202e[bold]x[/]"},
        "channel": {"displayname": "#" + "a" * 500, "external_url": "javascript:alert(1)"},
        "bridgebot": "not a user id",
    }
    bridge = parse_bridge("m.bridge", content, "@bot:example.org")
    assert bridge is not None
    for text in (bridge.protocol, bridge.network, bridge.channel, bridge_label(bridge)):
        assert text is not None
        assert (
            "\x1b" not in text and "\x07" not in text and "\n" not in text and "\u202e" not in text
        )
    assert bridge.channel is not None and len(bridge.channel) <= 80 and bridge.channel.endswith("…")
    # Markup-looking text stays text (it is rendered as a rich Text, never as markup).
    assert "[bold]" in (bridge.network or "")
    assert bridge.external_url is None  # not an http(s) URL
    assert bridge.bridgebot == "@bot:example.org"  # the invalid bridgebot was ignored


def test_malformed_or_removed_bridges_are_none() -> None:
    assert parse_bridge("m.bridge", {}, "@a:b") is None  # emptied: the bridge was removed
    assert parse_bridge("m.bridge", {"protocol": "irc"}, "@a:b") is None
    assert parse_bridge("m.bridge", {"protocol": {"id": 5, "displayname": ["x"]}}, "@a:b") is None
    assert parse_bridge("m.room.name", SPEC_LIKE, "@a:b") is None
    odd = {"protocol": {"id": "x"}, "network": "freenode", "channel": 7}
    assert parse_bridge("m.bridge", odd, "@a:b") == Bridge("x", bridgebot="@a:b")


def test_summary_lists_several_bridges_once_each_and_survives_json() -> None:
    summary = RoomSummary("!r:x")
    assert summary.apply_state(
        "m.bridge", "irc/freenode/#python", SPEC_LIKE, "@appservicebot:matrix.org"
    )
    # The same bridge in the old event type is not listed twice.
    assert summary.apply_state(
        "uk.half-shot.bridge", "irc/freenode/#python", SPEC_LIKE, "@appservicebot:matrix.org"
    )
    slack = {"protocol": {"id": "slack"}, "channel": {"id": "C1", "displayname": "general"}}
    assert summary.apply_state("m.bridge", "slack/C1", slack, "@slackbot:x")
    assert not summary.apply_state("m.bridge", "slack/C1", slack, "@slackbot:x")  # unchanged
    labels = [bridge_label(b) for b in summary.bridge_list]
    assert labels == ["⇄ IRC · Freenode · #python", "⇄ slack · general"]
    # The room list's cache keeps the summary as JSON.
    restored = RoomSummary(
        **json.loads(json.dumps({"room_id": "!r:x", "bridges": summary.bridges}))
    )
    assert restored.bridge_list == summary.bridge_list
    copy = summary.copy()
    assert summary.apply_state("m.bridge", "slack/C1", {}, "@slackbot:x")  # removed
    assert [b.protocol for b in summary.bridge_list] == ["IRC"]
    assert [b.protocol for b in copy.bridge_list] == ["IRC", "slack"]


def test_puppet_rule() -> None:
    assert puppet_prefix("@fakeirc_bot:localhost") == "@fakeirc_"
    assert puppet_prefix("@_discord_bot:x") == "@_discord_"
    assert puppet_prefix("@telegrambot:x") == "@telegram_"
    assert puppet_prefix("@appservice:x") is None
    bridges = [Bridge("fakeirc", bridgebot="@fakeirc_bot:localhost")]
    assert is_bridged_user("@fakeirc_bot:localhost", bridges)
    assert is_bridged_user("@fakeirc_alice:localhost", bridges)
    assert not is_bridged_user("@fakeirc_alice:elsewhere", bridges)  # another server
    assert not is_bridged_user("@alice:localhost", bridges)
    assert not is_bridged_user("@fakeircalice:localhost", bridges)
    only_bot = [Bridge("irc", bridgebot="@appservice:x")]
    assert is_bridged_user("@appservice:x", only_bot) and not is_bridged_user(
        "@appservice_u:x", only_bot
    )
