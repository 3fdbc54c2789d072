"""The main screen: room list, timeline, composer, member list, status."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static, TextArea

from ...engine import gc_policy
from ...engine.attachments import AttachmentError, MediaError
from ...engine.client import MatrixClient
from ...engine.formatting import Pill, pills_of, place_pills
from ...engine.room_view import RoomView
from ...engine.storage import CacheDamagedError, StorageUnavailable
from ...engine.uploads import size_text
from ...protocol.commands import COMMANDS, MESSAGE_COMMANDS, CommandError, parse_command
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ...protocol.timeline import SendState, TimelineItem
from ..app_interface import client_app
from ..bindings import CHAT_BINDINGS
from ..completion import (
    Completion,
    MemberChoice,
    complete_command,
    complete_emoji,
    complete_member,
    complete_room,
)
from ..messages import ActionFailed, ComposerSubmitted, RoomOpened
from ..render import palette_from
from ..seen import SeenTracker
from ..vim_keys import list_key
from ..widgets.account_bar import AccountBar
from ..widgets.completion_list import CompletionList
from ..widgets.composer import Composer
from ..widgets.key_footer import KeyFooter
from ..widgets.member_list import MemberList
from ..widgets.room_header import RoomHeader
from ..widgets.room_list import RoomList, visible_rooms
from ..widgets.security_bar import SecurityBar
from ..widgets.space_bar import SpaceBar
from ..widgets.status_bar import StatusBar
from ..widgets.timeline import TimelineView
from ..widgets.upload_bar import UploadBar
from .chat_updates import ChatUpdates

if TYPE_CHECKING:
    from textual.css.query import DOMQuery

    from .search import SearchHistory
    from .threads import ThreadPanel

# The help, the switcher and the threads' screens are imported when first opened (issue 13:
# the first painted screen needs none of them); thread panels are found by their type name.
_THREAD_PANELS = "ThreadPanel"


def chat_screen_of(app: App[Any]) -> ChatScreen | None:
    """The chat screen, if it is on the app's stack."""
    for screen in app.screen_stack:
        if isinstance(screen, ChatScreen):
            return screen
    return None


