"""A small demo bot running on the headless engine.

The bot logs in (or restores its saved session), joins every room it is invited
to and answers messages addressed to it: in a direct chat every message, in other
rooms messages that start with ``!`` or mention it. It understands ``!help``,
``!ping``, ``!time``, ``!roll [NdM]``, ``!echo text`` and ``!whoami``; anything
else in a direct chat is echoed back as "You said: ...".

Replies are ``m.notice`` messages (the convention for bots) sent as rich replies
to the triggering message, in its thread if it was in one. The bot never answers
its own messages or any notice, so two bots cannot talk to each other forever,
and it ignores everything that happened before it started: the first sync batch
after start, and in a room it joins later, everything up to its own join.

Run it with::

    python -m tui_client.devtools.bot --homeserver http://127.0.0.1:8008 \\
        --user @helper:localhost --password PASSWORD [--data-dir DIR]

(or put the password in ``$TUI_CLIENT_BOT_PASSWORD`` instead of the command line).

It runs until SIGTERM or Ctrl-C. Tests start it in-process with :func:`run_bot`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..engine.client import LoginError, MatrixClient
from ..engine.paths import data_dir
from ..engine.updates import BatchCommitted, RoomListChanged, SessionEnded, Update
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.events import relation_of

__all__ = [
    "BOT_PROFILE",
    "PASSWORD_ENV",
    "HelperBot",
    "LiveEvent",
    "main",
    "parse_roll",
    "run_bot",
]

log = logging.getLogger(__name__)

PASSWORD_ENV: Final = "TUI_CLIENT_BOT_PASSWORD"
"""Read for the password when ``--password`` is not given."""

BOT_PROFILE: Final = "bot"
"""The profile (folder under the data directory) holding the bot's session and cache."""

_IGNORED_MSGTYPES: Final = frozenset({"m.notice", "m.server_notice"})
_COMMAND_RE: Final = re.compile(r"!([A-Za-z]+)(?:\s+(.*))?\Z", re.DOTALL)
_ROLL_RE: Final = re.compile(r"(\d{0,3})[dD](\d{1,5})\Z")
_MAX_DICE: Final = 100
_MAX_SIDES: Final = 1000
_SHOWN_DICE: Final = 20
_ECHO_LIMIT: Final = 1000

