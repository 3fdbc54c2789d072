"""Threads: the thread panel (beside the timeline, or a screen of its own on a narrow
terminal) and a room's thread list.

The panel is a second :class:`TimelineView` over an engine :class:`ThreadView`, with
its own :class:`Composer` that writes into the thread; the actions on a message (reply,
edit, react, delete, save, retry, discard) are the main timeline's. The thread list
pages ``/threads`` (all threads, or those the user took part in).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...engine.attachments import AttachmentError, MediaError
from ...engine.client import MatrixClient
from ...engine.formatting import Pill
from ...engine.room_view import RoomView
from ...engine.threads import ThreadPage, ThreadSummary, ThreadView
from ...engine.updates import ThreadUnreadChanged, ThreadUpdated, Update
from ...protocol.commands import CommandError, parse_command
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ...protocol.timeline import SendState, TimelineItem
from ..completion import Completion
from ..messages import ComposerSubmitted
from ..render import Palette
from ..seen import SeenTracker
from ..widgets.composer import Composer
from ..widgets.key_footer import KeyFooter
from ..widgets.timeline import TimelineView
from .dialogs import ConfirmDialog, ReactionDialog

__all__ = [
    "NARROW",
    "ThreadListScreen",
    "ThreadPanel",
    "ThreadScreen",
    "forward_thread_update",
    "open_thread",
]

#: Below this many columns the thread opens as a screen of its own.
NARROW = 100

Completions = Callable[[str], list[Completion]]


class ThreadTimeline(TimelineView):
    """The thread's messages: Escape with nothing selected closes the thread."""

    class CloseAsked(Message):
        """Escape with nothing selected."""

    def action_clear_selection(self) -> None:
        if self.selected_key is None:
            self.post_message(self.CloseAsked())
            return
        super().action_clear_selection()


