"""The help lists the thread keys: t on a message opens its thread, Ctrl+T the room's threads."""

from __future__ import annotations

from tui_client.ui.screens.help import help_text


def test_help_lists_the_thread_keys() -> None:
    lines = [line.split() for line in help_text().plain.splitlines()]
    rows = {words[0]: " ".join(words[2:]) for words in lines if len(words) > 2}
    assert rows["t"] == "Open its thread (replies, answer)"
    assert rows["ctrl+t"] == "The room's threads (all / mine)"
