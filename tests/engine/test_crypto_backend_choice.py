"""The crypto backend a client opens with: python-olm's store moves to vodozemac at
the first start on the default, and python-olm is then refused, saying why (on F7's
report), with nothing of the store changed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tests.ui.fake_world import FakeHomeserver, make_profile, use_memory_keyring
from tui_client.engine import encryption
from tui_client.engine.client import MatrixClient
from tui_client.engine.encryption import BACKEND_ENV
from tui_client.engine.updates import CryptoStoreUpgrade, Notice
from tui_client.ui.screens.recovery import health_text


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    previous = keyring.get_keyring()
    use_memory_keyring()
    make_profile(tmp_path)
    yield tmp_path
    keyring.set_keyring(previous)


async def _opened(folder: Path, **options: str) -> MatrixClient:
    client = MatrixClient.restore(
        base_dir=folder, transport=FakeHomeserver().transport(), **options
    )
    assert client is not None
    await client.open()
    return client


async def test_python_olm_moves_to_vodozemac_and_cannot_come_back(folder: Path) -> None:
    client = await _opened(folder, crypto_backend="olm")
    try:
        machine = client.encryption.machine
        assert machine is not None
        identity = machine.identity_keys
        store = client.encryption.store
        assert await client.encryption.call(store.load_pickle_format) == "olm"
    finally:
        await client.close()

    client = await _opened(folder, crypto_backend="vodozemac")
    try:
        machine = client.encryption.machine
        assert machine is not None and machine.backend.name == "vodozemac"
        assert machine.identity_keys == identity
        store = client.encryption.store
        assert await client.encryption.call(store.load_pickle_format) == "vodozemac"
        report = health_text(await client.recovery.health(check_backup=False)).plain
        assert "✓ Encryption library: vodozemac" in report
    finally:
        await client.close()

    client = MatrixClient.restore(
        base_dir=folder, transport=FakeHomeserver().transport(), crypto_backend="olm"
    )
    assert client is not None
    notices: list[Notice] = []
    client.subscribe(lambda update: notices.append(update) if isinstance(update, Notice) else None)
    await client.open()
    try:
        assert client.encryption.machine is None
        [notice] = [n for n in notices if n.level == "error"]
        assert "which olm cannot read" in notice.text and "with vodozemac" in notice.text
        report = health_text(await client.recovery.health(check_backup=False)).plain
        assert "End-to-end encryption is not available on this device" in report
        assert "stored in vodozemac's format, which olm cannot read" in report
        assert "Encryption library: python-olm" in report
        store = client.encryption.store
        assert await client.encryption.call(store.load_pickle_format) == "vodozemac"
    finally:
        await client.close()

    client = await _opened(folder, crypto_backend="vodozemac")
    try:
        machine = client.encryption.machine
        assert machine is not None and machine.identity_keys == identity
    finally:
        await client.close()


async def _backend_opened(folder: Path) -> tuple[str, str]:
    """The backend a client opens with when the API names none, and F7's line for it."""
    client = await _opened(folder)
    try:
        machine = client.encryption.machine
        assert machine is not None
        report = health_text(await client.recovery.health(check_backup=False)).plain
        [line] = [line for line in report.splitlines() if "Encryption library" in line]
        return machine.backend.name, line.strip()
    finally:
        await client.close()


async def test_the_environment_then_the_config_file_choose_the_backend(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setattr(encryption, "_configured_backend", None)
    monkeypatch.setenv(BACKEND_ENV, "olm")
    name, line = await _backend_opened(folder)
    assert name == "olm" and "Encryption library: python-olm (libolm: deprecated" in line
    # The config file's choice, when the environment names none.
    monkeypatch.delenv(BACKEND_ENV)
    encryption.configure_backend("olm")
    assert (await _backend_opened(folder))[0] == "olm"
    # The environment wins over the config file; vodozemac moves the store over.
    monkeypatch.setenv(BACKEND_ENV, "vodozemac")
    name, line = await _backend_opened(folder)
    assert name == "vodozemac" and line == "✓ Encryption library: vodozemac"
    monkeypatch.delenv(BACKEND_ENV)
    encryption.configure_backend(None)
    assert (await _backend_opened(folder))[0] == "vodozemac"


async def test_a_misspelt_backend_turns_encryption_off_and_says_how_to_fix_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKEND_ENV, "vodozemak")
    client = MatrixClient.restore(base_dir=folder, transport=FakeHomeserver().transport())
    assert client is not None
    notices: list[Notice] = []
    client.subscribe(lambda update: notices.append(update) if isinstance(update, Notice) else None)
    await client.open()
    try:
        assert client.encryption.machine is None
        [notice] = [n for n in notices if n.level == "error"]
        assert "unknown crypto backend 'vodozemak'" in notice.text
        assert f"Set {BACKEND_ENV} to vodozemac or olm, or unset it." in notice.text
        assert "Log out" not in notice.text
    finally:
        await client.close()
    monkeypatch.delenv(BACKEND_ENV)
    assert (await _backend_opened(folder))[0] == "vodozemac"


async def test_a_long_move_to_vodozemac_says_so_and_when_it_is_done(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's move is held after its first pickle until the engine has said it is
    upgrading (what a big store's move looks like); then it is told done, with the count."""
    client = await _opened(folder, crypto_backend="olm")
    await client.close()
    monkeypatch.setattr(encryption, "UPGRADE_NOTICE_AFTER", 0.05)
    client = MatrixClient.restore(
        base_dir=folder, transport=FakeHomeserver().transport(), crypto_backend="vodozemac"
    )
    assert client is not None
    said: list[CryptoStoreUpgrade] = []
    told = threading.Event()

    def heard(update: object) -> None:
        if isinstance(update, CryptoStoreUpgrade):
            said.append(update)
            told.set()

    client.subscribe(heard)
    client.encryption.migration_step = lambda _kind: told.wait(10)
    await client.open()
    try:
        assert said == [CryptoStoreUpgrade(1, done=False), CryptoStoreUpgrade(1, done=True)]
        machine = client.encryption.machine
        assert machine is not None and machine.backend.name == "vodozemac"
    finally:
        await client.close()


async def test_a_quick_move_and_an_open_without_one_say_nothing(folder: Path) -> None:
    client = await _opened(folder, crypto_backend="olm")
    await client.close()
    said: list[object] = []

    def heard(update: object) -> None:
        if isinstance(update, CryptoStoreUpgrade):
            said.append(update)

    for _ in range(2):  # the move (one pickle: instant), then an open with nothing to move
        client = MatrixClient.restore(
            base_dir=folder, transport=FakeHomeserver().transport(), crypto_backend="vodozemac"
        )
        assert client is not None
        client.subscribe(heard)
        await client.open()
        await client.close()
    assert said == []
