"""The composer: Enter sends, Shift+Enter / Ctrl+J / Alt+Enter insert a newline.

Every key that changes or sends the draft is handled here, in the composer's own message
queue, in the order the terminal delivered it. A binding would not do: Textual runs
priority bindings on the app's queue before the characters typed ahead of them reach the
composer, and runs ordinary bindings only after the key has bubbled up to the app, by
which time later characters are already in. Either way a fast typist's or a paste's
lines would be cut, merged or sent twice. So Enter takes the text and empties the
composer in the same step, and :class:`Composer.Submitted` carries that text: nothing
typed after it can be lost or sent with it.

Tab completes the word before the cursor (``@`` members, ``#`` rooms, ``:`` emoji, ``/``
commands) from a provider the screen passes in, in the same step as the key, so it too
keeps its place among the keys typed around it. When there is more than one candidate
the composer says so with :class:`Composer.Completing` (the screen lists them above it):
Tab and Shift+Tab move through them, Enter or Space accepts the one put in, Escape puts
the word back, and any other key accepts it and does what it always does. With nothing to
complete, Tab and Shift+Tab move the focus in the same step, and the keys the app had
already queued here behind them are handed on to the widget focused then (as bindings
elsewhere would see them), not typed or sent here.
A completed member or room is remembered as a mention: its text, its target and where it
is. Edits before it move it along, an edit inside it forgets it, and it travels with the
text in :class:`Composer.Submitted` as a pill at that place, so the same name typed
elsewhere in the message (or inside code) is not a mention.

The keys for these are the user's (the config's ``[keys.composer]``): ``_on_key`` looks
each key up in :attr:`Composer.key_actions` instead of binding it, for the reason above.
With the vim mode on, :attr:`Composer.vim` (ui/vim.py, pure) gets each key first in the
same step: in insert mode it hands every key but Escape back, so a burst typed in insert
mode keeps its order exactly as without vim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea
from textual.widgets.text_area import Edit, EditResult, Selection

from ...engine.formatting import Pill, pills_in
from ..keymap import COMPOSER_ACTIONS, split_keys
from ..messages import ComposerSubmitted
from ..vim import Effect, Mode, VimMachine
from .upload_bar import pasted_file

#: Keys that insert a line break instead of sending.
NEWLINE_KEYS = frozenset({"shift+enter", "ctrl+j", "alt+enter", "ctrl+enter"})
#: key -> composer action, before the config has its say.
DEFAULT_KEYS = {
    key: name for name, (keys, _what) in COMPOSER_ACTIONS.items() for key in split_keys(keys)
}
#: The first character of a word that Tab completes.
COMPLETION_SIGILS = frozenset("@#:/")


class Candidate(Protocol):
    """What a completion provider returns: ``insert`` replaces the word, ``target`` (a
    user ID, room alias or room ID) makes it a mention, ``suffix`` follows it."""

    @property
    def insert(self) -> str: ...

    @property
    def target(self) -> str | None: ...

    @property
    def suffix(self) -> str: ...

    @property
    def label(self) -> str: ...


#: word typed before the cursor (with its sigil) -> candidates, best first.
CompletionProvider = Callable[[str], Sequence[Candidate]]


@dataclass(slots=True)
class _Cycle:
    """The completion in progress: where the word starts, the candidates, which one is in."""

    row: int
    start: int
    end: int
    candidates: Sequence[Candidate]
    index: int
    #: What was typed before Tab (Escape puts it back).
    word: str


class Composer(TextArea):
    """Where the user writes. Posts :class:`Composer.Submitted` on Enter."""

    # Shown in the footer and the help screen; the keys themselves are handled in _on_key.
    BINDINGS = [
        Binding("enter", "submit", "Send", id="composer.send"),
        Binding("shift+enter,ctrl+j,alt+enter", "newline", "Newline", id="composer.newline"),
        Binding("escape", "cancel", "Cancel reply/edit", show=False, id="composer.cancel"),
        Binding("up", "history_or_up", "Up", show=False, id="composer.edit_last"),
    ]

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 8;
    }
    """

    #: The user pressed Enter with this text (see :class:`~..messages.ComposerSubmitted`).
    Submitted = ComposerSubmitted

    class Completing(Message):
        """The candidates of a completion in progress (best first) and which one is in;
        no candidates when the completion is over."""

        def __init__(self, labels: tuple[str, ...], index: int) -> None:
            super().__init__()
            self.labels = labels
            self.index = index

    class Cancelled(Message):
        """Escape: leave reply or edit mode."""

    class EditLast(Message):
        """Up in an empty composer: edit our last message."""

    class FilePasted(Message):
        """A paste that names a file (an absolute path or a ``file://`` URI, alone on its
        line): not inserted; the screen offers to upload it and puts ``text`` back if not."""

        def __init__(self, path: Path, text: str) -> None:
            super().__init__()
            self.path = path
            self.text = text

    class VimModeChanged(Message):
        """The vim mode changed (``"NORMAL"`` / ``"INSERT"``; ``""`` when vim is off)."""

        def __init__(self, mode: str) -> None:
            super().__init__()
            self.mode = mode

    def __init__(
        self, *, id: str | None = None, completions: CompletionProvider | None = None
    ) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.completions = completions
        self._mentions: list[Pill] = []
        self._cycle: _Cycle | None = None
        #: key -> composer action (send, newline, cancel, edit_last, complete, complete_previous).
        self.key_actions: dict[str, str] = dict(DEFAULT_KEYS)
        #: The vim mode's state, when it is on.
        self.vim: VimMachine | None = None
        #: A Tab here moved the focus away: keys queued here behind it go where it went.
        self._focus_moved = False

    def on_mount(self) -> None:
        settings = getattr(self.app, "key_settings", None)
        if settings is not None:
            self.key_actions = settings.composer_keys()
            if settings.vim:
                self.set_vim(True)

    def set_vim(self, on: bool) -> None:
        """Turn the vim mode on (in insert mode) or off."""
        self.vim = VimMachine() if on else None
        if self.vim is not None:
            self.vim.reset(self.text, self._offset(self.cursor_location))
        self.post_message(self.VimModeChanged(self.vim.mode.value if self.vim else ""))

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        focused = self.screen.focused
        if self._focus_moved and focused is not None and focused is not self:
            # Typed behind a Tab that moved the focus (the app handed it here before this
            # queue reached the Tab): the widget now focused has it, in the order typed.
            event.stop()
            event.prevent_default()
            focused._forward_event(events.Key(key, event.character))
            return
        action_name = self.key_actions.get(key)
        vim = self.vim
        if (
            vim is not None
            and not self._choosing()
            and await self._vim_key(vim, event, action_name)
        ):
            event.stop()
            event.prevent_default()
            return
        if self._choosing():
            if self._choose(key, action_name):
                event.stop()
                event.prevent_default()
                return
        elif action_name == "complete":
            if self.complete():
                event.stop()
                event.prevent_default()
                return
            self._end_completion()
        if action_name != "complete":
            self._end_completion()
        if key in ("tab", "shift+tab") and action_name in (None, "complete", "complete_previous"):
            # Nothing to complete: the focus moves in this step, not when the key has
            # bubbled up to the app, after the keys typed behind it came here.
            event.stop()
            event.prevent_default()
            self._focus_moved = True
            if key == "tab":
                self.screen.focus_next()
            else:
                self.screen.focus_previous()
            return
        if action_name == "send":
            action = self.action_submit
        elif action_name == "newline":
            action = self.action_newline
        elif action_name == "cancel":
            action = self.action_cancel
        elif action_name == "edit_last" and not self.text:
            action = self.action_history_or_up
        else:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        action()

    async def _vim_key(self, vim: VimMachine, event: events.Key, action_name: str | None) -> bool:
        """Feed a key to the vim mode; False hands it on (typing in insert mode, Tab)."""
        if vim.mode is Mode.INSERT and action_name != "cancel":
            return False
        if vim.mode is not Mode.INSERT and (
            action_name in ("complete", "complete_previous") or event.key in ("tab", "shift+tab")
        ):
            return False  # Tab moves the focus from normal mode
        token = event.character if event.is_printable and event.character else event.key
        if action_name in ("send", "cancel"):
            token = "enter" if action_name == "send" else "escape"
        token = {"up": "k", "down": "j", "backspace": "h"}.get(token, token)
        before = vim.mode
        outcome = vim.key(token, self.text, self._offset(self.cursor_location))
        if outcome.effect is Effect.PASS:
            return False
        self._end_completion()
        self._apply(outcome.text, outcome.cursor)
        if outcome.selection is not None:  # visual mode: the selection shows
            anchor, end = outcome.selection
            self.selection = Selection(self._location(anchor), self._location(end))
        if vim.mode is not before:
            self.post_message(self.VimModeChanged(vim.mode.value))
        if outcome.effect is Effect.SUBMIT:
            self.action_submit()
        elif outcome.effect is Effect.CANCEL:
            self.action_cancel()
        elif outcome.effect is Effect.COMMAND_LINE:
            from ..screens.command_line import open_command_line

            open_command_line(self)
        elif outcome.effect is Effect.SEARCH:
            await self.run_action("screen.search")
        return True

    def _apply(self, text: str, cursor: int) -> None:
        """Put the vim mode's text in (as one replacement of what changed) and its cursor."""
        old = self.text
        if text != old:
            start = 0
            limit = min(len(old), len(text))
            while start < limit and old[start] == text[start]:
                start += 1
            end_old, end_new = len(old), len(text)
            while end_old > start and end_new > start and old[end_old - 1] == text[end_new - 1]:
                end_old -= 1
                end_new -= 1
            self.replace(
                text[start:end_new],
                self._location(start),
                self._location(end_old),
                maintain_selection_offset=False,
            )
        self.move_cursor(self._location(cursor))

    def _location(self, offset: int) -> tuple[int, int]:
        """The (row, column) of an offset in :attr:`text`."""
        text = self.text
        offset = max(0, min(offset, len(text)))
        row = text.count("\n", 0, offset)
        return row, offset - (text.rfind("\n", 0, offset) + 1)

    async def _on_paste(self, event: events.Paste) -> None:
        # Runs before TextArea's own handler, which prevent_default() skips.
        path = pasted_file(event.text)
        if path is not None and not self.read_only:
            event.prevent_default()
            self.post_message(self.FilePasted(path, event.text))

    def action_submit(self) -> None:
        """Send what was written: take the text out and post it, in one step."""
        text = self.text
        if not text.strip():
            return
        mentions = pills_in(text, self._mentions)
        self._mentions = []
        self.clear()
        if self.vim is not None:
            self.vim.reset()
        self.post_message(self.Submitted(text, mentions))

    def complete(self) -> bool:
        """Complete the word before the cursor, or put in the next candidate if Tab was
        just pressed. False (Tab moves focus) when the word is not completable."""
        row, column = self.cursor_location
        cycle = self._cycle
        if self._choosing() and cycle is not None:
            self._step(cycle, 1)
            return True
        line = self.document.get_line(row)
        start = column
        while start > 0 and not line[start - 1].isspace():
            start -= 1
        word = line[start:column]
        if self.completions is None or len(word) < 1 or word[0] not in COMPLETION_SIGILS:
            return False
        if word[0] == "/" and (row, start) != (0, 0):
            return False
        if word[0] == ":" and len(word) < 3:
            return False  # ":)" or a bare colon is not a shortcode
        candidates = self.completions(word)
        if not candidates:
            self.app.bell()
            return True
        self._end_completion()
        self._cycle = _Cycle(row, start, column, candidates, 0, word)
        self._put(self._cycle)
        return True

    def _choosing(self) -> bool:
        """A completion with several candidates is in progress, the cursor after it."""
        cycle = self._cycle
        return (
            cycle is not None
            and len(cycle.candidates) > 1
            and self.cursor_location == (cycle.row, cycle.end)
            and not self.selected_text
        )

    def _choose(self, key: str, action_name: str | None) -> bool:
        """A key while choosing among candidates; False lets it do what it always does
        (the candidate put in is then kept)."""
        cycle = self._cycle
        assert cycle is not None
        if action_name in ("complete", "complete_previous"):
            self._step(cycle, 1 if action_name == "complete" else -1)
            return True
        if action_name == "cancel":
            self._end_completion()
            self.replace(
                cycle.word,
                (cycle.row, cycle.start),
                (cycle.row, cycle.end),
                maintain_selection_offset=False,
            )
            self.move_cursor((cycle.row, cycle.start + len(cycle.word)))
            return True
        chosen = cycle.candidates[cycle.index]
        if action_name == "send" or (key == "space" and chosen.suffix.endswith(" ")):
            self._end_completion()  # accepted, with the space already after it
            return True
        return False

    def _step(self, cycle: _Cycle, step: int) -> None:
        cycle.index = (cycle.index + step) % len(cycle.candidates)
        self._put(cycle)

    def _end_completion(self) -> None:
        if self._cycle is not None and len(self._cycle.candidates) > 1:
            self.post_message(self.Completing((), -1))
        self._cycle = None

    def _put(self, cycle: _Cycle) -> None:
        chosen = cycle.candidates[cycle.index]
        inserted = chosen.insert + chosen.suffix
        result = self.replace(
            inserted,
            (cycle.row, cycle.start),
            (cycle.row, cycle.end),
            maintain_selection_offset=False,
        )
        cycle.end = cycle.start + len(inserted)
        self.move_cursor(result.end_location)
        if chosen.target is not None:
            start = self._offset((cycle.row, cycle.start))
            self._mentions.append(Pill(chosen.insert, chosen.target, start))
        if len(cycle.candidates) > 1:
            labels = tuple(candidate.label or candidate.insert for candidate in cycle.candidates)
            self.post_message(self.Completing(labels, cycle.index))

    def _offset(self, location: tuple[int, int]) -> int:
        """The offset in :attr:`text` of a (row, column) location."""
        row, column = location
        newline = len(self.document.newline)
        return sum(len(self.document.get_line(index)) + newline for index in range(row)) + column

    def edit(self, edit: Edit) -> EditResult:
        """Every change of the text passes here: mentions after it move with it, a
        mention it touches is forgotten."""
        start_location, end_location = sorted((edit.from_location, edit.to_location))
        start = self._offset(start_location)
        end = self._offset(end_location)
        result = super().edit(edit)
        if self._mentions:
            delta = len(edit.text) - (end - start)
            kept: list[Pill] = []
            for pill in self._mentions:
                pill_start = pill.start or 0
                if pill_start + len(pill.text) <= start:
                    kept.append(pill)
                elif pill_start >= end and not (start == end == pill_start and not edit.text):
                    kept.append(pill.at(pill_start + delta))
            self._mentions = kept
        return result

    def on_blur(self, _event: events.Blur) -> None:
        self._end_completion()

    def on_focus(self, _event: events.Focus) -> None:
        self._focus_moved = False

    def action_newline(self) -> None:
        """Insert a line break."""
        self.insert("\n")

    def action_cancel(self) -> None:
        """Escape."""
        self.post_message(self.Cancelled())

    def action_history_or_up(self) -> None:
        """Up edits the last message when empty; moves the cursor otherwise."""
        if not self.text:
            self.post_message(self.EditLast())
        else:
            self.action_cursor_up()

    def _on_text_area_changed(self, _event: TextArea.Changed) -> None:
        if not self.text:
            self._mentions.clear()  # emptied: what was completed is gone

    def remember_mentions(self, mentions: list[Pill]) -> None:
        """Mentions already in the text (a message put back for editing), at their offsets."""
        self._mentions.extend(pills_in(self.text, mentions))

    def restore(self, text: str, mentions: list[Pill] | None = None) -> None:
        """Put back text that could not be sent, the cursor after it, keeping any new draft."""
        draft = self.text
        kept = (
            [pill.at((pill.start or 0) + len(text) + 1) for pill in self._mentions] if draft else []
        )
        self.text = f"{text}\n{draft}" if draft else text
        self._mentions = [*pills_in(self.text, mentions or []), *kept]
        self.move_cursor(self.document.end)
        if self.vim is not None:
            self.vim.reset(self.text, len(self.text))