class ThreadPanel(Vertical):
    """One thread: its root and replies, and a composer that answers in it."""

    #: The panels mounted now (in any screen): :func:`forward_thread_update` hands them updates.
    mounted: ClassVar[weakref.WeakSet[ThreadPanel]] = weakref.WeakSet()

    DEFAULT_CSS = """
    ThreadPanel {
        width: 1fr;
        border-left: vkey $accent;
    }
    ThreadPanel #thread-title {
        height: 1;
        background: $panel;
        text-style: bold;
    }
    ThreadPanel #thread-mode {
        height: auto;
        display: none;
    }
    """

    class Closed(Message):
        """The user closed the thread (Escape)."""

    def __init__(
        self,
        client: MatrixClient,
        room_view: RoomView,
        root_id: str,
        *,
        completions: Completions | None = None,
        palette: Palette | None = None,
        id: str | None = "thread-panel",
    ) -> None:
        super().__init__(id=id)
        self.client = client
        self.room_view = room_view
        self.room_id = room_view.room_id
        self.root_id = root_id
        self.view: ThreadView | None = None
        self.mode: tuple[str, TimelineItem] | None = None
        self._version = 0
        self._completions = completions
        self._palette = palette
        self._reader = SeenTracker(self, lambda: self.query_one(ThreadTimeline))

    def on_unmount(self) -> None:
        ThreadPanel.mounted.discard(self)

    def compose(self) -> ComposeResult:
        yield Static(Text("Thread", style=Style(bold=True)), id="thread-title")
        yield ThreadTimeline(id="thread-timeline")
        yield Static(id="thread-mode")
        yield Composer(id="thread-composer", completions=self._completions)

    def on_mount(self) -> None:
        ThreadPanel.mounted.add(self)
        timeline = self.query_one(ThreadTimeline)
        if self._palette is not None:
            timeline.palette = self._palette
        timeline.name_of = self.room_view.display_name
        timeline.own_user = self.client.user_id
        timeline.empty_text = "Loading the thread…"
        self._load()
        self.query_one("#thread-composer", Composer).focus()
        self._reader.watch_focus(self.mark_read)

    @work(group="thread-open", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        view = await self.client.threads.open(
            self.room_id,
            self.root_id,
            name_of=self.room_view.display_name,
            may_redact_others=lambda user_id: self.room_view.power_levels.can(user_id, "redact"),
            may_mention_room=lambda: self.client.may_mention_room(self.room_id),
        )
        self.post_message(_ThreadLoaded(view))

    def on__thread_loaded(self, message: _ThreadLoaded) -> None:
        view = message.view
        self.view = view
        self._version = view.version
        timeline = self.query_one(ThreadTimeline)
        timeline.empty_text = (
            "This thread could not be loaded."
            if view.root_missing and not view.model.items
            else "No replies yet."
        )
        timeline.set_items(view.model.items)
        timeline.reached_start = view.reached_start
        self._show_title()
        self.mark_read()

    def _show_title(self) -> None:
        replies = max(
            0, len([i for i in self.query_one(ThreadTimeline).items if i.event_id != self.root_id])
        )
        plural = "reply" if replies == 1 else "replies"
        text = Text(f" 🧵 Thread · {replies} {plural}", style=Style(bold=True))
        text.append("   Esc to close", style=Style(dim=True, bold=False))
        self.query_one("#thread-title", Static).update(text)

    # -- engine updates ---------------------------------------------------------------

    def handle_update(self, update: Update) -> None:
        if (
            isinstance(update, ThreadUpdated)
            and update.room_id == self.room_id
            and update.root_id == self.root_id
            and update.version > self._version
        ):
            self._version = update.version
            timeline = self.query_one(ThreadTimeline)
            timeline.apply_diffs(update.diffs)
            if self.view is not None:
                timeline.reached_start = self.view.reached_start
            self._show_title()
            self.mark_read()

    def mark_read(self) -> None:
        """Mark the thread read up to what the user has seen (ui/seen.py), after a moment;
        called again when its screen is shown again."""
        if self.view is not None:
            self._reader.schedule(self._send_read)

    def _send_read(self, event_id: str) -> None:
        if event_id == self.root_id or not self.is_attached:
            return  # the root is the main timeline's
        self.run_worker(
            self.client.threads.mark_read(self.room_id, self.root_id, event_id),
            group="thread-read",
            exclusive=True,
            exit_on_error=False,
        )

    @on(TimelineView.Viewed)
    def _viewed(self, event: TimelineView.Viewed) -> None:
        event.stop()
        self.mark_read()

    # -- paging, closing ---------------------------------------------------------------

    @on(TimelineView.NeedOlder)
    def _need_older(self, event: TimelineView.NeedOlder) -> None:
        event.stop()
        if self.view is not None and not self.view.reached_start:
            self.run_worker(
                self.view.paginate_back(), group="thread-page", exclusive=True, exit_on_error=False
            )

    @on(TimelineView.NeedNewer)
    def _need_newer(self, event: TimelineView.NeedNewer) -> None:
        event.stop()

    @on(ThreadTimeline.CloseAsked)
    def _close_asked(self, event: ThreadTimeline.CloseAsked) -> None:
        event.stop()
        self.close()

    def close(self) -> None:
        self._reader.cancel()
        self.client.threads.close(self.room_id, self.root_id)
        self.post_message(self.Closed())

    # -- the composer -------------------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, event: ComposerSubmitted) -> None:
        event.stop()
        mode, text = self.mode, event.text
        self._set_mode(None)
        self.run_worker(
            self._send(text, mode, list(event.mentions)), group="thread-send", exit_on_error=False
        )

    async def _send(
        self, text: str, mode: tuple[str, TimelineItem] | None, pills: list[Pill]
    ) -> None:
        view = self.view
        composer = self.query_one("#thread-composer", Composer)
        if view is None:
            composer.restore(text, pills)
            return
        try:
            if mode is not None and mode[0] == "edit" and mode[1].event_id:
                await view.send_edit(mode[1].event_id, text, pills=pills)
                return
            reply_to = mode[1].event_id if mode is not None and mode[0] == "reply" else None
            command = parse_command(text)
            if command is None:
                await view.send_text(
                    text.removeprefix("/") if text.startswith("//") else text,
                    reply_to=reply_to,
                    pills=pills,
                )
            elif command.name == "me":
                await view.send_text(command.argument, msgtype="m.emote", pills=pills)
            elif command.name == "plain":
                await view.send_text(command.argument, reply_to=reply_to, markdown=False)
            else:
                raise CommandError(f"/{command.name} works in the room's composer, not in a thread")
        except (CommandError, MatrixError, NetworkError) as error:
            self.notify(clean_line(f"Not sent: {error}", 300), severity="error", markup=False)
            composer.restore(text, pills)

    @on(Composer.Cancelled)
    def _cancelled(self, event: Composer.Cancelled) -> None:
        event.stop()
        if self.mode is not None:
            self._set_mode(None)
            self.query_one("#thread-composer", Composer).clear()
        else:
            self.close()

    @on(Composer.EditLast)
    def _edit_last(self, event: Composer.EditLast) -> None:
        event.stop()
        for item in reversed(self.query_one(ThreadTimeline).items):
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
        banner = self.query_one("#thread-mode", Static)
        if mode is None:
            banner.display = False
            return
        action, item = mode
        text = Text(
            "Replying to " if action == "reply" else "Editing your message ", style=Style(bold=True)
        )
        if action == "reply":
            text.append(self.room_view.display_name(item.sender) + ": ", style=Style(bold=True))
        text.append(item.body.split("\n", 1)[0][:80], style=Style(italic=True))
        text.append("   (Esc to cancel)", style=Style(dim=True))
        banner.update(text)
        banner.display = True

    def _start_edit(self, item: TimelineItem) -> None:
        composer = self.query_one("#thread-composer", Composer)
        self._set_mode(("edit", item))
        composer.text = item.body
        composer.move_cursor(composer.document.end)
        composer.focus()

    # -- actions on a message --------------------------------------------------------------

    @on(TimelineView.ItemAction)
    def _item_action(self, event: TimelineView.ItemAction) -> None:
        event.stop()
        item, action = event.item, event.action
        view = self.view
        if view is None:
            return
        sent = bool(item.event_id) and not item.is_local_echo
        if action == "reply" and sent:
            self._set_mode(("reply", item))
            self.query_one("#thread-composer", Composer).focus()
        elif action == "edit":
            if item.sender != self.client.user_id or not sent:
                self.notify("You can only edit your own sent messages.", severity="warning")
                return
            self._start_edit(item)
        elif action == "react" and sent and item.event_id:
            event_id = item.event_id
            self.app.push_screen(
                ReactionDialog(),
                lambda key: self._guarded(view.toggle_reaction(event_id, key)) if key else None,
            )
        elif action == "delete" and sent and item.event_id:
            event_id = item.event_id
            self.app.push_screen(
                ConfirmDialog("Delete this message for everyone?", "Delete", danger=True),
                lambda yes: (
                    self._guarded(self.client.redact(self.room_id, event_id)) if yes else None
                ),
            )
        elif action == "retry" and item.send_state is SendState.FAILED and item.txn_id:
            self._guarded(self.client.retry_send(item.txn_id))
        elif (
            action == "discard"
            and item.is_local_echo
            and item.send_state is SendState.FAILED
            and item.txn_id
        ):
            txn_id = item.txn_id
            self._guarded(self.client.discard_send(txn_id))
            view.model.remove_local_echo(txn_id)
            self.query_one(ThreadTimeline).set_items(view.model.items)
        elif action == "save":
            if item.kind != "media" or not sent or not item.event_id:
                self.notify(
                    "Select a message with a file (image, video, audio or file) to save it.",
                    severity="warning",
                    markup=False,
                )
                return
            self._save(item.event_id)
        elif action in ("open_link", "copy_link"):
            # The same as in the room: its file or links (spoilers count as not revealed).
            chat = getattr(self.app, "chat_screen", None)
            if chat is not None and action == "open_link":
                chat.open_link(item)
            elif chat is not None:
                chat.copy_link(item)

    @work(group="thread-save", exit_on_error=False)
    async def _save(self, event_id: str) -> None:
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

    def _guarded(self, coroutine: object) -> None:
        async def run() -> None:
            try:
                await coroutine  # type: ignore[misc]
            except (MatrixError, NetworkError, CommandError) as error:
                self.notify(clean_line(f"Failed: {error}", 300), severity="error", markup=False)

        self.run_worker(run(), exit_on_error=False)


class _ThreadLoaded(Message):
    def __init__(self, view: ThreadView) -> None:
        super().__init__()
        self.view = view


class ThreadScreen(Screen[None]):
    """A thread on a narrow terminal: the panel takes the whole screen."""

    def __init__(self, panel: ThreadPanel) -> None:
        super().__init__()
        self.panel = panel

    def compose(self) -> ComposeResult:
        yield self.panel
        yield KeyFooter()

    @on(ThreadPanel.Closed)
    def _panel_closed(self) -> None:
        self.dismiss(None)

    def on_screen_resume(self) -> None:
        self.panel.mark_read()


def open_thread(
    app: App[object],
    container: Widget | None,
    client: MatrixClient,
    room_view: RoomView,
    root_id: str,
    *,
    completions: Completions | None = None,
    palette: Palette | None = None,
) -> None:
    """Open a thread: a panel in ``container`` (after its ``#center``) on a wide terminal,
    replacing an open one; a :class:`ThreadScreen` on a narrow one."""
    for old in app.screen.query(ThreadPanel):
        old.client.threads.close(old.room_id, old.root_id)
        old.remove()
    panel = ThreadPanel(client, room_view, root_id, completions=completions, palette=palette)
    if container is None or app.size.width < NARROW:
        app.push_screen(ThreadScreen(panel))
    else:
        centre = container.query("#center")
        container.mount(panel, after=centre.first() if centre else None)


def forward_thread_update(app: App[object], update: Update) -> None:
    """Hand a thread update to every open thread panel (of the screens in front: a
    background account's have their own updates)."""
    if not isinstance(update, ThreadUpdated | ThreadUnreadChanged):
        return
    stack = app.screen_stack
    # (the mounted panels are known: querying every screen's widgets for them cost
    # ~0.2 ms an update, and a first sync brings a ThreadUnreadChanged per room with threads)
    for panel in list(ThreadPanel.mounted):
        if panel.is_attached and panel.screen in stack:
            panel.handle_update(update)
    for screen in stack:
        if isinstance(screen, ThreadListScreen):
            screen.handle_update(update)


# -- the thread list -----------------------------------------------------------------------


def _when(ts: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts / 1000).strftime("%d %b %H:%M") if ts else ""


class ThreadListScreen(ModalScreen[str | None]):
    """A room's threads, latest activity first; Enter opens one, Tab switches all / mine."""

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("tab", "toggle_include", "All / mine"),
    ]

    DEFAULT_CSS = """
    ThreadListScreen {
        align: center middle;
    }
    ThreadListScreen > Vertical {
        width: 90%;
        height: 80%;
        border: round $accent;
        background: $surface;
    }
    ThreadListScreen #threads-title {
        height: 1;
        text-style: bold;
    }
    ThreadListScreen OptionList {
        height: 1fr;
    }
    """

    def __init__(
        self,
        client: MatrixClient,
        room_id: str,
        name_of: Callable[[str], str],
        *,
        include: str = "all",
    ) -> None:
        super().__init__()
        self.client = client
        self.room_id = room_id
        self.name_of = name_of
        self.include = include
        self.threads: list[ThreadSummary] = []
        self.next_batch: str | None = None
        # A page is being fetched (not Textual's ``loading``, which would cover the screen).
        self._fetching = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="threads-title")
            yield OptionList(id="threads")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._title()
        self._fetch(None)
        self.query_one(OptionList).focus()

    def _title(self, note: str = "") -> None:
        which = "All threads" if self.include == "all" else "My threads"
        text = Text(f" {which}", style=Style(bold=True))
        text.append(
            "   Tab: all / mine · Enter: open · Esc: close", style=Style(dim=True, bold=False)
        )
        if note:
            text.append(f"   {note}", style=Style(italic=True, bold=False))
        self.query_one("#threads-title", Static).update(text)

    @work(group="thread-list", exclusive=True, exit_on_error=False)
    async def _fetch(self, from_token: str | None) -> None:
        self._fetching = True
        include = self.include
        try:
            page = await self.client.threads.list_threads(
                self.room_id,
                include="participated" if include == "mine" else "all",
                from_token=from_token,
                name_of=self.name_of,
            )
        except (MatrixError, NetworkError) as error:
            self._fetching = False
            self._title(clean_line(f"Could not load the threads: {error}", 200))
            return
        self.post_message(_PageLoaded(page, include, from_token is None))

    def on__page_loaded(self, message: _PageLoaded) -> None:
        self._fetching = False
        if message.include != self.include:
            return
        if message.first:
            self.threads = []
        self.threads.extend(message.page.threads)
        self.next_batch = message.page.next_batch
        self._show()

    def _show(self) -> None:
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        unread = self.client.threads.unread_in(self.room_id)
        for summary in self.threads:
            options.add_option(
                Option(self._row(summary, summary.root_id in unread), id=summary.root_id)
            )
        if self.next_batch is not None:
            options.add_option(
                Option(Text("Load more threads…", style=Style(italic=True)), id="\x00more")
            )
        if not self.threads:
            options.add_option(
                Option(
                    Text(
                        "No threads in this room yet."
                        if self.include == "all"
                        else "You have not taken part in a thread here.",
                        style=Style(italic=True),
                    ),
                    id="\x00none",
                    disabled=True,
                )
            )
        if highlighted is not None and highlighted < options.option_count:
            options.highlighted = highlighted
        elif self.threads:
            options.highlighted = 0
        self._title()

    def _row(self, summary: ThreadSummary, unread: bool) -> Text:
        text = Text()
        text.append("● " if unread else "  ", style=Style(bold=True, color="bright_cyan"))
        text.append(clean_line(self.name_of(summary.root_sender), 40), style=Style(bold=True))
        text.append(": ")
        text.append(clean_line(summary.root_body.split("\n", 1)[0], 100))
        text.append("\n    ")
        plural = "reply" if summary.count == 1 else "replies"
        text.append(f"💬 {summary.count} {plural}", style=Style(bold=unread))
        if summary.latest_sender is not None and summary.latest_body is not None:
            text.append(" · latest: ", style=Style(dim=True))
            text.append(
                clean_line(self.name_of(summary.latest_sender), 40) + ": ",
                style=Style(dim=True, bold=True),
            )
            text.append(
                clean_line(summary.latest_body.split("\n", 1)[0], 80), style=Style(dim=True)
            )
            text.append(f" · {_when(summary.latest_ts)}", style=Style(dim=True))
        return text

    def handle_update(self, update: Update) -> None:
        if (
            isinstance(update, ThreadUnreadChanged)
            and update.room_id == self.room_id
            and self.threads
        ):
            self._show()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id
        if option_id == "\x00more":
            if not self._fetching and self.next_batch is not None:
                self._fetch(self.next_batch)
            return
        if option_id and not option_id.startswith("\x00"):
            self.dismiss(option_id)

    def action_toggle_include(self) -> None:
        self.include = "mine" if self.include == "all" else "all"
        self.threads = []
        self.next_batch = None
        self.query_one(OptionList).clear_options()
        self._title()
        self._fetch(None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class _PageLoaded(Message):
    def __init__(self, page: ThreadPage, include: str, first: bool) -> None:
        super().__init__()
        self.page = page
        self.include = include
        self.first = first
