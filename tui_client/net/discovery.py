"""Finding a user's homeserver: ``.well-known`` discovery as the spec describes it.

From a user ID's server name, ``GET https://<host>/.well-known/matrix/client``:
404 means use the server name itself; a bad answer is ``FAIL_PROMPT`` (ask the user
for the homeserver URL); a ``base_url`` that does not serve ``/versions`` is
``FAIL_ERROR``. Every failure is a :class:`DiscoveryError` with a message meant
for the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.ids import InvalidIdentifier, server_name_of
from .http import HomeserverConnection

if TYPE_CHECKING:
    import httpx

__all__ = ["DiscoveryError", "Homeserver", "discover_homeserver", "validate_homeserver"]


class DiscoveryError(Exception):
    """The homeserver could not be found or is not usable.

    ``prompt`` is True for the spec's ``FAIL_PROMPT``: the user should be asked for
    the homeserver URL; False for ``FAIL_ERROR`` or an unreachable server.
    """

    def __init__(self, message: str, *, prompt: bool = False) -> None:
        super().__init__(message)
        self.prompt = prompt


@dataclass(frozen=True, slots=True)
class Homeserver:
    """A validated homeserver: its base URL, how we found it, and the spec versions it serves."""

    base_url: str
    source: str
    versions: tuple[str, ...]


def _normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DiscoveryError(f"{url!r} is not a valid homeserver URL")
    return url.strip().rstrip("/")


async def validate_homeserver(
    base_url: str, *, transport: httpx.AsyncBaseTransport | None = None, source: str = "explicit"
) -> Homeserver:
    """Check that ``base_url`` answers ``/_matrix/client/versions`` with a version list."""
    base_url = _normalise_url(base_url)
    async with HomeserverConnection(base_url, transport=transport, timeout=15.0) as connection:
        try:
            data = await connection.send(api.versions(), wait_on_rate_limit=False)
        except NetworkError as error:
            if error.kind == "decode":
                raise DiscoveryError(
                    f"{base_url} is not a Matrix homeserver (its answer is not JSON)"
                ) from error
            raise DiscoveryError(f"cannot reach the homeserver at {base_url}: {error}") from error
        except MatrixError as error:
            raise DiscoveryError(
                f"{base_url} is not a Matrix homeserver ({error.status} {error.errcode})"
            ) from error
    versions = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise DiscoveryError(f"{base_url} is not a Matrix homeserver (no version list)")
    return Homeserver(base_url, source, tuple(versions))


async def discover_homeserver(
    user_id: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> Homeserver:
    """Find and validate the homeserver of ``user_id`` (``@name:server``)."""
    try:
        server_name = server_name_of(user_id)
    except InvalidIdentifier as error:
        raise DiscoveryError(
            f"{user_id!r} is not a full user ID: write it as @name:server.org"
        ) from error
    host = server_name
    well_known_url = f"https://{host}/.well-known/matrix/client"
    async with HomeserverConnection(
        f"https://{host}", transport=transport, timeout=15.0
    ) as connection:
        try:
            status, body = await connection.get_url(well_known_url)
        except NetworkError as error:
            if error.kind == "dns":
                raise DiscoveryError(f"unknown server {server_name}: no such host") from error
            raise DiscoveryError(f"cannot reach {server_name}: {error}") from error
    if status == 404:
        return await validate_homeserver(
            f"https://{host}", transport=transport, source="server name"
        )
    if status != 200 or not body.strip():
        raise DiscoveryError(
            f"{server_name} gave no usable discovery answer (HTTP {status}); enter the homeserver URL",
            prompt=True,
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise DiscoveryError(
            f"{server_name}'s discovery file is not JSON; enter the homeserver URL", prompt=True
        ) from error
    homeserver = data.get("m.homeserver") if isinstance(data, dict) else None
    base_url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
    if not isinstance(base_url, str) or not base_url:
        raise DiscoveryError(
            f"{server_name}'s discovery file names no homeserver; enter the homeserver URL",
            prompt=True,
        )
    try:
        return await validate_homeserver(base_url, transport=transport, source="well-known")
    except DiscoveryError as error:
        raise DiscoveryError(
            f"{server_name} points to {base_url}, which failed: {error}"
        ) from error
