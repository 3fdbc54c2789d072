"""The house style, checked in `make test` as well as `make lint`: ruff's rules, ruff's
formatting, and mypy strict over the package (its configuration is in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TREES = ["tui_client", "tests", "bench"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["check", "--no-cache"], id="rules"),
        pytest.param(["format", "--check", "--no-cache"], id="format"),
    ],
)
def test_ruff(argv: list[str]) -> None:
    result = _run(str(BIN / "ruff"), *argv, *TREES)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_strict(tmp_path: Path) -> None:
    result = _run(str(BIN / "mypy"), "--cache-dir", str(tmp_path / "mypy"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
