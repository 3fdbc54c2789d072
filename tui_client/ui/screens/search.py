"""The search screen (Ctrl+F everywhere, ``/`` in a room's timeline): one query over the
local index (every room, encrypted ones included) and the server's ``/search``
(unencrypted rooms), results grouped by room, newest first, matched words highlighted.

The highlighted result is shown in its context below the list (the messages before and
after it, from the cache, else the server's ``/context``). Enter opens the room at the
result; ``n``/``N`` move to the next/previous result, here and, after a jump, in the
timeline. F5 indexes older messages of the room searched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ...engine.client import MatrixClient
from ...engine.search import IndexProgress, ResultContext, SearchResult, SearchResults
from ...engine.storage import StorageUnavailable
from ...protocol.errors import MatrixError, NetworkError
from ...protocol.sanitize import clean_line
from ...protocol.search import highlight_spans
from ..widgets.key_footer import KeyFooter

__all__ = ["SearchHistory", "SearchScreen", "grouped"]

MORE = "more"
BODY_WIDTH = 400


def grouped(results: tuple[SearchResult, ...]) -> list[SearchResult]:
    """Results in screen order: rooms by their newest result, each room's newest first."""
    newest: dict[str, int] = {}
    for result in results:
        newest[result.room_id] = max(newest.get(result.room_id, 0), result.ts)
    return sorted(results, key=lambda r: (-newest[r.room_id], r.room_id, -r.ts))


@dataclass
class SearchHistory:
    """The last search's results in screen order, and which one is shown (for n/N)."""

    results: list[SearchResult]
    index: int = 0

    def step(self, step: int) -> SearchResult | None:
        """The next (``step=1``) or previous result, or None past either end."""
        target = self.index + step
        if not 0 <= target < len(self.results):
            return None
        self.index = target
        return self.results[target]


def highlighted(text: str, terms: tuple[str, ...], style: str = "bold reverse") -> Text:
    """``text`` (already cleaned) with every match of ``terms`` in ``style``; no markup."""
    rendered = Text(text)
    for start, end in highlight_spans(text, terms):
        rendered.stylize(style, start, end)
    return rendered


