"""Start-up imports: what the first painted room list does not need is imported when first used."""

from __future__ import annotations

import subprocess
import sys

LAZY = ("markdown_it", "emoji")


def test_importing_the_app_leaves_formatting_and_emoji_for_later() -> None:
    code = (
        f"import sys, tui_client.ui.app\nprint(' '.join(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_they_load_when_first_used() -> None:
    code = (
        "import sys\n"
        "from tui_client.engine.formatting import markdown_to_html\n"
        "from tui_client.ui.completion import complete_emoji\n"
        "assert markdown_to_html('**hi**') == '<strong>hi</strong>'\n"
        "assert complete_emoji(':thumbs_u')\n"
        f"print(' '.join(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == list(LAZY)
