"""Where an account's files live: the platformdirs data folder, private to the user."""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

__all__ = ["data_dir", "downloads_dir", "ensure_private_dir", "profile_dir"]

APP_NAME = "tui_client"
_PROFILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def data_dir() -> Path:
    """The data folder: ``$TUI_CLIENT_DATA_DIR`` if set, else platformdirs' user data dir."""
    override = os.environ.get("TUI_CLIENT_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def profile_dir(profile: str = "default", base: Path | None = None) -> Path:
    """The private folder of one profile (one account): session, cache, fallback secrets."""
    if not _PROFILE_RE.match(profile) or profile in (".", ".."):
        raise ValueError(f"invalid profile name {profile!r}: use letters, digits, '.', '_' or '-'")
    root = ensure_private_dir(base or data_dir())
    return ensure_private_dir(root / profile)


def downloads_dir() -> Path:
    """Where attachments are saved: ``$TUI_CLIENT_DOWNLOADS`` if set, else the user's
    Downloads folder (platformdirs)."""
    override = os.environ.get("TUI_CLIENT_DOWNLOADS")
    return Path(override) if override else Path(platformdirs.user_downloads_dir())
