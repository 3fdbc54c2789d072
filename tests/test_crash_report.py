"""make test's report of a pytest process that died (tests/support/crash_log.py,
crash_report.py): a real abort in a child process, its stacks read back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.crash_report import report

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    from tests.support.crash_log import CrashLog

    def waiting_in_a_worker():
        time.sleep(60)

    def dying_here(log):
        log.entering("tests/x.py::test_before", "running")
        log.entering("tests/x.py::test_dies", "running")
        os.abort()

    threading.Thread(target=waiting_in_a_worker, daemon=True).start()
    dying_here(CrashLog(Path(sys.argv[1])))
    """
)


def test_an_abort_is_reported_with_the_running_test_last(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], cwd=REPO, capture_output=True, timeout=60
    )
    assert done.returncode != 0

    text = report(folder)

    lines = text.splitlines()
    assert "Fatal Python error: Aborted" in lines
    assert lines[-1] == "The test running when it died: tests/x.py::test_dies (running)"
    died = lines.index("The thread that died:")
    assert "in dying_here" in lines[died + 2]
    # The other thread is there too, above, with its innermost frame first.
    assert any("in waiting_in_a_worker" in line for line in lines[:died])


def test_a_run_that_did_not_die_reports_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from tests.support.crash_log import CrashLog;"
            "log = CrashLog(Path(sys.argv[1])); log.entering('t::a', 'running'); log.close()",
            str(folder),
        ],
        cwd=REPO,
        check=True,
        timeout=60,
    )
    assert (folder / "current-test").read_text() == "t::a (running)\n"
    assert report(folder) == ""