HELP_TEXT: Final = (
    "I'm Helper, the demo bot. Commands:\n"
    "!help: this list\n"
    "!ping: pong, and how long your message took to reach me\n"
    "!time: the current time\n"
    "!roll [NdM]: roll N dice with M sides (default 1d6)\n"
    "!echo TEXT: say TEXT back\n"
    "!whoami: who you are and where we are\n"
    "In a direct chat I answer everything; elsewhere, start with ! or mention me."
)
GREETING: Final = "Hello! I'm Helper, a demo bot. Send !help to see what I can do."


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A timeline event that arrived after the bot started."""

    room_id: str
    event: dict[str, Any]


def parse_roll(spec: str) -> tuple[int, int] | None:
    """``"2d6"`` -> ``(2, 6)``; ``""`` -> ``(1, 6)``; ``None`` for anything out of range."""
    spec = spec.strip() or "1d6"
    match = _ROLL_RE.match(spec)
    if match is None:
        return None
    count = int(match.group(1) or "1")
    sides = int(match.group(2))
    if not 1 <= count <= _MAX_DICE or not 2 <= sides <= _MAX_SIDES:
        return None
    return count, sides


class HelperBot:
    """Decides what to answer and sends it; driven by a :class:`MatrixClient` subclass."""

    def __init__(self, client: MatrixClient, *, rng: random.Random | None = None) -> None:
        self.client = client
        self.rng = rng or random.Random()
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue()
        self.answered = 0
        self._joined: set[str] = set()
        self._join_attempted: set[str] = set()
        self._live = False
        self._tasks: set[asyncio.Task[Any]] = set()
        client.subscribe(self._on_update)

    @property
    def user_id(self) -> str:
        """The bot's user ID."""
        return self.client.user_id

    # -- engine callbacks (run in the event loop, must not block) -------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_update(self, update: Update) -> None:
        if isinstance(update, RoomListChanged):
            for summary in update.rooms:
                if summary.membership != "invite":
                    # Joined, or left: a later invite to the same room is accepted again.
                    self._join_attempted.discard(summary.room_id)
                elif summary.room_id not in self._join_attempted:
                    self._join_attempted.add(summary.room_id)
                    self._spawn(self._accept_invite(summary.room_id, summary.inviter))
        elif isinstance(update, SessionEnded):
            log.error("session ended: %s", update.message)
        elif isinstance(update, BatchCommitted):
            self._on_batch(update.events, update.first)

    def _on_batch(self, new_events: dict[str, tuple[dict[str, Any], ...]], first: bool) -> None:
        joined_before = self._joined
        self._joined = {r.room_id for r in self.client.rooms.values() if r.membership == "join"}
        if first:
            # Whatever the first batch holds happened before we started.
            self._live = True
            return
        if not self._live:
            return
        for room_id, batch in new_events.items():
            events = list(batch)
            if room_id not in joined_before:
                events = self._after_own_join(events)
            for event in events:
                self.queue.put_nowait(LiveEvent(room_id, event))

    def _after_own_join(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A room joined since the last batch arrives with history from before the join.
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            content = event.get("content")
            if (
                event.get("type") == "m.room.member"
                and event.get("state_key") == self.user_id
                and isinstance(content, dict)
                and content.get("membership") == "join"
            ):
                return events[index + 1 :]
        return []

    # -- joining --------------------------------------------------------------------

    async def _accept_invite(self, room_id: str, inviter: str | None) -> None:
        log.info("invited to %s by %s: joining", room_id, inviter)
        try:
            await self.client.join(room_id)
        except (MatrixError, NetworkError) as error:
            log.warning("could not join %s: %s", room_id, error)
            return
        await self.client.send_message(room_id, GREETING, msgtype="m.notice")

    async def aclose(self) -> None:
        """Cancel joins still in flight."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- answering ------------------------------------------------------------------

    async def run(self) -> None:
        """Answer queued events one at a time, in arrival order, until cancelled."""
        while True:
            item = await self.queue.get()
            try:
                await self.handle(item.room_id, item.event)
            except (MatrixError, NetworkError) as error:
                log.warning("could not answer in %s: %s", item.room_id, error)
            except Exception:
                log.exception("answering an event in %s failed", item.room_id)

    def _is_direct(self, room_id: str) -> bool:
        summary = self.client.rooms.get(room_id)
        if summary is None:
            return False
        # Member counts are 0 when the server never sent them: not a reason to answer everything.
        return summary.is_dm or 0 < summary.joined_count + summary.invited_count <= 2

    def _mentions_me(self, content: dict[str, Any], body: str) -> bool:
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict):
            user_ids = mentions.get("user_ids")
            if isinstance(user_ids, list) and self.user_id in user_ids:
                return True
        localpart = self.user_id[1:].split(":", 1)[0]
        return (
            self.user_id in body
            or re.search(rf"\b{re.escape(localpart)}\b", body, re.IGNORECASE) is not None
        )

    def _strip_address(self, body: str) -> str:
        # "helper: !ping", "@helper:localhost ping" and "Helper, hi" address the bot.
        localpart = self.user_id[1:].split(":", 1)[0]
        pattern = rf"\s*(?:{re.escape(self.user_id)}|@?{re.escape(localpart)})\b\s*[:,]?\s*"
        match = re.match(pattern, body, re.IGNORECASE)
        return body[match.end() :] if match else body

    async def handle(self, room_id: str, event: dict[str, Any]) -> bool:
        """Answer one live event if it is addressed to the bot; returns whether it did."""
        if event.get("type") != "m.room.message" or event.get("sender") == self.user_id:
            return False
        content = event.get("content")
        event_id = event.get("event_id")
        sender = event.get("sender")
        if (
            not isinstance(content, dict)
            or not isinstance(event_id, str)
            or not isinstance(sender, str)
        ):
            return False
        body = content.get("body")
        msgtype = content.get("msgtype")
        if not isinstance(body, str) or not body.strip() or msgtype in _IGNORED_MSGTYPES:
            return False
        relation = relation_of(content)
        if relation is not None and relation.rel_type == "m.replace":
            return False
        summary = self.client.rooms.get(room_id)
        if summary is None or summary.membership != "join":
            return False
        text = body.strip()
        direct = self._is_direct(room_id)
        if not direct and not text.startswith("!") and not self._mentions_me(content, text):
            return False
        text = self._strip_address(text) or text
        if text.startswith("!"):
            answer = await self.command(room_id, event, text)
        elif direct:
            answer = f"You said: {text}"
        else:
            answer = "Hi! I answer commands that start with !: try !help."
        thread_root = (
            relation.event_id if relation is not None and relation.rel_type == "m.thread" else None
        )
        await self.reply(room_id, event_id, sender, answer, thread_root=thread_root)
        return True

    async def reply(
        self, room_id: str, event_id: str, sender: str, text: str, *, thread_root: str | None = None
    ) -> None:
        """Send ``text`` as a notice replying to ``event_id`` (inside its thread, if any)."""
        relates: dict[str, Any] = {"m.in_reply_to": {"event_id": event_id}}
        if thread_root is not None:
            relates.update(
                {"rel_type": "m.thread", "event_id": thread_root, "is_falling_back": False}
            )
        extra = {"m.relates_to": relates, "m.mentions": {"user_ids": [sender]}}
        await self.client.send_message(room_id, text, msgtype="m.notice", extra=extra)
        self.answered += 1
        log.info("answered %s in %s", event_id, room_id)

    async def command(self, room_id: str, event: dict[str, Any], text: str) -> str:
        """The answer to a ``!command``."""
        match = _COMMAND_RE.match(text)
        if match is None:
            return "That doesn't look like a command. Try !help."
        name = match.group(1).lower()
        argument = (match.group(2) or "").strip()
        if name == "help":
            return HELP_TEXT
        if name == "ping":
            sent = event.get("origin_server_ts")
            if isinstance(sent, int):
                latency = max(0, round(time.time() * 1000) - sent)
                return f"pong! Your message reached me {latency} ms after the server got it."
            return "pong!"
        if name == "time":
            now = datetime.now(UTC)
            local = now.astimezone()
            return (
                f"It is {now:%H:%M:%S} UTC on {now:%A %d %B %Y} "
                f"({local:%H:%M} {local.tzname() or 'local'} where I run)."
            )
        if name == "roll":
            dice = parse_roll(argument)
            if dice is None:
                return f"Roll what? Write NdM with 1 to {_MAX_DICE} dice of 2 to {_MAX_SIDES} sides, e.g. !roll 2d6."
            count, sides = dice
            rolls = [self.rng.randint(1, sides) for _ in range(count)]
            total = sum(rolls)
            if count == 1:
                return f"🎲 {count}d{sides}: {total}"
            if count <= _SHOWN_DICE:
                return f"🎲 {count}d{sides}: {' + '.join(map(str, rolls))} = {total}"
            return f"🎲 {count}d{sides}: total {total}"
        if name == "echo":
            if not argument:
                return "Nothing to echo: try !echo hello."
            return argument[:_ECHO_LIMIT]
        if name == "whoami":
            return await self._whoami(room_id, str(event.get("sender", "")))
        return f"I don't know !{name}. Try !help."

    async def _whoami(self, room_id: str, sender: str) -> str:
        view = await self.client.open_room(room_id)
        try:
            name = view.display_name(sender)
        finally:
            self.client.close_room(room_id)
        summary = self.client.rooms.get(room_id)
        members = summary.joined_count if summary else 0
        if self._is_direct(room_id):
            where = f"our direct chat ({room_id})"
        else:
            room_name = summary.display_name if summary and summary.display_name else room_id
            where = f"{room_name} ({room_id})"
        return f"You are {name} ({sender}). This is {where}, with {members} members."


async def _connect(
    homeserver: str, user_id: str, password: str, base_dir: Path, profile: str, **options: Any
) -> MatrixClient:
    """The saved session if it still works on this homeserver, else a fresh login."""
    restored = MatrixClient.restore(profile=profile, base_dir=base_dir, **options)
    if restored is not None:
        if restored.user_id == user_id and restored.info.homeserver.rstrip(
            "/"
        ) == homeserver.rstrip("/"):
            try:
                await restored.connection.send(api.whoami(), wait_on_rate_limit=False)
            except MatrixError as error:
                log.info("saved session no longer works (%s): logging in again", error)
            else:
                return restored
        await restored.close()
    client = await MatrixClient.login(
        user_id,
        password,
        homeserver=homeserver,
        profile=profile,
        base_dir=base_dir,
        device_name="tui_client demo bot",
        **options,
    )
    return client


async def run_bot(
    homeserver: str,
    user_id: str,
    password: str,
    base_dir: Path,
    stop_event: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    ready_file: Path | None = None,
    profile: str = BOT_PROFILE,
    long_poll_ms: int = 30_000,
) -> None:
    """Run the bot until ``stop_event`` is set (or the server ends its session).

    ``base_dir`` is the data directory; the session and cache live in its
    ``profile`` subfolder. ``ready`` is set (and ``ready_file`` written) once
    the first sync is committed, from which point new messages are answered. Raises
    :class:`~tui_client.engine.client.LoginError` if logging in fails.
    """
    client = await _connect(
        homeserver, user_id, password, base_dir, profile, long_poll_ms=long_poll_ms
    )
    bot = HelperBot(client)
    ended = asyncio.Event()
    client.subscribe(lambda update: ended.set() if isinstance(update, SessionEnded) else None)
    worker = asyncio.ensure_future(bot.run())
    try:
        await client.open()
        client.start()
        await client.wait_synced(timeout=60)
        log.info("%s is online at %s", client.user_id, homeserver)
        if ready is not None:
            ready.set()
        if ready_file is not None:
            ready_file.write_text(f"{client.user_id} {client.device_id}\n", encoding="utf-8")
        stopping = asyncio.ensure_future(stop_event.wait())
        ending = asyncio.ensure_future(ended.wait())
        await asyncio.wait({stopping, ending}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stopping, ending):
            waiter.cancel()
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await bot.aclose()
        await client.close()
        log.info("%s stopped after %d answers", user_id, bot.answered)


def main(argv: list[str] | None = None) -> int:
    """The command line: run the bot until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tui_client.devtools.bot",
        description="Run the demo bot: it joins rooms it is invited to and answers !commands.",
    )
    parser.add_argument("--homeserver", required=True, help="base URL, e.g. http://127.0.0.1:8008")
    parser.add_argument("--user", required=True, help="full user ID, e.g. @helper:localhost")
    parser.add_argument(
        "--password",
        default=os.environ.get(PASSWORD_ENV),
        help=f"the account's password (default: ${PASSWORD_ENV}, which keeps it out of `ps`)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the session and cache go (in its {BOT_PROFILE!r} folder; default: the client's data dir)",
    )
    parser.add_argument(
        "--ready-file", type=Path, default=None, help="a file to write once the bot is online"
    )
    args = parser.parse_args(argv)
    if not args.password:
        parser.error(f"give --password or set ${PASSWORD_ENV}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One INFO line per HTTP request (every long poll) drowns what the bot does.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    base_dir: Path = args.data_dir or data_dir()

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGHUP too: a terminal closing (or the demo's launcher dying) ends the bot.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_bot(
                args.homeserver,
                args.user,
                args.password,
                base_dir,
                stop,
                ready_file=args.ready_file,
            )
        except LoginError as error:
            print(f"bot: {error}", file=sys.stderr)
            return 1
        except NetworkError as error:
            print(f"bot: cannot reach {args.homeserver}: {error}", file=sys.stderr)
            return 1
        except TimeoutError:
            print(f"bot: {args.homeserver} did not answer the first sync in time", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(_main())


if __name__ == "__main__":
    raise SystemExit(main())
