"""A profile whose secrets are in its 0600 file keeps them there: the next start reads the
file without asking the keyring (importing ``keyring`` and probing it was 30-40 ms of each
start on a headless machine, issue 13), and still says why there is no keyring."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tui_client.engine.secrets import KEPT_IN_FILE, SecretStore

from ..ui.fake_world import use_memory_keyring

ME = "@a:example.org"


def _run(code: str, folder: Path) -> list[str]:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout.splitlines()


def test_a_second_start_reads_the_file_without_importing_keyring(tmp_path: Path) -> None:
    first = (
        "import sys\nfrom pathlib import Path\nfrom tui_client.engine.secrets import SecretStore\n"
        f"store = SecretStore(Path(sys.argv[1]), {ME!r})\n"
        "store.set('access_token', 'the-token')\n"
        "print('keyring' in sys.modules)\nprint(store.warning)\n"
    )
    probed, warning = _run(first, tmp_path)
    assert probed == "True"  # the first start asked the keyring, and found none
    assert "no system keyring backend is available" in warning
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600

    again = (
        "import sys\nfrom pathlib import Path\nfrom tui_client.engine.secrets import SecretStore\n"
        f"store = SecretStore(Path(sys.argv[1]), {ME!r})\n"
        "print('keyring' in sys.modules)\nprint(store.get('access_token'))\n"
        "print(store.uses_keyring)\nprint(store.warning)\n"
    )
    imported, token, uses_keyring, warning_again = _run(again, tmp_path)
    assert (imported, token, uses_keyring) == ("False", "the-token", "False")
    assert warning_again == warning  # the same words: why there was no keyring, and where


@pytest.fixture
def a_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    use_memory_keyring()
    yield
    keyring.set_keyring(previous)


def test_a_profile_in_the_keyring_still_asks_the_keyring(tmp_path: Path, a_keyring: None) -> None:
    SecretStore(tmp_path, ME).set("access_token", "in-the-keyring")
    again = SecretStore(tmp_path, ME)
    assert again.uses_keyring and again.warning is None
    assert again.get("access_token") == "in-the-keyring"
    assert not (tmp_path / "secrets.json").exists()


def test_another_account_in_the_file_does_not_decide_for_this_one(
    tmp_path: Path, a_keyring: None
) -> None:
    SecretStore(tmp_path, "@other:example.org", use_keyring=False).set("access_token", "x")
    assert SecretStore(tmp_path, ME).uses_keyring


def test_a_file_made_with_the_keyring_forced_off_is_kept_and_said(tmp_path: Path) -> None:
    SecretStore(tmp_path, ME, use_keyring=False).set("access_token", "t")
    again = SecretStore(tmp_path, ME)
    assert not again.uses_keyring and again.get("access_token") == "t"
    assert again.warning is not None and KEPT_IN_FILE in again.warning
    assert str(tmp_path / "secrets.json") in again.warning


def test_forgetting_every_secret_removes_the_file_and_its_note(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, ME)  # conftest: the failing keyring backend
    assert not store.uses_keyring
    store.set("access_token", "t")
    store.set("pickle_key", "p")
    assert len(json.loads((tmp_path / "secrets.json").read_text())) == 3  # and the note
    SecretStore(tmp_path, ME).delete_all(["access_token", "pickle_key"])
    assert not (tmp_path / "secrets.json").exists()
