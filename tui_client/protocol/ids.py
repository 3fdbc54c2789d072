"""Matrix identifiers as the spec's grammar defines them (appendices, "Identifier Grammar").

Room and event IDs are opaque: room versions 12 and later have room IDs without a
server part (``!`` followed by a hash), so nothing here assumes a ``:domain``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "InvalidIdentifier",
    "MatrixLink",
    "is_event_id",
    "is_room_alias",
    "is_room_id",
    "is_user_id",
    "parse_link",
    "parse_server_name",
    "server_name_of",
    "user_localpart",
]

_IPV4 = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
_IPV6 = r"\[[0-9A-Fa-f:.]{2,45}\]"
_DNS = r"[0-9A-Za-z.\-]{1,255}"
_SERVER_NAME_RE = re.compile(rf"^(?:{_IPV4}|{_IPV6}|{_DNS})(?::(?P<port>[0-9]{{1,5}}))?\Z")
# Historical user IDs: any non-surrogate code point but ':' and NUL in the localpart.
_USER_ID_RE = re.compile(r"^@([^:\x00]*):(.+)$", re.DOTALL)
_ALIAS_RE = re.compile(r"^#([^:\x00]*):(.+)$", re.DOTALL)
_MAX_ID_BYTES = 255


class InvalidIdentifier(ValueError):
    """Raised when a string is not a valid identifier of the expected kind."""


def _fits(value: str) -> bool:
    # At most 255 bytes of UTF-8; lone surrogates (possible in decoded JSON) never fit.
    try:
        return len(value.encode()) <= _MAX_ID_BYTES
    except UnicodeEncodeError:
        return False


def parse_server_name(value: str) -> str:
    """Return ``value`` if it is a valid server name (``hostname[:port]``), else raise."""
    match = _SERVER_NAME_RE.match(value)
    if not match or (match.group("port") and int(match.group("port")) > 65535):
        raise InvalidIdentifier(f"not a valid server name: {value!r}")
    return value


def is_user_id(value: object) -> bool:
    """True if ``value`` is a user ID (historical localparts allowed, as clients must)."""
    if not isinstance(value, str) or not _fits(value):
        return False
    match = _USER_ID_RE.match(value)
    return bool(match and _is_server_name(match.group(2)))


def _is_server_name(value: str) -> bool:
    try:
        parse_server_name(value)
    except InvalidIdentifier:
        return False
    return True


def user_localpart(user_id: str) -> str:
    """The localpart of a user ID (``@alice:example.org`` gives ``alice``)."""
    match = _USER_ID_RE.match(user_id)
    if not match:
        raise InvalidIdentifier(f"not a user ID: {user_id!r}")
    return match.group(1)


def server_name_of(user_id_or_alias: str) -> str:
    """The server name of a user ID or room alias, validated."""
    match = _USER_ID_RE.match(user_id_or_alias) or _ALIAS_RE.match(user_id_or_alias)
    if not match:
        raise InvalidIdentifier(f"not a user ID or room alias: {user_id_or_alias!r}")
    return parse_server_name(match.group(2))


def is_room_id(value: object) -> bool:
    """True if ``value`` is a room ID: ``!`` and an opaque string (a domain is optional)."""
    return (
        isinstance(value, str)
        and len(value) > 1
        and value[0] == "!"
        and "\x00" not in value
        and _fits(value)
    )


def is_room_alias(value: object) -> bool:
    """True if ``value`` is a room alias ``#localpart:server``."""
    if not isinstance(value, str) or not _fits(value):
        return False
    match = _ALIAS_RE.match(value)
    return bool(match and _is_server_name(match.group(2)))


def is_event_id(value: object) -> bool:
    """True if ``value`` is an event ID: ``$`` and an opaque string."""
    return (
        isinstance(value, str)
        and len(value) > 1
        and value[0] == "$"
        and "\x00" not in value
        and _fits(value)
    )


