"""A deterministic account for UI snapshots: fixed events and times, no real server.

The snapshots must not change from run to run, so this builds a profile on disk
(session, token in an in-memory keyring, a cache filled from a fixed ``/sync``
response) and an ``httpx.MockTransport`` that answers the few requests the UI makes.
Behaviour that needs a real server is tested against Synapse elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import keyring
from keyring.backend import KeyringBackend

from tui_client.engine.client import CACHE_FILE, SESSION_FILE, SessionInfo
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore
from tui_client.protocol.sync import parse_sync

ME = "@alice:example.org"
BASE_TS = 1795770000000  # 2026-11-27 08:20:00 UTC
PROJECT_SPACE = "!space0000000000000000000000000000000000000005"
TEAM_SPACE = "!teamspace00000000000000000000000000000000007"
DESIGN = "!design0000000000000000000000000000000000008"
STANDUP = "!standup000000000000000000000000000000000009"
HIDDEN = "!hidden0000000000000000000000000000000000010"
OTHER_SPACE = "!otherspace00000000000000000000000000000011"
MEMBERS_ONLY = "!membersonly0000000000000000000000000000012"


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps secrets in memory (tests only)."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


def use_memory_keyring() -> MemoryKeyring:
    """Install an in-memory keyring for this process and return it."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


