"""Colour themes from the top-level ``themes/`` folder (one JSON file per theme)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from textual.theme import Theme

log = logging.getLogger(__name__)

THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"
DEFAULT_THEME = "tui-dark"
_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background", "surface", "panel", "boost")


def load_themes(folder: Path = THEMES_DIR) -> list[Theme]:
    """Every valid theme file in ``folder``; a broken file is logged and skipped."""
    themes = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            colours = {key: str(data[key]) for key in _FIELDS if key in data}
            theme = Theme(name=str(data["name"]), primary=colours.pop("primary"), dark=bool(data.get("dark", True)))
            for key, value in colours.items():
                setattr(theme, key, value)
            themes.append(theme)
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("skipping theme %s: %s", path, error)
    return themes
