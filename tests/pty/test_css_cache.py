"""The real ``python -m tui_client`` keeps Textual's parsed stylesheets between starts
(ui/css_cache.py, issue 13): the first start writes the table when it quits, the next
reads every stylesheet from it (nothing new: the file is not written again) and paints
the same screen. On a pseudo-terminal at 80x24."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

from .app import PtyApp


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settled(app: PtyApp) -> str:
    """The screen once the app has stopped drawing (the same for 0.5 s)."""
    screen = app.text()
    for _ in range(60):
        time.sleep(0.5)
        now = app.text()
        if now == screen:
            return screen
        screen = now
    raise AssertionError(f"the screen never stopped changing:\n{screen}")


def _start(tmp_path: Path, table: Path) -> str:
    """The login screen as the app paints it, then a clean quit (Ctrl+Q)."""
    with PtyApp.for_account(
        str(tmp_path / "data"),
        f"http://127.0.0.1:{_closed_port()}",
        "@alice:localhost",
        env={"TUI_CLIENT_CSS_CACHE": str(table)},
    ) as app:
        app.wait_for("Log in to your Matrix account", timeout=60)
        screen = _settled(app)
        app.write("\x11")
        app.process.wait(30)
        assert app.process.returncode == 0, app.text()
    return "\n".join(line for line in screen.splitlines() if "127.0.0.1:" not in line)


def test_the_second_start_reads_every_stylesheet_from_the_table(tmp_path: Path) -> None:
    table = tmp_path / "cache" / "css-rules.bin"
    cold = _start(tmp_path, table)
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    written = table.stat().st_mtime_ns
    warm = _start(tmp_path, table)
    assert table.stat().st_mtime_ns == written  # every parse read back: nothing added
    assert warm == cold
