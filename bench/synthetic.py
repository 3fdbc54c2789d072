"""A deterministic, spec-shaped initial ``/sync`` response for benchmarks.

:func:`initial_sync` returns the raw bytes a homeserver would send for a first
``GET /_matrix/client/v3/sync`` (lazy-loaded members, ``timeline_limit`` 50) of an
account in 1,000 joined rooms: about 50,000 events, about 20 MB of compact JSON.

Shapes follow ``matrix-spec/data/api/client-server/sync.yaml`` and the event
examples in ``data/event-schemas/examples``: events carry no ``room_id`` (the
sync format), room IDs are room version 12 IDs (``!`` and the 43-character
unpadded url-safe base64 reference hash of the ``m.room.create`` event, whose
event ID is ``$`` and the same hash), creators are not listed in
``m.room.power_levels``, redactions carry ``redacts`` in ``content`` (and at the
top level, as servers still add it), redacted events arrive already redacted
with ``unsigned.redacted_because``, and ``summary.m.heroes`` is sent only for
rooms without a name or canonical alias (as Synapse does).

Everything comes from one seeded :class:`random.Random`: the same arguments give
the same bytes. Run ``python -m bench.synthetic`` to print the payload's figures.
"""

from __future__ import annotations

import base64
import json
import random
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._harness import sized

__all__ = ["OWN_USER_ID", "PayloadStats", "build_sync", "initial_sync", "payload_stats"]

OWN_USER_ID = "@bench:example.org"
DEFAULT_SEED = 20250101
DEFAULT_ROOMS = sized(1000, 20)
TIMELINE_LIMIT = 50
# A fixed "now", so ages and timestamps do not depend on the clock.
NOW_MS = 1_760_000_000_000
DAY_MS = 86_400_000

Event = dict[str, Any]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SERVERS = (
    "example.org",
    "matrix.org",
    "chat.example.com",
    "kde.org",
    "fosdem.org",
    "tchncs.de",
    "envs.net",
)
_FIRST = _words(
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert Sybil "
    "Trent Victor Walter Zoë Ångström Chloé Jürgen Łukasz Søren Mei Hiroshi Aarav Fatima Oluwaseun"
)
_LAST = _words(
    "Smith Jones Müller García Rossi Nowak Kowalski Dubois Silva Tanaka Kim Nguyen Novak Haddad"
)
_WORDS = _words(
    "the a to and of is it that for on in you this we with be have not are was just can will "
    "sync room server matrix client event timeline state key device message thread reply edit "
    "reaction release build test merge branch deploy bug fix patch issue review spec federation "
    "homeserver bridge bot emoji link file image video call voice meeting tomorrow today later "
    "maybe thanks great sure ok nice lol hmm wait what why how when where yes no please agreed "
    "café naïve über straße déjà vu 👍 🎉 😂 ❤️ 🙏 🚀 ✅ 🤔"
)
_REACTION_KEYS = ("👍", "❤️", "😂", "🎉", "👀", "🙏", "🚀", "✅", "+1", "😮")
_TOPIC_WORDS = _words(
    "Discussion support development announcements off-topic releases help general community"
)


