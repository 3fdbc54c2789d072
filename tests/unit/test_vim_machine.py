"""The composer's vim state machine, driven key by key (no Textual)."""

from __future__ import annotations

from tui_client.ui.vim import Effect, Mode, VimMachine


class Buffer:
    """A text and a cursor fed through a machine the way the composer does."""

    def __init__(self, text: str, cursor: int = 0, mode: Mode = Mode.NORMAL) -> None:
        self.machine = VimMachine(mode=mode)
        self.text = text
        self.cursor = cursor
        self.effects: list[Effect] = []

    def keys(self, *tokens: str) -> Buffer:
        for token in tokens:
            outcome = self.machine.key(token, self.text, self.cursor)
            if outcome.effect is Effect.PASS:
                # insert mode: the text area types the character
                self.text = self.text[: self.cursor] + token + self.text[self.cursor :]
                self.cursor += 1
            else:
                self.text, self.cursor = outcome.text, outcome.cursor
            self.effects.append(outcome.effect)
        return self

    def type(self, keys: str) -> Buffer:
        return self.keys(*keys)

    @property
    def at(self) -> str:
        """The text with a | before the cursor's character."""
        return self.text[: self.cursor] + "|" + self.text[self.cursor :]


def test_motions_h_l_w_b_e_0_dollar() -> None:
    b = Buffer("hello big world")
    assert b.type("w").at == "hello |big world"
    assert b.type("w").at == "hello big |world"
    assert b.type("b").at == "hello |big world"
    assert b.type("e").at == "hello bi|g world"
    assert b.type("$").at == "hello big worl|d"
    assert b.type("l").at == "hello big worl|d"  # never past the last character
    assert b.type("0").at == "|hello big world"
    assert b.type("h").at == "|hello big world"
    assert b.type("ll").at == "he|llo big world"


def test_punctuation_is_its_own_word() -> None:
    b = Buffer("foo.bar baz")
    assert b.type("w").at == "foo|.bar baz"
    assert b.type("w").at == "foo.|bar baz"


def test_counts_move_and_repeat() -> None:
    b = Buffer("one two three four five")
    assert b.type("3w").at == "one two three |four five"
    assert b.type("2b").at == "one |two three four five"
    assert b.type("3l").at == "one two| three four five"
    assert b.type("20l").at == "one two three four fiv|e"


def test_x_and_count_x() -> None:
    b = Buffer("abcdef", 1)
    assert b.type("x").at == "a|cdef"
    assert b.type("3x").at == "a|f"
    assert b.type("5x").at == "|a"


def test_dw_d2w_and_2dw() -> None:
    assert Buffer("one two three four").type("dw").at == "|two three four"
    assert Buffer("one two three four").type("d2w").at == "|three four"
    assert Buffer("one two three four").type("2dw").at == "|three four"
    assert Buffer("one two", 4).type("dw").at == "one| "  # the last word: up to the line's end


def test_dd_deletes_lines_and_p_puts_them_back_below() -> None:
    b = Buffer("first\nsecond\nthird", 7)
    assert b.type("dd").at == "first\n|third"
    assert b.type("p").at == "first\nthird\n|second"
    assert b.type("gg").at == "|first\nthird\nsecond"
    assert b.type("2dd").at == "|second"
    assert b.type("dd").at == "|"


def test_cw_changes_to_the_end_of_the_word_and_enters_insert() -> None:
    b = Buffer("hello world")
    b.type("cw")
    assert b.machine.mode is Mode.INSERT
    assert b.at == "| world"
    b.type("bye")
    assert b.at == "bye| world"
    b.keys("escape")
    assert b.machine.mode is Mode.NORMAL
    assert b.at == "by|e world"


def test_ciw_and_diw_take_the_word_under_the_cursor() -> None:
    b = Buffer("say hello there", 6)
    b.type("ciw")
    assert b.at == "say | there" and b.machine.mode is Mode.INSERT
    b.type("hi").keys("escape")
    assert b.text == "say hi there"
    assert Buffer("say hello there", 6).type("daw").text == "say there"
    assert Buffer("say hello there", 6).type("diw").text == "say  there"


