"""The composer's vim mode as pure code: keys in, text, cursor and an effect out.

No Textual here: :class:`VimMachine` works on a string and a cursor offset, so it can be
driven key by key in a unit test. The composer (ui/widgets/composer.py) feeds it each
key in its own ``_on_key`` (keeping the order of keys typed in a burst) and applies what
comes back: the new text as one replacement, the cursor, and the effect.

Keys are tokens: a printable character as itself (``"w"``, ``"$"``, ``"0"``, ``":"``), any
other key by its Textual name (``"escape"``, ``"enter"``, ``"ctrl+r"``, ``"left"``).

Normal mode: ``h l w b e 0 ^ $ j k`` move; counts (``3w``); ``x X D C p P u ctrl+r``;
the operators ``d c y`` with a motion, a count (``d2w``), doubled for whole lines
(``dd``, ``cc``, ``yy``) or with ``iw``/``aw``; ``i a A I o O`` enter insert mode; ``:``
asks for the command line, ``/`` for search, Enter sends, Escape cancels (reply/edit).
Insert mode: every key but Escape passes through to the text area.

``.`` repeats the last change (a count replaces the change's own): the keys of the normal
mode command, and for a command that entered insert mode (``i a A I o O c C s``) the
text typed before Escape, inserted again at the cursor; one ``.`` is one undo step.

Visual mode: ``v`` (characters) or ``V`` (whole lines) from normal mode; the motions and
counts move the cursor end of the selection, ``o`` goes to its other end, ``v``/``V``
switch between the two kinds or back to normal mode, Escape leaves. ``y`` copies the
selection, ``d``/``x`` delete it, ``c``/``s`` change it (delete, then insert mode). The
outcome carries the selection so the composer can show it. ``.`` after a visual ``d`` or
``c`` repeats it on as many lines (``V``) or characters (``v`` within one line) from
the cursor, as vim does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Effect", "Mode", "Outcome", "VimMachine"]


class Mode(enum.Enum):
    """Which vim mode the composer is in."""

    NORMAL = "NORMAL"
    INSERT = "INSERT"
    VISUAL = "VISUAL"
    VISUAL_LINE = "VISUAL LINE"


class Effect(enum.Enum):
    """What the composer does after a key, besides taking the new text and cursor."""

    NONE = "none"
    #: The key is not vim's: let the text area handle it (insert mode typing).
    PASS = "pass"
    SUBMIT = "submit"
    CANCEL = "cancel"
    COMMAND_LINE = "command_line"
    SEARCH = "search"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The buffer after a key, and what else to do."""

    text: str
    cursor: int
    effect: Effect = Effect.NONE
    #: In visual mode: the selection to show, ``(anchor, end)`` offsets, ``end``
    #: exclusive on the cursor's side (``anchor > end`` when the cursor is before it).
    selection: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class _Register:
    text: str
    linewise: bool


_MOTIONS = frozenset("hlwbe0^$jk") | {"left", "right", "home", "end"}
_OPERATORS = frozenset("dcy")


def _kind(char: str) -> int:
    """0 blank, 1 word character, 2 other (punctuation): vim's word classes."""
    if char.isspace():
        return 0
    if char.isalnum() or char == "_":
        return 1
    return 2