def _b64(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    displayname: str
    avatar_url: str | None


class _Generator:
    def __init__(self, seed: int, rooms: int) -> None:
        self.rng = random.Random(seed)
        self.room_count = rooms
        self.users = self._make_users(max(200, rooms * 2))
        self.own = _User(OWN_USER_ID, "Bench Mark", "mxc://example.org/benchavatar")
        self.txn = 0
        self.direct: dict[str, list[str]] = {}

    # -- pieces -------------------------------------------------------------------

    def _make_users(self, count: int) -> list[_User]:
        rng = self.rng
        users = []
        for i in range(count):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            plain = (
                unicodedata.normalize("NFKD", f"{first}.{last}".lower())
                .encode("ascii", "ignore")
                .decode()
            )
            localpart = f"{plain}{i}"
            server = rng.choice(_SERVERS)
            name = f"{first} {last}" if rng.random() < 0.9 else f"{first} {last} [{server}]"
            if rng.random() < 0.02:
                name = first  # clashing display names exist
            avatar = f"mxc://{server}/{_b64(rng)[:24]}" if rng.random() < 0.6 else None
            users.append(_User(f"@{localpart}:{server}", name, avatar))
        return users

    def event_id(self) -> str:
        return "$" + _b64(self.rng)

    def text(self, low: int, high: int) -> str:
        rng = self.rng
        count = min(high, max(low, int(rng.lognormvariate(2.6, 0.85))))
        words = rng.choices(_WORDS, k=count)
        sentence = " ".join(words)
        return sentence[:1].upper() + sentence[1:] + rng.choice((".", "!", "?", "", ""))

    def member_content(self, user: _User, membership: str = "join") -> dict[str, Any]:
        content: dict[str, Any] = {"membership": membership, "displayname": user.displayname}
        if user.avatar_url:
            content["avatar_url"] = user.avatar_url
        return content

    def base_event(self, event_type: str, sender: str, ts: int, content: dict[str, Any]) -> Event:
        return {
            "content": content,
            "event_id": self.event_id(),
            "origin_server_ts": ts,
            "sender": sender,
            "type": event_type,
            "unsigned": {"age": NOW_MS - ts, "membership": "join"},
        }

    def state_event(
        self,
        event_type: str,
        state_key: str,
        sender: str,
        ts: int,
        content: dict[str, Any],
        event_id: str | None = None,
    ) -> Event:
        event = self.base_event(event_type, sender, ts, content)
        event["state_key"] = state_key
        if event_id is not None:
            event["event_id"] = event_id
        return event

    # -- a room ---------------------------------------------------------------------

    def room(self, index: int) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        room_hash = _b64(rng)
        room_id = "!" + room_hash
        kind = rng.choices(("dm", "group", "named"), weights=(12, 8, 80))[0]
        if kind == "dm":
            others = [rng.choice(self.users)]
            joined_count, invited_count = 2, 0
        elif kind == "group":
            others = rng.sample(self.users, rng.randint(2, 6))
            joined_count, invited_count = len(others) + 1, rng.choice((0, 0, 0, 1))
        else:
            others = rng.sample(self.users, rng.randint(4, 14))
            joined_count = max(len(others) + 1, int(rng.lognormvariate(3.5, 1.6)))
            invited_count = rng.choice((0, 0, 0, 0, 1, 2))
        creator = self.own if kind == "dm" and rng.random() < 0.5 else others[0]
        # Last activity: spread over the last 90 days, most rooms recent.
        last_ts = (
            NOW_MS - int(rng.expovariate(1 / (6 * DAY_MS))) % (90 * DAY_MS) - rng.randint(0, 60_000)
        )
        created_ts = last_ts - rng.randint(DAY_MS, 400 * DAY_MS)
        ts = created_ts

        def tick(lo: int = 1_000, hi: int = 3_600_000) -> int:
            nonlocal ts
            ts += rng.randint(lo, hi)
            return ts

        state: list[Event] = []
        create_content: dict[str, Any] = {"room_version": "12"}
        if rng.random() < 0.05:
            create_content["predecessor"] = {"room_id": "!" + _b64(rng)}
        if rng.random() < 0.03:
            create_content["additional_creators"] = [others[-1].user_id]
        state.append(
            self.state_event(
                "m.room.create", "", creator.user_id, tick(), create_content, "$" + room_hash
            )
        )
        mods = {u.user_id: 50 for u in others[1:3] if u is not creator and rng.random() < 0.5}
        if creator is not self.own and rng.random() < 0.2:
            mods[self.own.user_id] = 50
        state.append(
            self.state_event(
                "m.room.power_levels",
                "",
                creator.user_id,
                tick(),
                {
                    "ban": 50,
                    "events": {
                        "m.room.name": 50,
                        "m.room.power_levels": 100,
                        "m.room.history_visibility": 100,
                        "m.room.canonical_alias": 50,
                        "m.room.avatar": 50,
                        "m.room.tombstone": 150,
                        "m.room.server_acl": 100,
                        "m.room.encryption": 100,
                    },
                    "events_default": 0,
                    "invite": 0,
                    "kick": 50,
                    "redact": 50,
                    "state_default": 50,
                    "users": mods,
                    "users_default": 0,
                    "notifications": {"room": 50},
                },
            )
        )
        join_rule = (
            "invite" if kind != "named" else rng.choice(("public", "public", "invite", "knock"))
        )
        state.append(
            self.state_event(
                "m.room.join_rules", "", creator.user_id, tick(), {"join_rule": join_rule}
            )
        )
        state.append(
            self.state_event(
                "m.room.history_visibility",
                "",
                creator.user_id,
                tick(),
                {
                    "history_visibility": rng.choice(
                        ("shared", "shared", "joined", "world_readable")
                    )
                },
            )
        )
        if join_rule == "public":
            state.append(
                self.state_event(
                    "m.room.guest_access", "", creator.user_id, tick(), {"guest_access": "can_join"}
                )
            )
        alias = None
        if kind == "named":
            name = f"{rng.choice(_TOPIC_WORDS).title()} {rng.choice(_WORDS)} {index}"
            state.append(
                self.state_event("m.room.name", "", creator.user_id, tick(), {"name": name})
            )
            if rng.random() < 0.4:
                alias = f"#{name.lower().replace(' ', '-')}:{creator.user_id.split(':', 1)[1]}"
                state.append(
                    self.state_event(
                        "m.room.canonical_alias", "", creator.user_id, tick(), {"alias": alias}
                    )
                )
            if rng.random() < 0.7:
                state.append(
                    self.state_event(
                        "m.room.topic", "", creator.user_id, tick(), {"topic": self.text(5, 40)}
                    )
                )
            if rng.random() < 0.3:
                state.append(
                    self.state_event(
                        "m.room.avatar",
                        "",
                        creator.user_id,
                        tick(),
                        {"url": f"mxc://example.org/{_b64(rng)[:24]}"},
                    )
                )
        # Lazy-loaded members: ourselves, the senders of the timeline and the heroes.
        members = [self.own, *others]
        for user in members:
            state.append(
                self.state_event(
                    "m.room.member", user.user_id, user.user_id, tick(), self.member_content(user)
                )
            )

        # Timeline: half the rooms are busy (limited), the others quiet.
        limited = rng.random() < 0.5
        length = TIMELINE_LIMIT if limited else rng.randint(3, 38)
        # Busy rooms talk within hours, quiet ones over weeks.
        typical_gap = (
            rng.choice((30_000, 120_000, 600_000))
            if limited
            else rng.choice((600_000, 3_600_000, DAY_MS))
        )
        span = max(min(last_ts - ts, length * typical_gap), length * 1000)
        step = span // (length + 1)
        ts = last_ts - step * (length + 1)
        timeline: list[Event] = []
        messages: list[Event] = []
        for _ in range(length):
            sender = rng.choice(members)
            event = self.timeline_event(
                sender, tick(max(1, step // 2), max(2, step * 3 // 2)), messages, others
            )
            timeline.append(event)
            if event["type"] == "m.room.message":
                messages.append(event)

        room: dict[str, Any] = {
            "summary": {
                "m.joined_member_count": joined_count,
                "m.invited_member_count": invited_count,
            },
            "state": {"events": state},
            "timeline": {"events": timeline, "limited": limited, "prev_batch": self.token("t")},
            "ephemeral": {"events": self.ephemeral(timeline, members)},
            "account_data": {"events": self.room_account_data(timeline, kind)},
            "unread_notifications": {
                "highlight_count": rng.choice((0, 0, 0, 0, 1, 2)),
                "notification_count": rng.choice((0, 0, 0, 1, 2, 5, 12, 40)),
            },
        }
        if kind != "named":  # no name and no alias
            room["summary"]["m.heroes"] = [u.user_id for u in others[:5]]
        if kind == "dm":
            self.direct.setdefault(others[0].user_id, []).append(room_id)
        if rng.random() < 0.05:
            root = rng.choice(messages)["event_id"] if messages else self.event_id()
            room["unread_thread_notifications"] = {
                root: {"highlight_count": 0, "notification_count": rng.randint(1, 4)}
            }
        return room_id, room

    def timeline_event(
        self, sender: _User, ts: int, messages: list[Event], others: list[_User]
    ) -> Event:
        rng = self.rng
        kind = rng.choices(
            (
                "text",
                "html",
                "emote",
                "notice",
                "reply",
                "reaction",
                "edit",
                "redaction",
                "state",
                "long",
            ),
            weights=(57, 10, 3, 5, 8, 8, 3, 1, 2, 3),
        )[0]
        if kind in ("reply", "reaction", "edit", "redaction") and not messages:
            kind = "text"
        if kind == "text" or kind == "long":
            body = (
                self.text(2, 40)
                if kind == "text"
                else "\n".join(self.text(20, 60) for _ in range(rng.randint(3, 12)))
            )
            event = self.base_event(
                "m.room.message", sender.user_id, ts, {"msgtype": "m.text", "body": body}
            )
        elif kind == "html":
            body = self.text(3, 30)
            words = body.split(" ")
            html = " ".join(f"<b>{w}</b>" if rng.random() < 0.2 else w for w in words)
            event = self.base_event(
                "m.room.message",
                sender.user_id,
                ts,
                {
                    "msgtype": "m.text",
                    "body": body,
                    "format": "org.matrix.custom.html",
                    "formatted_body": html,
                },
            )
        elif kind == "emote":
            event = self.base_event(
                "m.room.message",
                sender.user_id,
                ts,
                {"msgtype": "m.emote", "body": self.text(2, 12)},
            )
        elif kind == "notice":
            event = self.base_event(
                "m.room.message",
                sender.user_id,
                ts,
                {"msgtype": "m.notice", "body": self.text(4, 30)},
            )
        elif kind == "reply":
            target = rng.choice(messages[-10:])
            event = self.base_event(
                "m.room.message",
                sender.user_id,
                ts,
                {
                    "msgtype": "m.text",
                    "body": self.text(2, 25),
                    "m.relates_to": {"m.in_reply_to": {"event_id": target["event_id"]}},
                },
            )
        elif kind == "reaction":
            target = rng.choice(messages[-10:])
            event = self.base_event(
                "m.reaction",
                sender.user_id,
                ts,
                {
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": target["event_id"],
                        "key": rng.choice(_REACTION_KEYS),
                    }
                },
            )
        elif kind == "edit":
            target = rng.choice(messages[-5:])
            body = self.text(2, 30)
            event = self.base_event(
                "m.room.message",
                target["sender"],
                ts,
                {
                    "msgtype": "m.text",
                    "body": f"* {body}",
                    "m.new_content": {"msgtype": "m.text", "body": body},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": target["event_id"]},
                },
            )
        elif kind == "redaction":
            target = rng.choice(messages[-10:])
            event = self.base_event(
                "m.room.redaction",
                target["sender"],
                ts,
                {"redacts": target["event_id"], "reason": "Spam"},
            )
            event["redacts"] = target["event_id"]
            # The server sends the target already redacted.
            target["content"] = {}
            target["unsigned"]["redacted_because"] = {
                k: v for k, v in event.items() if k != "unsigned"
            }
            messages.remove(target)
        else:
            change = rng.choice(("topic", "join", "leave", "rename"))
            if change == "topic":
                event = self.state_event(
                    "m.room.topic", "", sender.user_id, ts, {"topic": self.text(5, 30)}
                )
            else:
                user = rng.choice(others)
                content = self.member_content(user, "leave" if change == "leave" else "join")
                if change == "rename":
                    content["displayname"] = user.displayname + " (away)"
                if change == "leave":
                    content.pop("displayname", None)
                    content.pop("avatar_url", None)
                event = self.state_event("m.room.member", user.user_id, user.user_id, ts, content)
                event["unsigned"]["prev_content"] = self.member_content(user)
        if sender is self.own and "state_key" not in event and rng.random() < 0.7:
            self.txn += 1
            event["unsigned"]["transaction_id"] = f"m{NOW_MS - 5 * DAY_MS + self.txn}.{self.txn}"
        return event

    def ephemeral(self, timeline: list[Event], members: list[_User]) -> list[Event]:
        rng = self.rng
        typing = [
            u.user_id
            for u in rng.sample(members[1:], min(len(members) - 1, rng.choice((0, 0, 0, 1, 2))))
        ]
        receipts: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        for user in rng.sample(members, min(len(members), rng.randint(1, 6))):
            if not timeline:
                break
            event = rng.choice(timeline[-5:])
            data: dict[str, Any] = {"ts": event["origin_server_ts"] + rng.randint(100, 600_000)}
            if rng.random() < 0.3:
                data["thread_id"] = "main"
            receipt_type = "m.read.private" if user is self.own and rng.random() < 0.3 else "m.read"
            receipts.setdefault(event["event_id"], {}).setdefault(receipt_type, {})[
                user.user_id
            ] = data
        return [
            {"type": "m.typing", "content": {"user_ids": typing}},
            {"type": "m.receipt", "content": receipts},
        ]

    def room_account_data(self, timeline: list[Event], kind: str) -> list[Event]:
        rng = self.rng
        events: list[Event] = []
        if timeline:
            events.append(
                {"type": "m.fully_read", "content": {"event_id": rng.choice(timeline)["event_id"]}}
            )
        if rng.random() < 0.12:
            tag = rng.choice(("m.favourite", "m.lowpriority", "u.work", "u.family"))
            events.append(
                {"type": "m.tag", "content": {"tags": {tag: {"order": round(rng.random(), 3)}}}}
            )
        if kind == "dm" and rng.random() < 0.1:
            events.append({"type": "m.marked_unread", "content": {"unread": True}})
        return events

    def token(self, prefix: str) -> str:
        r = self.rng
        return f"{prefix}{r.randint(1, 999)}-{r.randint(10**6, 10**8)}_{r.randint(0, 9999)}_{r.randint(0, 999)}_1_1_1_{r.randint(1, 9999)}_0_1"

    # -- the response ----------------------------------------------------------------

    def sync(self) -> dict[str, Any]:
        join = dict(self.room(i) for i in range(self.room_count))
        return {
            "next_batch": self.token("s"),
            "account_data": {
                "events": [
                    {"type": "m.direct", "content": self.direct},
                    {"type": "m.ignored_user_list", "content": {"ignored_users": {}}},
                    {
                        "type": "m.push_rules",
                        "content": {
                            "global": {
                                "override": [
                                    {
                                        "rule_id": ".m.rule.master",
                                        "default": True,
                                        "enabled": False,
                                        "conditions": [],
                                        "actions": [],
                                    }
                                ],
                                "content": [],
                                "room": [],
                                "sender": [],
                                "underride": [
                                    {
                                        "rule_id": ".m.rule.message",
                                        "default": True,
                                        "enabled": True,
                                        "conditions": [
                                            {
                                                "kind": "event_match",
                                                "key": "type",
                                                "pattern": "m.room.message",
                                            }
                                        ],
                                        "actions": ["notify"],
                                    }
                                ],
                            }
                        },
                    },
                ]
            },
            "presence": {
                "events": [
                    {
                        "type": "m.presence",
                        "sender": u.user_id,
                        "content": {
                            "presence": "online",
                            "last_active_ago": 2478593,
                            "currently_active": False,
                        },
                    }
                    for u in self.users[:20]
                ]
            },
            "to_device": {"events": []},
            "device_lists": {"changed": [u.user_id for u in self.users[:30]], "left": []},
            "device_one_time_keys_count": {"signed_curve25519": 50},
            "device_unused_fallback_key_types": ["signed_curve25519"],
            "rooms": {"join": join, "invite": {}, "leave": {}, "knock": {}},
        }


def build_sync(seed: int = DEFAULT_SEED, rooms: int = DEFAULT_ROOMS) -> dict[str, Any]:
    """The synthetic ``/sync`` response as a decoded JSON object."""
    return _Generator(seed, rooms).sync()


@lru_cache(maxsize=4)
def initial_sync(seed: int = DEFAULT_SEED, rooms: int = DEFAULT_ROOMS) -> bytes:
    """The synthetic ``/sync`` response as the raw bytes a server sends (compact UTF-8 JSON)."""
    doc = build_sync(seed, rooms)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class PayloadStats:
    """Figures of a payload."""

    size_bytes: int
    rooms: int
    state_events: int
    timeline_events: int
    ephemeral_events: int
    account_data_events: int
    by_type: dict[str, int]

    @property
    def room_events(self) -> int:
        """State plus timeline events: what the cache stores as events."""
        return self.state_events + self.timeline_events


def payload_stats(raw: bytes) -> PayloadStats:
    """Count what a payload holds."""
    doc = json.loads(raw)
    join = doc["rooms"]["join"]
    state = timeline = ephemeral = account = 0
    by_type: dict[str, int] = {}
    for room in join.values():
        for section in ("state", "timeline"):
            for event in room[section]["events"]:
                key = event["type"]
                if key == "m.room.message":
                    key += "/" + event["content"].get("msgtype", "redacted")
                by_type[key] = by_type.get(key, 0) + 1
        state += len(room["state"]["events"])
        timeline += len(room["timeline"]["events"])
        ephemeral += len(room["ephemeral"]["events"])
        account += len(room["account_data"]["events"])
    account += len(doc["account_data"]["events"])
    return PayloadStats(
        len(raw), len(join), state, timeline, ephemeral, account, dict(sorted(by_type.items()))
    )


def main(argv: list[str] | None = None) -> int:
    """Print the payload's figures (``--write FILE`` also saves it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    raw = initial_sync()
    stats = payload_stats(raw)
    print(
        f"synthetic /sync: {stats.size_bytes:,} bytes ({stats.size_bytes / 1e6:.2f} MB), {stats.rooms:,} joined rooms"
    )
    print(
        f"  room events {stats.room_events:,} (state {stats.state_events:,}, timeline {stats.timeline_events:,}); "
        f"ephemeral {stats.ephemeral_events:,}; account data {stats.account_data_events:,}"
    )
    for event_type, count in stats.by_type.items():
        print(f"  {event_type:<32} {count:>7,}")
    if len(args) == 2 and args[0] == "--write":
        with open(args[1], "wb") as handle:
            handle.write(raw)
        print(f"written to {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
