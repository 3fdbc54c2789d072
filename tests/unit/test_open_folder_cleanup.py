"""Files opened with ``o`` are copied into a private folder of the run; a run that crashes
leaves its folder behind, and the next start removes it (but not another running window's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

CHILD = """
import os, signal, sys
from tui_client.engine.opener import _write_private
path = _write_private("secret.png", b"decrypted picture")
print(path, flush=True)
if sys.argv[1] == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


def _child(mode: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_a_crashed_runs_files_are_removed_at_the_next_start(tmp_path: Path) -> None:
    env = {**os.environ, "TUI_CLIENT_OPEN_DIR": str(tmp_path / "open")}
    crashed, crashed_file = _child("crash", env)
    assert crashed.wait(timeout=30) == -signal.SIGKILL
    assert crashed_file.read_bytes() == b"decrypted picture"  # left by the crash
    assert oct(crashed_file.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "open").stat().st_mode & 0o777) == "0o700"
    running, running_file = _child("stay", env)
    # Another window opening a file first removes what crashed runs left.
    assert not crashed_file.exists()
    crashed_again, crashed_file = _child("crash", env)
    assert crashed_again.wait(timeout=30) == -signal.SIGKILL
    try:
        # The next start (the program's entry point runs this before the app).
        started = subprocess.run(
            [
                sys.executable,
                "-c",
                "from tui_client.engine.opener import remove_stale_folders;"
                "print(len(remove_stale_folders()))",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert started.stdout.strip() == "1"
        assert not crashed_file.exists()
        assert not crashed_file.parent.parent.exists()  # the crashed run's whole folder
        assert running_file.read_bytes() == b"decrypted picture"  # another window's, kept
    finally:
        running.communicate("", timeout=30)
    assert not running_file.parent.parent.exists()  # removed at its own exit


def test_the_entry_point_cleans_before_the_app_starts() -> None:
    source = (Path(__file__).parents[2] / "tui_client" / "__main__.py").read_text()
    assert source.index("remove_stale_folders()") < source.index("run_app(\n")
