"""Fill a demo homeserver with people, rooms, spaces and a believable history.

:func:`seed` registers five accounts (``alice`` is the human at the keyboard,
``bob``, ``carol`` and ``dave`` are her colleagues and ``helper`` is the demo bot)
and builds, through the Client-Server API with each user's own token:

* **General** (public, ``#general:localhost``, in the room directory): about sixty
  messages from several people with an emote, a bot notice, a reply, an edit,
  reactions, a deleted message, a thread with three replies, text that looks
  like markup or carries an ANSI escape (to show that both are displayed
  literally and safely), display name changes and a topic change;
* **Random** (public, ``#random:localhost``) with some chatter;
* a direct chat between alice and bob, and two between alice and the bot: a plain
  one and the end-to-end encrypted **Helper (encrypted)**, where the bot answers
  encrypted (``m.direct`` account data set on both sides);
* the space **Project Space** with the rooms **Design** and **Dev** (alice has
  not joined Dev: she can join it from the space) and the subspace
  **Team Space** holding **Standup**; every child points back with
  ``m.space.parent``;
* a pending invite for alice, from carol, to **Book club**;
* for the room directory, public rooms alice has not joined (**Rust**, **Python**,
  **Terminal clients**, **Board games**) and carol's public space **Community**
  with **Announcements** (suggested) and **Community lounge**, open to the
  space's members only (alice is offered to join Community first).

Seeding is idempotent: the resulting :class:`DemoWorld` is saved as
:data:`MARKER_FILE` in the server's directory, and later calls return it without
touching the server. Only the standard library is used.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final
from urllib.parse import quote

from .synapse import RegistrationError, SynapseServer

__all__ = [
    "DEMO_USERS",
    "GENERAL_TOPIC",
    "MARKER_FILE",
    "SECRET_DM_NAME",
    "DemoUser",
    "DemoWorld",
    "SeedError",
    "load_world",
    "seed",
]

MARKER_FILE: Final = "demo-world.json"
"""Written into the server directory once seeding has finished."""

_FORMAT_VERSION: Final = 1

GENERAL_TOPIC: Final = (
    "Welcome to the tui_client demo! Try replies, reactions, threads, /me and !help."
)
RANDOM_TOPIC: Final = "Off-topic chatter, lunch plans and everything else"
# (creator, name, alias, topic) of public rooms that alice has not joined.
DIRECTORY_ROOMS: Final = (
    ("dave", "Rust", "rust", "Rust programming: questions, news and crabs"),
    ("bob", "Python", "python", "The Python language and its ecosystem"),
    ("dave", "Terminal clients", "terminal", "TUIs for Matrix: share screenshots and key bindings"),
    (
        "carol",
        "Board games",
        "boardgames",
        "Friday nights: Settlers, Carcassonne, anything but Monopoly",
    ),
)
SPACE_TOPIC: Final = "Everything about building the terminal client"
BOOK_CLUB_TOPIC: Final = "This month: The Mythical Man-Month"
SECRET_DM_NAME: Final = "Helper (encrypted)"


@dataclass(frozen=True)
class _UserSpec:
    localpart: str
    password: str
    initial_name: str
    final_name: str


# Display names that change during the seeded history end on ``final_name``.
_USER_SPECS: Final = (
    _UserSpec("alice", "alice-demo-password", "Alice", "Alice"),
    _UserSpec("bob", "bob-demo-password", "Bob", "Bob"),
    _UserSpec("carol", "carol-demo-password", "Carol", "Carol 📚"),
    _UserSpec("dave", "dave-demo-password", "Dave", "Dave 🚲"),
    _UserSpec("helper", "helper-demo-password", "Helper", "Helper"),
)

DEMO_USERS: Final = tuple(spec.localpart for spec in _USER_SPECS)
"""Localparts of the seeded accounts; ``alice`` is the human, ``helper`` the bot."""


class SeedError(RuntimeError):
    """The server refused a seeding request (the world is then only partly built)."""


@dataclass(frozen=True)
class DemoUser:
    """A seeded account and the access token seeding used (it stays valid)."""

    localpart: str
    user_id: str
    password: str
    display_name: str
    access_token: str
    device_id: str


@dataclass(frozen=True)
class DemoWorld:
    """What :func:`seed` built.

    ``rooms`` maps room names (``General``, ``Random``, ``Project Space``,
    ``Design``, ``Dev``, ``Team Space``, ``Standup``, ``Book club``, and the directory's
    ``Rust``, ``Python``, ``Terminal clients``, ``Board games``, ``Community``,
    ``Announcements``, ``Community lounge``) to room IDs;
    ``dms`` maps the other party's localpart (``bob``, ``helper``) to the room ID
    of alice's direct chat with them; ``events`` names a few notable event IDs
    (``thread_root``, ``edited``, ``redacted``, ``replied_to``...).
    ``homeserver`` is the server's current base URL (not saved: the port may
    change between runs).
    """

    server_name: str
    users: dict[str, DemoUser]
    rooms: dict[str, str]
    dms: dict[str, str]
    events: dict[str, str] = field(default_factory=dict)
    homeserver: str = ""
    seeded_at: float = 0.0

    @property
    def alice(self) -> DemoUser:
        """The human's account."""
        return self.users["alice"]

    @property
    def bot(self) -> DemoUser:
        """The bot's account."""
        return self.users["helper"]

    def to_json(self) -> dict[str, Any]:
        """As saved in :data:`MARKER_FILE` (without ``homeserver``)."""
        data = asdict(self)
        data.pop("homeserver")
        data["format"] = _FORMAT_VERSION
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], homeserver: str) -> DemoWorld:
        """Read what :meth:`to_json` wrote; raises ``ValueError`` if it is not that."""
        try:
            if data.get("format") != _FORMAT_VERSION:
                raise ValueError(f"unknown demo world format {data.get('format')!r}")
            users = {name: DemoUser(**user) for name, user in data["users"].items()}
            return cls(
                server_name=str(data["server_name"]),
                users=users,
                rooms={str(k): str(v) for k, v in data["rooms"].items()},
                dms={str(k): str(v) for k, v in data["dms"].items()},
                events={str(k): str(v) for k, v in data.get("events", {}).items()},
                homeserver=homeserver,
                seeded_at=float(data.get("seeded_at", 0.0)),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed demo world: {error!r}") from error


def load_world(server: SynapseServer) -> DemoWorld | None:
    """The world saved in ``server``'s directory by an earlier :func:`seed`, if any."""
    path = server.base_dir / MARKER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise SeedError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise SeedError(f"{path} does not hold a demo world")
    try:
        world = DemoWorld.from_json(data, server.base_url)
    except ValueError as error:
        raise SeedError(f"{path}: {error}") from error
    if world.server_name != server.server_name:
        raise SeedError(f"{path} was seeded for {world.server_name!r}, not {server.server_name!r}")
    return world


def seed(server: SynapseServer) -> DemoWorld:
    """Build the demo world on a running ``server`` (or return the one built before).

    Raises :class:`SeedError` if the server refuses a request. A failed run
    leaves a half-built world without a marker; start again from an empty
    server directory.
    """
    existing = load_world(server)
    if existing is not None:
        return existing
    world = _Seeder(server).run()
    path = server.base_dir / MARKER_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(world.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return world


def _seg(value: str) -> str:
    """One percent-encoded path segment (room IDs, aliases, user and event IDs)."""
    return quote(value, safe="")


class _Seeder:
    """The requests that build the world, made as the user each step belongs to."""

    def __init__(self, server: SynapseServer) -> None:
        self.server = server
        self.hs = server.server_name
        self.users: dict[str, DemoUser] = {}
        self.rooms: dict[str, str] = {}
        self.dms: dict[str, str] = {}
        self.events: dict[str, str] = {}
        self._txn_prefix = f"seed-{secrets.token_hex(4)}"
        self._txn_counter = 0

    # -- plumbing -------------------------------------------------------------------

    def uid(self, localpart: str) -> str:
        return f"@{localpart}:{self.hs}"

    def call(
        self, who: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        token = self.users[who].access_token
        status, answer = self.server.request_json(method, path, body, token)
        if status != 200:
            raise SeedError(f"{method} {path} as {who} failed: HTTP {status} {answer}")
        return answer

    def _txn(self) -> str:
        self._txn_counter += 1
        return f"{self._txn_prefix}-{self._txn_counter}"

    def send(
        self, who: str, room: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        path = f"/_matrix/client/v3/rooms/{_seg(room)}/send/{_seg(event_type)}/{_seg(self._txn())}"
        event_id = self.call(who, "PUT", path, content).get("event_id")
        if not isinstance(event_id, str):
            raise SeedError(f"sending to {room} as {who}: no event_id in the answer")
        return event_id

    def say(self, who: str, room: str, body: str, **extra: Any) -> str:
        return self.send(who, room, {"msgtype": "m.text", "body": body, **extra})

    def emote(self, who: str, room: str, body: str) -> str:
        return self.send(who, room, {"msgtype": "m.emote", "body": body})

    def notice(self, who: str, room: str, body: str) -> str:
        return self.send(who, room, {"msgtype": "m.notice", "body": body})

    def reply(self, who: str, room: str, parent: str, body: str) -> str:
        return self.say(
            who, room, body, **{"m.relates_to": {"m.in_reply_to": {"event_id": parent}}}
        )

    def edit(self, who: str, room: str, original: str, new_body: str) -> str:
        return self.send(
            who,
            room,
            {
                "msgtype": "m.text",
                "body": f"* {new_body}",
                "m.new_content": {"msgtype": "m.text", "body": new_body},
                "m.relates_to": {"rel_type": "m.replace", "event_id": original},
            },
        )

    def react(self, who: str, room: str, target: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
        return self.send(who, room, content, "m.reaction")

    def in_thread(self, who: str, room: str, root: str, latest: str, body: str) -> str:
        # Thread replies carry a reply fallback to the thread's latest event, for
        # clients that do not show threads.
        relation = {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": latest},
        }
        return self.say(who, room, body, **{"m.relates_to": relation})

    def redact(self, who: str, room: str, event_id: str, reason: str) -> None:
        path = f"/_matrix/client/v3/rooms/{_seg(room)}/redact/{_seg(event_id)}/{_seg(self._txn())}"
        self.call(who, "PUT", path, {"reason": reason})

    def state(
        self, who: str, room: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> str:
        path = f"/_matrix/client/v3/rooms/{_seg(room)}/state/{_seg(event_type)}/{_seg(state_key)}"
        return str(self.call(who, "PUT", path, content).get("event_id", ""))

    def create(self, who: str, body: dict[str, Any]) -> str:
        room_id = self.call(who, "POST", "/_matrix/client/v3/createRoom", body).get("room_id")
        if not isinstance(room_id, str):
            raise SeedError(f"createRoom as {who}: no room_id in the answer")
        return room_id

    def join(self, who: str, room_or_alias: str) -> None:
        self.call(who, "POST", f"/_matrix/client/v3/join/{_seg(room_or_alias)}", {})

    def invite(self, who: str, room: str, localpart: str) -> None:
        path = f"/_matrix/client/v3/rooms/{_seg(room)}/invite"
        self.call(who, "POST", path, {"user_id": self.uid(localpart)})

    def rename(self, who: str, name: str) -> None:
        path = f"/_matrix/client/v3/profile/{_seg(self.uid(who))}/displayname"
        self.call(who, "PUT", path, {"displayname": name})

    def account_data(self, who: str, event_type: str, content: dict[str, Any]) -> None:
        path = f"/_matrix/client/v3/user/{_seg(self.uid(who))}/account_data/{_seg(event_type)}"
        self.call(who, "PUT", path, content)

    # -- accounts -------------------------------------------------------------------

    def register(self, spec: _UserSpec) -> None:
        try:
            user = self.server.register_user(
                spec.localpart, spec.password, displayname=spec.initial_name
            )
        except RegistrationError as error:
            if error.errcode != "M_USER_IN_USE":
                raise SeedError(str(error)) from error
            # Left by an interrupted run; the password is ours, so log in.
            user = self.server.login(spec.localpart, spec.password)
        self.users[spec.localpart] = DemoUser(
            localpart=spec.localpart,
            user_id=user.user_id,
            password=spec.password,
            display_name=spec.final_name,
            access_token=user.access_token,
            device_id=user.device_id,
        )

    # -- the world ------------------------------------------------------------------

    def run(self) -> DemoWorld:
        for spec in _USER_SPECS:
            self.register(spec)
        self.general()
        self.random()
        self.direct_chats()
        self.spaces()
        self.book_club()
        self.directory()
        return DemoWorld(
            server_name=self.hs,
            users=dict(self.users),
            rooms=dict(self.rooms),
            dms=dict(self.dms),
            events=dict(self.events),
            homeserver=self.server.base_url,
            seeded_at=time.time(),
        )

    def general(self) -> None:
        room = self.create(
            "alice",
            {
                "name": "General",
                "topic": "Welcome!",
                "preset": "public_chat",
                "room_alias_name": "general",
                "visibility": "public",
            },
        )
        self.rooms["General"] = room
        for who in ("bob", "carol", "dave", "helper"):
            self.join(who, f"#general:{self.hs}")
        say, ev = self.say, self.events

        say("alice", room, "Hi everyone! Welcome to the demo server 👋")
        say("bob", room, "Hey Alice! Nice to have a room that isn't full of build logs.")
        say("carol", room, "Morning all ☕")
        say("dave", room, "o/")
        self.notice(
            "helper",
            room,
            "Tip: type !help in any room I'm in (or message me directly) to see what I can do.",
        )
        self.emote("bob", room, "waves at everyone")
        welcome = say(
            "alice", room, "This server runs on your machine only: nothing leaves 127.0.0.1."
        )
        say("carol", room, "So we can say anything? 😄")
        say("dave", room, "Within reason.")
        self.state("alice", room, "m.room.topic", "", {"topic": GENERAL_TOPIC})
        say("alice", room, "I've updated the topic with a few things to try.")
        tried = say("bob", room, "Has anyone tried the new terminal client yet?")
        say("carol", room, "Yes! Scrolling back through history is really smooth.")
        say(
            "dave",
            room,
            "It keeps a window of the timeline in memory and pages the rest in from its SQLite cache.",
        )
        ev["replied_to"] = tried
        ev["reply"] = self.reply("alice", room, tried, "I'm using it right now, actually.")
        say(
            "bob",
            room,
            "Nice. What does it do with people typing things like [bold]not bold[/bold]?",
        )
        say("carol", room, "It should show that literally, brackets and all.")
        ev["ansi"] = say("dave", room, "And escape sequences? \u001b[31mred?\u001b[0m")
        say(
            "alice", room, "Those are stripped before they reach the terminal. No surprise colours."
        )

        self.rename("dave", "Dave 🚲")
        say("dave", room, "Changed my display name, does it show up?")
        say("carol", room, "Yep, with the bike and everything.")
        typo = say("dave", room, "I'll reivew the pull request tonight")
        ev["edited"] = typo
        self.edit("dave", room, typo, "I'll review the pull request tonight")
        say("bob", room, "Thanks Dave!")
        self.react("alice", room, typo, "👍")
        self.react("carol", room, typo, "👍")
        self.react("bob", room, welcome, "🎉")
        self.react("carol", room, welcome, "🎉")
        self.react("dave", room, welcome, "❤️")

        oops = say("bob", room, "Lunch order: 2x ramen, 1x gyoza, extra chilli oil")
        ev["redacted"] = oops
        self.redact("bob", room, oops, "posted in the wrong room")
        say("bob", room, "...wrong room, sorry.")

        root = say(
            "carol", room, "What should we show first in the demo? Let's discuss in a thread."
        )
        ev["thread_root"] = root
        first = self.in_thread("bob", room, root, root, "The room list, with unread counts.")
        second = self.in_thread("dave", room, root, first, "Spaces! Especially nested ones.")
        self.in_thread("alice", room, root, second, "Threads themselves, obviously 🙂")
        say("carol", room, "Great ideas in the thread, let's do all of them.")

        self.rename("bob", "Robert")
        say("bob", room, "Trying out a more formal name.")
        say("dave", room, "Very distinguished.")
        self.rename("bob", "Bob")
        say("bob", room, "Nah, back to Bob.")

        say(
            "bob",
            room,
            "Release checklist:\n1. Run the test suite\n2. Update the screenshots\n3. Tag the release",
        )
        say("dave", room, "Don't forget `make lint`; mypy has opinions.")
        say(
            "alice",
            room,
            "Here is a deliberately long message to show how the timeline wraps text: "
            "a terminal client has to break lines at word boundaries, keep the sender column "
            "aligned, and cope with wide characters such as 漢字 or emoji 🎉 without "
            "shifting anything out of place.",
        )
        say("carol", room, "日本語のテキストも大丈夫ですか？")
        say("dave", room, "Looks fine here. Right-to-left too: שלום, مرحبا")
        say(
            "bob",
            room,
            "Markdown **works** too?",
            format="org.matrix.custom.html",
            formatted_body="Markdown <strong>works</strong> too?",
        )
        say("alice", room, "Formatted messages fall back to their plain text body.")
        self.rename("carol", "Carol 📚")
        say("carol", room, "New name for book club season.")
        self.emote("dave", room, "is reading the spec again")
        say("bob", room, "Which part?")
        say("dave", room, "Room version 12. Room IDs no longer have a server part.")
        say("carol", room, "Wait, really? How do you tell where a room was created?")
        say("dave", room, "You don't need to: the ID is the hash of the create event.")
        say("alice", room, "That also means clients must percent-encode them properly in URLs.")
        self.notice("helper", room, "Reminder: standup is at 10:00 in #standup (Team Space).")
        say("bob", room, "Thanks, helper.")
        say("carol", room, "Is the bot answering everything now?")
        say("alice", room, "Only commands starting with ! or messages that mention it.")
        say("dave", room, "And it never answers notices, so two bots can't loop forever.")
        say("bob", room, "Good design.")
        say("carol", room, "Who's up for lunch? 🍜")
        say("dave", room, "Me!")
        say("bob", room, "Count me in.")
        say(
            "carol",
            room,
            "Alice, could you have a look at the new colour theme when you have a minute?",
            **{"m.mentions": {"user_ids": [self.uid("alice")]}},
        )
        say(
            "bob",
            room,
            "Also: the demo server resets with `python -m tui_client.devtools.demo --reset`.",
        )

    def random(self) -> None:
        room = self.create(
            "bob",
            {
                "name": "Random",
                "topic": RANDOM_TOPIC,
                "preset": "public_chat",
                "room_alias_name": "random",
                "visibility": "public",
            },
        )
        self.rooms["Random"] = room
        for who in ("alice", "carol", "dave"):
            self.join(who, room)
        self.say("bob", room, "This is the place for everything that isn't work.")
        self.say("carol", room, "Has anyone seen my blue mug?")
        self.say("dave", room, "It's in the dishwasher. Again.")
        self.emote("carol", room, "sighs")
        self.say("alice", room, "Friday board games, anyone?")
        self.say("bob", room, "Only if it isn't Monopoly.")
        self.say("dave", room, "Settlers?")
        self.say("carol", room, "Yes please 🎲")
        self.say("bob", room, "https://matrix.org has a nice list of clients, by the way.")

    def direct_chats(self) -> None:
        bob_dm = self.create(
            "bob",
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [self.uid("alice")]},
        )
        self.join("alice", bob_dm)
        self.say("bob", bob_dm, "Hey, got a minute?")
        self.say("alice", bob_dm, "Sure, what's up?")
        self.say("bob", bob_dm, "Could you review my branch before the release?")
        self.say("alice", bob_dm, "Yes, send me the link.")
        self.say("bob", bob_dm, "Thanks! It's the one about reconnecting after sleep.")

        bot_dm = self.create(
            "alice",
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [self.uid("helper")]},
        )
        self.join("helper", bot_dm)
        self.notice(
            "helper",
            bot_dm,
            "Hi Alice! I'm Helper, the demo bot. Send !help to see what I can do, "
            "or just say something.",
        )
        # Sent while no bot is running: a bot that starts later must not answer it.
        self.events["before_bot"] = self.say("alice", bot_dm, "hello?")

        # An encrypted direct chat with the bot, which answers there too (encrypted). It
        # starts empty: the seeding speaks plain HTTP and cannot encrypt.
        secret_dm = self.create(
            "alice",
            {
                "preset": "trusted_private_chat",
                "is_direct": True,
                "name": SECRET_DM_NAME,
                "topic": "End-to-end encrypted: send !help",
                "invite": [self.uid("helper")],
                "initial_state": [
                    {
                        "type": "m.room.encryption",
                        "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                    }
                ],
            },
        )
        self.join("helper", secret_dm)

        self.dms = {"bob": bob_dm, "helper": bot_dm, "helper_encrypted": secret_dm}
        self.account_data(
            "alice",
            "m.direct",
            {self.uid("bob"): [bob_dm], self.uid("helper"): [bot_dm, secret_dm]},
        )
        self.account_data("bob", "m.direct", {self.uid("alice"): [bob_dm]})
        self.account_data("helper", "m.direct", {self.uid("alice"): [bot_dm, secret_dm]})

    def _child_room(self, who: str, parent: str, body: dict[str, Any]) -> str:
        parent_event = {
            "type": "m.space.parent",
            "state_key": parent,
            "content": {"via": [self.hs], "canonical": True},
        }
        return self.create(who, {**body, "initial_state": [parent_event]})

    def _add_child(self, who: str, space: str, child: str, order: str, *, suggested: bool) -> None:
        content: dict[str, Any] = {"via": [self.hs], "order": order}
        if suggested:
            content["suggested"] = True
        self.state(who, space, "m.space.child", child, content)

    def spaces(self) -> None:
        space_body = {
            "preset": "public_chat",
            "creation_content": {"type": "m.space"},
            # Only admins post in a space: it is a list of rooms, not a chat.
            "power_level_content_override": {"events_default": 100, "invite": 0},
        }
        space = self.create(
            "alice",
            {
                **space_body,
                "name": "Project Space",
                "topic": SPACE_TOPIC,
                "room_alias_name": "project",
                "visibility": "public",
            },
        )
        self.rooms["Project Space"] = space
        design = self._child_room(
            "alice",
            space,
            {
                "name": "Design",
                "topic": "Mockups, themes and key bindings",
                "preset": "public_chat",
            },
        )
        dev = self._child_room(
            "bob",
            space,
            {"name": "Dev", "topic": "Code review and CI failures", "preset": "public_chat"},
        )
        team = self._child_room("alice", space, {**space_body, "name": "Team Space"})
        standup = self._child_room(
            "alice",
            team,
            {"name": "Standup", "topic": "Daily standup at 10:00", "preset": "public_chat"},
        )
        self.rooms.update({"Design": design, "Dev": dev, "Team Space": team, "Standup": standup})
        self._add_child("alice", space, design, "10", suggested=True)
        self._add_child("alice", space, dev, "20", suggested=False)
        self._add_child("alice", space, team, "30", suggested=False)
        self._add_child("alice", team, standup, "10", suggested=False)

        for who in ("bob", "carol"):
            self.join(who, space)
        self.join("carol", design)
        self.say("alice", design, "First sketch of the room list is up, feedback welcome.")
        self.say("carol", design, "Love it. Could unread rooms be bold instead of coloured?")
        self.say("alice", design, "Good idea, colour alone isn't enough for everyone.")

        self.join("dave", dev)
        self.say("bob", dev, "CI is green again 🎉")
        self.say("dave", dev, "Was it the flaky reconnect test?")
        self.say("bob", dev, "Yes; it now restarts a real server instead of sleeping.")

        for who in ("carol", "dave"):
            self.join(who, team)
            self.join(who, standup)
        self.say("carol", standup, "Yesterday: theme work. Today: key bindings. Blockers: none.")
        self.say("dave", standup, "Yesterday: review. Today: space hierarchy. Blockers: coffee.")

    def book_club(self) -> None:
        room = self.create(
            "carol",
            {"name": "Book club", "topic": BOOK_CLUB_TOPIC, "preset": "private_chat"},
        )
        self.rooms["Book club"] = room
        self.say("carol", room, "Welcome to the book club! First meeting next Thursday.")
        self.invite("carol", room, "alice")

    def directory(self) -> None:
        public = {"preset": "public_chat", "visibility": "public"}
        for who, name, alias, topic in DIRECTORY_ROOMS:
            room = self.create(
                who, {**public, "name": name, "room_alias_name": alias, "topic": topic}
            )
            self.rooms[name] = room
            self.say(who, room, f"Welcome to {name}!")
        space = self.create(
            "carol",
            {
                **public,
                "name": "Community",
                "topic": "Everyone who uses the demo server",
                "room_alias_name": "community",
                "creation_content": {"type": "m.space"},
                "power_level_content_override": {"events_default": 100, "invite": 0},
            },
        )
        self.rooms["Community"] = space
        announcements = self._child_room(
            "carol",
            space,
            {"name": "Announcements", "topic": "News about the server", "preset": "public_chat"},
        )
        restricted = {
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": space}],
            },
        }
        lounge = self.create(
            "carol",
            {
                "name": "Community lounge",
                "topic": "For members of the Community space",
                "preset": "private_chat",
                "initial_state": [
                    restricted,
                    {
                        "type": "m.space.parent",
                        "state_key": space,
                        "content": {"via": [self.hs], "canonical": True},
                    },
                ],
            },
        )
        self.rooms.update({"Announcements": announcements, "Community lounge": lounge})
        self._add_child("carol", space, announcements, "10", suggested=True)
        self._add_child("carol", space, lounge, "20", suggested=False)
        self.say("carol", announcements, "The demo server is up. Have fun!")
        self.say("carol", lounge, "Only Community members can get in here.")