@dataclass(slots=True)
class VimMachine:
    """Normal and insert modes over one text buffer, with counts, registers and undo."""

    mode: Mode = Mode.INSERT
    _count: str = ""
    _operator: str = ""
    _operator_count: int = 1
    _pending: str = ""  # a two-key command in progress: "g", or "i"/"a" after an operator
    _register: _Register | None = None
    _undo: list[tuple[str, int]] = field(default_factory=list)
    _redo: list[tuple[str, int]] = field(default_factory=list)
    _insert_start: tuple[str, int] | None = None
    #: The keys of the normal mode command being typed (for ``.``).
    _keys: list[str] = field(default_factory=list)
    #: The last change: its keys, and the text its insert mode typed (``None``: none).
    _last_change: tuple[tuple[str, ...], str | None] | None = None
    #: A recorded command entered insert mode: its keys, and the text and cursor then.
    _inserting: tuple[tuple[str, ...], str, int] | None = None
    _replaying: bool = False
    #: Visual mode: where the selection started, and its moving end.
    _anchor: int = 0
    _end: int = 0

    # -- the public door -------------------------------------------------------------

    def key(self, token: str, text: str, cursor: int) -> Outcome:
        """Feed one key; returns the buffer after it and the effect."""
        if self.mode is Mode.INSERT:
            if self._insert_start is None:
                self._insert_start = (text, cursor)
            if token == "escape":
                self._finish_insert(text)
                self._leave_insert(text)
                start = _line_start(text, cursor)
                return Outcome(text, max(start, cursor - 1))
            return Outcome(text, cursor, Effect.PASS)
        if self.mode in (Mode.VISUAL, Mode.VISUAL_LINE):
            return self._visual(token, text)
        return self._recorded(token, text, cursor)

    def reset(self, text: str = "", cursor: int = 0) -> None:
        """The text changed outside vim (sent, restored, loaded for an edit): forget the
        history and any half-typed command."""
        self._undo.clear()
        self._redo.clear()
        self._clear_pending()
        self._keys.clear()
        self._inserting = None
        if self.mode in (Mode.VISUAL, Mode.VISUAL_LINE):
            self.mode = Mode.NORMAL
        if self.mode is Mode.INSERT:
            self._insert_start = (text, cursor)

    @property
    def pending(self) -> str:
        """The count and operator typed so far (for a status line)."""
        return f"{self._count}{self._operator}{self._pending}"

    # -- modes -----------------------------------------------------------------------

    def _enter_insert(self, text: str, cursor: int) -> None:
        self.mode = Mode.INSERT
        self._insert_start = (text, cursor)

    def _leave_insert(self, text: str) -> None:
        self.mode = Mode.NORMAL
        start = self._insert_start
        if start is not None and start[0] != text:
            self._undo.append(start)
            self._redo.clear()
        self._insert_start = None
        self._clear_pending()

    def _clear_pending(self) -> None:
        self._count = ""
        self._operator = ""
        self._operator_count = 1
        self._pending = ""

    def _take_count(self) -> int:
        count = int(self._count) if self._count else 1
        self._count = ""
        return count

    def _change(self, before: tuple[str, int]) -> None:
        self._undo.append(before)
        self._redo.clear()

    # -- repeating: . ----------------------------------------------------------------

    def _recorded(self, token: str, text: str, cursor: int) -> Outcome:
        """A normal mode key, kept in the command's keys until the command is complete;
        a complete command that changed the text (or entered insert mode) is the last
        change."""
        if token == "." and not self._operator and not self._pending:
            count = int(self._count) if self._count else None
            self._count = ""
            self._keys.clear()
            return self._repeat(text, cursor, count)
        self._keys.append(token)
        outcome = self._normal(token, text, cursor)
        if self._count or self._operator or self._pending:
            return outcome  # the command goes on
        keys, self._keys = tuple(self._keys), []
        if self.mode is Mode.INSERT:
            self._inserting = (keys, outcome.text, outcome.cursor)
        elif outcome.text != text and token not in ("u", "ctrl+r"):
            self._last_change = (keys, None)
        return outcome

    def _finish_insert(self, text: str) -> None:
        """Escape: the command that entered insert mode, with what was typed, is the last change."""
        inserting, self._inserting = self._inserting, None
        if inserting is None:
            return
        keys, before, _cursor = inserting
        prefix = 0
        limit = min(len(before), len(text))
        while prefix < limit and before[prefix] == text[prefix]:
            prefix += 1
        suffix = 0
        while suffix < limit - prefix and before[-1 - suffix] == text[-1 - suffix]:
            suffix += 1
        self._last_change = (keys, text[prefix : len(text) - suffix])

    def _repeat(self, text: str, cursor: int, count: int | None) -> Outcome:
        last = self._last_change
        if last is None or self._replaying:
            return Outcome(text, cursor)
        keys, typed = last
        if count is not None:
            rest = list(keys)
            while rest and rest[0].isdigit():
                rest.pop(0)
            keys = (str(count), *rest)
        undo_depth = len(self._undo)
        self._replaying = True
        try:
            outcome = Outcome(text, cursor)
            for token in keys:
                outcome = self._normal(token, outcome.text, outcome.cursor)
            self._clear_pending()
            if self.mode is Mode.INSERT:
                new, at = outcome.text, outcome.cursor
                if typed:
                    new, at = new[:at] + typed + new[at:], at + len(typed)
                self._inserting = None
                self._leave_insert(new)
                start = _line_start(new, at)
                outcome = Outcome(new, max(start, at - 1))
        finally:
            self._replaying = False
        # One . is one undo step: the state before it.
        del self._undo[undo_depth + 1 :]
        self._last_change = (keys, typed)
        return outcome

    # -- visual mode -----------------------------------------------------------------

    def _enter_visual(self, mode: Mode, cursor: int) -> None:
        self.mode = mode
        self._anchor = self._end = cursor

    def _region(self, text: str) -> tuple[int, int]:
        """The selection as ``[begin, stop)`` offsets."""
        low, high = sorted((self._anchor, self._end))
        if self.mode is Mode.VISUAL_LINE:
            return _line_start(text, low), _line_end(text, high)
        return low, min(len(text), high + 1)

    def _shown(self, text: str) -> Outcome:
        begin, stop = self._region(text)
        selection = (begin, stop) if self._end >= self._anchor else (stop, begin)
        return Outcome(text, self._end, selection=selection)

    def _visual(self, token: str, text: str) -> Outcome:
        self._anchor = max(0, min(self._anchor, len(text)))
        self._end = max(0, min(self._end, len(text)))
        if self._pending == "g":
            self._pending = ""
            if token == "g":
                self._end = 0
            return self._shown(text)
        if token.isdigit() and len(token) == 1 and (token != "0" or self._count):
            self._count += token
            return self._shown(text)
        if token in _MOTIONS:
            self._end = self._rest(text, self._motion(token, text, self._end, self._take_count()))
            return self._shown(text)
        self._count = ""
        if token == "g":
            self._pending = "g"
            return self._shown(text)
        if token == "G":
            self._end = self._rest(text, _line_start(text, len(text)))
            return self._shown(text)
        if token == "o":
            self._anchor, self._end = self._end, self._anchor
            return self._shown(text)
        wanted = {"v": Mode.VISUAL, "V": Mode.VISUAL_LINE}.get(token)
        if wanted is not None:
            if self.mode is wanted:
                return self._leave_visual(text, self._end)
            self.mode = wanted
            return self._shown(text)
        if token in ("escape", "ctrl+c"):
            return self._leave_visual(text, self._end)
        if token in ("y", "d", "x", "X", "D", "c", "s", "C", "S"):
            return self._visual_operator(token, text)
        return self._shown(text)

    def _leave_visual(self, text: str, cursor: int) -> Outcome:
        self.mode = Mode.NORMAL
        self._clear_pending()
        return Outcome(text, self._rest(text, cursor))

    def _visual_operator(self, token: str, text: str) -> Outcome:
        if token in ("X", "D", "C", "S"):
            self.mode = Mode.VISUAL_LINE  # vim: these work on whole lines
        linewise = self.mode is Mode.VISUAL_LINE
        begin, stop = self._region(text)
        operator = {"x": "d", "X": "d", "D": "d", "s": "c", "C": "c", "S": "c"}.get(token, token)
        lines = text.count("\n", begin, stop) + 1
        self.mode = Mode.NORMAL
        self._clear_pending()
        if operator == "y":
            self._register = _Register(text[begin:stop], linewise)
            return Outcome(text, self._rest(text, begin))
        # What . repeats: as many lines, or characters (within one line), from the cursor.
        if linewise:
            self._last_change = ((*((str(lines),) if lines > 1 else ()), operator, operator), None)
        elif lines == 1 and stop > begin:
            self._last_change = ((str(stop - begin), "x" if operator == "d" else "s"), None)
        else:
            self._last_change = None
        if operator == "d":
            return self._delete(text, begin, begin, stop, linewise=linewise)
        outcome = self._delete(
            text, begin, begin, stop, linewise=False, rest=False, register_linewise=linewise
        )
        self._enter_insert(text, begin)
        keys = self._last_change[0] if self._last_change is not None else ()
        self._inserting = (keys, outcome.text, outcome.cursor) if keys else None
        return outcome

    # -- normal mode -----------------------------------------------------------------

    def _normal(self, token: str, text: str, cursor: int) -> Outcome:
        if self._pending:
            return self._second_key(token, text, cursor)
        if token.isdigit() and len(token) == 1 and (token != "0" or self._count):
            self._count += token
            return Outcome(text, cursor)
        if self._operator:
            return self._operator_key(token, text, cursor)
        if token in _MOTIONS:
            count = self._take_count()
            return Outcome(text, self._rest(text, self._motion(token, text, cursor, count)))
        count = self._take_count()
        if token in _OPERATORS:
            self._operator = token
            self._operator_count = count
            return Outcome(text, cursor)
        if token == "g":
            self._pending = "g"
            return Outcome(text, cursor)
        if token == "G":
            return Outcome(text, self._rest(text, _line_start(text, len(text))))
        if token in ("v", "V") and not self._replaying:
            self._enter_visual(Mode.VISUAL if token == "v" else Mode.VISUAL_LINE, cursor)
            return self._shown(text)
        return self._command(token, text, cursor, count)

    def _command(self, token: str, text: str, cursor: int, count: int) -> Outcome:
        start, end = _line_start(text, cursor), _line_end(text, cursor)
        if token in ("i", "a", "A", "I"):
            position = {
                "i": cursor,
                "a": min(cursor + 1, end),
                "A": end,
                "I": _first_nonblank(text, start),
            }[token]
            self._enter_insert(text, position)
            return Outcome(text, position)
        if token in ("o", "O"):
            self._enter_insert(text, cursor)
            if token == "o":
                return Outcome(text[:end] + "\n" + text[end:], end + 1)
            return Outcome(text[:start] + "\n" + text[start:], start)
        if token in ("x", "delete"):
            stop = min(end, cursor + count)
            if stop <= cursor:
                return Outcome(text, cursor)
            return self._delete(text, cursor, cursor, stop, linewise=False)
        if token == "X":
            begin = max(start, cursor - count)
            if begin == cursor:
                return Outcome(text, cursor)
            return self._delete(text, cursor, begin, cursor, linewise=False)
        if token == "D":
            return self._delete(text, cursor, cursor, end, linewise=False)
        if token == "s":  # substitute: the characters under the cursor, then insert
            stop = min(end, cursor + count)
            outcome = self._delete(text, cursor, cursor, stop, linewise=False, rest=False)
            self._enter_insert(text, cursor)
            return outcome
        if token == "C":
            outcome = self._delete(text, cursor, cursor, end, linewise=False, rest=False)
            self._enter_insert(text, cursor)
            return outcome
        if token in ("p", "P"):
            return self._put(token == "p", text, cursor, count)
        if token == "u":
            return self._undo_redo(self._undo, self._redo, text, cursor, count)
        if token == "ctrl+r":
            return self._undo_redo(self._redo, self._undo, text, cursor, count)
        if token == "enter":
            return Outcome(text, cursor, Effect.SUBMIT)
        if token == "escape":
            return Outcome(text, cursor, Effect.CANCEL)
        if token == ":":
            return Outcome(text, cursor, Effect.COMMAND_LINE)
        if token == "/":
            return Outcome(text, cursor, Effect.SEARCH)
        return Outcome(text, cursor)

    def _second_key(self, token: str, text: str, cursor: int) -> Outcome:
        pending, self._pending = self._pending, ""
        if pending == "g":
            if token == "g":
                self._clear_pending()
                return Outcome(text, 0)
            self._clear_pending()
            return Outcome(text, cursor)
        # a text object after an operator: iw / aw
        if token not in ("w", "W"):
            self._clear_pending()
            return Outcome(text, cursor)
        begin, stop = _word_object(text, cursor, around=pending == "a")
        return self._apply_operator(text, cursor, begin, stop, linewise=False)

    def _operator_key(self, token: str, text: str, cursor: int) -> Outcome:
        count = self._operator_count * self._take_count()
        operator = self._operator
        if token == operator:  # dd, cc, yy: whole lines
            first = _line_start(text, cursor)
            last = cursor
            for _ in range(count - 1):
                following = _line_end(text, last) + 1
                if following > len(text):
                    break
                last = following
            stop = _line_end(text, last)
            if operator == "c":
                return self._apply_operator(
                    text, cursor, first, stop, linewise=False, register_linewise=True
                )
            return self._apply_operator(text, cursor, first, stop, linewise=True)
        if token in ("i", "a"):
            self._operator_count = count
            self._pending = token
            return Outcome(text, cursor)
        if token not in _MOTIONS:
            self._clear_pending()
            return Outcome(text, cursor)
        if operator == "c" and token == "w" and cursor < len(text) and not text[cursor].isspace():
            # cw changes to the end of the word (vim's own exception)
            stop = self._motion("e", text, cursor, count, operator=True) + 1
            return self._apply_operator(text, cursor, cursor, min(stop, len(text)), linewise=False)
        target = self._motion(token, text, cursor, count, operator=True)
        if token in ("j", "k"):
            begin, stop = sorted((cursor, target))
            return self._apply_operator(
                text, cursor, _line_start(text, begin), _line_end(text, stop), linewise=True
            )
        begin, stop = sorted((cursor, target))
        if token == "e":
            stop = min(len(text), stop + 1)  # e is inclusive
        if token == "w":
            # dw on the last word of a line stops at the line's end
            stop = min(stop, _line_end(text, cursor))
        return self._apply_operator(text, cursor, begin, stop, linewise=False)

    def _apply_operator(
        self,
        text: str,
        cursor: int,
        begin: int,
        stop: int,
        *,
        linewise: bool,
        register_linewise: bool | None = None,
    ) -> Outcome:
        operator = self._operator
        self._clear_pending()
        if operator == "y":
            self._register = _Register(
                text[begin:stop], linewise if register_linewise is None else register_linewise
            )
            return Outcome(text, self._rest(text, begin))
        if operator == "c":
            outcome = self._delete(
                text,
                cursor,
                begin,
                stop,
                linewise=False,
                rest=False,
                register_linewise=register_linewise,
            )
            self._enter_insert(text, cursor)
            return outcome
        return self._delete(text, cursor, begin, stop, linewise=linewise)

    def _delete(
        self,
        text: str,
        cursor: int,
        begin: int,
        stop: int,
        *,
        linewise: bool,
        rest: bool = True,
        register_linewise: bool | None = None,
    ) -> Outcome:
        self._register = _Register(
            text[begin:stop], linewise if register_linewise is None else register_linewise
        )
        self._change((text, cursor))
        if linewise:
            # take the line break with the lines: the one after, or else the one before
            if stop < len(text):
                new = text[:begin] + text[stop + 1 :]
                line = begin
            else:
                begin = max(0, begin - 1)
                new = text[:begin]
                line = _line_start(new, begin)
            return Outcome(new, self._rest(new, _first_nonblank(new, line)))
        new = text[:begin] + text[stop:]
        return Outcome(new, self._rest(new, begin) if rest else begin)

    def _put(self, after: bool, text: str, cursor: int, count: int) -> Outcome:
        register = self._register
        if register is None or not register.text:
            return Outcome(text, cursor)
        self._change((text, cursor))
        if register.linewise:
            block = "\n".join([register.text] * count)
            if after:
                end = _line_end(text, cursor)
                new = text[:end] + "\n" + block + text[end:]
                return Outcome(new, end + 1)
            start = _line_start(text, cursor)
            new = text[:start] + block + "\n" + text[start:]
            return Outcome(new, start)
        block = register.text * count
        at = min(cursor + 1, len(text)) if after and text else cursor
        new = text[:at] + block + text[at:]
        return Outcome(new, self._rest(new, at + len(block) - 1))

    def _undo_redo(
        self,
        source: list[tuple[str, int]],
        target: list[tuple[str, int]],
        text: str,
        cursor: int,
        count: int,
    ) -> Outcome:
        for _ in range(count):
            if not source:
                break
            target.append((text, cursor))
            text, cursor = source.pop()
        return Outcome(text, self._rest(text, cursor))

    # -- motions ---------------------------------------------------------------------

    def _motion(
        self, token: str, text: str, cursor: int, count: int, *, operator: bool = False
    ) -> int:
        start, end = _line_start(text, cursor), _line_end(text, cursor)
        if token in ("h", "left"):
            return max(start, cursor - count)
        if token in ("l", "right"):
            return min(end if operator else max(start, end - 1), cursor + count)
        if token in ("0", "home"):
            return start
        if token == "^":
            return _first_nonblank(text, start)
        if token in ("$", "end"):
            return end if operator else max(start, end - 1)
        if token in ("j", "k"):
            column = cursor - start
            position = cursor
            for _ in range(count):
                if token == "j":
                    following = _line_end(text, position) + 1
                    if following > len(text):
                        break
                    position = min(following + column, _line_end(text, following))
                else:
                    line = _line_start(text, position)
                    if line == 0:
                        break
                    previous = _line_start(text, line - 1)
                    position = min(previous + column, line - 1)
            return position
        position = cursor
        for _ in range(count):
            if token == "w":
                position = _next_word(text, position)
            elif token == "b":
                position = _previous_word(text, position)
            elif token == "e":
                position = _word_end(text, position)
        return position

    def _rest(self, text: str, position: int) -> int:
        """Normal mode's cursor sits on a character: never past a line's last one."""
        position = max(0, min(position, len(text)))
        start, end = _line_start(text, position), _line_end(text, position)
        return max(start, min(position, end - 1))


