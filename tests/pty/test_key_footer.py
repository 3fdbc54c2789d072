"""The key bar on a real terminal (ui/widgets/key_footer.py, issue 13): ``python -m
tui_client`` on a pseudo-terminal at 80x24 draws the login screen's keys on the bottom line,
the palette's key at the right edge, and a mouse click on "^q Quit" (an SGR mouse report, as
a terminal sends it) quits the app."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .app import PtyApp


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_footer_line_shows_the_keys_and_a_click_quits(tmp_path: Path) -> None:
    with PtyApp.for_account(
        str(tmp_path / "data"), f"http://127.0.0.1:{_closed_port()}", "@alice:localhost"
    ) as app:
        app.wait_for("Log in to your Matrix account", timeout=60)
        app.wait_for(lambda text: text.splitlines()[-1].startswith(" ^q Quit "), timeout=30)
        bottom = app.text().splitlines()[-1]
        # (the screen's lines come without trailing blanks: the palette's key ends one cell
        # before the right edge, as Textual's footer draws it)
        assert bottom.startswith(" ^q Quit ") and bottom.endswith("▏^p palette"), bottom
        assert bottom.index("▏") == 80 - len("▏^p palette "), bottom
        assert bottom[9:68].strip() == "", bottom  # nothing else, nothing wrapped or doubled
        assert app.process.poll() is None
        column = bottom.index("Quit") + 1  # 1-based, as the terminal reports it
        app.write(f"\x1b[<0;{column};24M\x1b[<0;{column};24m")
        deadline = time.monotonic() + 30
        while app.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.process.returncode == 0, app.text()
