"""What the client does in rooms on the user's word: messages (text, replies, edits,
reactions), joining, leaving, settings, and the composer's lines (a message, or a ``/command``).

:class:`RoomCommands` is a base class of :class:`~.client.MatrixClient`; it declares what it
needs of the client below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..net.http import HomeserverConnection
from ..protocol import requests as api
from ..protocol.commands import Command, CommandError, parse_command, unescape_message
from ..protocol.errors import MatrixError
from ..protocol.ids import InvalidIdentifier, is_user_id, parse_link
from ..protocol.room_state import RoomSummary
from ..store.cache import Cache, OutboxEntry
from .attachments import MediaError
from .dbthread import DatabaseThread
from .formatting import Pill, edit_content, html_to_plain, message_content, pills_in, shift_pills
from .joins import JoinQueue
from .notifications import NotificationService
from .room_admin import RoomAdmin, split_user_and_reason
from .room_view import RoomView
from .send_queue import SendQueue
from .updates import RoomListChanged, Update

if TYPE_CHECKING:
    # Made on first use (engine/services.py); start-up imports neither (issue 13).
    from .uploads import UploadService
    from .verification import VerificationService

__all__ = ["RoomCommands"]


class RoomCommands:
    """Messages, room membership and settings, the composer's commands (see the module documentation)."""

    if TYPE_CHECKING:
        # Defined by MatrixClient and its services.
        connection: HomeserverConnection
        rooms: dict[str, RoomSummary]
        db: DatabaseThread
        cache: Cache
        send_queue: SendQueue

        @property
        def user_id(self) -> str: ...

        @property
        def joins(self) -> JoinQueue: ...

        @property
        def notifications(self) -> NotificationService: ...

        @property
        def verification(self) -> VerificationService: ...

        @property
        def uploads(self) -> UploadService: ...

        @property
        def admin(self) -> RoomAdmin: ...

        def publish(self, update: Update) -> None: ...

        def close_room(self, room_id: str) -> None: ...

        views: dict[str, RoomView]

        async def send_event(
            self, room_id: str, event_type: str, content: dict[str, Any]
        ) -> OutboxEntry: ...

        async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> None: ...

    # -- messages --------------------------------------------------------------------

    async def send_message(
        self,
        room_id: str,
        body: str,
        *,
        msgtype: str = "m.text",
        reply_to: str | None = None,
        event_type: str = "m.room.message",
        extra: dict[str, Any] | None = None,
    ) -> OutboxEntry:
        """Queue a message (shown at once as a local echo); returns its outbox entry.

        A reply carries only its relation: the quoted fallback left the spec in v1.13.
        Every message carries ``m.mentions`` (empty unless ``extra`` says otherwise).
        """
        content: dict[str, Any] = {"msgtype": msgtype, "body": body}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        if extra:
            content.update(extra)
        if event_type == "m.room.message":
            content.setdefault("m.mentions", {})
        return await self.send_event(room_id, event_type, content)

    async def send_text(
        self,
        room_id: str,
        text: str,
        *,
        msgtype: str = "m.text",
        reply_to: str | None = None,
        pills: Sequence[Pill] = (),
        markdown: bool = True,
        formatted_body: str | None = None,
    ) -> OutboxEntry:
        """Send composer text: markdown to HTML, completed mentions as pills and in
        ``m.mentions`` (see :mod:`.formatting`); ``markdown=False`` sends it literally."""
        content = message_content(
            text,
            msgtype=msgtype,
            pills=pills_in(text, pills),
            own_user_id=self.user_id,
            may_mention_room=self.may_mention_room(room_id),
            markdown=markdown,
            formatted_body=formatted_body,
        )
        return await self.send_message(
            room_id, text, msgtype=msgtype, reply_to=reply_to, extra=content
        )

    def may_mention_room(self, room_id: str) -> bool:
        """True if our power level lets ``@room`` notify everyone (the room must be open)."""
        view = self.views.get(room_id)
        return view is not None and view.power_levels.can_notify(self.user_id, "room")

    async def send_reaction(self, room_id: str, event_id: str, key: str) -> OutboxEntry:
        """React to a message."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send_queue.enqueue(room_id, "m.reaction", content)

    async def toggle_reaction(self, room_id: str, event_id: str, key: str) -> bool:
        """React with ``key``, or take our reaction back if we already reacted so (the
        room must be open). True if a reaction was sent, False if ours was redacted."""
        view = self.views.get(room_id)
        ours = (
            view.model.reaction_event_id(event_id, self.user_id, key) if view is not None else None
        )
        if ours is None:
            await self.send_reaction(room_id, event_id, key)
            return True
        await self.redact(room_id, ours)
        return False

    async def send_edit(
        self, room_id: str, event_id: str, new_body: str, *, pills: Sequence[Pill] = ()
    ) -> OutboxEntry:
        """Replace the text of one of our messages (``m.replace``), formatted as
        :meth:`send_text` formats; the outer content is the ``* `` fallback."""
        view = self.views.get(room_id)
        original = view.model.content_of(event_id) if view is not None else None
        msgtype = original.get("msgtype") if original else None
        new_content = message_content(
            new_body,
            msgtype=msgtype if msgtype in ("m.text", "m.emote", "m.notice") else "m.text",
            pills=pills_in(new_body, pills),
            own_user_id=self.user_id,
            may_mention_room=self.may_mention_room(room_id),
        )
        content = edit_content(event_id, new_content, original)
        return await self.send_queue.enqueue(room_id, "m.room.message", content)

    # -- membership and room settings -------------------------------------------------

    async def join(self, target: str) -> str:
        """Join by room ID, alias, matrix.to link or matrix: URI; returns the room ID."""
        try:
            link = parse_link(target)
        except InvalidIdentifier as error:
            raise CommandError(str(error)) from error
        if link.kind == "user":
            raise CommandError(f"{link.identifier} is a user, not a room")
        data = await self.connection.send(api.join(link.identifier, link.via))
        room_id = data.get("room_id") if isinstance(data, dict) else None
        if not isinstance(room_id, str):
            raise MatrixError(500, "M_UNKNOWN", "the join answer has no room ID")
        await self.note_joined(room_id)
        return room_id

    async def note_joined(self, room_id: str) -> None:
        """The server accepted our join: show the room as joined before sync says so.

        (A room we were invited to would otherwise refuse messages until the next sync.)
        """
        summary = self.rooms.get(room_id)
        if summary is None or summary.membership == "join":
            return
        joined = summary.copy()
        joined.membership = "join"
        joined.inviter = None
        self.rooms[room_id] = joined
        await self.db.run(self.cache.save_summary, joined)
        self.publish(RoomListChanged(tuple(self.rooms.values()), frozenset({room_id})))
        self.send_queue.wake()

    async def leave(self, room_id: str, reason: str | None = None) -> None:
        """Leave a room, or reject an invite."""
        await self.connection.send(api.leave(room_id, reason))

    async def forget(self, room_id: str) -> None:
        """Forget a room we left, and drop it from the cache."""
        await self.connection.send(api.forget(room_id))
        self.close_room(room_id)
        await self.db.run(self.cache.forget_room, room_id)
        self.rooms.pop(room_id, None)
        self.publish(RoomListChanged(tuple(self.rooms.values()), frozenset({room_id})))

    async def invite(self, room_id: str, user_id: str) -> None:
        """Invite a user."""
        if not is_user_id(user_id):
            raise CommandError(f"{user_id!r} is not a user ID (@name:server)")
        await self.connection.send(api.invite(room_id, user_id))

    async def set_topic(self, room_id: str, topic: str) -> None:
        """Set the room topic."""
        await self.connection.send(api.send_state(room_id, "m.room.topic", "", {"topic": topic}))

    async def set_room_name(self, room_id: str, name: str) -> None:
        """Rename the room."""
        await self.connection.send(api.send_state(room_id, "m.room.name", "", {"name": name}))

    async def set_display_name(self, name: str) -> None:
        """Change our display name (the server updates our member events)."""
        await self.connection.send(api.set_displayname(self.user_id, name))

    async def create_room(self, body: dict[str, Any]) -> str:
        """``/createRoom``; returns the new room's ID."""
        data = await self.connection.send(api.create_room(body))
        room_id = data.get("room_id") if isinstance(data, dict) else None
        if not isinstance(room_id, str):
            raise MatrixError(500, "M_UNKNOWN", "the answer has no room ID")
        return room_id

    # -- the composer ---------------------------------------------------------------

    async def submit(
        self,
        room_id: str | None,
        text: str,
        *,
        reply_to: str | None = None,
        pills: Sequence[Pill] = (),
    ) -> str | None:
        """Handle a composer line: a command or a message. Returns text to show, if any.

        Messages are markdown (``/plain`` sends literally); ``pills`` are the mentions
        completed in the composer.

        Raises :class:`CommandError` for commands typed wrong, :class:`MatrixError` and
        :class:`NetworkError` for server refusals.
        """
        command = parse_command(text)
        if command is None:
            if room_id is None:
                raise CommandError("open a room first")
            unescaped = unescape_message(text)
            await self.send_text(
                room_id,
                unescaped,
                reply_to=reply_to,
                pills=shift_pills(pills, len(text) - len(unescaped)),
            )
            return None
        # The argument ends the line: the pills move back by what comes before it.
        return await self._run_command(
            room_id,
            command,
            reply_to,
            shift_pills(pills, len(text.rstrip()) - len(command.argument)),
        )

    async def _run_command(
        self,
        room_id: str | None,
        command: Command,
        reply_to: str | None,
        pills: Sequence[Pill] = (),
    ) -> str | None:
        name, argument = command.name, command.argument
        if name == "join":
            job = self.joins.enqueue(argument)
            await job.wait()
            return f"Joined {job.label}"
        if name == "directory":
            raise CommandError("/directory opens the room directory (in the client's UI)")
        if name == "nick":
            await self.set_display_name(argument)
            return f"Display name set to {argument}"
        if name == "help":
            return "help"
        if name in ("ignore", "unignore"):
            return await self._ignore_command(name, argument)
        if name == "verify":
            flow = await self.verification.verify_command(room_id, argument)
            who = (
                "your other sessions" if flow.other_user_id == self.user_id else flow.other_user_id
            )
            return f"Verification request sent to {who}"
        if room_id is None:
            raise CommandError(f"/{name} needs an open room")
        if name == "me":
            await self.send_text(room_id, argument, msgtype="m.emote", pills=pills)
        elif name == "notice":
            await self.send_text(room_id, argument, msgtype="m.notice", pills=pills)
        elif name == "plain":
            await self.send_text(room_id, argument, reply_to=reply_to, markdown=False)
        elif name == "html":
            from ..protocol.html import sanitize_html

            formatted = sanitize_html(argument)
            body = html_to_plain(formatted)
            if not body.strip():
                raise CommandError("nothing to send: the HTML has no text the spec allows")
            await self.send_text(room_id, body, reply_to=reply_to, formatted_body=formatted)
        elif name == "upload":
            try:
                upload = await self.uploads.send_file(room_id, Path(argument))
            except (MediaError, OSError) as error:
                raise CommandError(f"cannot send the file: {error}") from None
            return f"Sending {upload.name}"
        elif name == "leave":
            await self.leave(room_id, argument or None)
            return "Left the room"
        elif name == "invite":
            await self.invite(room_id, argument)
            return f"Invited {argument}"
        elif name == "topic":
            if not argument:
                summary = self.rooms.get(room_id)
                return (
                    f"Topic: {summary.topic}"
                    if summary and summary.topic
                    else "This room has no topic"
                )
            await self.set_topic(room_id, argument)
        elif name == "name":
            await self.set_room_name(room_id, argument)
        elif name in ("kick", "ban", "unban"):
            user, reason = split_user_and_reason(argument)
            if name == "kick":
                await self.admin.kick(room_id, user, reason)
            elif name == "ban":
                await self.admin.ban(room_id, user, reason)
            else:
                await self.admin.unban(room_id, user)
            return {"kick": "Removed", "ban": "Banned", "unban": "Unbanned"}[name] + f" {user}"
        elif name == "forget":
            await self.admin.leave_and_forget(room_id)
            return "Left and forgot the room"
        return None

    async def _ignore_command(self, name: str, argument: str) -> str:
        user_id = argument.strip()
        if not is_user_id(user_id):
            raise CommandError(
                f"/{name} needs a full user ID, like @name:server.org (got {user_id!r})"
            )
        if user_id == self.user_id:
            raise CommandError("you cannot ignore yourself")
        service = self.notifications
        if name == "ignore":
            if service.is_ignored(user_id):
                return f"Already ignoring {user_id}"
            await service.ignore(user_id)
            return f"Ignoring {user_id}: their messages and invites are hidden (/unignore to undo)"
        if not service.is_ignored(user_id):
            return f"{user_id} is not ignored"
        await service.unignore(user_id)
        return f"No longer ignoring {user_id}"