def when(ts: int) -> str:
    """A result's time as the screen shows it."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts / 1000)) if ts else "----------"


def context_lines(
    result: SearchResult,
    around: ResultContext | None,
    terms: tuple[str, ...],
    width: int = BODY_WIDTH,
) -> Text:
    """The result between the messages before and after it (one line each; no markup)."""

    def line(mark: str, message: SearchResult, style: str, body: Text) -> Text:
        return Text.assemble(
            (f"{mark} {when(message.ts)}  ", "dim"),
            (clean_line(message.sender, 60), style),
            "  ",
            body,
        )

    def other(mark: str, message: SearchResult | None, missing: str) -> Text:
        if message is None:
            return Text(f"{mark} {missing}", style="dim italic")
        return line(mark, message, "dim bold", Text(clean_line(message.body, width), style="dim"))

    if around is None:
        before = after = Text("  …", style="dim")
    else:
        before = other("↑", around.before, "(nothing earlier here)")
        after = other("↓", around.after, "(nothing later here)")
    shown = line("▶", result, "bold", highlighted(clean_line(result.body, width), terms))
    return Text("\n").join([before, shown, after])


class SearchScreen(Screen[SearchHistory | None]):
    """Search messages; dismissed with the results and the one chosen (None: closed)."""

    DEFAULT_CSS = """
    SearchScreen #search-results { height: 1fr; }
    SearchScreen #search-context { height: 4; border-top: solid $primary-darken-2; }
    SearchScreen #search-status { height: auto; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("n", "step(1)", "Next result"),
        Binding("N", "step(-1)", "Previous result"),
        Binding("f5", "index_older", "Index older messages"),
        Binding("ctrl+r", "toggle_scope", "All rooms / this room"),
    ]

    class _Done(Message):
        def __init__(self, results: SearchResults | None, error: str | None, append: bool) -> None:
            super().__init__()
            self.results = results
            self.error = error
            self.append = append

    class _Progress(Message):
        def __init__(self, progress: IndexProgress) -> None:
            super().__init__()
            self.progress = progress

    class _Context(Message):
        def __init__(self, event_id: str, around: ResultContext | None, error: str | None) -> None:
            super().__init__()
            self.event_id = event_id
            self.around = around
            self.error = error

    def __init__(
        self,
        client: MatrixClient,
        room_id: str | None = None,
        *,
        home_room: str | None = None,
        query: str = "",
        index_older: bool = False,
    ) -> None:
        super().__init__()
        self.client = client
        #: The room searched (None: all rooms); the room it was opened from stays toggleable.
        self.room_id = room_id
        self.home_room = home_room or room_id
        self.initial_query = query
        self.start_indexing = index_older
        self.results: SearchResults | None = None
        self.shown: list[SearchResult] = []
        self.indexing = False
        #: Context already fetched, by event ID.
        self.contexts: dict[str, ResultContext] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box"):
            yield Input(
                value=self.initial_query,
                placeholder='words, "a phrase", from:@user:server, in:#room:server, after:2024-05-01, before:…',
                id="search-input",
            )
            yield Static(id="search-scope")
            yield OptionList(markup=False, id="search-results")
            yield Static(id="search-context")
            yield Static(id="search-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._show_scope()
        self.query_one("#search-input", Input).focus()
        if self.initial_query:
            self._run(self.initial_query)
        if self.start_indexing:
            self.action_index_older()

    def _room_name(self, room_id: str) -> str:
        summary = self.client.rooms.get(room_id)
        return clean_line(
            summary.display_name if summary is not None and summary.display_name else room_id, 60
        )

    def _show_scope(self) -> None:
        scope = self.query_one("#search-scope", Static)
        where = f"In {self._room_name(self.room_id)}" if self.room_id else "All rooms"
        summary = self.client.rooms.get(self.room_id) if self.room_id else None
        how = (
            " (encrypted: searched on this device only)"
            if summary is not None and summary.encrypted
            else " (encrypted rooms on this device, others on the server too)"
        )
        scope.update(Text(where + how, style="dim"))

    def _status(self, text: str) -> None:
        self.query_one("#search-status", Static).update(Text(text))

    # -- searching ------------------------------------------------------------------

    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self._run(event.value)

    def _run(self, text: str) -> None:
        if not text.strip():
            self._status("Type words to look for, then Enter.")
            return
        self._status("Searching…")
        self._search(text, self.room_id)

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _search(self, text: str, room_id: str | None) -> None:
        try:
            results = await self.client.search.search(text, room_id=room_id)
        except (MatrixError, NetworkError, StorageUnavailable) as error:
            self.post_message(self._Done(None, str(error), False))
            return
        self.post_message(self._Done(results, None, False))

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _more(self, previous: SearchResults) -> None:
        try:
            results = await self.client.search.more(previous)
        except (MatrixError, NetworkError, StorageUnavailable) as error:
            self.post_message(self._Done(None, str(error), True))
            return
        self.post_message(self._Done(results, None, True))

    def on_search_screen__done(self, message: _Done) -> None:
        if message.results is None:
            self._status(f"Search failed: {clean_line(message.error, 200)}")
            return
        found = message.results
        if message.append and self.results is not None:
            seen = {r.event_id for r in self.results.results}
            merged = self.results.results + tuple(
                r for r in found.results if r.event_id not in seen
            )
            found = SearchResults(
                found.query,
                merged,
                found.highlights,
                found.server_rooms,
                found.server_next_batch,
                found.local_more,
                found.server_error,
                found.unknown_rooms,
                found.scope,
            )
        self.results = found
        self._fill(found)

    def _fill(self, found: SearchResults) -> None:
        options: list[Option] = []
        self.shown = grouped(found.results)
        current: str | None = None
        terms = found.highlights
        for index, result in enumerate(self.shown):
            if result.room_id != current:
                current = result.room_id
                options.append(
                    Option(Text(self._room_name(current), style="bold underline"), disabled=True)
                )
            options.append(Option(self._line(result, terms), id=f"r{index}"))
        if found.local_more or found.server_next_batch:
            options.append(Option(Text("… more results (Enter)", style="italic"), id=MORE))
        results = self.query_one("#search-results", OptionList)
        results.set_options(options)
        notes = [clean_line(p, 120) for p in found.query.problems]
        notes += [f"no room {clean_line(r, 80)} known" for r in found.unknown_rooms]
        if found.server_error:
            notes.append(
                f"the server's search failed ({clean_line(found.server_error, 120)}); local results only"
            )
        count = len(self.shown)
        rooms = len({r.room_id for r in self.shown})
        summary = (
            f"{count} result{'s' if count != 1 else ''} in {rooms} room{'s' if rooms != 1 else ''}"
            if count
            else "No results."
        )
        self._status("; ".join([summary, *notes]))
        if self.shown:
            results.highlighted = 1
            results.focus()

    def _line(self, result: SearchResult, terms: tuple[str, ...]) -> Text:
        line = Text.assemble(
            (f"{when(result.ts)}  ", "dim"),
            (clean_line(result.sender, 60), "bold"),
            "  ",
        )
        line.append_text(highlighted(clean_line(result.body, BODY_WIDTH), terms))
        if result.source == "server":
            line.append("  (server)", style="dim")
        return line

    # -- the highlighted result in its context -----------------------------------------

    @on(OptionList.OptionHighlighted, "#search-results")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        index = self._result_index(event.option)
        pane = self.query_one("#search-context", Static)
        if index is None or index >= len(self.shown):
            pane.update("")
            return
        result = self.shown[index]
        known = self.contexts.get(result.event_id)
        self._show_context(result, known)
        if known is None:
            self._fetch_context(result)

    def _show_context(self, result: SearchResult, around: ResultContext | None) -> None:
        terms = self.results.highlights if self.results is not None else ()
        self.query_one("#search-context", Static).update(context_lines(result, around, terms))

    @work(group="search-context", exclusive=True, exit_on_error=False)
    async def _fetch_context(self, result: SearchResult) -> None:
        try:
            around = await self.client.search.around(result)
        except (MatrixError, NetworkError, StorageUnavailable) as error:
            self.post_message(self._Context(result.event_id, None, str(error)))
            return
        self.post_message(self._Context(result.event_id, around, None))

    def on_search_screen__context(self, message: _Context) -> None:
        results = self.query_one("#search-results", OptionList)
        index = self._result_index(
            results.get_option_at_index(results.highlighted)
            if results.highlighted is not None
            else None
        )
        current = self.shown[index] if index is not None and index < len(self.shown) else None
        if message.around is not None:
            self.contexts[message.event_id] = message.around
        if current is None or current.event_id != message.event_id:
            return
        if message.around is None:
            self.query_one("#search-context", Static).update(
                Text(
                    f"Its context could not be loaded: {clean_line(message.error or '', 160)}",
                    style="italic",
                )
            )
            return
        self._show_context(current, message.around)

    # -- choosing and stepping --------------------------------------------------------

    def _result_index(self, option: Option | None) -> int | None:
        if option is None or option.id is None or not option.id.startswith("r"):
            return None
        return int(option.id[1:])

    @on(OptionList.OptionSelected, "#search-results")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == MORE:
            if self.results is not None:
                self._status("Loading more…")
                self._more(self.results)
            return
        index = self._result_index(event.option)
        if index is not None:
            self.dismiss(SearchHistory(self.shown, index))

    def action_step(self, step: int) -> None:
        """Highlight the next or previous result (room headings are skipped)."""
        results = self.query_one("#search-results", OptionList)
        if self.query_one("#search-input", Input).has_focus:
            return
        count = results.option_count
        position = results.highlighted if results.highlighted is not None else -step
        position += step
        while 0 <= position < count:
            option = results.get_option_at_index(position)
            if self._result_index(option) is not None:
                results.highlighted = position
                return
            position += step

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # n and N are letters while the query is being typed.
        return not (action == "step" and self.query_one("#search-input", Input).has_focus)

    def action_toggle_scope(self) -> None:
        """Search every room, or only the room this screen was opened from."""
        if self.home_room is None:
            return
        self.room_id = None if self.room_id else self.home_room
        self._show_scope()
        value = self.query_one("#search-input", Input).value
        if value.strip():
            self._run(value)

    def action_close(self) -> None:
        """Back to the chat."""
        self.dismiss(None)

    # -- indexing older messages ------------------------------------------------------

    def action_index_older(self) -> None:
        """Fetch this room's older history from the server so it is searchable here."""
        room = self.room_id or self.home_room
        if room is None:
            self._status("Open a room first: older messages are indexed one room at a time.")
            return
        if self.indexing:
            return
        self.indexing = True
        self._status(f"Indexing older messages of {self._room_name(room)}…")
        self._index(room)

    @work(group="index-older", exclusive=True, exit_on_error=False)
    async def _index(self, room_id: str) -> None:
        await self.client.search.index_older(
            room_id, progress=lambda p: self.post_message(self._Progress(p))
        )

    def on_search_screen__progress(self, message: _Progress) -> None:
        progress = message.progress
        name = self._room_name(progress.room_id)
        text = (
            f"{name}: {progress.fetched} older events fetched, {progress.indexed} messages indexed"
        )
        if progress.error:
            text += f"; stopped: {clean_line(progress.error, 120)}"
        elif progress.done:
            text += "; done (Enter searches again)"
        else:
            text += "…"
        self._status(text)
        if progress.done:
            self.indexing = False
