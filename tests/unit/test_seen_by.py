"""The "seen by" line under a message: names cleaned, long lists shortened."""

from __future__ import annotations

from tui_client.ui.render import seen_text


def test_one_two_many() -> None:
    assert seen_text(["Bob"]) == "✓ Seen by Bob"
    assert seen_text(["Bob", "Carol"]) == "✓ Seen by Bob and Carol"
    assert seen_text(["Bob", "Carol", "Dave"]) == "✓ Seen by Bob, Carol and Dave"
    assert seen_text(["Bob", "Carol", "Dave", "Eve"]) == "✓ Seen by Bob, Carol, Dave and 1 other"
    assert seen_text(["A", "B", "C", "D", "E"]) == "✓ Seen by A, B, C and 2 others"


def test_names_are_cleaned() -> None:
    text = seen_text(["Mallory\x1b[31m\u202e", "[b]Bob[/b]"])
    assert "\x1b" not in text and "\u202e" not in text
    assert "[b]Bob[/b]" in text  # literal (rendered as plain segments, never markup)
