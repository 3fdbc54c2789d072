"""An installed wheel (not an editable install) carries the built-in themes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THEMES = ("tui-dark", "tui-light", "tui-high-contrast")


def test_the_wheel_ships_the_themes_and_the_stylesheet(tmp_path: Path) -> None:
    # Built from a copy, so the shared checkout gets no build/ or egg-info writes.
    source = tmp_path / "project"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(
        ROOT / "tui_client", source / "tui_client", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "wheel"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            str(source),
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("tui_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for theme in THEMES:
            name = f"tui_client/ui/builtin_themes/{theme}.json"
            assert name in names
            assert json.loads(archive.read(name))["name"] == theme
        assert "tui_client/ui/app.tcss" in names
        assert "tui_client/config.py" in names
    # Installed (unpacked as pip would), the loader finds them away from the source tree.
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import tui_client.ui.themes as t; "
        "assert t.__file__.startswith(sys.argv[1]), t.__file__; "
        "print(sorted(theme.name for theme in t.builtin_themes()))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(sorted(THEMES))
