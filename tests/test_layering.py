"""The dependency direction of DESIGN.md, checked two ways.

import-linter's contracts (in pyproject.toml) check the static import graph; the
subprocess test checks what actually gets loaded: importing any non-UI module must
not load Textual, so the core runs headless. (Rich is checked statically only:
httpx imports it for its command-line tool.)
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tui_client

ROOT = Path(__file__).resolve().parents[1]


def _non_ui_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(tui_client.__path__, "tui_client."):
        if info.name.startswith("tui_client.ui") or info.name == "tui_client.__main__":
            continue
        names.append(info.name)
    return sorted(names)


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize("module", _non_ui_modules())
def test_core_module_does_not_load_textual(module: str) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "bad = [m for m in ('textual',) if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{module} loads {result.stdout.strip()} {result.stderr[-500:]}"


def test_protocol_uses_only_the_standard_library() -> None:
    code = (
        "import sys, pkgutil, importlib, tui_client.protocol as p\n"
        "before = set(sys.modules)\n"
        "for i in pkgutil.walk_packages(p.__path__, 'tui_client.protocol.'): importlib.import_module(i.name)\n"
        "third = sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names) - {'tui_client'})\n"
        "print(third); sys.exit(1 if third else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
