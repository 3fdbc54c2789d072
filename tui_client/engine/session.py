"""Sessions on disk: logging in with a password, the saved session of a profile, wiping it.

A profile's folder holds ``session.json`` (who, which device, which server: not secret),
the cache, and (through :class:`~.secrets.SecretStore`) the access token. The client
(:meth:`~.client.MatrixClient.login`, :meth:`~.client.MatrixClient.restore`) is built
from what these functions return.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..net.discovery import DiscoveryError, Homeserver, discover_homeserver, validate_homeserver
from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.ids import is_user_id
from ..protocol.oauth import TokenResponse
from ..store.encrypted_db import shred
from .oauth import OAUTH_FILE, OAuthLogin, OAuthTokens
from .paths import profile_dir
from .secrets import SecretStore

__all__ = [
    "CACHE_FILE",
    "CACHE_FILE_ENDINGS",
    "SESSION_FILE",
    "LoginError",
    "SessionInfo",
    "load_session",
    "oauth_login",
    "password_login",
    "saved_login",
    "wipe_profile",
    "write_private_json",
]

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"
CACHE_FILE = "cache.sqlite3"
# The cache, its WAL, and what an interrupted encryption of a plain cache leaves.
CACHE_FILE_ENDINGS = (
    *("", "-wal", "-shm", "-journal", ".encrypting", ".encrypting-journal", ".plain", ".plain-wal"),
    *("-wal.shred", "-shm.shred"),
)

#: What a client is made from: who, the access token, the profile folder, its secrets.
Login = tuple["SessionInfo", str, Path, SecretStore]


class LoginError(Exception):
    """Logging in failed; the message is meant for the user."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The non-secret part of a saved session."""

    user_id: str
    device_id: str
    homeserver: str

    def to_json(self) -> dict[str, str]:
        """As stored in ``session.json``."""
        return {"user_id": self.user_id, "device_id": self.device_id, "homeserver": self.homeserver}


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


async def password_login(
    user_id: str,
    password: str,
    *,
    homeserver: str | None = None,
    profile: str = "default",
    base_dir: Path | None = None,
    transport: Any = None,
    device_name: str | None = None,
) -> Login:
    """Log in with a password; the homeserver is discovered from the user ID unless given.

    The session is saved in the profile's folder (another account's data there is wiped first).
    """
    user_id = user_id.strip()
    if not is_user_id(user_id):
        raise LoginError(f"{user_id!r} is not a full user ID: write it as @name:server.org")
    try:
        server: Homeserver = (
            await validate_homeserver(homeserver, transport=transport)
            if homeserver
            else await discover_homeserver(user_id, transport=transport)
        )
    except DiscoveryError as error:
        raise LoginError(str(error)) from error
    folder = profile_dir(profile, base_dir)
    session = load_session(folder)
    device_id = session.device_id if session and session.user_id == user_id else None
    name = device_name or f"tui_client on {platform.node() or 'terminal'}"
    async with HomeserverConnection(server.base_url, transport=transport) as connection:
        try:
            # A refused login is said at once, with the wait, rather than waited out.
            data = await connection.send(
                api.login_password(user_id, password, device_id=device_id, device_name=name),
                wait_on_rate_limit=False,
            )
        except MatrixError as error:
            if error.errcode == "M_FORBIDDEN":
                raise LoginError("Wrong user ID or password.") from error
            if error.errcode == "M_USER_DEACTIVATED":
                raise LoginError("This account has been deactivated.") from error
            if error.is_rate_limit:
                raise LoginError("Too many login attempts; wait a moment and try again.") from error
            raise LoginError(f"The server refused the login: {error}") from error
        except NetworkError as error:
            raise LoginError(f"Cannot reach {server.base_url}: {error}") from error
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("user_id", "access_token", "device_id")
    ):
        raise LoginError("The server's login answer is incomplete.")
    base_url = server.base_url
    well_known = data.get("well_known")
    if isinstance(well_known, dict):
        hs = well_known.get("m.homeserver")
        if isinstance(hs, dict) and isinstance(hs.get("base_url"), str):
            try:
                base_url = (await validate_homeserver(hs["base_url"], transport=transport)).base_url
            except DiscoveryError:
                log.warning("ignoring the login answer's unusable well_known base_url")
    info = SessionInfo(data["user_id"], data["device_id"], base_url)
    if session is not None and (
        session.user_id != info.user_id or session.device_id != info.device_id
    ):
        wipe_profile(folder)
    secrets = SecretStore(folder, info.user_id)
    secrets.set("access_token", data["access_token"])
    write_private_json(folder / SESSION_FILE, info.to_json())
    return info, data["access_token"], folder, secrets


async def oauth_login(
    flow: OAuthLogin,
    tokens: TokenResponse,
    *,
    profile: str = "default",
    base_dir: Path | None = None,
) -> Login:
    """Turn an OAuth login's tokens into a saved session: ask who we are, save the tokens."""
    if flow.client_id is None:
        raise LoginError("The OAuth login did not register a client.")
    metadata = flow.metadata
    async with HomeserverConnection(
        flow.base_url, tokens.access_token, transport=flow.transport
    ) as connection:
        try:
            data = await connection.send(api.whoami(), wait_on_rate_limit=False)
        except MatrixError as error:
            raise LoginError(f"The server did not accept the new login: {error}") from error
        except NetworkError as error:
            raise LoginError(f"Cannot reach {flow.base_url}: {error}") from error
    user_id = data.get("user_id") if isinstance(data, dict) else None
    if not isinstance(user_id, str) or not is_user_id(user_id):
        raise LoginError("The server's answer to who we are is incomplete.")
    device_id = data.get("device_id") if isinstance(data.get("device_id"), str) else flow.device_id
    folder = profile_dir(profile, base_dir)
    session = load_session(folder)
    info = SessionInfo(user_id, device_id, flow.base_url)
    if session is not None and (
        session.user_id != info.user_id or session.device_id != info.device_id
    ):
        wipe_profile(folder)
    secrets = SecretStore(folder, info.user_id)
    saved = OAuthTokens(
        HomeserverConnection(flow.base_url),
        secrets,
        folder,
        metadata=metadata.raw,
        client_id=flow.client_id,
        access_token=tokens.access_token,
        refresh_token=None,
        expires_at=None,
    )
    saved.take(tokens)
    write_private_json(folder / SESSION_FILE, info.to_json())
    return info, tokens.access_token, folder, secrets


def saved_login(profile: str = "default", base_dir: Path | None = None) -> Login | None:
    """The saved session of a profile, or None if there is none (or no token)."""
    folder = profile_dir(profile, base_dir)
    info = load_session(folder)
    if info is None:
        return None
    secrets = SecretStore(folder, info.user_id)
    token = secrets.get("access_token")
    if not token:
        return None
    return info, token, folder, secrets


def load_session(folder: Path) -> SessionInfo | None:
    try:
        data = json.loads((folder / SESSION_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("user_id", "device_id", "homeserver")
    ):
        return None
    return SessionInfo(data["user_id"], data["device_id"], data["homeserver"])


def wipe_profile(folder: Path) -> None:
    # The cache's files are overwritten with zeros before they go (encrypted as they
    # are, their blocks would otherwise stay on disk for anyone who finds the key).
    for name in (SESSION_FILE, OAUTH_FILE, *(CACHE_FILE + end for end in CACHE_FILE_ENDINGS)):
        shred(folder / name)
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