def test_undo_and_redo_step_through_changes() -> None:
    b = Buffer("one two three")
    b.type("dw")
    b.type("x")
    assert b.text == "wo three"
    assert b.type("u").text == "two three"
    assert b.type("u").text == "one two three"
    assert b.type("u").text == "one two three"  # nothing more to undo
    assert b.keys("ctrl+r").text == "two three"


def test_an_insert_session_is_one_undo_step() -> None:
    b = Buffer("", mode=Mode.INSERT)
    b.type("hello world").keys("escape")
    assert b.machine.mode is Mode.NORMAL and b.at == "hello worl|d"
    b.type("dd")
    assert b.text == ""
    assert b.type("u").text == "hello world"
    assert b.type("u").text == ""


def test_p_puts_what_x_and_yw_took() -> None:
    b = Buffer("abc")
    b.type("xp")
    assert b.at == "b|ac"
    b = Buffer("one two")
    b.type("yw$p")
    assert b.text == "one twoone "
    assert b.type("P").text == "one twooneone  "  # before the cursor (on the space put last)


def test_insert_entries_i_a_A_I_o() -> None:
    assert Buffer("  abc", 3).type("i").at == "  a|bc"
    assert Buffer("  abc", 3).type("a").at == "  ab|c"
    assert Buffer("  abc", 3).type("A").at == "  abc|"
    assert Buffer("  abc", 3).type("I").at == "  |abc"
    b = Buffer("abc\ndef")
    b.type("o")
    assert b.at == "abc\n|\ndef" and b.machine.mode is Mode.INSERT


def test_keys_that_leave_the_composer() -> None:
    b = Buffer("text")
    b.keys(":", "/", "enter", "escape")
    assert b.effects == [Effect.COMMAND_LINE, Effect.SEARCH, Effect.SUBMIT, Effect.CANCEL]
    assert b.text == "text"
    typing = Buffer("", mode=Mode.INSERT)
    typing.keys("a", ":", "/", "enter")
    assert typing.effects == [Effect.PASS] * 4


def test_j_k_keep_the_column() -> None:
    b = Buffer("abcdef\nxy\nlonger line", 4)
    assert b.type("j").at == "abcdef\nx|y\nlonger line"
    assert b.type("j").at == "abcdef\nxy\nl|onger line"  # the column of the line it left
    assert b.type("2k").at == "a|bcdef\nxy\nlonger line"
    assert b.type("G").at == "abcdef\nxy\n|longer line"


def test_a_stray_operator_key_is_dropped() -> None:
    b = Buffer("abc def")
    b.type("dzw")
    assert b.at == "abc |def"  # dz cancelled, then w moved
    assert b.machine.pending == ""
    b.type("d2")
    assert b.machine.pending == "2d"


# -- . repeats the last change ------------------------------------------------------------


def test_dot_repeats_x_dw_and_dd_with_their_counts() -> None:
    b = Buffer("abcdef")
    assert b.type("x").at == "|bcdef"
    assert b.type(".").at == "|cdef"
    assert b.type("2x").at == "|ef"
    assert b.type(".").at == "|"  # 2x again: two characters
    b = Buffer("one two three four five")
    assert b.type("dw").at == "|two three four five"
    assert b.type(".").at == "|three four five"
    assert b.type("2.").at == "|five"  # a count replaces the change's own
    b = Buffer("a\nb\nc\nd\ne")
    assert b.type("dd").text == "b\nc\nd\ne"
    assert b.type(".").text == "c\nd\ne"
    assert b.type("2.").text == "e"


def test_dot_repeats_an_insert_with_what_was_typed() -> None:
    b = Buffer("x")
    b.type("A").type(" hi").keys("escape")
    assert b.at == "x h|i"
    assert b.type(".").at == "x hi h|i"
    b = Buffer("one two three")
    b.type("cw").type("ONE").keys("escape")
    assert b.at == "ON|E two three"
    assert b.type("w").type(".").at == "ONE ON|E three"
    b = Buffer("first")
    b.type("o").type("next").keys("escape")
    assert b.text == "first\nnext"
    assert b.type(".").text == "first\nnext\nnext"
    b = Buffer("", mode=Mode.INSERT)
    b.type("typed before any command").keys("escape")
    assert b.type(".").text == "typed before any command"  # nothing to repeat


