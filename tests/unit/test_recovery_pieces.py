"""The small pure pieces of recovery: request builders, the restored-key marker, the
health report as text, the recovery key file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.segment import Segment

from tui_client.engine.recovery import FIXES, EncryptionHealth, Undecryptable, save_recovery_key
from tui_client.engine.updates import BackupStatus
from tui_client.protocol import requests as api
from tui_client.protocol.sanitize import is_clean
from tui_client.protocol.timeline import TimelineItem
from tui_client.ui.render import Palette, render_item, sender_marker
from tui_client.ui.screens.recovery import health_text


def test_backup_request_builders() -> None:
    assert api.room_keys_version() == api.Request("GET", "/_matrix/client/v3/room_keys/version")
    assert api.room_keys_version("7").path == "/_matrix/client/v3/room_keys/version/7"
    body = {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "k"}}
    created = api.create_room_keys_version(body)
    assert (created.method, created.path, created.body) == (
        "POST",
        "/_matrix/client/v3/room_keys/version",
        body,
    )
    updated = api.update_room_keys_version("7", body)
    assert updated.method == "PUT" and updated.body == {**body, "version": "7"}
    assert api.delete_room_keys_version("a/b").path == "/_matrix/client/v3/room_keys/version/a%2Fb"
    put = api.put_room_keys("3", {"rooms": {}})
    assert (put.method, put.path, put.query) == (
        "PUT",
        "/_matrix/client/v3/room_keys/keys",
        (("version", "3"),),
    )
    one = api.get_room_keys("3", room_id="!r:x", session_id="s/1+")
    assert one.path == "/_matrix/client/v3/room_keys/keys/%21r%3Ax/s%2F1%2B" and one.query == (
        ("version", "3"),
    )
    room = api.put_room_keys("3", {"sessions": {}}, room_id="!r:x")
    assert room.path == "/_matrix/client/v3/room_keys/keys/%21r%3Ax"


def _item(trust: str | None) -> TimelineItem:
    return TimelineItem(
        key="$e",
        event_id="$e",
        txn_id=None,
        sender="@bob:x",
        ts=1_700_000_000_000,
        kind="text",
        body="restored",
        event_type="m.room.message",
        encrypted=True,
        trust=trust,
        device_id="BOB",
    )


def test_a_message_decrypted_with_a_key_from_the_backup_is_marked() -> None:
    assert sender_marker(_item("unauthenticated"), None) == "?"
    assert sender_marker(_item("unverified"), None) == "!"
    assert sender_marker(_item(None), None) is None
    lines = render_item(_item("unauthenticated"), None, lambda user: user, 80, Palette())
    first = "".join(segment.text for segment in lines[1] if isinstance(segment, Segment))
    assert "?" in first.split("@bob:x")[0]


def _health(**changes: object) -> EncryptionHealth:
    health = EncryptionHealth(
        available=True,
        error=None,
        user_id="@alice:x",
        device_id="DEV",
        cross_signing=None,
        secret_storage=False,
        secret_storage_passphrase=False,
        secrets_cached=(),
        backup=BackupStatus("none", detail="This account has no key backup."),
        one_time_keys=None,
        undecryptable=(
            Undecryptable(
                "missing_room_key",
                3,
                2,
                "the key has not arrived",
                ("restore", "request", "import"),
            ),
        ),
    )
    return dataclasses.replace(health, **changes)  # type: ignore[arg-type]


def test_the_health_report_names_problems_and_fixes() -> None:
    report = health_text(_health()).plain
    assert "✗ Your account has no cross-signing identity" in report
    assert "✗ This session is not verified" in report
    assert "✗ No secret storage" in report and "no key backup" in report
    assert "3 messages (2 keys): the key has not arrived" in report
    assert "k enter your recovery key" in report and "q " + FIXES["request"] in report
    untrusted = BackupStatus(
        "untrusted", version="9", detail="\x1b[31mThe backup is not signed\u202e"
    )
    report = health_text(_health(backup=untrusted)).plain
    assert "(version 9) is not used: The backup is not signed" in report and is_clean(
        report.replace("\n", " ")
    )
    off = health_text(_health(available=False, error="the pickle key is missing")).plain
    assert "not available" in off and "pickle key" in off


def test_the_health_report_names_the_crypto_backend() -> None:
    assert (
        "✓ Encryption library: vodozemac" in health_text(_health(crypto_backend="vodozemac")).plain
    )
    report = health_text(_health(crypto_backend="olm")).plain
    assert "✗ Encryption library: python-olm (libolm: deprecated" in report
    off = health_text(_health(available=False, error="no key", crypto_backend="olm")).plain
    assert "Encryption library: python-olm" in off
    strange = health_text(_health(crypto_backend="\x1b[31mnew\u202e")).plain
    assert "Encryption library: " in strange and is_clean(strange.replace("\n", " "))


def test_the_recovery_key_file_is_private(tmp_path: Path) -> None:
    target = tmp_path / "key.txt"
    target.write_text("old")
    target.chmod(0o644)
    save_recovery_key(target, "EsTc LW2K", "@alice:x")
    assert target.stat().st_mode & 0o777 == 0o600
    assert "EsTc LW2K" in target.read_text() and "@alice:x" in target.read_text()
