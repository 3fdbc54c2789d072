"""Composer commands (``/me``, ``/join``, ...): parsing only, no effects."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMANDS", "MESSAGE_COMMANDS", "Command", "CommandError", "parse_command"]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command's usage line and what it does, for ``/help`` and completion."""

    name: str
    usage: str
    help: str
    needs_argument: bool


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("me", "/me <action>", "send an emote: /me waves", True),
        CommandSpec("notice", "/notice <text>", "send a notice (shown muted, bots use it)", True),
        CommandSpec(
            "join",
            "/join <#alias|!id|link>",
            "join a room by alias, ID, matrix.to link or matrix: URI",
            True,
        ),
        CommandSpec(
            "directory",
            "/directory [server]",
            "browse public rooms (of your server, or another)",
            False,
        ),
        CommandSpec("leave", "/leave [reason]", "leave the current room", False),
        CommandSpec("forget", "/forget", "leave the current room and forget it", False),
        CommandSpec("invite", "/invite <@user:server>", "invite a user to the current room", True),
        CommandSpec("kick", "/kick <@user:server> [reason]", "remove someone from the room", True),
        CommandSpec("ban", "/ban <@user:server> [reason]", "ban someone from the room", True),
        CommandSpec("unban", "/unban <@user:server>", "lift a ban", True),
        CommandSpec("topic", "/topic [new topic]", "show or set the room topic", False),
        CommandSpec("name", "/name <new name>", "rename the current room", True),
        CommandSpec(
            "ignore",
            "/ignore <@user:server>",
            "hide someone's messages and invites (everywhere)",
            True,
        ),
        CommandSpec("unignore", "/unignore <@user:server>", "show an ignored user again", True),
        CommandSpec("nick", "/nick <display name>", "change your display name", True),
        CommandSpec(
            "verify",
            "/verify [@user:server]",
            "verify someone (in your DM), or with no name this DM's other person, else your other sessions",
            False,
        ),
        CommandSpec(
            "upload",
            "/upload <path>",
            "send a file (image, video, audio or any file; encrypted in encrypted rooms)",
            True,
        ),
        CommandSpec(
            "plain",
            "/plain <text>",
            "send text as is, without markdown (also text that starts with a slash)",
            True,
        ),
        CommandSpec("html", "/html <html>", "send HTML as it is written (sanitised first)", True),
        CommandSpec("help", "/help", "list commands and key bindings", False),
    )
}

#: Commands that send a message to the room at once (kept in order with plain lines).
MESSAGE_COMMANDS = frozenset({"me", "notice", "plain", "html"})


class CommandError(ValueError):
    """A command that cannot run as typed; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: its name and the rest of the line."""

    name: str
    argument: str


def parse_command(text: str) -> Command | None:
    """Parse a composer line. ``None`` if it is a plain message.

    ``//text`` sends ``/text`` as a message. Unknown commands and missing arguments
    raise :class:`CommandError`.
    """
    if not text.startswith("/") or text.startswith("//"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.strip().lower()
    argument = rest.strip()
    if "\n" in head:
        name, _, extra = head.partition("\n")
        argument = (extra + " " + rest).strip()
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(
            f"unknown command /{name}: type /help for the list, or //{name} to send it as text"
        )
    if spec.needs_argument and not argument:
        raise CommandError(f"usage: {spec.usage}")
    return Command(name, argument)


def unescape_message(text: str) -> str:
    """``//text`` is sent as ``/text``."""
    return text[1:] if text.startswith("//") else text
