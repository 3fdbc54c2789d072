"""sanitize: nothing that drives a terminal survives, everything else is left alone."""

from __future__ import annotations

import pytest

from tui_client.protocol.sanitize import clean_line, clean_text, is_clean

ESC = "\x1b"
BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
LINE_BREAKS = {"\r", "\x85", "\u2028", "\u2029"}  # become "\n"


def forbidden(code_point: int) -> bool:
    """What may never reach the terminal: C0 but \\t and \\n, DEL, C1, bidi controls,
    and the separators that move the cursor (\\r and the Unicode line separators)."""
    char = chr(code_point)
    if char in "\t\n":
        return False
    return (
        code_point < 0x20
        or 0x7F <= code_point <= 0x9F
        or char in BIDI_CONTROLS
        or char in ("\u2028", "\u2029")
    )


def assert_safe(text: str) -> None:
    assert not any(forbidden(ord(c)) for c in text), repr(text)
    assert is_clean(text)


# -- markup is not our business, but it must come through unchanged -------------------


@pytest.mark.parametrize(
    "markup",
    [
        "[@click=app.quit]x",
        "[/bold]",
        "[b]x[/b]",
        "[red]alert[/]",
        "[link=http://evil]click[/link]",
        "\\[escaped]",
        "<b>html</b>",
        "*md* `code`",
    ],
)
def test_markup_is_preserved_as_literal_text(markup: str) -> None:
    assert is_clean(markup)
    assert clean_text(markup) == markup
    assert clean_line(markup) == markup


# -- escape sequences -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[2J", ""),
        ("\x1b[?1049h", ""),
        ("a\x1b[1;31;42mb", "ab"),
        ("\x1b[38;2;255;0;0mtrue colour", "true colour"),
        ("\x1b[6n", ""),  # cursor position report request
        ("\x1b]0;title\x07", ""),
        ("\x1b]0;title\x1b\\after", "after"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1b]52;c;ZXZpbCBjb21tYW5k\x07", ""),  # OSC 52: write the clipboard
        ("copy\x1b]52;c;ZXZpbA==\x1b\\me", "copyme"),
        ("\x1bP1$r0m\x1b\\", ""),  # DCS
        ("\x1bPq#0;2;0;0;0#1!20~\x1b\\sixel", "sixel"),
        ("\x1b_APC payload\x1b\\", ""),
        ("\x1b^PM payload\x1b\\", ""),
        ("\x1bXSOS payload\x1b\\", ""),
        ("\x1bc", ""),  # RIS: reset the terminal
        ("\x1b7save\x1b8", "save"),
        ("\x1b(0line drawing\x1b(B", "line drawing"),
        ("tail\x1b", "tail"),  # lone ESC at the end
        ("\x1b\x1b[31m", ""),
        ("\x1b]unterminated osc", ""),
    ],
)
def test_escape_sequences_are_removed_whole(dirty: str, clean: str) -> None:
    assert not is_clean(dirty)
    assert clean_text(dirty) == clean


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("\x9b31mred", "31mred"),  # 8-bit CSI: the introducer goes, the rest is inert text
        ("\x9d0;title\x9c", "0;title"),  # 8-bit OSC ... ST
        ("a\x90b", "ab"),  # 8-bit DCS
        ("a\x00b", "ab"),
        ("a\x7fb", "ab"),
        ("a\x07b", "ab"),  # BEL
        ("abc\x08\x08\x08xyz", "abcxyz"),  # backspaces cannot overwrite
        ("a\x0bb\x0cc", "abc"),  # vertical tab, form feed
    ],
)
def test_controls_are_removed(dirty: str, clean: str) -> None:
    assert clean_text(dirty) == clean


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("I agree\rI refuse", "I agree\nI refuse"),  # \r cannot overwrite the line
        ("windows\r\nline", "windows\nline"),
        ("a\x85b", "a\nb"),  # NEL
        ("a\u2028b\u2029c", "a\nb\nc"),
    ],
)
def test_line_breaks_become_newlines(dirty: str, clean: str) -> None:
    assert clean_text(dirty) == clean


