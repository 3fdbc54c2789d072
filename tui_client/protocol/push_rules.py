"""Push rule evaluation (``push.md``): a rule set and an event in, what to do out.

Pure and standard library only. :class:`PushRuleSet` holds the rules in the order
they are tried (override, content, room, sender, underride; the server's default
rules after the user's own in each kind, ``.m.rule.master`` first of all), built
from the ``m.push_rules`` account data merged over the spec's default rules.
:meth:`PushRuleSet.evaluate` returns the first matching rule's :class:`PushActions`.

The client evaluates rules itself because the server cannot see inside encrypted
events: the decrypted event goes through the same rules as a plain one, so a
mention in an encrypted room highlights like any other.

Per-room notification levels (all / mentions and keywords / mute) are read and
written in the shapes Element uses: a ``room`` rule whose ID is the room ID with no
``notify`` action for "mentions and keywords", an ``override`` rule with the room ID
as ID, one ``event_match`` on ``room_id`` and no ``notify`` for "mute".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .room_state import PowerLevels

__all__ = [
    "DEFAULT_RULES",
    "KINDS",
    "LEVEL_ALL",
    "LEVEL_MENTIONS",
    "LEVEL_MUTE",
    "PushActions",
    "PushContext",
    "PushRule",
    "PushRuleSet",
    "glob_matches",
    "lookup_path",
    "split_path",
]

#: Rule kinds in the order they are tried.
KINDS = ("override", "content", "room", "sender", "underride")

LEVEL_ALL = "all"
LEVEL_MENTIONS = "mentions"
LEVEL_MUTE = "mute"

_USER_ID = "[the user's Matrix ID]"
_LOCALPART = "[the local part of the user's Matrix ID]"

# Rules that looked for mentions in the body before intentional mentions (removed
# from the spec in v1.17, still served by homeservers): not applied to an event that
# carries ``m.mentions`` (MSC3952), as servers do.
_LEGACY_MENTION_RULES = frozenset(
    {".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.contains_user_name"}
)

_SOUND = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _rule(
    rule_id: str, conditions: list[dict[str, Any]], actions: list[Any], **extra: Any
) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": True,
        "conditions": conditions,
        "actions": actions,
        **extra,
    }


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


#: The server-default rules of the spec, per kind, in order (with the legacy mention
#: rules at the places homeservers keep them). ``[the user's Matrix ID]`` and
#: ``[the local part of the user's Matrix ID]`` are filled in for the user.
DEFAULT_RULES: dict[str, list[dict[str, Any]]] = {
    "override": [
        {**_rule(".m.rule.master", [], []), "enabled": False},
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", _USER_ID),
            ],
            ["notify", _SOUND],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": _USER_ID,
                }
            ],
            ["notify", _SOUND, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.contains_display_name",
            [{"kind": "contains_display_name"}],
            ["notify", _SOUND, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.roomnotif",
            [
                _match("content.body", "@room"),
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", _HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ],
    "content": [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": _LOCALPART,
            "actions": ["notify", _SOUND, _HIGHLIGHT],
        }
    ],
    "room": [],
    "sender": [],
    "underride": [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
            ["notify", _SOUND],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
            ["notify", _SOUND],
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ],
}


# -- paths and globs -----------------------------------------------------------------


@lru_cache(maxsize=512)
def split_path(path: str) -> tuple[str, ...]:
    """A dot-separated property path split into names (``\\.`` is a dot, ``\\\\`` a backslash).

    Other escapes stay as written (``\\x`` is a backslash and an ``x``), as the spec's
    appendix says.
    """
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == "\\" and index + 1 < len(path) and path[index + 1] in ".\\":
            current.append(path[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return tuple(parts)


_ABSENT = object()


def lookup_path(event: Mapping[str, Any], path: str) -> Any:
    """The value at a dot-separated path of an event, or a private sentinel when absent."""
    value: Any = event
    for name in split_path(path):
        if not isinstance(value, Mapping) or name not in value:
            return _ABSENT
        value = value[name]
    return value


_WORD = "A-Za-z0-9_"


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str, word_boundary: bool) -> re.Pattern[str]:
    pieces: list[str] = []
    for char in pattern:
        if char == "*":
            if not pieces or pieces[-1] != ".*?":
                pieces.append(".*?")
        elif char == "?":
            pieces.append(".")
        else:
            pieces.append(re.escape(char))
    body = "".join(pieces)
    body = f"(?<![{_WORD}]){body}(?![{_WORD}])" if word_boundary else f"(?:{body})\\Z"
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, word_boundary: bool = False) -> bool:
    """A glob (``*`` any run, ``?`` one character) against a value, ignoring case.

    Whole value by default; with ``word_boundary`` any substring that starts and ends
    at a word boundary (the value's ends, or a character outside ``[A-Za-z0-9_]``).
    """
    regex = _glob_regex(pattern, word_boundary)
    if word_boundary:
        return regex.search(value) is not None
    return regex.match(value) is not None


# -- rules ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushActions:
    """What a matched rule says to do with an event."""

    notify: bool = False
    highlight: bool = False
    #: The sound to play (``default``, ``ring``, a file name), or ``None`` for silence.
    sound: str | None = None
    #: The rule that decided, or ``None`` when none matched.
    rule_id: str | None = None
    kind: str | None = None

    @classmethod
    def from_actions(
        cls, actions: Iterable[Any], rule_id: str | None = None, kind: str | None = None
    ) -> PushActions:
        """Read a rule's ``actions`` (historical ``dont_notify``/``coalesce`` are ignored)."""
        notify = highlight = False
        sound: str | None = None
        for action in actions:
            if action == "notify":
                notify = True
            elif isinstance(action, Mapping):
                tweak = action.get("set_tweak")
                if tweak == "highlight":
                    value = action.get("value", True)
                    highlight = value if isinstance(value, bool) else False
                elif tweak == "sound":
                    value = action.get("value")
                    sound = value if isinstance(value, str) else None
        return cls(notify, highlight, sound, rule_id, kind)


NOTHING = PushActions()


@dataclass(frozen=True, slots=True)
class PushContext:
    """What evaluation needs besides the event: who we are and the room as it is now."""

    user_id: str
    #: Our display name in the room (``None``: no name, ``contains_display_name`` never matches).
    display_name: str | None = None
    member_count: int = 0
    #: The room's power levels (``None``: ``sender_notification_permission`` never matches).
    power_levels: PowerLevels | None = None


@dataclass(frozen=True, slots=True)
class PushRule:
    """One rule of a kind, as in ``m.push_rules`` (``conditions`` for override/underride,
    ``pattern`` for content rules; room and sender rules match on ``rule_id``)."""

    kind: str
    rule_id: str
    actions: tuple[Any, ...]
    enabled: bool = True
    default: bool = False
    conditions: tuple[Mapping[str, Any], ...] = ()
    pattern: str | None = None

    @classmethod
    def parse(cls, kind: str, data: Mapping[str, Any]) -> PushRule | None:
        """A rule from its JSON, or ``None`` when it is unusable."""
        rule_id = data.get("rule_id")
        actions = data.get("actions")
        if not isinstance(rule_id, str) or not isinstance(actions, list):
            return None
        conditions = data.get("conditions")
        if conditions is None:
            conditions = []
        if not isinstance(conditions, list):
            return None
        pattern = data.get("pattern")
        return cls(
            kind=kind,
            rule_id=rule_id,
            actions=tuple(actions),
            enabled=data.get("enabled", True) is not False,
            default=data.get("default") is True,
            conditions=tuple(c if isinstance(c, Mapping) else {} for c in conditions),
            pattern=pattern if isinstance(pattern, str) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """As in ``m.push_rules``."""
        data: dict[str, Any] = {
            "rule_id": self.rule_id,
            "default": self.default,
            "enabled": self.enabled,
        }
        data["actions"] = list(self.actions)
        if self.kind in ("override", "underride"):
            data["conditions"] = [dict(c) for c in self.conditions]
        if self.kind == "content":
            data["pattern"] = self.pattern
        return data

    @property
    def notifies(self) -> bool:
        """True if the rule's actions notify."""
        return "notify" in self.actions

    def matches(self, event: Mapping[str, Any], context: PushContext) -> bool:
        """True if the rule is enabled and matches ``event``."""
        if not self.enabled:
            return False
        if self.rule_id in _LEGACY_MENTION_RULES and _has_mentions(event):
            return False
        if self.kind == "content":
            body = lookup_path(event, "content.body")
            return (
                self.pattern is not None
                and isinstance(body, str)
                and glob_matches(self.pattern, body, word_boundary=True)
            )
        if self.kind == "room":
            return event.get("room_id") == self.rule_id
        if self.kind == "sender":
            return event.get("sender") == self.rule_id
        return all(condition_matches(c, event, context) for c in self.conditions)


def _has_mentions(event: Mapping[str, Any]) -> bool:
    content = event.get("content")
    return isinstance(content, Mapping) and "m.mentions" in content


_SAFE_INT = (1 << 53) - 1


def _same_value(a: object, b: object) -> bool:
    """Exact equality over the non-compound canonical JSON values (no casting)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int) and isinstance(b, int):
        return -_SAFE_INT <= a <= _SAFE_INT and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)\Z")


def _member_count_matches(spec: object, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    found = _MEMBER_COUNT.match(spec)
    if found is None:
        return False
    operator, number = found.group(1) or "==", int(found.group(2))
    if operator == "==":
        return count == number
    if operator == "<":
        return count < number
    if operator == ">":
        return count > number
    if operator == "<=":
        return count <= number
    return count >= number


def _display_name_in(name: str | None, body: object) -> bool:
    if not name or not isinstance(body, str):
        return False
    regex = re.compile(f"(?<![{_WORD}]){re.escape(name)}(?![{_WORD}])", re.IGNORECASE)
    return regex.search(body) is not None


def condition_matches(
    condition: Mapping[str, Any], event: Mapping[str, Any], context: PushContext
) -> bool:
    """One condition against an event (an unknown or malformed condition never matches)."""
    kind = condition.get("kind")
    key = condition.get("key")
    if kind == "event_match":
        pattern = condition.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = lookup_path(event, key)
        if not isinstance(value, str):
            return False
        return glob_matches(pattern, value, word_boundary=key == "content.body")
    if kind == "event_property_is":
        if not isinstance(key, str) or "value" not in condition:
            return False
        return _same_value(lookup_path(event, key), condition["value"])
    if kind == "event_property_contains":
        if not isinstance(key, str) or "value" not in condition:
            return False
        values = lookup_path(event, key)
        wanted = condition["value"]
        return isinstance(values, list) and any(_same_value(v, wanted) for v in values)
    if kind == "contains_display_name":
        return _display_name_in(context.display_name, lookup_path(event, "content.body"))
    if kind == "room_member_count":
        return _member_count_matches(condition.get("is"), context.member_count)
    if kind == "sender_notification_permission":
        levels, sender = context.power_levels, event.get("sender")
        if not isinstance(key, str) or levels is None or not isinstance(sender, str):
            return False
        return levels.user_level(sender) >= levels.notification_level(key)
    return False


# -- the rule set --------------------------------------------------------------------


def _fill(value: Any, user_id: str) -> Any:
    """A default rule with the user's ID (and localpart) put in its placeholders."""
    if isinstance(value, str):
        localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
        return value.replace(_USER_ID, user_id).replace(_LOCALPART, localpart)
    if isinstance(value, list):
        return [_fill(v, user_id) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, user_id) for k, v in value.items()}
    return value


def default_rules(user_id: str) -> dict[str, list[PushRule]]:
    """The spec's server-default rules for a user, per kind."""
    rules: dict[str, list[PushRule]] = {}
    for kind in KINDS:
        parsed = (PushRule.parse(kind, _fill(data, user_id)) for data in DEFAULT_RULES[kind])
        rules[kind] = [r for r in parsed if r is not None]
    return rules


def _merge_defaults(ours: list[PushRule], theirs: list[PushRule]) -> list[PushRule]:
    """The server's default rules of a kind over ours: the server's versions (its
    enabled flags and actions) where it has one, ours where it has none, and its
    unknown ones after the rule they follow."""
    given = {r.rule_id: r for r in theirs}
    known = {r.rule_id for r in ours}
    merged = [given.get(r.rule_id, r) for r in ours]
    for index, rule in enumerate(theirs):
        if rule.rule_id in known:
            continue
        anchor = next(
            (theirs[i].rule_id for i in range(index - 1, -1, -1) if theirs[i].rule_id in known),
            None,
        )
        position = (
            0
            if anchor is None
            else next(i for i, r in enumerate(merged) if r.rule_id == anchor) + 1
        )
        merged.insert(position, rule)
        known.add(rule.rule_id)
    return merged


@dataclass(frozen=True, slots=True)
class PushRuleSet:
    """Every rule of the user, in the order they are tried."""

    user_id: str
    rules: tuple[PushRule, ...] = field(default=())

    @classmethod
    def from_account_data(cls, content: Mapping[str, Any] | None, user_id: str) -> PushRuleSet:
        """From ``m.push_rules`` content (``None``: the defaults alone)."""
        scope = content.get("global") if isinstance(content, Mapping) else None
        scope = scope if isinstance(scope, Mapping) else {}
        defaults = default_rules(user_id)
        ordered: list[PushRule] = []
        master: list[PushRule] = []
        for kind in KINDS:
            given = scope.get(kind)
            parsed = (
                [PushRule.parse(kind, r) for r in given if isinstance(r, Mapping)]
                if isinstance(given, list)
                else []
            )
            rules = [r for r in parsed if r is not None]
            user_rules = [r for r in rules if not r.rule_id.startswith(".")]
            server_rules = _merge_defaults(
                defaults[kind], [r for r in rules if r.rule_id.startswith(".")]
            )
            if kind == "override":
                master = [r for r in server_rules if r.rule_id == ".m.rule.master"]
                server_rules = [r for r in server_rules if r.rule_id != ".m.rule.master"]
            ordered.extend(user_rules)
            ordered.extend(server_rules)
        return cls(user_id, tuple(master + ordered))

    def evaluate(self, event: Mapping[str, Any], context: PushContext) -> PushActions:
        """What to do for ``event`` (nothing for our own events, as servers do)."""
        if event.get("sender") == context.user_id:
            return NOTHING
        for rule in self.rules:
            if rule.matches(event, context):
                return PushActions.from_actions(rule.actions, rule.rule_id, rule.kind)
        return NOTHING

    def find(self, kind: str, rule_id: str) -> PushRule | None:
        """A rule by kind and ID."""
        return next((r for r in self.rules if r.kind == kind and r.rule_id == rule_id), None)

    def of_kind(self, kind: str) -> list[PushRule]:
        """The rules of one kind, in order."""
        return [r for r in self.rules if r.kind == kind]

    def room_level(self, room_id: str) -> str:
        """``mute``, ``mentions`` (and keywords) or ``all``, as Element reads it."""
        override = self.find("override", room_id)
        if (
            override is not None
            and override.enabled
            and not override.notifies
            and is_room_mute(override, room_id)
        ):
            return LEVEL_MUTE
        room = self.find("room", room_id)
        if room is not None and room.enabled and not room.notifies:
            return LEVEL_MENTIONS
        return LEVEL_ALL

    def keywords(self) -> list[str]:
        """The user's own keywords (content rules that notify)."""
        return [
            r.pattern for r in self.of_kind("content") if not r.default and r.pattern and r.notifies
        ]


def is_room_mute(rule: PushRule, room_id: str) -> bool:
    """True for an override rule in the shape of a room mute (one ``event_match`` on ``room_id``)."""
    return (
        len(rule.conditions) == 1
        and rule.conditions[0].get("kind") == "event_match"
        and rule.conditions[0].get("key") == "room_id"
        and rule.conditions[0].get("pattern") == room_id
    )


def mute_rule_body(room_id: str) -> dict[str, Any]:
    """The body of ``PUT /pushrules/global/override/{roomId}`` that mutes a room (Element's shape)."""
    return {
        "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
        "actions": [],
    }


def mentions_only_rule_body() -> dict[str, Any]:
    """The body of ``PUT /pushrules/global/room/{roomId}``: mentions and keywords only."""
    return {"actions": []}


def keyword_rule_body(keyword: str) -> dict[str, Any]:
    """The body of ``PUT /pushrules/global/content/{keyword}`` (Element's keyword shape)."""
    return {
        "pattern": keyword,
        "actions": [
            "notify",
            {"set_tweak": "sound", "value": "default"},
            {"set_tweak": "highlight", "value": False},
        ],
    }


def level_changes(
    room_id: str, level: str
) -> Sequence[tuple[str, str, str, dict[str, Any] | None]]:
    """The requests that set a room's level: ``(method, kind, rule_id, body)``, in order.

    Deletions of rules that may not exist are listed too (a 404 for them is fine).
    """
    if level == LEVEL_MUTE:
        return [
            ("DELETE", "room", room_id, None),
            ("PUT", "override", room_id, mute_rule_body(room_id)),
        ]
    if level == LEVEL_MENTIONS:
        return [
            ("DELETE", "override", room_id, None),
            ("PUT", "room", room_id, mentions_only_rule_body()),
        ]
    if level == LEVEL_ALL:
        return [("DELETE", "override", room_id, None), ("DELETE", "room", room_id, None)]
    raise ValueError(f"unknown notification level {level!r}")