@dataclass(frozen=True, slots=True)
class MatrixLink:
    """What a ``matrix.to`` link or ``matrix:`` URI points at.

    ``kind`` is ``"room_id"``, ``"room_alias"`` or ``"user"``; ``event_id`` is set for
    permalinks; ``via`` lists the servers to route a room ID through; ``action`` is
    ``"join"``, ``"chat"`` or ``None``.
    """

    kind: str
    identifier: str
    event_id: str | None = None
    via: tuple[str, ...] = field(default_factory=tuple)
    action: str | None = None

    def to_matrix_to(self) -> str:
        """Render as a ``https://matrix.to/#/...`` link, components percent-encoded."""
        url = "https://matrix.to/#/" + quote(self.identifier, safe="")
        if self.event_id:
            url += "/" + quote(self.event_id, safe="")
        if self.via:
            url += "?" + "&".join("via=" + quote(v, safe="") for v in self.via)
        return url


_URI_TYPES = {"r": "#", "room": "#", "roomid": "!", "u": "@", "user": "@"}
_KIND_BY_SIGIL = {"#": "room_alias", "!": "room_id", "@": "user"}


def _validate_target(identifier: str) -> str:
    sigil = identifier[:1]
    kind = _KIND_BY_SIGIL.get(sigil)
    valid = {
        "room_alias": is_room_alias,
        "room_id": is_room_id,
        "user": is_user_id,
    }
    if kind is None or not valid[kind](identifier):
        raise InvalidIdentifier(f"not a room, alias or user: {identifier!r}")
    return kind


def _action(values: list[str], kind: str) -> str | None:
    # "join" only means something for a room, "chat" only for a user; others are ignored.
    action = values[0] if values else None
    if action == "join" and kind in ("room_id", "room_alias"):
        return action
    if action == "chat" and kind == "user":
        return action
    return None


def _via_list(values: list[str]) -> tuple[str, ...]:
    servers = []
    for value in values:
        try:
            servers.append(parse_server_name(value))
        except InvalidIdentifier:
            continue
    return tuple(servers)


def parse_link(text: str) -> MatrixLink:
    """Parse a bare identifier, a ``matrix.to`` link or a ``matrix:`` URI.

    Raises :class:`InvalidIdentifier` with a message suitable for the user.
    """
    text = text.strip()
    if not text:
        raise InvalidIdentifier("empty room or user reference")
    if text[0] in "#!@":
        kind = _validate_target(text)
        return MatrixLink(kind=kind, identifier=text)
    lowered = text.lower()
    if lowered.startswith(("https://matrix.to/#/", "http://matrix.to/#/")):
        return _parse_matrix_to(text.split("#/", 1)[1])
    if lowered.startswith("matrix:"):
        return _parse_matrix_uri(text)
    raise InvalidIdentifier(
        f"{text!r} is not a room ID, alias, user ID, matrix.to link or matrix: URI"
    )


def _parse_matrix_to(fragment: str) -> MatrixLink:
    path, _, query = fragment.partition("?")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts:
        raise InvalidIdentifier("matrix.to link without an identifier")
    identifier = parts[0]
    kind = _validate_target(identifier)
    event_id = None
    if len(parts) > 1:
        # Event IDs of some room versions contain '/', which decoding may expose.
        candidate = "/".join(parts[1:])
        if is_event_id(candidate):
            event_id = candidate
    params = parse_qs(query)
    return MatrixLink(
        kind=kind,
        identifier=identifier,
        event_id=event_id,
        via=_via_list(params.get("via", [])),
        action=_action(params.get("action", []), kind),
    )


def _parse_matrix_uri(uri: str) -> MatrixLink:
    split = urlsplit(uri)
    path = split.path
    if split.netloc:
        path = path.lstrip("/")
    segments = [unquote(s) for s in path.split("/")]
    if len(segments) < 2 or segments[0] not in _URI_TYPES:
        raise InvalidIdentifier(f"unsupported matrix: URI: {uri!r}")
    identifier = _URI_TYPES[segments[0]] + segments[1]
    kind = _validate_target(identifier)
    event_id = None
    if len(segments) >= 4 and segments[2] in ("e", "event") and is_event_id("$" + segments[3]):
        event_id = "$" + segments[3]
    params = parse_qs(split.query)
    return MatrixLink(
        kind=kind,
        identifier=identifier,
        event_id=event_id,
        via=_via_list(params.get("via", [])),
        action=_action(params.get("action", []), kind),
    )
