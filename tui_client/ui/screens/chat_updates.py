"""The chat screen's part that follows the engine: each update kind to its handler
(:class:`~..update_routes.UpdateRoutes`), the room list, the header, typing and alerts."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ...engine import gc_policy
from ...engine.updates import (
    BatchCommitted,
    MembersChanged,
    Notice,
    PresenceChanged,
    ReceiptsChanged,
    RoomListChanged,
    SessionEnded,
    StorageChanged,
    SyncState,
    ThreadUnreadChanged,
    ThreadUpdated,
    TimelineUpdated,
    TypingChanged,
    Update,
    UploadProgress,
)
from ...protocol.bridges import is_bridged_user
from ...protocol.push_rules import LEVEL_MUTE
from ...protocol.room_state import RoomSummary
from ...protocol.sanitize import clean_line
from ..update_routes import UpdateRoutes
from ..widgets.composer import Composer
from ..widgets.invite_bar import InviteBar
from ..widgets.member_list import MemberList
from ..widgets.room_header import RoomHeader
from ..widgets.room_list import RoomList, ordered
from ..widgets.space_bar import HOME, PEOPLE
from ..widgets.status_bar import StatusBar
from ..widgets.timeline import TimelineView
from ..widgets.upload_bar import UploadBar
from .chat_rooms import RoomActions

__all__ = ["ChatUpdates"]

#: Seconds after the first sync batch is drawn that what it brought is frozen.
SETTLE_AFTER_BATCH = 0.05


def _settle_loaded() -> None:
    gc_policy.settle(loaded=True)


#: Up to this many changed rooms are moved in the room list one by one (bisection each);
#: more (a first sync) lay the list out again.
MOVED_ROOMS = 64


class ChatUpdates(RoomActions):
    """The engine's updates, applied to the chat screen (a base of :class:`~.chat.ChatScreen`)."""

    # Kept by the chat screen.
    #: Another account is in front (ui/accounts.py): this screen keeps up, but says nothing.
    background: bool
    _view_version: int
    _counts: dict[str, tuple[int, int]] | None

    def __init__(self) -> None:
        super().__init__()
        self._chat_routes = self._routes()

    # Provided by the chat screen.
    def _open_initial_room(self) -> None:
        raise NotImplementedError

    def _schedule_read(self) -> None:
        raise NotImplementedError

    def _alert_new(self, update: RoomListChanged) -> None:
        """A mention, or a direct message, in a room not on screen: a notice (the bell or a
        desktop notification is the notifier's, ui/notify.py, from the push rules).

        Only live: what the first sync after a start brings (missed while away) is shown
        by the unread counts alone.
        """
        if self._counts is not None:
            rooms = self.client.rooms
            # (the rooms a superseded update named are in the newest one's, update_routes.coalesce)
            for room_id in update.changed:
                room = rooms.get(room_id)
                if room is None:
                    self._counts.pop(room_id, None)
                    continue
                before = self._counts.get(room_id, (0, 0))
                self._counts[room_id] = (room.notification_count, room.highlight_count)
                if (
                    room_id == self.current_room
                    or self.client.notifications.room_level(room_id) == LEVEL_MUTE
                ):
                    continue
                notifications, highlights = before
                name = clean_line(room.display_name, 60)
                if room.highlight_count > highlights:
                    message = f"You were mentioned in {name}"
                elif room.is_dm and room.notification_count > notifications:
                    message = f"New message from {name}"
                else:
                    continue
                if not self.background:
                    self.notify(message + " (Ctrl+K to go there)", markup=False, timeout=6)

    def _arm_alerts(self) -> None:
        """After the first sync batch: what it brought is the baseline, later changes alert."""
        if self._counts is None:
            self._counts = {
                r.room_id: (r.notification_count, r.highlight_count)
                for r in self.client.rooms.values()
            }

    def handle_update(self, update: Update) -> None:
        """Apply one engine update (called by the app's message handler)."""
        self._chat_routes.dispatch(update)
        self.handle_room_update(update)
        if not self.background and isinstance(update, ThreadUpdated | ThreadUnreadChanged):
            # (the screens in front are another account's when in the background)
            from .threads import forward_thread_update  # (the thread screens: first needed here)

            forward_thread_update(self.app, update)

    def _routes(self) -> UpdateRoutes:
        return (
            UpdateRoutes()
            .on(SyncState, self._on_sync_state)
            .on(BatchCommitted, self._on_batch)
            .on(RoomListChanged, self._on_room_list)
            .on(TimelineUpdated, self._on_timeline)
            .on(ReceiptsChanged, self._on_receipts)
            .on(ThreadUnreadChanged, self._on_thread_unread)
            .on(TypingChanged, self._on_typing)
            .on(MembersChanged, self._on_members)
            .on(PresenceChanged, self._on_presence)
            .on(UploadProgress, self._on_upload)
            .on(Notice, self._on_notice)
            .on(SessionEnded, self._on_session_ended)
            .on(StorageChanged, self._on_storage)
        )

    def _on_sync_state(self, update: SyncState) -> None:
        self.query_one(StatusBar).state = update

    def _on_batch(self, update: BatchCommitted) -> None:
        if update.first:
            self._arm_alerts()
            # What the first sync brought (a first start: every room, the room list's rows)
            # is long-lived: out of the collector's sight once drawn (engine/gc_policy.py).
            # Left young, each full collection held until idle walked it: 10-50 ms each.
            # (A frame later than the drawing: a settle is ~8 ms, the first paint of 1,000
            # rooms ~16 ms of the same frame.)
            # Live data, not garbage: no compaction for it (a full collection, 60-100 ms).
            self.set_timer(SETTLE_AFTER_BATCH, _settle_loaded, name="settle after sync")

    def _on_room_list(self, update: RoomListChanged) -> None:
        self._alert_new(update)
        if not self._move_rooms(update.changed):
            self._refresh_rooms()
        if self.current_room in update.changed:
            self._refresh_header()
        if self.current_room is None:
            self._open_initial_room()  # a first start: the rooms arrive with the first sync

    def _on_timeline(self, update: TimelineUpdated) -> None:
        if update.room_id == self.current_room and update.version > self._view_version:
            self._view_version = update.version
            timeline = self.query_one(TimelineView)
            timeline.apply_diffs(update.diffs)
            if self.view is not None:
                timeline.set_read_by(self.view.read_by())
            self._sync_view_flags()
            self._schedule_read()

    def _on_receipts(self, update: ReceiptsChanged) -> None:
        if update.room_id == self.current_room and self.view is not None:
            self.query_one(TimelineView).set_read_by(self.view.read_by())

    def _on_thread_unread(self, update: ThreadUnreadChanged) -> None:
        if update.room_id == self.current_room:
            self.query_one(TimelineView).set_thread_unread(
                frozenset(root for root, _n, _h in update.counts)
            )

    def _on_typing(self, update: TypingChanged) -> None:
        if update.room_id == self.current_room:
            self._show_typing(update.user_ids)

    def _on_members(self, update: MembersChanged) -> None:
        if update.room_id == self.current_room and self.view is not None:
            self.query_one(TimelineView).refresh_names()
            if self.query_one("#members").display:
                self.query_one(MemberList).show_members(self.view.members, self.view.power_levels)
            self.query_one(RoomHeader).member_count = len(self.view.members.joined())

    def _on_presence(self, update: PresenceChanged) -> None:
        if self.view is not None and self.query_one("#members").display:
            self.query_one(MemberList).show_members(self.view.members, self.view.power_levels)
        self.query_one(RoomHeader).refresh()

    def _on_upload(self, update: UploadProgress) -> None:
        self.query_one(UploadBar).show(update)

    def _on_notice(self, update: Notice) -> None:
        severity = {"warning": "warning", "error": "error"}.get(update.level, "information")
        if not self.background:  # (the app says a background account's, naming it)
            self.notify(clean_line(update.text), severity=severity, markup=False)  # type: ignore[arg-type]
        self.query_one(StatusBar).message = clean_line(update.text, 80)

    def _on_session_ended(self, update: SessionEnded) -> None:
        self.query_one(StatusBar).message = clean_line(update.message, 80)

    def _on_storage(self, update: StorageChanged) -> None:
        self.query_one(StatusBar).storage = update.problem or ""
        if update.problem is None:
            self.notify(
                "The cache can be written again; sync and sending carry on.",
                markup=False,
                timeout=6,
            )

    def _ordered_rooms(self) -> list[RoomSummary]:
        return [room for _key, rooms in ordered(self.filtered_rooms()) for room in rooms]

    def _move_rooms(self, changed: frozenset[str]) -> bool:
        """Move only the changed rooms in the room list (a few, under all rooms or People);
        False where the list must be laid out again."""
        if not changed or len(changed) > MOVED_ROOMS or self.space_filter not in (HOME, PEOPLE):
            return False
        rooms = self.client.rooms
        room_list = self.query_one(RoomList)
        return room_list.option_count > 0 and room_list.update_rooms(
            {
                room_id: room if room is not None and self.shows_room(room) else None
                for room_id in changed
                for room in (rooms.get(room_id),)
            }
        )

    def _refresh_rooms(self) -> None:
        self.query_one(RoomList).show_rooms(
            self.filtered_rooms(), self.current_room, self.unjoined_rows()
        )

    def _refresh_header(self) -> None:
        header = self.query_one(RoomHeader)
        room = self.client.rooms.get(self.current_room) if self.current_room else None
        header.room = room
        bridges = room.bridge_list if room is not None and room.bridges else []
        self.query_one(MemberList).is_bridged = lambda user_id: is_bridged_user(user_id, bridges)
        self.query_one(TimelineView).set_bridges(
            tuple(bridges), lambda user_id: is_bridged_user(user_id, bridges)
        )
        invite = room is not None and room.membership == "invite"
        bar = self.invite_bar(mount=invite)
        composer = self.query_one(Composer)
        composer.disabled = invite
        if bar is not None and not invite and bar.display and self.focused in bar.children:
            # Accepted (or refused): the composer takes the focus. Left on the bar, Textual
            # would hand it, as the button is hidden, to its hidden sibling: the next Enter
            # would press Reject (leave the room just joined) or Accept.
            self.set_focus(composer)
        if bar is not None:
            bar.display = invite
        if bar is not None and invite and room is not None:
            inviter = clean_line(room.inviter or "someone")
            bar.show(Text(f"{inviter} invited you to {clean_line(room.display_name)}"))

    def invite_bar(self, *, mount: bool) -> InviteBar | None:
        """The invite bar; mounted above the typing line the first time ``mount`` asks for it.

        None while no invite has been opened (and ``mount`` is False): the bar and its
        Buttons are not in the DOM before, so the first paint does not style them."""
        bars = self.query(InviteBar)
        if bars:
            return bars.first()
        if not mount:
            return None
        bar = InviteBar()
        self.query_one("#center").mount(bar, before="#typing")
        return bar

    def _show_typing(self, users: tuple[str, ...]) -> None:
        others = [u for u in users if u != self.client.user_id]
        name_of = self.view.display_name if self.view else clean_line
        if not others:
            text = Text("")
        elif len(others) == 1:
            text = Text(f"{name_of(others[0])} is typing…", style=Style(dim=True, italic=True))
        else:
            text = Text(f"{len(others)} people are typing…", style=Style(dim=True, italic=True))
        self.query_one("#typing", Static).update(text)

    def _sync_view_flags(self) -> None:
        if self.view is None:
            return
        timeline = self.query_one(TimelineView)
        timeline.at_live_end = self.view.at_live_end
        timeline.reached_start = self.view.reached_start
