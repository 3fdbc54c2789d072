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

import httpx
import keyring
from keyring.backend import KeyringBackend

from tui_client.engine.client import CACHE_FILE, SESSION_FILE, SessionInfo
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore
from tui_client.protocol.sync import parse_sync

ME = "@alice:example.org"
BASE_TS = 1795770000000  # 2026-11-27 08:20:00 UTC


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

    def event(self, room: str, sender: str, event_type: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
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


def _member(clock: Clock, room: str, user: str, name: str, membership: str = "join", sender: str | None = None) -> dict[str, Any]:
    return clock.event(room, sender or user, "m.room.member", {"membership": membership, "displayname": name}, state_key=user)


def _text(clock: Clock, room: str, sender: str, body: str, **content: Any) -> dict[str, Any]:
    return clock.event(room, sender, "m.room.message", {"msgtype": "m.text", "body": body, **content})


def build_sync(extra_rooms: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The fixed initial sync: a busy group room, a DM, an encrypted room, an invite, a space."""
    clock = Clock()
    general = "!general0000000000000000000000000000000000001"
    dm = "!dmwithbob000000000000000000000000000000000002"
    secret = "!secretplans0000000000000000000000000000000003"
    random_room = "!random00000000000000000000000000000000000004"
    space = "!space0000000000000000000000000000000000000005"
    book = "!bookclub000000000000000000000000000000000006"

    def state(room: str, creator: str, name: str | None, topic: str | None = None, encrypted: bool = False, space_type: bool = False) -> list[dict[str, Any]]:
        events = [
            clock.event(room, creator, "m.room.create", {"room_version": "12", **({"type": "m.space"} if space_type else {})}, state_key=""),
            clock.event(room, creator, "m.room.power_levels", {"users": {}, "users_default": 0, "events_default": 0, "state_default": 50}, state_key=""),
            clock.event(room, creator, "m.room.join_rules", {"join_rule": "public" if not encrypted else "invite"}, state_key=""),
        ]
        if name:
            events.append(clock.event(room, creator, "m.room.name", {"name": name}, state_key=""))
        if topic:
            events.append(clock.event(room, creator, "m.room.topic", {"topic": topic}, state_key=""))
        if encrypted:
            events.append(clock.event(room, creator, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, state_key=""))
        return events

    g_state = state(general, ME, "General", "Everything and nothing — be kind")
    g_state += [_member(clock, general, ME, "Alice"), _member(clock, general, "@bob:example.org", "Bob")]
    g_state += [_member(clock, general, "@carol:example.org", "Carol"), _member(clock, general, "@helper:example.org", "Helper bot")]
    timeline: list[dict[str, Any]] = []
    hello = _text(clock, general, "@bob:example.org", "Good morning everyone!")
    timeline.append(hello)
    timeline.append(_text(clock, general, ME, "Morning Bob. Did the release go out?"))
    release = _text(clock, general, "@bob:example.org", "It did. Changelog is in the usual place, and the benchmarks look good.")
    timeline.append(release)
    timeline.append(clock.event(general, "@carol:example.org", "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": release["event_id"], "key": "🎉"}}))
    timeline.append(clock.event(general, ME, "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": release["event_id"], "key": "🎉"}}))
    timeline.append(clock.event(general, "@bob:example.org", "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": release["event_id"], "key": "👍"}}))
    question = _text(clock, general, "@carol:example.org", "Can someone review my patch for the sync loop?")
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
            **{"m.new_content": {"msgtype": "m.text", "body": "The meeting is at 4pm"}, "m.relates_to": {"rel_type": "m.replace", "event_id": typo["event_id"]}},
        )
    )
    timeline.append(clock.event(general, "@carol:example.org", "m.room.message", {"msgtype": "m.emote", "body": "waves at everyone"}))
    oops = _text(clock, general, "@carol:example.org", "oops, wrong room")
    timeline.append(oops)
    timeline.append(clock.event(general, "@carol:example.org", "m.room.redaction", {"redacts": oops["event_id"]}, redacts=oops["event_id"]))
    root = _text(clock, general, ME, "Thread: ideas for the next sprint")
    timeline.append(root)
    for n, text in enumerate(("Spaces view", "Key backup", "Faster start")):
        timeline.append(_text(clock, general, ["@bob:example.org", "@carol:example.org", ME][n], text, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"]}}))
    timeline.append(clock.event(general, "@helper:example.org", "m.room.message", {"msgtype": "m.notice", "body": "Reminder: stand-up in 10 minutes."}))
    timeline.append(_text(clock, general, "@bob:example.org", "Literal markup stays literal: [bold]not bold[/bold] and [@click=app.quit]not a link[/]"))
    timeline.append(_member(clock, general, "@dave:example.org", "Dave"))
    timeline.append(_text(clock, general, "@dave:example.org", "Hi all, just joined. This is a longer message to show how the timeline wraps text that does not fit on one line of the terminal."))

    dm_state = state(dm, "@bob:example.org", None) + [_member(clock, dm, ME, "Alice"), _member(clock, dm, "@bob:example.org", "Bob")]
    dm_timeline = [_text(clock, dm, "@bob:example.org", "Lunch today?"), _text(clock, dm, ME, "Yes! 12:30?")]
    secret_state = state(secret, ME, "Secret plans", "Encrypted", encrypted=True) + [_member(clock, secret, ME, "Alice")]
    secret_timeline = [clock.event(secret, "@bob:example.org", "m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "session_id": "s", "sender_key": "k", "device_id": "D"})]
    random_state = state(random_room, ME, "Random") + [_member(clock, random_room, ME, "Alice")]
    random_timeline = [_text(clock, random_room, "@carol:example.org", "Anyone seen my cat?")]
    space_state = state(space, ME, "Project Space", space_type=True) + [_member(clock, space, ME, "Alice")]

    rooms: dict[str, Any] = {
        general: {
            "state": {"events": g_state},
            "timeline": {"events": timeline, "limited": False, "prev_batch": "p1"},
            "summary": {"m.joined_member_count": 5, "m.invited_member_count": 0},
            "unread_notifications": {"notification_count": 0, "highlight_count": 0},
        },
        dm: {
            "state": {"events": dm_state},
            "timeline": {"events": dm_timeline, "limited": False, "prev_batch": "p2"},
            "summary": {"m.heroes": ["@bob:example.org"], "m.joined_member_count": 2, "m.invited_member_count": 0},
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
    }
    rooms.update(extra_rooms or {})
    invite = {
        book: {
            "invite_state": {
                "events": [
                    {"type": "m.room.name", "state_key": "", "sender": "@carol:example.org", "content": {"name": "Book club"}},
                    {"type": "m.room.member", "state_key": ME, "sender": "@carol:example.org", "content": {"membership": "invite"}, "origin_server_ts": clock.ts + 1000},
                ]
            }
        }
    }
    return {
        "next_batch": "s1",
        "rooms": {"join": rooms, "invite": invite},
        "account_data": {"events": [{"type": "m.direct", "content": {"@bob:example.org": [dm]}}]},
    }


def make_profile(base_dir: Path, sync: dict[str, Any] | None = None, profile: str = "default") -> Path:
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


class FakeHomeserver:
    """Answers the UI's requests: sync long-polls, reads, sends, members."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sent: list[dict[str, Any]] = []
        self.counter = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/sync"):
            if request.url.params.get("timeout", "0") != "0":
                await asyncio.sleep(3600)
            return httpx.Response(200, json={"next_batch": "s1"})
        if "/send/" in path:
            self.counter += 1
            self.sent.append(json.loads(request.content))
            return httpx.Response(200, json={"event_id": f"$sent{self.counter}"})
        if path.endswith("/members"):
            return httpx.Response(200, json={"chunk": []})
        if path.endswith("/messages"):
            return httpx.Response(200, json={"chunk": [], "start": "p1"})
        return httpx.Response(200, json={})

    def transport(self) -> httpx.MockTransport:
        """An httpx transport backed by this fake."""
        return httpx.MockTransport(self.handle)