def test_dot_is_one_undo_step_and_motions_and_yanks_are_not_repeated() -> None:
    b = Buffer("aa bb cc dd")
    b.type("cw").type("XX").keys("escape")
    b.type("w").type("yw")  # a yank is not a change
    b.type("w").type(".")
    assert b.text == "XX bb XX dd"
    assert b.type("u").text == "XX bb cc dd"
    assert b.type("u").text == "aa bb cc dd"
    b = Buffer("abc")
    b.type("x").type("u").type(".")  # u is not the last change: x is
    assert b.text == "bc"


# -- visual mode ----------------------------------------------------------------------------


def test_v_selects_characters_and_y_d_c_act_on_them() -> None:
    b = Buffer("hello big world")
    b.type("wv")
    assert b.machine.mode is Mode.VISUAL
    outcome = b.machine.key("e", b.text, b.cursor)
    b.text, b.cursor = outcome.text, outcome.cursor
    assert outcome.selection == (6, 9)  # "big", the cursor's character included
    assert b.type("y").machine.mode is Mode.NORMAL and b.at == "hello |big world"
    assert b.type("$p").text == "hello big worldbig"
    b = Buffer("hello big world")
    assert b.type("wvlld").at == "hello | world"
    assert b.machine.mode is Mode.NORMAL
    b = Buffer("hello big world")
    b.type("wvec").type("small").keys("escape")
    assert b.text == "hello small world" and b.machine.mode is Mode.NORMAL
    assert b.type("u").text == "hello big world"


def test_visual_o_swaps_the_ends_and_backwards_selections() -> None:
    b = Buffer("abcdef", 3)
    outcome = b.machine.key("v", b.text, b.cursor)
    assert outcome.selection == (3, 4)
    outcome = b.machine.key("h", b.text, 3)
    outcome = b.machine.key("h", b.text, outcome.cursor)
    assert outcome.cursor == 1 and outcome.selection == (4, 1)  # anchor after the cursor
    outcome = b.machine.key("o", b.text, outcome.cursor)
    assert outcome.cursor == 3 and outcome.selection == (1, 4)
    b.text, b.cursor = outcome.text, outcome.cursor
    assert b.type("d").text == "aef"


def test_V_selects_lines_and_y_d_c_take_whole_lines() -> None:
    b = Buffer("one\ntwo\nthree\nfour", 5)
    outcome = b.machine.key("V", b.text, b.cursor)
    assert b.machine.mode is Mode.VISUAL_LINE and outcome.selection == (4, 7)
    outcome = b.machine.key("j", b.text, outcome.cursor)
    assert outcome.selection == (4, 13)
    b.cursor = outcome.cursor
    assert b.type("d").text == "one\nfour" and b.machine.mode is Mode.NORMAL
    assert b.type("p").text == "one\nfour\ntwo\nthree"  # a linewise register
    b = Buffer("one\ntwo\nthree", 4)
    assert b.type("Vy").machine.mode is Mode.NORMAL
    assert b.type("P").text == "one\ntwo\ntwo\nthree"
    b = Buffer("one\ntwo\nthree", 4)
    b.type("Vc").type("TWO").keys("escape")
    assert b.text == "one\nTWO\nthree"


def test_v_and_V_switch_kinds_and_escape_leaves() -> None:
    b = Buffer("one\ntwo", 1)
    b.type("v")
    assert b.machine.mode is Mode.VISUAL
    assert b.type("V").machine.mode is Mode.VISUAL_LINE
    assert b.type("v").machine.mode is Mode.VISUAL
    assert b.type("v").machine.mode is Mode.NORMAL and b.text == "one\ntwo"
    b.type("Vj").keys("escape")
    assert (
        b.machine.mode is Mode.NORMAL and b.text == "one\ntwo" and b.at == "one\nt|wo"
    )  # j kept the column


def test_dot_repeats_a_visual_delete_on_as_many_lines_or_characters() -> None:
    b = Buffer("a\nb\nc\nd\ne")
    b.type("Vjd")
    assert b.text == "c\nd\ne"
    assert b.type(".").text == "e"
    b = Buffer("abcdefgh")
    b.type("vld")
    assert b.text == "cdefgh"
    assert b.type(".").text == "efgh"
    b = Buffer("aaa bbb ccc")
    b.type("vecX").keys("escape")
    assert b.text == "X bbb ccc"
    assert b.type("w.").text == "X X ccc"