def _line_start(text: str, position: int) -> int:
    return text.rfind("\n", 0, position) + 1


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end < 0 else end


def _first_nonblank(text: str, start: int) -> int:
    end = _line_end(text, start)
    position = start
    while position < end and text[position] in " \t":
        position += 1
    return position


def _next_word(text: str, position: int) -> int:
    size = len(text)
    if position >= size:
        return size
    kind = _kind(text[position])
    if kind:
        while position < size and _kind(text[position]) == kind:
            position += 1
    while position < size and text[position].isspace():
        position += 1
    return position


def _previous_word(text: str, position: int) -> int:
    if position <= 0:
        return 0
    position -= 1
    while position > 0 and text[position].isspace():
        position -= 1
    kind = _kind(text[position])
    while position > 0 and _kind(text[position - 1]) == kind:
        position -= 1
    return position


def _word_end(text: str, position: int) -> int:
    size = len(text)
    if position >= size - 1:
        return max(0, size - 1)
    position += 1
    while position < size - 1 and text[position].isspace():
        position += 1
    kind = _kind(text[position])
    while position < size - 1 and _kind(text[position + 1]) == kind:
        position += 1
    return position


def _word_object(text: str, cursor: int, *, around: bool) -> tuple[int, int]:
    """``iw`` / ``aw``: the word (or run of blanks) under the cursor, with ``aw`` its
    following blanks (or, at a line's end, the ones before it)."""
    if not text:
        return 0, 0
    cursor = min(cursor, len(text) - 1)
    kind = _kind(text[cursor])
    begin = cursor
    while begin > 0 and _kind(text[begin - 1]) == kind and text[begin - 1] != "\n":
        begin -= 1
    stop = cursor + 1
    while stop < len(text) and _kind(text[stop]) == kind and text[stop] != "\n":
        stop += 1
    if around and kind:
        trailing = stop
        while trailing < len(text) and text[trailing] in " \t":
            trailing += 1
        if trailing > stop:
            stop = trailing
        else:
            while begin > 0 and text[begin - 1] in " \t":
                begin -= 1
    return begin, stop
