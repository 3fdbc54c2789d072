"""Third-party networks the homeserver's bridges offer: ``/thirdparty/protocols``,
``/thirdparty/location`` and ``/thirdparty/user``, as requests and as parsed answers.

Protocol descriptions come from bridges (through the homeserver), so their names are
kept as given and cleaned where shown; a malformed protocol, instance or result is
left out, never raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from .ids import is_room_alias
from .requests import CLIENT_V3, Request
from .sanitize import clean_line

__all__ = [
    "ALL_NETWORKS",
    "MATRIX_NETWORK",
    "FieldType",
    "Network",
    "ProtocolInstance",
    "ThirdPartyLocation",
    "ThirdPartyProtocol",
    "directory_networks",
    "parse_locations",
    "parse_protocols",
    "parse_users",
    "thirdparty_location",
    "thirdparty_protocols",
    "thirdparty_user",
]


@dataclass(frozen=True, slots=True)
class FieldType:
    """How a bridge wants a field typed: a regular expression and a placeholder."""

    regexp: str | None = None
    placeholder: str = ""

    def accepts(self, value: str) -> bool:
        """Whether ``value`` matches the bridge's ``regexp`` (any value when there is none or
        it does not compile)."""
        if not self.regexp:
            return True
        try:
            return re.fullmatch(self.regexp, value) is not None
        except re.error:
            return True


@dataclass(frozen=True, slots=True)
class ProtocolInstance:
    """One network of a protocol (``instance_id`` is what ``/publicRooms`` takes)."""

    protocol: str
    instance_id: str
    network_id: str
    desc: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ThirdPartyProtocol:
    name: str
    user_fields: tuple[str, ...]
    location_fields: tuple[str, ...]
    field_types: dict[str, FieldType]
    instances: tuple[ProtocolInstance, ...]
    icon: str | None = None


@dataclass(frozen=True, slots=True)
class ThirdPartyLocation:
    alias: str
    protocol: str
    fields: tuple[tuple[str, str], ...] = ()


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()


def _fields(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        return ()
    return tuple((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str))


def parse_protocols(data: object) -> list[ThirdPartyProtocol]:
    """The protocols of a ``/thirdparty/protocols`` answer, sorted by name."""
    if not isinstance(data, Mapping):
        return []
    protocols: list[ThirdPartyProtocol] = []
    for name, raw in data.items():
        if not isinstance(name, str) or not name or not isinstance(raw, Mapping):
            continue
        types: dict[str, FieldType] = {}
        raw_types = raw.get("field_types")
        for field, spec in raw_types.items() if isinstance(raw_types, Mapping) else ():
            if isinstance(field, str) and isinstance(spec, Mapping):
                regexp, placeholder = spec.get("regexp"), spec.get("placeholder")
                types[field] = FieldType(
                    regexp if isinstance(regexp, str) else None,
                    placeholder if isinstance(placeholder, str) else "",
                )
        instances: list[ProtocolInstance] = []
        raw_instances = raw.get("instances")
        for inst in raw_instances if isinstance(raw_instances, list) else ():
            if not isinstance(inst, Mapping):
                continue
            instance_id, network_id, desc = (
                inst.get("instance_id"),
                inst.get("network_id"),
                inst.get("desc"),
            )
            if not isinstance(instance_id, str) or not instance_id:
                continue
            network = network_id if isinstance(network_id, str) else instance_id
            instances.append(
                ProtocolInstance(
                    name,
                    instance_id,
                    network,
                    desc if isinstance(desc, str) and desc else network,
                    _fields(inst.get("fields")),
                )
            )
        icon = raw.get("icon")
        protocols.append(
            ThirdPartyProtocol(
                name,
                _strings(raw.get("user_fields")),
                _strings(raw.get("location_fields")),
                types,
                tuple(instances),
                icon if isinstance(icon, str) else None,
            )
        )
    return sorted(protocols, key=lambda p: p.name)


def parse_locations(data: object) -> list[ThirdPartyLocation]:
    """The rooms (aliases) of a ``/thirdparty/location`` answer."""
    found: list[ThirdPartyLocation] = []
    for raw in data if isinstance(data, list) else ():
        if isinstance(raw, Mapping) and is_room_alias(raw.get("alias")):
            protocol = raw.get("protocol")
            found.append(
                ThirdPartyLocation(
                    str(raw["alias"]),
                    protocol if isinstance(protocol, str) else "",
                    _fields(raw.get("fields")),
                )
            )
    return found


def parse_users(data: object) -> list[str]:
    """The Matrix user IDs of a ``/thirdparty/user`` answer."""
    users: list[str] = []
    for raw in data if isinstance(data, list) else ():
        user = raw.get("userid") if isinstance(raw, Mapping) else None
        if isinstance(user, str) and user.startswith("@") and ":" in user and user not in users:
            users.append(user)
    return users


def thirdparty_protocols() -> Request:
    """``GET /thirdparty/protocols``."""
    return Request("GET", f"{CLIENT_V3}/thirdparty/protocols")


def thirdparty_location(protocol: str, fields: Mapping[str, str]) -> Request:
    """``GET /thirdparty/location/{protocol}?field=value...``."""
    return Request(
        "GET",
        f"{CLIENT_V3}/thirdparty/location/{quote(protocol, safe='')}",
        query=tuple(fields.items()),
    )


def thirdparty_user(protocol: str, fields: Mapping[str, str]) -> Request:
    """``GET /thirdparty/user/{protocol}?field=value...``."""
    return Request(
        "GET",
        f"{CLIENT_V3}/thirdparty/user/{quote(protocol, safe='')}",
        query=tuple(fields.items()),
    )


@dataclass(frozen=True, slots=True)
class Network:
    """A choice of the directory's network chooser."""

    key: str  # "matrix", "all" or an instance ID
    label: str
    instance: ProtocolInstance | None = None

    @property
    def include_all(self) -> bool:
        return self.key == ALL_NETWORKS.key

    @property
    def instance_id(self) -> str | None:
        return self.instance.instance_id if self.instance is not None else None


MATRIX_NETWORK = Network("matrix", "Matrix")
ALL_NETWORKS = Network("all", "All networks")


def directory_networks(protocols: list[ThirdPartyProtocol]) -> list[Network]:
    """The chooser's entries: Matrix, all networks, then each bridged network instance."""
    networks = [MATRIX_NETWORK, ALL_NETWORKS]
    for protocol in protocols:
        for inst in protocol.instances:
            label = f"{clean_line(protocol.name, 30)}: {clean_line(inst.desc, 50)}"
            networks.append(Network(inst.instance_id, label, inst))
    return networks
