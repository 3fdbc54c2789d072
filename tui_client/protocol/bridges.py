"""Bridge state (``m.bridge``, MSC2346, and the older ``uk.half-shot.bridge``): which
remote network and channel a room is bridged to, and who is a bridged (puppeted) user.

Everything here comes from other people's events, so it is kept as plain strings
cleaned to one terminal-safe line; a malformed event is ignored, never raised.

Puppets: a bridge's puppeted users live in its application service's user namespace,
which clients cannot see. The rule used here, stated honestly:

* the ``bridgebot`` of a bridge event (else its sender) is a bridged user;
* so is any user on the bridgebot's server whose localpart starts with the bridgebot's
  *prefix*: its localpart up to and including the first ``_`` after the first
  character (``fakeirc_bot`` → ``fakeirc_``, ``_discord_bot`` → ``_discord_``), or, for a
  localpart without one that ends in ``bot``, what comes before ``bot`` followed by ``_``
  (``telegrambot`` → ``telegram_``). With no prefix only the bot itself is marked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .sanitize import clean_line

__all__ = [
    "BRIDGE_EVENT_TYPES",
    "Bridge",
    "bridge_from_record",
    "bridge_label",
    "bridge_short_label",
    "is_bridged_user",
    "parse_bridge",
    "puppet_prefix",
]

BRIDGE_EVENT_TYPES = ("m.bridge", "uk.half-shot.bridge")
_MAX = 80


@dataclass(frozen=True, slots=True)
class Bridge:
    """One bridge of a room; every text is one cleaned line (``None`` when absent)."""

    protocol: str
    network: str | None = None
    channel: str | None = None
    external_url: str | None = None
    bridgebot: str | None = None

    def record(self) -> dict[str, str | None]:
        """A JSON-friendly form (kept in the room list's cached summary)."""
        return {
            "protocol": self.protocol,
            "network": self.network,
            "channel": self.channel,
            "external_url": self.external_url,
            "bridgebot": self.bridgebot,
        }


def _line(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = clean_line(value, _MAX).strip()
    return text or None


def _section_name(section: object) -> str | None:
    """``displayname``, else ``id``, of a ``protocol`` / ``network`` / ``channel`` object."""
    if isinstance(section, Mapping):
        return _line(section.get("displayname")) or _line(section.get("id"))
    return None


def _url(section: object) -> str | None:
    if not isinstance(section, Mapping):
        return None
    url = section.get("external_url")
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        return None
    return _line(url)


def _user_id(value: object) -> str | None:
    if isinstance(value, str) and value.startswith("@") and ":" in value and len(value) <= 255:
        return clean_line(value, 255)
    return None


def parse_bridge(event_type: str, content: Mapping[str, Any], sender: str) -> Bridge | None:
    """The bridge an ``m.bridge`` / ``uk.half-shot.bridge`` state event describes.

    ``None`` for another event type, an emptied (removed) bridge, or one without a
    protocol. The bot is ``bridgebot``, else the event's sender.
    """
    if event_type not in BRIDGE_EVENT_TYPES or not isinstance(content, Mapping):
        return None
    protocol = content.get("protocol")
    name = _section_name(protocol)
    if name is None:
        return None
    channel = content.get("channel")
    return Bridge(
        protocol=name,
        network=_section_name(content.get("network")),
        channel=_section_name(channel),
        external_url=_url(channel) or _url(content.get("network")) or _url(protocol),
        bridgebot=_user_id(content.get("bridgebot")) or _user_id(sender),
    )


def bridge_from_record(record: object) -> Bridge | None:
    """Back from :meth:`Bridge.record` (a cached summary); ``None`` if unusable."""
    if not isinstance(record, Mapping):
        return None
    protocol = _line(record.get("protocol"))
    if protocol is None:
        return None
    url = record.get("external_url")
    return Bridge(
        protocol=protocol,
        network=_line(record.get("network")),
        channel=_line(record.get("channel")),
        external_url=_line(url)
        if isinstance(url, str) and url.lower().startswith(("https://", "http://"))
        else None,
        bridgebot=_user_id(record.get("bridgebot")),
    )


def bridge_label(bridge: Bridge) -> str:
    """``⇄ fakeirc · Network · #chan`` (the parts the bridge gave)."""
    parts = [bridge.protocol]
    if bridge.network and bridge.network != bridge.protocol:
        parts.append(bridge.network)
    if bridge.channel:
        parts.append(bridge.channel)
    return "⇄ " + " · ".join(parts)


def bridge_short_label(bridge: Bridge) -> str:
    """``⇄ fakeirc · #chan``: protocol and channel (else network), for narrow places."""
    where = bridge.channel or bridge.network
    return f"⇄ {bridge.protocol} · {where}" if where else f"⇄ {bridge.protocol}"


def puppet_prefix(bridgebot: str) -> str | None:
    """The user ID prefix of a bridge's puppets (``@fakeirc_``), per the module's rule."""
    localpart = bridgebot[1:].split(":", 1)[0]
    cut = localpart.find("_", 1)
    if cut > 0:
        return "@" + localpart[: cut + 1]
    if localpart.endswith("bot") and len(localpart) > 3:
        return "@" + localpart[:-3] + "_"
    return None


def is_bridged_user(user_id: str, bridges: Iterable[Bridge]) -> bool:
    """Whether ``user_id`` is a bridge's bot or one of its puppets (see the module's rule)."""
    for bridge in bridges:
        bot = bridge.bridgebot
        if bot is None:
            continue
        if user_id == bot:
            return True
        server = bot.split(":", 1)[1]
        if ":" not in user_id or user_id.split(":", 1)[1] != server:
            continue
        prefix = puppet_prefix(bot)
        if prefix is not None and user_id.split(":", 1)[0].startswith(prefix):
            return True
    return False
