"""Composer commands: parsing only."""

from __future__ import annotations

import pytest

from tui_client.protocol.commands import (
    COMMANDS,
    Command,
    CommandError,
    parse_command,
    unescape_message,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/me waves", Command("me", "waves")),
        ("/notice build passed", Command("notice", "build passed")),
        ("/join #room:example.org", Command("join", "#room:example.org")),
        (
            "/join https://matrix.to/#/!r:x.org?via=x.org",
            Command("join", "https://matrix.to/#/!r:x.org?via=x.org"),
        ),
        ("/leave", Command("leave", "")),
        ("/leave bye all", Command("leave", "bye all")),
        ("/invite @alice:example.org", Command("invite", "@alice:example.org")),
        ("/topic", Command("topic", "")),
        ("/topic New  topic ", Command("topic", "New  topic")),
        ("/name The Room", Command("name", "The Room")),
        ("/nick Alice", Command("nick", "Alice")),
        ("/plain /shrug", Command("plain", "/shrug")),
        ("/help", Command("help", "")),
        ("/directory", Command("directory", "")),
        ("/directory matrix.org", Command("directory", "matrix.org")),
        ("/kick @bob:x.org spamming links", Command("kick", "@bob:x.org spamming links")),
        ("/ban @bob:x.org", Command("ban", "@bob:x.org")),
        ("/verify", Command("verify", "")),
        ("/verify @bob:x.org", Command("verify", "@bob:x.org")),
        ("/ignore @bob:x.org", Command("ignore", "@bob:x.org")),
        ("/unignore  @bob:x.org ", Command("unignore", "@bob:x.org")),
        ("/ME waves", Command("me", "waves")),
        ("/help   ", Command("help", "")),
    ],
)
def test_commands(line: str, expected: Command) -> None:
    assert parse_command(line) == expected


def test_every_command_is_parsed() -> None:
    for name, spec in COMMANDS.items():
        assert parse_command(f"/{name} x") == Command(name, "x")
        if spec.needs_argument:
            with pytest.raises(CommandError):
                parse_command(f"/{name}")
        else:
            assert parse_command(f"/{name}") == Command(name, "")
    assert set(COMMANDS) == {
        "me",
        "notice",
        "join",
        "leave",
        "invite",
        "topic",
        "name",
        "nick",
        "plain",
        "help",
        "directory",
        "forget",
        "kick",
        "ban",
        "unban",
        "verify",
        "upload",
        "html",
        "ignore",
        "unignore",
    }


@pytest.mark.parametrize("name", ["me", "notice", "join", "invite", "name", "nick", "plain"])
def test_missing_argument_says_how(name: str) -> None:
    for line in (f"/{name}", f"/{name}   ", f"/{name}\n"):
        with pytest.raises(CommandError) as caught:
            parse_command(line)
        assert str(caught.value) == f"usage: {COMMANDS[name].usage}"
        assert COMMANDS[name].usage.startswith(f"/{name} ")


def test_unknown_command() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/shrug ok")
    message = str(caught.value)
    assert "unknown command /shrug" in message
    assert "/help" in message and "//shrug" in message


@pytest.mark.parametrize(
    "line", ["hello", "", " /me not a command", "//me literally", "//", "// x", "http://x/y"]
)
def test_plain_messages(line: str) -> None:
    assert parse_command(line) is None


def test_double_slash_escape() -> None:
    assert unescape_message("//me waves") == "/me waves"
    assert unescape_message("//") == "/"
    assert unescape_message("/me") == "/me"
    assert unescape_message("plain") == "plain"


def test_me_with_several_lines() -> None:
    assert parse_command("/me waves\nand smiles") == Command("me", "waves\nand smiles")
    assert parse_command("/me\nwaves\nand smiles") == Command("me", "waves\nand smiles")
    assert parse_command("/me\nwaves and\nsmiles") == Command("me", "waves and\nsmiles")
    assert parse_command("/notice line one\n\nline three") == Command(
        "notice", "line one\n\nline three"
    )
