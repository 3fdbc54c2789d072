"""Tab completion candidates for the composer: members, rooms, emoji shortcodes, commands.

Pure functions over plain data, so the composer widget stays free of the engine: the
chat screen gathers the open room's members and the room list, and hands the composer a
provider built from these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ..protocol.sanitize import clean_line

__all__ = [
    "MAX_CANDIDATES",
    "Completion",
    "complete_command",
    "complete_emoji",
    "complete_member",
    "complete_room",
]

#: At most this many candidates are offered for one word.
MAX_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class Completion:
    """One candidate: what replaces the word, and the user or room it names (a pill)."""

    insert: str
    target: str | None = None
    #: Text that follows the insertion (a space after a name or command).
    suffix: str = " "
    #: How the candidate is listed while choosing (clean text; ``insert`` when empty).
    label: str = ""


@dataclass(frozen=True, slots=True)
class MemberChoice:
    """A member as completion sees them: ID, display name, and the name as the timeline
    shows it (disambiguated with the user ID when another member has the same name)."""

    user_id: str
    displayname: str | None
    shown: str


def complete_member(
    word: str,
    members: Iterable[MemberChoice],
    *,
    own_user_id: str | None = None,
    may_mention_room: bool = False,
) -> list[Completion]:
    """``@bo`` -> members whose display name (any word of it) or user ID starts with ``bo``.

    The inserted text is the name the timeline shows, so two members called Bob stay
    apart; ``@room`` is offered when we may notify the room.
    """
    prefix = word[1:].casefold()
    first: list[tuple[str, Completion]] = []
    later: list[tuple[str, Completion]] = []
    for member in members:
        if member.user_id == own_user_id:
            continue
        name = (member.displayname or "").casefold()
        localpart = member.user_id[1:].casefold()
        label = (
            member.shown
            if member.shown == member.user_id or member.user_id in member.shown
            else f"{member.shown}  {member.user_id}"
        )
        candidate = Completion(member.shown, member.user_id, label=clean_line(label))
        if name.startswith(prefix) or localpart.startswith(prefix):
            first.append((member.shown.casefold(), candidate))
        elif any(part.startswith(prefix) for part in name.split()[1:]):
            later.append((member.shown.casefold(), candidate))
    found = [c for _, c in sorted(first, key=lambda p: p[0])] + [
        c for _, c in sorted(later, key=lambda p: p[0])
    ]
    if may_mention_room and "room".startswith(prefix):
        found.append(Completion("@room"))
    return found[:MAX_CANDIDATES]


def complete_room(word: str, rooms: Iterable[tuple[str, str | None, str]]) -> list[Completion]:
    """``#ru`` -> rooms (room ID, canonical alias, name) whose alias or name starts with
    ``ru``. The alias is inserted (the spec's anchor text for a room), else the room ID."""
    prefix = word[1:].casefold()
    found: list[tuple[str, Completion]] = []
    for room_id, alias, name in rooms:
        alias_part = alias[1:].casefold() if alias else ""
        if alias_part.startswith(prefix) or name.casefold().startswith(prefix):
            target = alias or room_id
            shown = clean_line(target)
            label = shown if clean_line(name) in ("", shown) else f"{shown}  {clean_line(name)}"
            found.append((clean_line(name).casefold(), Completion(shown, target, label=label)))
    return [c for _, c in sorted(found, key=lambda p: p[0])][:MAX_CANDIDATES]


@lru_cache(maxsize=1)
def _shortcodes() -> tuple[tuple[str, str], ...]:
    """Every ``:shortcode:`` (names and aliases) with its emoji, sorted."""
    import emoji  # its table (~16 ms to import) only when the first :shortcode is completed

    pairs: set[tuple[str, str]] = set()
    for character, data in emoji.EMOJI_DATA.items():
        if data.get("status", emoji.STATUS["fully_qualified"]) != emoji.STATUS["fully_qualified"]:
            continue
        for code in [data.get("en"), *data.get("alias", [])]:
            # Skin tone variants (thousands of them) are left to the keyboard.
            if isinstance(code, str) and "skin_tone" not in code:
                pairs.add((code.casefold(), character))
    return tuple(sorted(pairs))


def complete_emoji(word: str) -> list[Completion]:
    """``:thu`` -> emoji whose shortcode starts with ``thu`` (``:thumbs_up:`` is 👍)."""
    prefix = word.casefold().rstrip(":")
    found: list[Completion] = []
    seen: set[str] = set()
    for code, character in _shortcodes():
        if code.startswith(prefix) and character not in seen:
            seen.add(character)
            found.append(Completion(character, suffix="", label=f"{character} {code}"))
            if len(found) == MAX_CANDIDATES:
                break
    return found


def complete_command(word: str, names: Iterable[str]) -> list[Completion]:
    """``/in`` -> ``/invite`` (commands whose name starts with what was typed)."""
    prefix = word[1:].casefold()
    return [Completion(f"/{name}") for name in sorted(names) if name.startswith(prefix)]
