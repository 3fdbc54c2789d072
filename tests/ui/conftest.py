"""UI test fixtures: UTC clock, an in-memory keyring, a deterministic profile."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from .fake_world import FakeHomeserver, make_profile, use_memory_keyring

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(autouse=True)
def utc_clock() -> Iterator[None]:
    """Timestamps render the same everywhere."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's terminal (kitty, tmux, SSH, a desktop's session bus) does not leak in:
    notifications in tests ring the bell, and no test sends a real desktop notification."""
    for name in (
        "TERM_PROGRAM", "KITTY_WINDOW_ID", "LC_TERMINAL", "WT_SESSION", "ConEmuPID", "ConEmuANSI",
        "WEZTERM_PANE", "GHOSTTY_RESOURCES_DIR", "TMUX", "DBUS_SESSION_BUS_ADDRESS",
        "TUI_CLIENT_NOTIFY_ESCAPE",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


@pytest.fixture
def memory_keyring() -> Iterator[None]:
    """A working (in-memory) keyring, so no fallback warning appears."""
    previous = keyring.get_keyring()
    use_memory_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def fake_profile(tmp_path: Path, memory_keyring: None) -> Path:
    """A base dir holding a saved session with a filled cache."""
    make_profile(tmp_path)
    return tmp_path


@pytest.fixture
def fake_server() -> FakeHomeserver:
    """The fake homeserver the deterministic app talks to."""
    return FakeHomeserver()


def save_screenshot(name: str, svg: str) -> None:
    """Write a README screenshot when asked to (TUI_CLIENT_UPDATE_SCREENSHOTS=1)."""
    if os.environ.get("TUI_CLIENT_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(exist_ok=True)
        (SCREENSHOTS / f"{name}.svg").write_text(svg)
