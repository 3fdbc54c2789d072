"""The config file: parsing, problems with their line, defaults, write-back, the example."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tui_client.config import (
    SETTINGS,
    Config,
    config_path,
    example_config,
    line_of,
    load_config,
    parse_config,
    write_example,
    write_setting,
)

GOOD = """\
# mine
[appearance]
theme = "tui-light"   # bright room
time_format = "12h"
date_format = "%d/%m/%Y"
relative_days = false

[layout]
room_list_width = 40

[notifications]
alerts = "bell"
message_text = "never"

[privacy]
typing_notices = false
private_read_receipts = true
presence = false

[encryption]
share_keys_only_with_verified = true

[sync]
source = "sliding"

[keys.global]
"ctrl+k" = "switch_room"
[keys.composer]
"ctrl+s" = "send"
"""


def test_good_file_sets_every_setting_and_names_them() -> None:
    config = parse_config(GOOD)
    assert config.problems == ()
    assert config.theme == "tui-light"
    assert config.time_format == "12h"
    assert config.date_format == "%d/%m/%Y"
    assert config.relative_days is False
    assert config.room_list_width == 40
    assert config.member_list_width == 28  # not named: the default
    assert config.notification_alerts == "bell"
    assert config.notification_text == "never"
    assert (config.typing_notices, config.private_read_receipts, config.presence) == (
        False,
        True,
        False,
    )
    assert config.share_keys_only_with_verified is True
    assert config.sync_source == "sliding"
    assert config.keys == {"global": {"ctrl+k": "switch_room"}, "composer": {"ctrl+s": "send"}}
    assert config.names("theme") and not config.names("member_list_width")


def test_empty_and_missing_files_are_the_defaults(tmp_path: Path) -> None:
    assert parse_config("") == Config()
    missing = load_config(tmp_path / "nope.toml")
    assert (
        missing.problems == ()
        and missing.theme == "tui-dark"
        and missing.path == tmp_path / "nope.toml"
    )
    assert missing.named == frozenset()


def test_bad_syntax_names_its_line_and_falls_back_to_defaults() -> None:
    config = parse_config(
        '[appearance]\ntheme = "x"\ntime_format = 12h oops\n', Path("/c/config.toml")
    )
    assert config.theme == "tui-dark"
    (problem,) = config.problems
    assert problem.line == 3
    assert str(problem).startswith("/c/config.toml line 3: not valid TOML")


def test_unknown_keys_and_sections_name_their_line_and_the_rest_still_applies() -> None:
    text = '[appearance]\ntheme = "tui-light"\ncolour = "red"\n\n[fun]\nx = 1\n'
    config = parse_config(text)
    assert config.theme == "tui-light"
    messages = {p.line: p.message for p in config.problems}
    assert set(messages) == {3, 5}
    assert "unknown setting appearance.colour" in messages[3] and "theme" in messages[3]
    assert "unknown section 'fun'" in messages[5]


def test_bad_values_name_their_line_and_keep_the_default() -> None:
    text = (
        "[appearance]\n"
        'time_format = "13h"\n'
        "relative_days = 1\n"
        "[layout]\n"
        "room_list_width = 5000\n"
        "[notifications]\n"
        'alerts = "loud"\n'
        "[privacy]\n"
        'presence = "yes"\n'
    )
    config = parse_config(text)
    assert (config.time_format, config.relative_days, config.room_list_width) == (
        "locale",
        True,
        32,
    )
    assert (config.notification_alerts, config.presence) == ("desktop", True)
    assert config.named == frozenset()
    by_line = {p.line: p.message for p in config.problems}
    assert sorted(by_line) == [2, 3, 5, 7, 9]
    assert (
        by_line[2]
        == 'appearance.time_format must be one of "locale", "24h", "12h"; using the default ("locale")'
    )
    assert "from 16 to 80" in by_line[5]
    assert by_line[9] == "privacy.presence must be true or false; using the default (true)"


def test_dotted_keys_are_found_for_their_line() -> None:
    text = 'appearance.theme = "tui-light"\nlayout.room_list_width = "wide"\n'
    config = parse_config(text)
    assert config.theme == "tui-light"
    (problem,) = config.problems
    assert problem.line == 2
    assert line_of("[a]\n[b]\n x = 1\n", "b.x") == 3
    assert line_of("[a]\n", "b.x") is None


def test_control_characters_in_a_date_format_are_refused() -> None:
    config = parse_config('[appearance]\ndate_format = "%d\\u001b[31m"\n')
    assert config.date_format == "%A, %d %B %Y"
    assert config.problems[0].line == 2


def test_write_back_keeps_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    write_setting(path, "theme", "tui-high-contrast")
    write_setting(path, "presence", True)
    write_setting(path, "member_list_width", 30)  # [layout] had no such line: added there
    text = path.read_text()
    expected = (
        GOOD.replace('theme = "tui-light"', 'theme = "tui-high-contrast"')
        .replace("presence = false", "presence = true")
        .replace("room_list_width = 40\n", "room_list_width = 40\nmember_list_width = 30\n")
    )
    assert text == expected
    assert "# bright room" in text and text.startswith("# mine\n")
    config = load_config(path)
    assert (config.theme, config.presence, config.member_list_width) == (
        "tui-high-contrast",
        True,
        30,
    )


def test_write_back_adds_a_missing_section_and_refuses_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('# only a comment\n[appearance]\ntheme = "tui-dark"\n')
    write_setting(path, "typing_notices", False)
    assert path.read_text().startswith('# only a comment\n[appearance]\ntheme = "tui-dark"\n')
    assert load_config(path).typing_notices is False
    with pytest.raises(ValueError):
        write_setting(path, "notification_alerts", "loud")


def test_write_back_without_a_file_starts_from_the_commented_example(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    write_setting(path, "time_format", "12h")
    text = path.read_text()
    assert text.startswith(example_config().split("[layout]")[0].rstrip("\n"))
    config = load_config(path)
    assert config.time_format == "12h" and config.named == frozenset({"time_format"})


def test_example_parses_to_the_defaults_and_documents_every_setting(tmp_path: Path) -> None:
    text = example_config()
    data = tomllib.loads(text)
    config = parse_config(text)
    assert config.problems == ()
    defaults = Config()
    assert config.named == frozenset()  # all commented out: the cache keeps its say
    names = {f"# {setting.key} = " for setting in SETTINGS}
    uncommented = "\n".join(
        line[2:] if any(line.startswith(n) for n in names) else line for line in text.splitlines()
    )
    data = tomllib.loads(uncommented)
    assert parse_config(uncommented).problems == ()
    for setting in SETTINGS:
        assert data[setting.section][setting.key] == getattr(defaults, setting.field)
        line = line_of(uncommented, f"{setting.section}.{setting.key}")
        assert line is not None and text.splitlines()[line - 2].startswith("# ")
    path = tmp_path / "config.toml"
    assert write_example(path) is True
    assert write_example(path) is False  # never overwrites a user's file
    assert path.read_text() == text


def test_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUI_CLIENT_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(tmp_path / "cli.toml") == tmp_path / "cli.toml"
    assert config_path() == tmp_path / "env.toml"
    monkeypatch.delenv("TUI_CLIENT_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "tui_client" / "config.toml"


def test_write_config_command_writes_the_example_once(tmp_path: Path) -> None:
    import tomlkit

    from tui_client.__main__ import main

    path = tmp_path / "conf" / "config.toml"
    with pytest.raises(SystemExit) as written:
        main(["--config", str(path), "--write-config"])
    assert written.value.code == 0
    text = path.read_text()
    assert text == example_config()
    assert parse_config(text, path) == Config(path=path)
    # Round trip: the writer's library reads and writes it unchanged.
    assert tomlkit.dumps(tomlkit.parse(text)) == text
    path.write_text("# mine\n")
    with pytest.raises(SystemExit) as refused:
        main(["--config", str(path), "--write-config"])
    assert refused.value.code == 1
    assert path.read_text() == "# mine\n"


def test_the_readme_example_is_a_valid_config() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    config = parse_config(block.group(1))
    assert config.problems == ()
    assert (config.theme, config.time_format, config.typing_notices) == ("tui-light", "12h", False)


def test_the_encryption_library_is_a_setting() -> None:
    assert Config().crypto_backend == "vodozemac"
    config = parse_config('[encryption]\nbackend = "olm"\n')
    assert (
        config.problems == () and config.crypto_backend == "olm" and config.names("crypto_backend")
    )
    bad = parse_config('[encryption]\nbackend = "libolm"\n')
    assert bad.crypto_backend == "vodozemac"
    [problem] = bad.problems
    assert (problem.line, problem.message) == (
        2,
        'encryption.backend must be one of "vodozemac", "olm"; using the default ("vodozemac")',
    )


def test_http2_is_a_setting_and_reaches_the_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    from tui_client.net import http as net_http

    monkeypatch.delenv(net_http.HTTP2_ENV, raising=False)
    monkeypatch.setattr(net_http, "_configured_http2", None)
    assert Config().http2 is True
    config = parse_config("[network]\nhttp2 = false\n")
    assert config.problems == () and config.http2 is False and config.names("http2")
    assert net_http.HomeserverConnection("https://example.org").http2
    net_http.configure_http2(config.http2)  # what run_app does at start
    assert not net_http.HomeserverConnection("https://example.org").http2
    monkeypatch.setenv(net_http.HTTP2_ENV, "1")  # the environment wins
    assert net_http.HomeserverConnection("https://example.org").http2
    [problem] = parse_config('[network]\nhttp2 = "yes"\n').problems
    assert problem.line == 2 and "true or false" in problem.message