class ChatScreen(ChatUpdates):
    """Where the user spends their time (spaces, joining, creating: :class:`RoomActions`)."""

    BINDINGS = CHAT_BINDINGS

    def __init__(self, client: MatrixClient) -> None:
        super().__init__()
        self.client = client
        self.current_room: str | None = None
        self.view: RoomView | None = None
        self.mode: tuple[str, TimelineItem] | None = None
        self._view_version = 0
        self._reader = SeenTracker(self, lambda: self.query_one("#timeline", TimelineView))
        # Unread counts per room, to tell the user of a mention or a direct message live.
        self._counts: dict[str, tuple[int, int]] | None = None  # None until the first batch
        self._shown_a_room = False
        # Lines from the composer on their way to the engine, in the order typed.
        self._outgoing: deque[
            tuple[str | None, str, tuple[str, TimelineItem] | None, list[Pill]]
        ] = deque()
        self._draining = False  # a worker is handing them over
        self._search_history: SearchHistory | None = None
        #: Another account is in front (ui/accounts.py): this screen keeps up, but says nothing.
        self.background = False

    def compose(self) -> ComposeResult:
        yield RoomHeader(id="room-header")
        yield SecurityBar(id="security-bar")
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield AccountBar(id="accounts")
                yield SpaceBar(id="spaces")
            yield RoomList(id="rooms")
            with Vertical(id="center"):
                yield TimelineView(id="timeline")
                # (#invite-bar here, mounted when an invite is first opened: invite_bar())
                yield Static(id="typing")
                yield UploadBar(id="uploads")
                yield Static(id="mode-banner")
                yield CompletionList(id="candidates")
                yield Composer(id="composer", completions=self._completions)
            yield MemberList(id="members")
        yield StatusBar(id="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        status = self.query_one(StatusBar)
        status.account = self.client.user_id
        status.state = self.client.sync_state
        self.query_one(TimelineView).palette = palette_from(self.app)
        self.query_one("#members").display = False
        self.query_one("#mode-banner").display = False
        self.mount_spaces()
        self._refresh_rooms()
        sync_loop = self.client.sync_loop
        if sync_loop is not None and sync_loop.first_batch_done.is_set():
            self._arm_alerts()  # the first batch came before this screen did
        # After the first frame: the room list is painted before the timeline loads.
        self.call_after_refresh(self._open_initial_room)
        self.query_one(Composer).focus()
        # The terminal's focus (CSI ?1004, which Textual turns on): receipts and our presence.
        self.watch(self.app, "app_focus", self._terminal_focus_changed, init=False)
        presence_of = self._presence_label
        self.query_one(MemberList).presence_of = presence_of
        self.query_one(RoomHeader).presence_of = presence_of
        self.query_one(RoomHeader).avatar_of = self._member_avatar

    def _member_avatar(self, user_id: str) -> str | None:
        member = self.view.members.get(user_id) if self.view is not None else None
        return member.avatar_url if member is not None else None

    def on_key(self, event: events.Key) -> None:
        # The vim mode's j/k/gg/G/Ctrl+D/Ctrl+U/: on the timeline and the lists (off: nothing).
        list_key(self.focused, event)

    @on(Composer.VimModeChanged)
    def _vim_mode_changed(self, event: Composer.VimModeChanged) -> None:
        self.query_one(StatusBar).vim_mode = event.mode

    def _presence_label(self, user_id: str) -> str | None:
        presence = self.client.presence.of(user_id)
        return presence.label if presence is not None else None

    def _terminal_focus_changed(self, focused: bool) -> None:
        self.client.presence.set_focused(focused)
        if focused:
            self._schedule_read()
        else:
            self._reader.cancel()

    def on_screen_resume(self) -> None:
        self._schedule_read()
        for panel in self._thread_panels():
            panel.mark_read()

    def _open_initial_room(self) -> None:
        """Open the room used last, else the first joined one (once there is any)."""
        if self.current_room is not None:
            return
        known = self.client.rooms  # (in the room list's order: sorted once, there)
        rooms = [known[r] for r in self.query_one(RoomList).room_ids if r in known]
        joined = [r for r in rooms if r.membership == "join"]
        last = self.client.last_room
        first = last if last is not None and any(r.room_id == last for r in rooms) else None
        if first is None and (joined or rooms):
            first = (joined or rooms)[0].room_id
        if first is not None:
            self.open_room(first)

    # -- opening rooms --------------------------------------------------------------

    def open_room(self, room_id: str) -> None:
        """Show a room (loading it from the cache in a worker)."""
        if room_id == self.current_room and self.view is not None:
            return
        if self.current_room is not None:
            self.client.close_room(self.current_room)
            self.client.typing.stopped()
        self.current_room = room_id
        self.view = None
        for panel in self._thread_panels():
            panel.close()
        self.query_one(RoomList).current_room = room_id
        self._refresh_header()
        self._set_mode(None)
        self._show_typing(())
        timeline = self.query_one(TimelineView)
        timeline.empty_text = "Loading…"
        timeline.set_items([])
        self._load_room(room_id)

    @work(group="open-room", exclusive=True, exit_on_error=False)
    async def _load_room(self, room_id: str) -> None:
        try:
            view = await self.client.open_room(room_id)
        except CacheDamagedError:  # said in the status line and a dialog (ui/cache_damage.py)
            timeline = self.query_one(TimelineView)
            timeline.empty_text = "This room does not read back from the damaged cache."
            timeline.set_items([])
            return
        self.post_message(RoomOpened(view))
        await self.client.remember_room(room_id)

    def on_room_opened(self, message: RoomOpened) -> None:
        view = message.view
        if view.room_id != self.current_room:
            return
        self.view = view
        self._view_version = view.version
        timeline = self.query_one(TimelineView)
        timeline.name_of = view.display_name
        timeline.room_id = view.room_id
        from ..formatted import known_room_name  # the timeline's renderer (issue 13)

        timeline.room_name_of = lambda target: known_room_name(self.client.rooms, target)
        timeline.empty_text = "No messages yet. Say hello!"
        timeline.set_items(view.model.items, view.read_by(), view.new_messages_after())
        timeline.set_thread_unread(frozenset(self.client.threads.unread_in(view.room_id)))
        self._sync_view_flags()
        self.query_one(RoomHeader).member_count = len(view.members.joined())
        # Who already types (the engine keeps it: Synapse says it again only on a change).
        self._show_typing(view.typing)
        if self.query_one("#members").display:
            self._load_members()
        self._schedule_read()
        # A room's window and its rendered lines live as long as it is open (gc_policy);
        # the previous room's are garbage now: swept, not frozen. The first room of a start
        # has no previous one: what is alive (a first sync's rooms, the room list's rows) is
        # frozen as it is, with no full collection (one walked ~40k objects: 10-50 ms).
        self.call_after_refresh(gc_policy.settle, sweep=self._shown_a_room)
        self._shown_a_room = True

    def _schedule_read(self) -> None:
        room = self.current_room
        summary = self.client.rooms.get(room) if room else None
        if summary is None or summary.membership != "join":
            return
        self._reader.schedule(lambda event_id: self._send_read(room, event_id))

    def _send_read(self, room_id: str | None, event_id: str) -> None:
        """Mark read what the user has seen (ui/seen.py: focus, this screen, on screen)."""
        if room_id is not None and room_id == self.current_room:
            self.run_worker(
                self.client.mark_read(room_id, event_id),
                group="read",
                exclusive=True,
                exit_on_error=False,
            )

    @on(TimelineView.Viewed)
    def _timeline_viewed(self) -> None:
        self._schedule_read()

    @on(RoomList.RoomChosen)
    def _room_chosen(self, event: RoomList.RoomChosen) -> None:
        self.open_room(event.room_id)
        self.query_one(Composer).focus()

    # -- timeline paging ----------------------------------------------------------

    @on(TimelineView.NeedOlder)
    def _need_older(self) -> None:
        if self.view is not None:
            self._paginate(self.view, back=True)

    @on(TimelineView.NeedNewer)
    def _need_newer(self) -> None:
        if self.view is not None:
            self._paginate(self.view, back=False)

    @work(group="paginate", exclusive=True, exit_on_error=False)
    async def _paginate(self, view: RoomView, back: bool) -> None:
        if back:
            await view.paginate_back()
        else:
            await view.paginate_forward()
        if view is self.view:
            self.post_message(_FlagsChanged())

    def on__flags_changed(self, _message: _FlagsChanged) -> None:
        self._sync_view_flags()

    # -- composing ------------------------------------------------------------------

    @on(TextArea.Changed)
    def _draft_changed(self, event: TextArea.Changed) -> None:
        """Typing notices follow the draft (not while it edits a message)."""
        if isinstance(event.text_area, Composer):
            draft = event.text_area.text if self.mode is None or self.mode[0] != "edit" else ""
            self.client.typing.composing(self.current_room, draft)

    def _completions(self, word: str) -> list[Completion]:
        """Tab completion in the composer: ``@`` members of the open room, ``#`` rooms,
        ``:`` emoji shortcodes, ``/`` commands."""
        sigil = word[0]
        if sigil == "/":
            return complete_command(word, COMMANDS)
        if sigil == ":":
            return complete_emoji(word)
        if sigil == "#":
            rooms = [
                (r.room_id, r.canonical_alias, r.display_name or r.name or r.room_id)
                for r in self.client.rooms.values()
                if r.membership == "join"
            ]
            return complete_room(word, rooms)
        view = self.view
        if view is None:
            return []
        members = [
            MemberChoice(m.user_id, m.displayname, view.display_name(m.user_id))
            for m in (*view.members.joined(), *view.members.invited())
        ]
        return complete_member(
            word,
            members,
            own_user_id=self.client.user_id,
            may_mention_room=self.client.may_mention_room(view.room_id),
        )

    @on(Composer.Completing)
    def _completing(self, event: Composer.Completing) -> None:
        self.query_one(CompletionList).show(event.labels, event.index)

    @on(Composer.Submitted)
    def _submitted(self, event: ComposerSubmitted) -> None:
        # The composer has already emptied itself; the text travels with the message.
        text = event.text
        mode = self.mode
        self._set_mode(None)
        if mode is None and self.intercept_command(text):
            return
        self._outgoing.append((self.current_room, text, mode, event.mentions))
        if not self._draining:
            self._draining = True
            self._send_in_order()

    @work(group="send-in-order", exit_on_error=False)
    async def _send_in_order(self) -> None:
        """Hand lines to the engine one by one, in the order they were typed.

        A message is queued durably (and shown as pending) before the next line is
        taken; a command that talks to the server runs on its own so a slow one (an
        invite, a topic) does not hold up the messages typed after it. The worker ends
        when the lines run out; the next line starts it again.
        """
        try:
            while self._outgoing:
                room_id, text, mode, mentions = self._outgoing.popleft()
                if _is_message(text, mode):
                    await self._send(room_id, text, mode, mentions)
                else:
                    self.run_worker(
                        self._send(room_id, text, mode, mentions), group="send", exit_on_error=False
                    )
        finally:
            self._draining = False

    async def _send(
        self,
        room_id: str | None,
        text: str,
        mode: tuple[str, TimelineItem] | None,
        mentions: list[Pill],
    ) -> None:
        pills = mentions
        try:
            if mode is not None and mode[0] == "edit" and room_id and mode[1].event_id:
                await self.client.send_edit(room_id, mode[1].event_id, text, pills=pills)
                return
            reply_to = mode[1].event_id if mode is not None and mode[0] == "reply" else None
            result = await self.client.submit(room_id, text, reply_to=reply_to, pills=pills)
        except CommandError as error:
            self.post_message(ActionFailed(str(error)))
            self.post_message(_RestoreComposer(text, mentions))
            return
        except StorageUnavailable as error:
            self.post_message(
                ActionFailed(f"Not sent: {error} (your text is back in the composer)")
            )
            self.post_message(_RestoreComposer(text, mentions))
            return
        except (MatrixError, NetworkError, OSError) as error:
            self.post_message(ActionFailed(f"Failed: {error}"))
            self.post_message(_RestoreComposer(text, mentions))
            return
        if result == "help":
            self.post_message(_ShowHelp())
        elif result:
            self.post_message(_Info(result))

    def on__restore_composer(self, message: _RestoreComposer) -> None:
        self.query_one(Composer).restore(message.text, message.mentions)

    def on__show_help(self, _message: _ShowHelp) -> None:
        self.action_help()

    @on(Composer.FilePasted)
    def _file_pasted(self, event: Composer.FilePasted) -> None:
        """A pasted file path: offer to upload it; if not, the text goes in after all."""
        from .dialogs import ConfirmDialog

        room_id, path, text = self.current_room, event.path, event.text
        composer = self.query_one(Composer)
        if room_id is None:
            composer.insert(text)
            return
        try:
            size = size_text(path.stat().st_size)
        except OSError:
            composer.insert(text)
            return
        question = f"Upload {clean_line(path.name, 80)} ({size}) to this room?"

        def answered(upload: bool | None) -> None:
            if upload:
                self.run_worker(self._upload(room_id, path), group="upload", exit_on_error=False)
            else:
                composer.insert(text)

        self.app.push_screen(ConfirmDialog(question, "Upload"), answered)

    async def _upload(self, room_id: str, path: Path) -> None:
        try:
            await self.client.uploads.send_file(room_id, path)
        except (MediaError, OSError) as error:
            self.post_message(ActionFailed(f"cannot send the file: {error}"))

    def action_cancel_upload(self) -> None:
        """F8: stop the newest upload under way (nothing is sent)."""
        latest = self.query_one(UploadBar).latest()
        if latest is None or not self.client.uploads.cancel(latest.upload_id):
            self.notify("No upload to cancel.", timeout=3)
        else:
            self.notify(f"Cancelled {clean_line(latest.name, 80)}", markup=False, timeout=4)

    def on__info(self, message: _Info) -> None:
        self.notify(clean_line(message.text), markup=False)

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(clean_line(message.text), severity="error", markup=False)

    @on(Composer.Cancelled)
    def _cancel_mode(self) -> None:
        if self.mode is not None:
            self._set_mode(None)
            if self.mode is None:
                self.query_one(Composer).clear()
        else:
            self.query_one(TimelineView).focus()

    @on(Composer.EditLast)
    def _edit_last(self) -> None:
        timeline = self.query_one(TimelineView)
        for item in reversed(timeline.items):
            if (
                item.sender == self.client.user_id
                and item.kind in ("text", "emote", "notice")
                and item.event_id
                and not item.is_local_echo
            ):
                self._start_edit(item)
                return

    def _set_mode(self, mode: tuple[str, TimelineItem] | None) -> None:
        self.mode = mode
        banner = self.query_one("#mode-banner", Static)
        if mode is None:
            banner.display = False
            return
        action, item = mode
        who = self.view.display_name(item.sender) if self.view else item.sender
        verb = "Replying to" if action == "reply" else "Editing your message"
        text = Text(f"{verb} ", style=Style(bold=True))
        if action == "reply":
            text.append(who + ": ", style=Style(bold=True))
        text.append(item.body.split("\n", 1)[0][:80], style=Style(italic=True))
        text.append("   (Esc to cancel)", style=Style(dim=True))
        banner.update(text)
        banner.display = True

    def _start_edit(self, item: TimelineItem) -> None:
        composer = self.query_one(Composer)
        self._set_mode(("edit", item))
        composer.text = item.body
        content = (
            self.view.model.content_of(item.event_id)
            if self.view is not None and item.event_id
            else None
        )
        formatted = content.get("formatted_body") if content else None
        if isinstance(formatted, str):  # its mentions stay mentions
            composer.remember_mentions(place_pills(item.body, pills_of(formatted)))
        composer.move_cursor(composer.document.end)
        composer.focus()

    # -- message actions ----------------------------------------------------------

    @on(TimelineView.ItemAction)
    def _item_action(self, event: TimelineView.ItemAction) -> None:
        from .dialogs import ConfirmDialog, ReactionDialog

        item, action = event.item, event.action
        room = self.current_room
        if room is None:
            return
        if action == "reply" and item.event_id and not item.is_local_echo:
            self._set_mode(("reply", item))
            self.query_one(Composer).focus()
        elif action == "edit":
            if item.sender != self.client.user_id or not item.event_id or item.is_local_echo:
                self.notify("You can only edit your own sent messages.", severity="warning")
                return
            self._start_edit(item)
        elif action == "react" and item.event_id and not item.is_local_echo:
            self.app.push_screen(ReactionDialog(), lambda key: self._react(room, item, key))
        elif action == "delete" and item.event_id and not item.is_local_echo:
            self.app.push_screen(
                ConfirmDialog("Delete this message for everyone?", "Delete", danger=True),
                lambda yes: self._delete(room, item) if yes else None,
            )
        elif action == "retry" and item.send_state is SendState.FAILED and item.txn_id:
            self.run_worker(self.client.retry_send(item.txn_id), exit_on_error=False)
        elif (
            action == "discard"
            and item.is_local_echo
            and item.send_state is SendState.FAILED
            and item.txn_id
        ):
            self.run_worker(self.client.discard_send(item.txn_id), exit_on_error=False)
        elif (
            action == "thread"
            and item.event_id
            and not item.is_local_echo
            and self.view is not None
        ):
            from .threads import open_thread

            open_thread(
                self.app,
                self.query_one("#body", Horizontal),
                self.client,
                self.view,
                item.event_id,
                completions=self._completions,
                palette=self.query_one(TimelineView).palette,
            )
        elif action == "open_link":
            self.open_link(item)
        elif action == "copy_link":
            self.copy_link(item)
        elif action == "save":
            if item.kind != "media" or not item.event_id or item.is_local_echo:
                self.notify(
                    "Select a message with a file (image, video, audio or file) to save it.",
                    severity="warning",
                    markup=False,
                )
                return
            self._save_attachment(item.event_id)

    @work(group="save", exit_on_error=False)
    async def _save_attachment(self, event_id: str) -> None:
        self.notify("Downloading…", markup=False, timeout=3)
        try:
            path = await self.client.save_attachment(event_id)
        except (MediaError, AttachmentError, MatrixError, NetworkError, OSError) as error:
            self.notify(
                f"Could not save the file: {clean_line(str(error), 300)}",
                severity="error",
                markup=False,
            )
            return
        self.notify(f"Saved to {clean_line(str(path), 300)}", markup=False, timeout=8)

    def _react(self, room: str, item: TimelineItem, key: str | None) -> None:
        # The same reaction again takes ours back.
        if key and item.event_id:
            self._guarded(self.client.toggle_reaction(room, item.event_id, key))

    def _delete(self, room: str, item: TimelineItem) -> None:
        if item.event_id:
            self._guarded(self.client.redact(room, item.event_id))

    def _guarded(self, coroutine: object) -> None:
        async def run() -> None:
            try:
                await coroutine  # type: ignore[misc]
            except (MatrixError, NetworkError, CommandError) as error:
                self.post_message(ActionFailed(f"Failed: {error}"))

        self.run_worker(run(), exit_on_error=False)

    # -- invites --------------------------------------------------------------------

    @on(Button.Pressed, "#accept-invite")
    def _accept_invite(self) -> None:
        if self.current_room:
            self._guarded(self.client.join(self.current_room))

    @on(Button.Pressed, "#reject-invite")
    def _reject_invite(self) -> None:
        if self.current_room:
            self._guarded(self.client.leave(self.current_room))

    # -- actions --------------------------------------------------------------------

    def action_switch_room(self) -> None:
        """The fuzzy switcher."""
        rooms = visible_rooms(
            self.client.rooms.values(), hidden=self.client.notifications.hides_room
        )
        from .switcher import RoomSwitcher

        self.app.push_screen(RoomSwitcher(rooms, self._switch_to))

    def _switch_to(self, room_id: str) -> None:
        self.open_room(room_id)  # (in the switcher's step: the keys typed next go here)
        self.set_focus(self.query_one(Composer))

    def action_room_step(self, step: int) -> None:
        """Previous/next room in list order."""
        rooms = [r.room_id for r in self._ordered_rooms()]
        if not rooms:
            return
        index = rooms.index(self.current_room) if self.current_room in rooms else -1
        self.open_room(rooms[(index + step) % len(rooms)])

    # -- search -----------------------------------------------------------------------

    def action_search(self, room_id: str | None = None, index_older: bool = False) -> None:
        """The search screen: every room, or one (``/`` in its timeline)."""
        from .search import SearchScreen  # (and the engine's search) when first opened

        screen = SearchScreen(
            self.client, room_id, home_room=self.current_room, index_older=index_older
        )
        self.app.push_screen(screen, self._search_chosen)

    def _search_chosen(self, history: SearchHistory | None) -> None:
        if history is not None and history.results:
            self._search_history = history
            self.show_event(
                history.results[history.index].room_id, history.results[history.index].event_id
            )

    @on(TimelineView.SearchRequested)
    def _search_room(self) -> None:
        self.action_search(self.current_room)

    @on(TimelineView.SearchStep)
    def _search_step(self, event: TimelineView.SearchStep) -> None:
        history = self._search_history
        result = history.step(event.step) if history is not None else None
        if result is None:
            self.notify(
                "No more results." if history is not None else "No search yet: Ctrl+F or /.",
                timeout=3,
            )
            return
        self.show_event(result.room_id, result.event_id)

    def show_event(self, room_id: str, event_id: str) -> None:
        """Open a room at one event (loading the history around it) and select it."""
        self.open_room(room_id)
        self._jump(room_id, event_id)

    @work(group="jump", exclusive=True, exit_on_error=False)
    async def _jump(self, room_id: str, event_id: str) -> None:
        view = await self.client.open_room(room_id)
        found = await view.jump_to(event_id)
        if room_id == self.current_room:
            self.post_message(_SelectEvent(event_id, found))

    def on__select_event(self, message: _SelectEvent) -> None:
        timeline = self.query_one(TimelineView)
        if self.view is not None:
            timeline.set_items(
                self.view.model.items, self.view.read_by(), self.view.new_messages_after()
            )
            self._sync_view_flags()
        if not (message.found and timeline.select_event(message.event_id)):
            self.notify("That message could not be loaded in its room.", severity="warning")
        else:
            timeline.focus()

    def action_thread_list(self) -> None:
        """The open room's threads (all / mine); Enter opens one."""
        view = self.view
        if view is None:
            return
        from .threads import ThreadListScreen, open_thread

        self.app.push_screen(
            ThreadListScreen(self.client, view.room_id, view.display_name),
            lambda root: (
                open_thread(
                    self.app,
                    self.query_one("#body", Horizontal),
                    self.client,
                    view,
                    root,
                    completions=self._completions,
                    palette=self.query_one(TimelineView).palette,
                )
                if root and view is self.view
                else None
            ),
        )

    def _thread_panels(self) -> DOMQuery[ThreadPanel]:
        return self.query(_THREAD_PANELS)  # type: ignore[return-value]

    def on_thread_panel_closed(self, event: ThreadPanel.Closed) -> None:
        for panel in self._thread_panels():
            panel.remove()
        self.query_one(Composer).focus()

    def action_help(self) -> None:
        """Key bindings and commands."""
        from .help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_toggle_members(self) -> None:
        """Show or hide the member list."""
        members = self.query_one("#members")
        members.display = not members.display
        if members.display:
            self._load_members()

    def _load_members(self) -> None:
        view = self.view
        if view is None:
            return
        self.query_one(MemberList).show_members(view.members, view.power_levels)
        self.run_worker(
            view.load_all_members(), group="members", exclusive=True, exit_on_error=False
        )

    def action_join_dialog(self) -> None:
        """Ask for a room to join."""
        from .dialogs import PromptDialog

        self.app.push_screen(
            PromptDialog("Join a room", "#alias:server, !roomid, matrix.to link or matrix: URI"),
            lambda target: self._join(target) if target else None,
        )

    def _join(self, target: str) -> None:
        client_app(self).join_flow.join(target, open_after=True)

    def action_leave_room(self) -> None:
        """Leave the current room, after confirmation."""
        from .dialogs import ConfirmDialog

        room = self.current_room
        if room is None:
            return
        name = self.client.rooms[room].display_name if room in self.client.rooms else room
        self.app.push_screen(
            ConfirmDialog(f"Leave {clean_line(name)}?", "Leave", danger=True),
            lambda yes: self._guarded(self.client.leave(room)) if yes else None,
        )

    def action_mark_read(self) -> None:
        """Mark the current room read, up to its newest message."""
        event_id = self.view.model.last_event_id() if self.view is not None else None
        if self.current_room and event_id:
            self.run_worker(self.client.mark_read(self.current_room, event_id), exit_on_error=False)

    async def action_mark_all_read(self) -> None:
        """Mark every room with unread messages read."""
        marked, failed = await self.client.receipts.mark_all_read()
        if failed:
            self.notify(
                f"Could not mark {failed} room{'s' if failed != 1 else ''} as read; try again later.",
                severity="error",
                markup=False,
            )
        elif marked:
            self.notify(f"Marked {marked} room{'s' if marked != 1 else ''} as read.", markup=False)
        else:
            self.notify("No unread rooms.", markup=False)

    def now(self) -> float:
        """The clock (tests freeze it)."""
        return time.time()


from textual.message import Message  # noqa: E402


def _is_message(text: str, mode: tuple[str, TimelineItem] | None) -> bool:
    """True for a line that becomes a message in the room (kept in order with the others)."""
    if mode is not None:
        return True
    try:
        command = parse_command(text)
    except CommandError:
        return False
    return command is None or command.name in MESSAGE_COMMANDS


class _SelectEvent(Message):
    def __init__(self, event_id: str, found: bool) -> None:
        super().__init__()
        self.event_id = event_id
        self.found = found


class _FlagsChanged(Message):
    pass


class _RestoreComposer(Message):
    def __init__(self, text: str, mentions: list[Pill] | None = None) -> None:
        super().__init__()
        self.text = text
        self.mentions = mentions or []


class _ShowHelp(Message):
    pass


class _Info(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
