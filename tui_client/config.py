"""The user's config file: ``config.toml`` in the platformdirs config folder.

Read with :mod:`tomllib` into a typed :class:`Config`. Every setting has a default; a
file that does not parse, an unknown key or a bad value becomes a :class:`ConfigProblem`
naming the line, and the setting keeps its default, so the client always starts.

Which wins, the file or the cache: the file is the source of truth for every setting it
names. A setting the file does not name keeps the value stored in the account's cache
(what the palette toggles wrote before there was a file). A setting changed in the UI is
written back to the file with :func:`write_setting`, which keeps the user's comments and
order (tomlkit).

Only the standard library is imported at module level (tomlkit, for writing, is imported
when writing), so the engine, bots and tests read the config without the UI.
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigProblem",
    "Setting",
    "config_path",
    "example_config",
    "line_of",
    "load_config",
    "parse_config",
    "themes_dir",
    "write_example",
    "write_setting",
]

CONFIG_ENV = "TUI_CLIENT_CONFIG"
CONFIG_FILE = "config.toml"
APP_NAME = "tui_client"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """Something wrong in the config file; ``line`` is 1-based (``None`` if unknown)."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path} line {self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of the client, with its default. See :data:`SETTINGS` for the file's names."""

    theme: str = "tui-dark"
    time_format: str = "locale"
    date_format: str = "%A, %d %B %Y"
    relative_days: bool = True
    room_list_width: int = 32
    member_list_width: int = 28
    notification_alerts: str = "desktop"
    notification_text: str = "unencrypted"
    typing_notices: bool = True
    private_read_receipts: bool = False
    presence: bool = True
    share_keys_only_with_verified: bool = False
    crypto_backend: str = "vodozemac"
    sync_source: str = "sliding"
    image_protocol: str = "auto"
    #: The identity server to find people by email ("": the one the homeserver suggests).
    identity_server: str = ""
    #: Offer HTTP/2 to homeservers over HTTPS (the server chooses by ALPN).
    http2: bool = True
    #: ``[keys]`` as parsed: ``{context: {key: action}}``; checked by the key-binding code.
    keys: Mapping[str, Any] = field(default_factory=dict)
    #: The ``Config`` field names the file set (these win over the cache).
    named: frozenset[str] = frozenset()
    problems: tuple[ConfigProblem, ...] = ()
    #: Where it was read from (``None``: defaults only, nothing written back).
    path: Path | None = None

    def names(self, field_name: str) -> bool:
        """True if the file named this setting (so it wins over the cache)."""
        return field_name in self.named


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or value not in allowed:
            return "must be one of " + ", ".join(f'"{a}"' for a in allowed)
        return None

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _width(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"must be a whole number from {low} to {high}"
        return None

    return check


_THEME_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _theme(value: Any) -> str | None:
    if not isinstance(value, str) or not _THEME_NAME.match(value):
        return "must be a theme name (letters, digits, '.', '_' or '-')"
    return None


def _strftime(value: Any) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return 'must be a strftime pattern of 1 to 64 characters, like "%A, %d %B %Y"'
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        return "must not contain control characters"
    try:
        time.strftime(value, time.localtime(0))
    except ValueError as error:
        return f"is not a valid date pattern ({error})"
    return None


def _https_url(value: Any) -> str | None:
    if not isinstance(value, str) or (value and not value.startswith(("https://", "http://"))):
        return 'must be a URL such as "https://vector.im", or "" for the homeserver\'s choice'
    return None


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where it is in the file, which ``Config`` field it fills, its help."""

    section: str
    key: str
    field: str
    check: Callable[[Any], str | None]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "appearance",
        "theme",
        "theme",
        _theme,
        "Colour theme: tui-dark, tui-light, tui-high-contrast, a Textual theme, or one of\n"
        "your own: a JSON file in the themes/ folder next to this file.",
    ),
    Setting(
        "appearance",
        "time_format",
        "time_format",
        _choice("locale", "24h", "12h"),
        'Message times: "24h" (14:05), "12h" (2:05pm) or "locale" (what LC_TIME uses).',
    ),
    Setting(
        "appearance",
        "date_format",
        "date_format",
        _strftime,
        "Day separators in the timeline, a strftime pattern (month and day names follow\nLC_TIME).",
    ),
    Setting(
        "appearance",
        "relative_days",
        "relative_days",
        _boolean,
        'Write "Today" and "Yesterday" instead of the date for those days.',
    ),
    Setting(
        "layout",
        "room_list_width",
        "room_list_width",
        _width(16, 80),
        "Width of the room list, in columns.",
    ),
    Setting(
        "layout",
        "member_list_width",
        "member_list_width",
        _width(16, 80),
        "Width of the member list, in columns.",
    ),
    Setting(
        "notifications",
        "alerts",
        "notification_alerts",
        _choice("off", "bell", "desktop"),
        'How a notification reaches you: "off", "bell" (the terminal bell) or "desktop"\n'
        "(a terminal escape or D-Bus; the bell if neither works).",
    ),
    Setting(
        "notifications",
        "message_text",
        "notification_text",
        _choice("always", "unencrypted", "never"),
        'Whether a notification shows the message: "always", "unencrypted" (rooms only) or\n'
        '"never".',
    ),
    Setting(
        "privacy",
        "typing_notices",
        "typing_notices",
        _boolean,
        "Let others see when you are writing to them.",
    ),
    Setting(
        "privacy",
        "private_read_receipts",
        "private_read_receipts",
        _boolean,
        "Send private read receipts: others do not see what you have read.",
    ),
    Setting(
        "privacy",
        "presence",
        "presence",
        _boolean,
        "Share your presence: online while the terminal has focus, away otherwise.",
    ),
    Setting(
        "encryption",
        "share_keys_only_with_verified",
        "share_keys_only_with_verified",
        _boolean,
        "Share the keys of your encrypted messages only with verified devices.",
    ),
    Setting(
        "encryption",
        "backend",
        "crypto_backend",
        _choice("vodozemac", "olm"),
        'The encryption library: "vodozemac" (the default) or "olm" (python-olm, libolm:\n'
        "deprecated upstream, kept for old installs). A python-olm store is moved to\n"
        "vodozemac on the first start with vodozemac; there is no way back, so python-olm\n"
        "cannot open a store vodozemac has written. Read at start.\n"
        "TUI_CLIENT_CRYPTO_BACKEND in the environment wins over this.",
    ),
    Setting(
        "sync",
        "source",
        "sync_source",
        _choice("v2", "sliding"),
        'How the client syncs: "sliding" (simplified sliding sync where the server offers\n'
        'it, /sync v2 otherwise: the default) or "v2" (always /sync v2).',
    ),
    Setting(
        "images",
        "protocol",
        "image_protocol",
        _choice("auto", "kitty", "sixel", "iterm2", "halfblocks", "off"),
        'How pictures are drawn: "auto" (asks the terminal at start), "kitty", "sixel",\n'
        '"iterm2", or "halfblocks" (coloured cells, any terminal; "off" is the same).\n'
        "sixel and iTerm2 pictures show in the full-screen viewer, half-blocks in the timeline.\n"
        "TUI_CLIENT_GRAPHICS in the environment wins over this.",
    ),
    Setting(
        "identity",
        "server",
        "identity_server",
        _https_url,
        "The identity server that finds people by email (its base URL); empty: the one\n"
        "your homeserver suggests (m.identity_server in its .well-known).",
    ),
    Setting(
        "network",
        "http2",
        "http2",
        _boolean,
        "Offer HTTP/2 to homeservers over HTTPS (the server chooses; one without it gets\n"
        "HTTP/1.1, plain http always does). Read at start.\n"
        "TUI_CLIENT_HTTP2=0 (or 1) in the environment wins over this.",
    ),
)

_BY_PLACE = {(s.section, s.key): s for s in SETTINGS}
_BY_FIELD = {s.field: s for s in SETTINGS}
_SECTIONS = tuple(dict.fromkeys(s.section for s in SETTINGS))
_DEFAULTS = Config()
_TOML_ERROR_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _header_name(line: str) -> str | None:
    """``appearance`` for ``[appearance]`` / ``[ appearance ] # x``; ``None`` otherwise."""
    match = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
    if match is None:
        return None
    return ".".join(part.strip().strip('"').strip("'") for part in match.group(1).split("."))


def line_of(text: str, dotted: str) -> int | None:
    """The 1-based line where ``dotted`` (``section.key`` or ``section``) is set in ``text``.

    Handles ``[section]`` tables with ``key = ...`` and dotted keys (``section.key = ...``
    at the top, or ``key = ...`` under ``[section]``). ``None`` if it is not found.
    """
    parts = dotted.split(".")
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        header = _header_name(raw)
        if header is not None:
            table = header.split(".")
            if table == parts:
                return number
            continue
        match = re.match(
            r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""",
            raw,
        )
        if match is None:
            continue
        key = [p.strip().strip('"').strip("'") for p in match.group(1).split(".")]
        if [*table, *key][: len(parts)] == parts:
            return number
    return None


def parse_config(text: str, path: Path | None = None) -> Config:
    """A :class:`Config` from the text of a config file (never raises)."""
    label = str(path) if path is not None else CONFIG_FILE
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_ERROR_LINE.search(str(error))
        line = int(match.group(1)) if match else None
        message = _TOML_ERROR_LINE.sub("", str(error)).strip()
        problem = ConfigProblem(label, line, f"not valid TOML ({message}); using the defaults")
        return replace(_DEFAULTS, problems=(problem,), path=path)
    values: dict[str, Any] = {}
    problems: list[ConfigProblem] = []

    def complain(dotted: str, message: str) -> None:
        problems.append(ConfigProblem(label, line_of(text, dotted), message))

    keys: Mapping[str, Any] = {}
    for section, content in data.items():
        if section == "keys":
            if isinstance(content, dict):
                keys = content
            else:
                complain(section, "[keys] must be a table of contexts; ignored")
            continue
        if section not in _SECTIONS:
            known = ", ".join(f"[{s}]" for s in (*_SECTIONS, "keys"))
            complain(section, f"unknown section {section!r} (known: {known}); ignored")
            continue
        if not isinstance(content, dict):
            complain(section, f"{section} must be a table, like [{section}]; ignored")
            continue
        for key, value in content.items():
            setting = _BY_PLACE.get((section, key))
            dotted = f"{section}.{key}"
            if setting is None:
                known = ", ".join(k for s, k in _BY_PLACE if s == section)
                complain(
                    dotted, f"unknown setting {dotted} (known in [{section}]: {known}); ignored"
                )
                continue
            refusal = setting.check(value)
            if refusal is not None:
                default = getattr(_DEFAULTS, setting.field)
                complain(dotted, f"{dotted} {refusal}; using the default ({_toml_value(default)})")
                continue
            values[setting.field] = value
    return replace(
        _DEFAULTS, **values, keys=keys, named=frozenset(values), problems=tuple(problems), path=path
    )


def config_path(override: Path | None = None) -> Path:
    """``--config``, else ``$TUI_CLIENT_CONFIG``, else ``<platformdirs config>/config.toml``."""
    if override is not None:
        return override
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILE


def themes_dir(path: Path) -> Path:
    """The user's theme folder: ``themes/`` beside the config file."""
    return path.parent / "themes"


def load_config(path: Path) -> Config:
    """Read ``path``; a missing file is the defaults (and the place to write back to)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return replace(_DEFAULTS, path=path)
    except (OSError, UnicodeDecodeError) as error:
        problem = ConfigProblem(str(path), None, f"cannot be read ({error}); using the defaults")
        return replace(_DEFAULTS, problems=(problem,), path=path)
    return parse_config(text, path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def example_config() -> str:
    """The commented example ``--write-config`` writes: every setting at its default."""
    out = [
        "# tui_client configuration (TOML). Every setting is shown, commented out, at its",
        "# default: remove the '# ' before one to set it. A setting named here wins over what",
        "# the client remembers in its cache; one you change in the client (the command",
        "# palette) is written back here, keeping your comments and order.",
    ]
    for section in _SECTIONS:
        out += ["", f"[{section}]"]
        for setting in (s for s in SETTINGS if s.section == section):
            out += [f"# {line}" for line in setting.help.splitlines()]
            out.append(f"# {setting.key} = {_toml_value(getattr(_DEFAULTS, setting.field))}")
    out += [
        "",
        "# Key bindings per context (global, room_list, timeline, composer, dialogs):",
        '# key = "action". See the help screen (F1) for the actions and their keys.',
        "[keys]",
        "# [keys.global]",
        '# "ctrl+k" = "switch_room"',
        "",
    ]
    return "\n".join(out)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_example(path: Path, *, overwrite: bool = False) -> bool:
    """Write :func:`example_config` to ``path``; False if a file is there and not ``overwrite``."""
    if path.exists() and not overwrite:
        return False
    _atomic_write(path, example_config())
    return True


def write_setting(path: Path, field_name: str, value: Any) -> None:
    """Set one setting (a :class:`Config` field name) in the file, keeping comments and order.

    A missing file is first written as the commented example. A value the file already
    has on some line is replaced on that line; a missing section is added at the end.
    """
    import tomlkit

    setting = _BY_FIELD[field_name]
    refusal = setting.check(value)
    if refusal is not None:
        raise ValueError(f"{setting.section}.{setting.key} {refusal}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = example_config()
    document = tomlkit.parse(text)
    table = document.get(setting.section)
    if table is None or not isinstance(table, dict):
        table = tomlkit.table()
        document[setting.section] = table
    table[setting.key] = value
    _atomic_write(path, tomlkit.dumps(document))


def setting_fields() -> tuple[str, ...]:
    """The :class:`Config` field names that are settings (not ``keys`` or bookkeeping)."""
    return tuple(f.name for f in fields(Config) if f.name in _BY_FIELD)
