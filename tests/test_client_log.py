"""The client's log file (``--log``, or ``client.log`` in the profile folder).

It is readable by its owner only, whatever the umask, and a credential a library
might put in a message is blanked before it is written.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import tui_client.ui.app
from tui_client.__main__ import configure_logging, main
from tui_client.engine import gc_policy, method_cache
from tui_client.ui import css_cache


@pytest.fixture(autouse=True)
def _process_wide_switches_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` would hold back the collector and patch ``dataclasses`` and Textual's
    stylesheet parser for the rest of the pytest process (tests/engine/test_gc_policy.py
    checks it does): not here, where only the log is looked at."""
    monkeypatch.setattr(gc_policy, "starting", lambda: None)
    monkeypatch.setattr(method_cache, "install", lambda: None)
    monkeypatch.setattr(css_cache, "install", lambda: None)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Undo what the code under test does to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_log_given_with_dash_dash_log_is_created_0600(
    tmp_path: Path, umask_022: None, root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(tui_client.ui.app, "run_app", lambda **kwargs: started.append("app"))
    log = tmp_path / "logs" / "client.log"
    main(["--log", str(log), "--data-dir", str(tmp_path / "data")])
    assert started == ["app"]
    logging.getLogger("tui_client.test").warning("a line")
    assert _mode(log) == 0o600
    assert "a line" in log.read_text(encoding="utf-8")


def test_the_default_log_in_the_profile_folder_is_created_0600(
    tmp_path: Path, umask_022: None, root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tui_client.ui.app, "run_app", lambda **kwargs: None)
    main(["--data-dir", str(tmp_path), "--profile", "work"])
    assert _mode(tmp_path / "work" / "client.log") == 0o600


def test_an_existing_readable_log_is_narrowed_to_0600(
    tmp_path: Path, umask_022: None, root_logging: None
) -> None:
    log = tmp_path / "client.log"
    log.write_text("an older run\n", encoding="utf-8")
    log.chmod(0o644)
    configure_logging(log, debug=False)
    logging.getLogger("tui_client.test").warning("a newer run")
    assert _mode(log) == 0o600
    assert log.read_text(encoding="utf-8").startswith("an older run\n")
    assert "a newer run" in log.read_text(encoding="utf-8")


def test_credentials_in_a_library_message_are_blanked(tmp_path: Path, root_logging: None) -> None:
    log = tmp_path / "client.log"
    configure_logging(log, debug=True)
    other = logging.getLogger("some.library")
    other.debug("headers {'Authorization': 'Bearer syt_c2VjcmV0_abcdef'}")
    other.debug(
        "GET %s", "https://example.org/_matrix/client/v3/sync?access_token=syt_c2VjcmV0_abcdef&x=1"
    )
    other.debug("body %s", {"password": "hunter2", "user": "me"})
    other.debug("form %s", "grant_type=refresh_token&refresh_token=mar_s3cr3t&client_id=c")
    text = log.read_text(encoding="utf-8")
    assert "syt_c2VjcmV0_abcdef" not in text
    assert "hunter2" not in text
    assert "mar_s3cr3t" not in text
    assert text.count("<redacted>") == 4
    assert "&x=1" in text and "'user': 'me'" in text