class Clock:
    """Event IDs and timestamps that advance deterministically."""

    def __init__(self) -> None:
        self.ts = BASE_TS
        self.n = 0

    def event(
        self, room: str, sender: str, event_type: str, content: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        self.n += 1
        self.ts += 47_000
        event = {
            "event_id": f"$event{self.n:04d}{room[1:6]}",
            "type": event_type,
            "sender": sender,
            "origin_server_ts": self.ts,
            "content": content,
            "unsigned": {},
        }
        event.update(extra)
        return event


def _member(
    clock: Clock,
    room: str,
    user: str,
    name: str,
    membership: str = "join",
    sender: str | None = None,
) -> dict[str, Any]:
    return clock.event(
        room,
        sender or user,
        "m.room.member",
        {"membership": membership, "displayname": name},
        state_key=user,
    )


def _text(clock: Clock, room: str, sender: str, body: str, **content: Any) -> dict[str, Any]:
    return clock.event(
        room, sender, "m.room.message", {"msgtype": "m.text", "body": body, **content}
    )


def _reaction(
    clock: Clock, room: str, sender: str, target: dict[str, Any], key: str
) -> dict[str, Any]:
    relates = {"rel_type": "m.annotation", "event_id": target["event_id"], "key": key}
    return clock.event(room, sender, "m.reaction", {"m.relates_to": relates})


def build_sync(extra_rooms: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The fixed initial sync: a busy group room, a DM, an encrypted room, an invite, a space."""
    clock = Clock()
    general = "!general0000000000000000000000000000000000001"
    dm = "!dmwithbob000000000000000000000000000000000002"
    secret = "!secretplans0000000000000000000000000000000003"
    random_room = "!random00000000000000000000000000000000000004"
    space = "!space0000000000000000000000000000000000000005"
    book = "!bookclub000000000000000000000000000000000006"

    def state(
        room: str,
        creator: str,
        name: str | None,
        topic: str | None = None,
        encrypted: bool = False,
        space_type: bool = False,
    ) -> list[dict[str, Any]]:
        events = [
            clock.event(
                room,
                creator,
                "m.room.create",
                {"room_version": "12", **({"type": "m.space"} if space_type else {})},
                state_key="",
            ),
            clock.event(
                room,
                creator,
                "m.room.power_levels",
                {"users": {}, "users_default": 0, "events_default": 0, "state_default": 50},
                state_key="",
            ),
            clock.event(
                room,
                creator,
                "m.room.join_rules",
                {"join_rule": "public" if not encrypted else "invite"},
                state_key="",
            ),
        ]
        if name:
            events.append(clock.event(room, creator, "m.room.name", {"name": name}, state_key=""))
        if topic:
            events.append(
                clock.event(room, creator, "m.room.topic", {"topic": topic}, state_key="")
            )
        if encrypted:
            events.append(
                clock.event(
                    room,
                    creator,
                    "m.room.encryption",
                    {"algorithm": "m.megolm.v1.aes-sha2"},
                    state_key="",
                )
            )
        return events

    g_state = state(general, ME, "General", "Everything and nothing — be kind")
    g_state += [
        _member(clock, general, ME, "Alice"),
        _member(clock, general, "@bob:example.org", "Bob"),
    ]
    g_state += [
        _member(clock, general, "@carol:example.org", "Carol"),
        _member(clock, general, "@helper:example.org", "Helper bot"),
    ]
    timeline: list[dict[str, Any]] = []
    hello = _text(clock, general, "@bob:example.org", "Good morning everyone!")
    timeline.append(hello)
    timeline.append(_text(clock, general, ME, "Morning Bob. Did the release go out?"))
    release = _text(
        clock,
        general,
        "@bob:example.org",
        "It did. Changelog is in the usual place, and the benchmarks look good.",
    )
    timeline.append(release)
    timeline.append(_reaction(clock, general, "@carol:example.org", release, "🎉"))
    timeline.append(_reaction(clock, general, ME, release, "🎉"))
    timeline.append(_reaction(clock, general, "@bob:example.org", release, "👍"))
    question = _text(
        clock, general, "@carol:example.org", "Can someone review my patch for the sync loop?"
    )
    timeline.append(question)
    reply = _text(
        clock,
        general,
        ME,
        "Sure, I'll take a look after lunch.",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": question["event_id"]}}},
    )
    timeline.append(reply)
    typo = _text(clock, general, "@bob:example.org", "The meeting is at 3pm")
    timeline.append(typo)
    timeline.append(
        _text(
            clock,
            general,
            "@bob:example.org",
            "* The meeting is at 4pm",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "The meeting is at 4pm"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": typo["event_id"]},
            },
        )
    )
    timeline.append(
        clock.event(
            general,
            "@carol:example.org",
            "m.room.message",
            {"msgtype": "m.emote", "body": "waves at everyone"},
        )
    )
    oops = _text(clock, general, "@carol:example.org", "oops, wrong room")
    timeline.append(oops)
    timeline.append(
        clock.event(
            general,
            "@carol:example.org",
            "m.room.redaction",
            {"redacts": oops["event_id"]},
            redacts=oops["event_id"],
        )
    )
    root = _text(clock, general, ME, "Thread: ideas for the next sprint")
    timeline.append(root)
    for n, text in enumerate(("Spaces view", "Key backup", "Faster start")):
        timeline.append(
            _text(
                clock,
                general,
                ["@bob:example.org", "@carol:example.org", ME][n],
                text,
                **{"m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"]}},
            )
        )
    reminder = clock.event(
        general,
        "@helper:example.org",
        "m.room.message",
        {"msgtype": "m.notice", "body": "Reminder: stand-up in 10 minutes."},
    )
    timeline.append(reminder)
    literal = _text(
        clock,
        general,
        "@bob:example.org",
        "Literal markup stays literal: [bold]not bold[/bold] and [@click=app.quit]not a link[/]",
    )
    timeline.append(literal)
    # Bob and Carol have read up to Bob's message (shown under it).
    read_up_to = {
        literal["event_id"]: {
            "m.read": {"@bob:example.org": {"ts": clock.ts}, "@carol:example.org": {"ts": clock.ts}}
        }
    }
    timeline.append(_member(clock, general, "@dave:example.org", "Dave"))
    timeline.append(
        _text(
            clock,
            general,
            "@dave:example.org",
            "Hi all, just joined. This is a longer message to show how the timeline wraps text that does not fit on one line of the terminal.",
        )
    )

    dm_state = state(dm, "@bob:example.org", None) + [
        _member(clock, dm, ME, "Alice"),
        _member(clock, dm, "@bob:example.org", "Bob"),
    ]
    dm_timeline = [
        _text(clock, dm, "@bob:example.org", "Lunch today?"),
        _text(clock, dm, ME, "Yes! 12:30?"),
    ]
    secret_state = state(secret, ME, "Secret plans", "Encrypted", encrypted=True) + [
        _member(clock, secret, ME, "Alice")
    ]
    secret_timeline = [
        clock.event(
            secret,
            "@bob:example.org",
            "m.room.encrypted",
            {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "AwgA",
                "session_id": "s",
                "sender_key": "k",
                "device_id": "D",
            },
        )
    ]
    random_state = state(random_room, ME, "Random") + [_member(clock, random_room, ME, "Alice")]
    random_timeline = [_text(clock, random_room, "@carol:example.org", "Anyone seen my cat?")]
    space_state = state(space, ME, "Project Space", space_type=True) + [
        _member(clock, space, ME, "Alice")
    ]
    team = TEAM_SPACE

    def child(parent: str, room: str, order: str, suggested: bool = False) -> dict[str, Any]:
        content: dict[str, Any] = {"via": ["example.org"], "order": order}
        if suggested:
            content["suggested"] = True
        return clock.event(parent, ME, "m.space.child", content, state_key=room)

    space_state += [
        child(space, general, "10", suggested=True),
        child(space, random_room, "20"),
        child(space, DESIGN, "25", suggested=True),
        child(space, team, "30"),
    ]
    team_state = state(team, ME, "Team Space", space_type=True) + [
        _member(clock, team, ME, "Alice"),
        child(team, STANDUP, "10"),
    ]

    rooms: dict[str, Any] = {
        general: {
            "state": {"events": g_state},
            "timeline": {"events": timeline, "limited": False, "prev_batch": "p1"},
            "ephemeral": {"events": [{"type": "m.receipt", "content": read_up_to}]},
            # Alice had read up to the reminder: what follows is new to her.
            "account_data": {
                "events": [{"type": "m.fully_read", "content": {"event_id": reminder["event_id"]}}]
            },
            "summary": {"m.joined_member_count": 5, "m.invited_member_count": 0},
            "unread_notifications": {"notification_count": 0, "highlight_count": 0},
        },
        dm: {
            "state": {"events": dm_state},
            "timeline": {"events": dm_timeline, "limited": False, "prev_batch": "p2"},
            "summary": {
                "m.heroes": ["@bob:example.org"],
                "m.joined_member_count": 2,
                "m.invited_member_count": 0,
            },
            "unread_notifications": {"notification_count": 1, "highlight_count": 0},
        },
        secret: {
            "state": {"events": secret_state},
            "timeline": {"events": secret_timeline, "limited": False, "prev_batch": "p3"},
            "summary": {"m.joined_member_count": 2},
            "unread_notifications": {"notification_count": 3, "highlight_count": 1},
        },
        random_room: {
            "state": {"events": random_state},
            "timeline": {"events": random_timeline, "limited": False, "prev_batch": "p4"},
            "summary": {"m.joined_member_count": 3},
        },
        space: {"state": {"events": space_state}, "timeline": {"events": [], "limited": False}},
        team: {"state": {"events": team_state}, "timeline": {"events": [], "limited": False}},
    }
    # Last of all (the other rooms' times stay as they were): a formatted message, as
    # Element sends one, with a pill, bold, inline code, a quote and a list.
    timeline.append(
        _text(
            clock,
            general,
            "@carol:example.org",
            "Bob: release notes for **2.1** are up, run `make bench` first.\n> Faster start, fewer stalls\n\n- spaces view\n- key backup",
            format="org.matrix.custom.html",
            formatted_body=(
                '<p><a href="https://matrix.to/#/@bob:example.org">Bob</a>: release notes for <strong>2.1</strong> are up, '
                "run <code>make bench</code> first.</p>"
                "<blockquote><p>Faster start, <em>fewer</em> stalls</p></blockquote>"
                "<ul><li>spaces view</li><li>key backup</li></ul>"
            ),
        )
    )
    rooms.update(extra_rooms or {})
    invite = {
        book: {
            "invite_state": {
                "events": [
                    {
                        "type": "m.room.name",
                        "state_key": "",
                        "sender": "@carol:example.org",
                        "content": {"name": "Book club"},
                    },
                    {
                        "type": "m.room.member",
                        "state_key": ME,
                        "sender": "@carol:example.org",
                        "content": {"membership": "invite"},
                        "origin_server_ts": clock.ts + 1000,
                    },
                ]
            }
        }
    }
    return {
        "next_batch": "s1",
        "rooms": {"join": rooms, "invite": invite},
        "account_data": {"events": [{"type": "m.direct", "content": {"@bob:example.org": [dm]}}]},
    }


def thread_roots(room_id: str) -> list[dict[str, Any]]:
    """``/threads`` of a room of the fixed sync: each root with the summary the server
    bundles (latest reply, count, whether we wrote in it), latest activity first."""
    events = build_sync()["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])
    replies: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        relation = event.get("content", {}).get("m.relates_to", {})
        if relation.get("rel_type") == "m.thread":
            replies.setdefault(relation["event_id"], []).append(event)
    roots = []
    for event in events:
        thread = replies.get(event.get("event_id", ""))
        if thread:
            summary = {
                "latest_event": thread[-1],
                "count": len(thread),
                "current_user_participated": any(e["sender"] == ME for e in [event, *thread]),
            }
            roots.append({**event, "unsigned": {"m.relations": {"m.thread": summary}}})
    return sorted(
        roots,
        key=lambda root: (
            -root["unsigned"]["m.relations"]["m.thread"]["latest_event"]["origin_server_ts"]
        ),
    )


def make_profile(
    base_dir: Path, sync: dict[str, Any] | None = None, profile: str = "default"
) -> Path:
    """A saved session whose cache already holds ``sync`` (the keyring must be set first)."""
    from tui_client.store.cache import Cache

    folder = profile_dir(profile, base_dir)
    info = SessionInfo(ME, "TESTDEVICE", "https://matrix.example.org")
    (folder / SESSION_FILE).write_text(json.dumps(info.to_json()))
    SecretStore(folder, ME).set("access_token", "secret-token")
    cache = Cache(folder / CACHE_FILE, own_user_id=ME)
    result = cache.ingest_sync(parse_sync(sync or build_sync()), {})
    cache.close()
    assert result.changed_rooms
    return folder


GENERAL_ID = "!general0000000000000000000000000000000000001"
RANDOM_ID = "!random00000000000000000000000000000000000004"


def _child_state(room_id: str, order: str, suggested: bool = False) -> dict[str, Any]:
    """An ``m.space.child`` state event of a /hierarchy chunk."""
    content: dict[str, Any] = {"via": ["example.org"], "order": order}
    if suggested:
        content["suggested"] = True
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "content": content,
        "sender": ME,
        "origin_server_ts": BASE_TS,
    }


def _chunk(
    room_id: str, name: str | None, members: int, topic: str | None = None, **extra: Any
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": members,
        "world_readable": False,
        "guest_can_join": False,
    }
    if name is not None:
        chunk["name"] = name
    if topic is not None:
        chunk["topic"] = topic
    chunk.update(extra)
    return chunk


# The public directory of example.org, as the snapshots show it. Names and topics are
# as hostile as anyone may make them: markup, escape sequences, bidi overrides.
DIRECTORY: list[dict[str, Any]] = [
    _chunk(
        "!matrixhq0000000000000000000000000000000001a",
        "Matrix HQ",
        24816,
        "The Official Matrix HQ: chat about Matrix, the protocol, clients and servers. "
        "Please keep the room friendly and on topic; see the code of conduct at matrix.org/legal before posting.",
        canonical_alias="#matrix:example.org",
        world_readable=True,
        join_rule="public",
    ),
    _chunk(
        GENERAL_ID,
        "General",
        5,
        "Everything and nothing — be kind",
        canonical_alias="#general:example.org",
        join_rule="public",
    ),
    _chunk(
        PROJECT_SPACE,
        "Project Space",
        3,
        "Everything about building the terminal client",
        room_type="m.space",
        canonical_alias="#project:example.org",
    ),
    _chunk(
        "!rust00000000000000000000000000000000000001b",
        "Rust",
        3120,
        "Rust programming: questions, news, crabs",
        canonical_alias="#rust:example.org",
        world_readable=True,
    ),
    _chunk(
        "!hostile0000000000000000000000000000000001c",
        "[bold]Not bold[/bold] \x1b[31mred\x1b[0m [@click=app.quit]",
        7,
        "markup [i]stays[/i] literal\nand \u202eRTL override is removed",
    ),
    _chunk(
        "!lounge000000000000000000000000000000000001d",
        "Encrypted lounge",
        41,
        "Knock to come in",
        join_rule="knock",
        encryption="m.megolm.v1.aes-sha2",
    ),
    _chunk(
        "!python00000000000000000000000000000000001e",
        "Python",
        2210,
        "The Python language and its ecosystem",
        canonical_alias="#python:example.org",
    ),
    _chunk(
        "!terminal000000000000000000000000000000001f",
        "Terminal clients",
        389,
        "TUIs for Matrix: iamb, gomuks, tui_client and friends",
        canonical_alias="#tui:example.org",
    ),
    _chunk(
        "!offtopic000000000000000000000000000000001g",
        None,
        96,
        "Unnamed: shown by its alias",
        canonical_alias="#offtopic:example.org",
    ),
    _chunk("!noname0000000000000000000000000000000001h", None, 2),
    _chunk(
        MEMBERS_ONLY,
        "Members only",
        8,
        "For the members of Other Space",
        join_rule="restricted",
        allowed_room_ids=[OTHER_SPACE],
    ),
]
# Rooms the server describes (room summaries) without listing them in the directory.
UNLISTED: list[dict[str, Any]] = [
    _chunk(
        OTHER_SPACE,
        "Other Space",
        30,
        "A space the user has not joined",
        room_type="m.space",
        join_rule="public",
    ),
]

# GET /hierarchy of the Project Space: a subspace, a suggested room not joined yet, a
# restricted room, and a child the server does not describe to this user.
HIERARCHY: list[dict[str, Any]] = [
    _chunk(
        PROJECT_SPACE,
        "Project Space",
        3,
        "Everything about building the terminal client",
        room_type="m.space",
        children_state=[
            _child_state(GENERAL_ID, "10", suggested=True),
            _child_state(RANDOM_ID, "20"),
            _child_state(DESIGN, "25", suggested=True),
            _child_state(TEAM_SPACE, "30"),
            _child_state(HIDDEN, "40"),
        ],
    ),
    _chunk(
        GENERAL_ID,
        "General",
        5,
        "Everything and nothing — be kind",
        join_rule="public",
        children_state=[],
    ),
    _chunk(RANDOM_ID, "Random", 3, join_rule="public", children_state=[]),
    _chunk(
        DESIGN,
        "Design",
        12,
        "Mockups, themes and key bindings",
        join_rule="public",
        world_readable=True,
        children_state=[],
    ),
    _chunk(
        TEAM_SPACE,
        "Team Space",
        4,
        room_type="m.space",
        join_rule="public",
        children_state=[
            _child_state(STANDUP, "10"),
        ],
    ),
    _chunk(
        STANDUP,
        "Standup",
        4,
        "Daily standup at 10:00",
        join_rule="restricted",
        allowed_room_ids=[TEAM_SPACE],
        encryption="m.megolm.v1.aes-sha2",
        children_state=[],
    ),
]


# GET /devices: our sessions (this one and three others, one named with markup and an escape).
DEVICES: list[dict[str, Any]] = [
    {
        "device_id": "TESTDEVICE",
        "display_name": "tui_client on laptop",
        "last_seen_ip": "192.0.2.10",
        "last_seen_ts": BASE_TS + 3_600_000,
    },
    {
        "device_id": "PHONEDEVICE",
        "display_name": "Element on phone",
        "last_seen_ip": "198.51.100.7",
        "last_seen_ts": BASE_TS - 86_400_000,
    },
    {
        "device_id": "TABLETDEVICE",
        "display_name": "Element on tablet",
        "last_seen_ip": "198.51.100.8",
        "last_seen_ts": BASE_TS - 3 * 86_400_000,
    },
    {
        "device_id": "OLDLAPTOP",
        "display_name": "[bold]Old[/bold] laptop \x1b[31m",
        "last_seen_ip": "203.0.113.5",
        "last_seen_ts": BASE_TS - 40 * 86_400_000,
    },
]


def synthetic_directory(count: int) -> list[dict[str, Any]]:
    """``count`` plain public rooms (for paging through a long directory)."""
    return [
        _chunk(
            f"!bulk{n:06d}:big.example",
            f"Room {n:05d}",
            count - n,
            f"Topic of room {n}",
            canonical_alias=f"#room{n}:big.example",
        )
        for n in range(count)
    ]


class FakeHomeserver:
    """Answers the UI's requests: sync long-polls, reads, sends, members, the room
    directory (``big.example`` lists :data:`BIG_DIRECTORY` rooms, ``slow.example``
    never answers, ``down.example`` fails), space hierarchies, summaries and joins."""

    BIG_DIRECTORY = 300

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sent: list[dict[str, Any]] = []
        self.counter = 0
        self.joined: list[str] = []
        self._big: list[dict[str, Any]] | None = None
        self._undelivered: list[str] = []
        #: Media ID -> bytes served by the download endpoints.
        self.media: dict[str, bytes] = {}
        #: Media IDs whose download never answers (an image that stays loading).
        self.held_media: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._batch = 1

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/sync"):
            return await self._sync(request)
        if "/send/" in path:
            self.counter += 1
            self.sent.append(json.loads(request.content))
            return httpx.Response(200, json={"event_id": f"$sent{self.counter}"})
        if "/media/download/" in path or "/media/v3/download/" in path:
            media_id = unquote(path.rsplit("/", 1)[1])
            if media_id in self.held_media:
                await asyncio.sleep(3600)
            if media_id in self.media:
                return httpx.Response(200, content=self.media[media_id])
            return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "Not found"})
        if path.endswith("/members"):
            return httpx.Response(200, json={"chunk": []})
        if path.endswith("/v3/devices") and request.method == "GET":
            return httpx.Response(200, json={"devices": DEVICES})
        if path.endswith("/messages"):
            return httpx.Response(200, json={"chunk": [], "start": "p1"})
        if path.endswith("/threads"):
            room_id = unquote(path.split("/rooms/", 1)[1].split("/", 1)[0])
            return httpx.Response(200, json={"chunk": thread_roots(room_id)})
        if path.endswith("/publicRooms"):
            return await self._public_rooms(request)
        if path.endswith("/hierarchy"):
            return self._hierarchy(request)
        if "/room_summary/" in path:
            target = unquote(path.rsplit("/", 1)[1])
            for room in DIRECTORY + HIERARCHY + UNLISTED:
                if target in (room["room_id"], room.get("canonical_alias")):
                    summary = {k: v for k, v in room.items() if k != "children_state"}
                    return httpx.Response(200, json=summary)
            return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "Room not found"})
        if "/join/" in path:
            target = unquote(path.rsplit("/", 1)[1])
            if target == MEMBERS_ONLY and OTHER_SPACE not in self.joined:
                error = "You do not belong to any of the required rooms/spaces to join this room."
                return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": error})
            self.joined.append(target)
            self._undelivered.append(target)
            if self._wake is not None:
                self._wake.set()
            return httpx.Response(200, json={"room_id": target})
        return httpx.Response(200, json={})

    async def _sync(self, request: httpx.Request) -> httpx.Response:
        # Long polls wait until a join gives them something to deliver: the joined room.
        if request.url.params.get("timeout", "0") != "0" and not self._undelivered:
            self._wake = self._wake or asyncio.Event()
            self._wake.clear()
            await asyncio.wait_for(self._wake.wait(), 3600)
        if not self._undelivered:
            return httpx.Response(200, json={"next_batch": "s1"})
        self._batch += 1
        rooms = {room_id: self._joined_room(room_id) for room_id in self._undelivered}
        self._undelivered.clear()
        return httpx.Response(200, json={"next_batch": f"s{self._batch}", "rooms": {"join": rooms}})

    def _joined_room(self, room_id: str) -> dict[str, Any]:
        known = next(
            (r for r in DIRECTORY + HIERARCHY + UNLISTED if r["room_id"] == room_id),
            {"room_id": room_id},
        )
        create: dict[str, Any] = {"room_version": "12"}
        if known.get("room_type"):
            create["type"] = known["room_type"]

        def state(event_type: str, content: dict[str, Any], key: str = "") -> dict[str, Any]:
            return {
                "event_id": f"${event_type}-{room_id[1:12]}",
                "type": event_type,
                "state_key": key,
                "sender": ME,
                "origin_server_ts": BASE_TS + 3_600_000,
                "content": content,
            }

        events = [
            state("m.room.create", create),
            state("m.room.member", {"membership": "join", "displayname": "Alice"}, ME),
        ]
        if known.get("name"):
            events.append(state("m.room.name", {"name": known["name"]}))
        events.append(state("m.room.join_rules", {"join_rule": known.get("join_rule", "public")}))
        return {
            "state": {"events": events},
            "timeline": {"events": [], "limited": False},
            "summary": {"m.joined_member_count": 1},
        }

    async def _public_rooms(self, request: httpx.Request) -> httpx.Response:
        server = request.url.params.get("server")
        if server == "slow.example":
            await asyncio.sleep(3600)
        if server == "down.example":
            return httpx.Response(
                502, json={"errcode": "M_UNKNOWN", "error": "Failed to fetch room list"}
            )
        if server == "big.example":
            if self._big is None:
                self._big = synthetic_directory(self.BIG_DIRECTORY)
            rooms = self._big
        else:
            rooms = DIRECTORY
        body = json.loads(request.content or b"{}")
        term = str(body.get("filter", {}).get("generic_search_term", "")).casefold()
        if term:
            rooms = [
                r
                for r in rooms
                if any(
                    term in str(r.get(k, "")).casefold()
                    for k in ("name", "topic", "canonical_alias")
                )
            ]
        limit = int(body.get("limit", 100))
        start = int(body.get("since", "0") or 0)
        page = rooms[start : start + limit]
        answer: dict[str, Any] = {"chunk": page, "total_room_count_estimate": len(rooms)}
        if start + limit < len(rooms):
            answer["next_batch"] = str(start + limit)
        return httpx.Response(200, json=answer)

    def _hierarchy(self, request: httpx.Request) -> httpx.Response:
        space = unquote(request.url.path.rsplit("/", 2)[1])
        if space != PROJECT_SPACE:
            return httpx.Response(
                403,
                json={"errcode": "M_FORBIDDEN", "error": "You are not allowed to view this room."},
            )
        depth = request.url.params.get("max_depth")
        rooms = (
            HIERARCHY
            if depth is None or int(depth) > 1
            else [r for r in HIERARCHY if r["room_id"] != STANDUP]
        )
        return httpx.Response(200, json={"rooms": rooms})

    def transport(self) -> httpx.MockTransport:
        """An httpx transport backed by this fake."""
        return httpx.MockTransport(self.handle)