@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_bidi_controls_are_removed(control: str) -> None:
    assert clean_text(f"abc{control}def") == "abcdef"
    assert clean_line(f"{control}evil.exe") == "evil.exe"


def test_newline_and_tab_are_kept() -> None:
    text = "line one\n\tindented\nline three"
    assert is_clean(text)
    assert clean_text(text) == text


def test_clean_line_folds_newlines_and_tabs() -> None:
    assert clean_line("a\nb\tc\n\n\td") == "a b c d"
    assert clean_line("one\r\ntwo\rthree\u2028four") == "one two three four"
    assert clean_line("\x1b[31mname\x1b[0m\n") == "name "
    assert "\n" not in clean_line("x\x85y")


def test_clean_line_truncates_with_an_ellipsis() -> None:
    assert clean_line("abcdef", max_length=4) == "abc…"
    assert clean_line("abcd", max_length=4) == "abcd"
    assert clean_line("a\nb", max_length=3) == "a b"
    assert len(clean_line("x" * 500, max_length=80)) == 80


@pytest.mark.parametrize("value", [None, 42, b"\x1b[2J", ["a"], {"a": 1}])
def test_non_strings_become_empty(value: object) -> None:
    assert clean_text(value) == ""
    assert clean_line(value) == ""


@pytest.mark.parametrize(
    "text",
    [
        "👩‍👩‍👧‍👦",  # ZWJ sequence
        "🇫🇷🏳️‍🌈",
        "👍🏽",
        "漢字かなカナ한국어",
        "e\u0301",  # combining accent
        "\u200c\u200d",  # ZWNJ, ZWJ
        "مرحبا بالعالم",  # right-to-left script itself is fine
        "\u200e\u200f",  # LRM/RLM marks (not overrides)
        "Ω≈ç√∫",
        "\ufeffBOM",
        "\U0010fffd",
    ],
)
def test_ordinary_unicode_is_untouched(text: str) -> None:
    assert is_clean(text)
    assert clean_text(text) == text
    assert clean_line(text) == text


def test_brute_force_every_code_point_up_to_0x3000() -> None:
    for code_point in range(0x3000):
        char = chr(code_point)
        for text in (char, f"a{char}b", f"{ESC}{char}z", f"{ESC}[{char}z", f"{ESC}]{char}\x07z"):
            cleaned = clean_text(text)
            assert_safe(cleaned)
            assert clean_text(cleaned) == cleaned  # idempotent
            line = clean_line(text)
            assert_safe(line)
            assert "\n" not in line and "\t" not in line
        alone = clean_text(f"a{char}b")
        if char == ESC:
            assert alone == "a"  # "ESC b" is a whole two-character escape sequence
        elif char in LINE_BREAKS:
            assert alone == "a\nb"
        elif forbidden(code_point):
            assert alone == "ab", hex(code_point)
        else:
            assert alone == f"a{char}b", hex(code_point)
            assert is_clean(f"a{char}b")


def test_is_clean_agrees_with_clean_text() -> None:
    for code_point in range(0x3000):
        text = f"x{chr(code_point)}y"
        assert is_clean(text) == (clean_text(text) == text), hex(code_point)


def test_a_hostile_message_comes_out_inert() -> None:
    hostile = (
        "Click \x1b]8;;https://evil.example/\x1b\\here\x1b]8;;\x1b\\ "
        "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;cm0gLXJmIH4=\x07"
        "safe\rUNSAFE \u202egpj.exe\x9b6n\x00"
    )
    cleaned = clean_text(hostile)
    assert_safe(cleaned)
    assert ESC not in cleaned
    assert cleaned == "Click here safe\nUNSAFE gpj.exe6n"
