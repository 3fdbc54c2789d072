"""Colour themes: the built-in ones (package data) and the user's (the config folder's themes/).

A theme is a JSON object: ``name`` and ``primary`` are required; ``dark`` (true or
false) and the colours ``secondary``, ``warning``, ``error``, ``success``, ``accent``,
``foreground``, ``background``, ``surface``, ``panel`` and ``boost`` are optional;
``variables`` maps Textual CSS variable names to values. A file that is not such an
object is refused with a message naming the file and what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from textual.color import Color, ColorParseError
from textual.filter import LineFilter, Monochrome, monochrome_style
from textual.theme import Theme

BUILTIN_THEMES_DIR = Path(__file__).resolve().parent / "builtin_themes"
DEFAULT_THEME = "tui-dark"
_COLOURS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_KNOWN = {"name", "dark", "variables", *_COLOURS}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_BYTES = 64 * 1024


class ThemeError(ValueError):
    """A theme file that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class ThemeProblem:
    """A theme file refused, and why."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"Theme {self.path}: {self.message}"


def parse_theme(data: object) -> Theme:
    """A Textual theme from a theme file's parsed JSON; :class:`ThemeError` if it is wrong."""
    if not isinstance(data, dict):
        raise ThemeError("must be a JSON object")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ThemeError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_KNOWN))})")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ThemeError("'name' must be letters, digits, '.', '_' or '-' (1 to 64)")
    if "primary" not in data:
        raise ThemeError("'primary' is required")
    colours: dict[str, str] = {}
    for key in _COLOURS:
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, str):
            raise ThemeError(f'{key!r} must be a colour string like "#1e2127"')
        try:
            Color.parse(value)
        except ColorParseError:
            raise ThemeError(f"{key!r} is not a colour: {value[:40]!r}") from None
        colours[key] = value
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeError("'dark' must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError("'variables' must map names to strings")
    theme = Theme(name=name, primary=colours.pop("primary"), dark=dark, variables=dict(variables))
    for key, value in colours.items():
        setattr(theme, key, value)
    return theme


def load_theme_file(path: Path) -> Theme:
    """Read and check one theme file; :class:`ThemeError` naming what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ThemeError(f"cannot be read ({error.strerror or error})") from None
    if len(raw) > _MAX_BYTES:
        raise ThemeError(f"is larger than {_MAX_BYTES // 1024} KiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ThemeError("is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ThemeError(f"is not valid JSON: {error.msg} at line {error.lineno}") from None
    return parse_theme(data)


def load_themes(folder: Path) -> tuple[list[Theme], list[ThemeProblem]]:
    """Every ``*.json`` theme in ``folder`` (none if it does not exist), and the files refused."""
    themes: list[Theme] = []
    problems: list[ThemeProblem] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            themes.append(load_theme_file(path))
        except ThemeError as error:
            problems.append(ThemeProblem(path, str(error)))
    return themes, problems


def builtin_themes() -> list[Theme]:
    """The themes shipped with the client (package data)."""
    themes, problems = load_themes(BUILTIN_THEMES_DIR)
    if problems:
        raise RuntimeError(f"a built-in theme is broken: {problems[0]}")
    return themes


class GreyFilter(Monochrome):
    """Textual's NO_COLOR filter (every colour to its grey), also for unstyled segments.

    Textual's own :class:`Monochrome` fails on a segment without a style (the timeline's
    indents are such segments), which stops the app under ``NO_COLOR``.
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        """Grey every styled segment; pass unstyled ones through."""
        return [
            Segment(text, None if style is None else monochrome_style(style), None)
            for text, style, _ in segments
        ]


def honour_no_color(filters: list[LineFilter]) -> None:
    """Swap Textual's NO_COLOR filter in ``filters`` (``App._filters``) for :class:`GreyFilter`."""
    for index, line_filter in enumerate(filters):
        if type(line_filter) is Monochrome:
            filters[index] = GreyFilter(enabled=line_filter.enabled)
