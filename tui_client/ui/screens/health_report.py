"""The encryption health report as text: one line per part of the setup, a mark, what
to do about it (the F7 screen, :class:`~.recovery.EncryptionHealthScreen`)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from ...engine.recovery import FIXES, EncryptionHealth
from ...engine.updates import BackupStatus
from ...protocol.sanitize import clean_line

__all__ = ["BAD", "DIM", "GOOD", "HEAD", "health_text"]

GOOD = Style(color="green")
BAD = Style(color="yellow", bold=True)
DIM = Style(dim=True)
HEAD = Style(bold=True, underline=True)


def _mark(ok: bool) -> tuple[str, Style]:
    return ("✓ ", GOOD) if ok else ("✗ ", BAD)


def _line(text: Text, ok: bool, message: str, hint: str = "") -> None:
    mark, style = _mark(ok)
    text.append("  " + mark, style=style)
    text.append(message)
    if hint:
        text.append(f"  ({hint})", style=DIM)
    text.append("\n")


_SECRET_NAMES = {
    "m.cross_signing.master": "master key",
    "m.cross_signing.self_signing": "self-signing key",
    "m.cross_signing.user_signing": "user-signing key",
    "m.megolm_backup.v1": "backup key",
}


def _fix(fix: str, health: EncryptionHealth) -> tuple[str, str]:
    """The key that does ``fix`` on the health screen, and its words (given the state)."""
    if fix == "restore":
        if health.backup.key_cached:
            return "b", FIXES[fix]
        return (
            "k",
            "enter your recovery key to verify this session and restore the keys from the backup",
        )
    if fix == "request":
        if health.device_verified:
            return "q", "request the keys from your other sessions"
        return "q", FIXES[fix] + " (verify this session first: F6)"
    if fix == "import":
        return "i", FIXES[fix]
    return "", FIXES.get(fix, fix)


def health_text(health: EncryptionHealth) -> Text:
    """The health report as styled plain text."""
    text = Text()
    if not health.available:
        text.append("End-to-end encryption is not available on this device.\n", style=BAD)
        if health.error:
            text.append(clean_line(health.error, 300) + "\n")
        _keyring_line(text, health)
        _backend_line(text, health.crypto_backend)
        return text
    status = health.cross_signing
    text.append("Cross-signing\n", style=HEAD)
    if status is None or not status.published:
        _line(text, False, "Your account has no cross-signing identity", "set up recovery: s")
    else:
        _line(
            text,
            status.master_trusted,
            "Your identity "
            + ("is trusted here" if status.master_trusted else "is not trusted here"),
        )
    _line(
        text,
        health.device_verified,
        "This session is "
        + ("verified (signed by your identity)" if health.device_verified else "not verified"),
        ""
        if health.device_verified
        else "restore from your recovery key: k; or verify it from another session: F6",
    )
    if status is not None and status.published:
        held = [
            ("master", status.has_master),
            ("self-signing", status.has_self_signing),
            ("user-signing", status.has_user_signing),
        ]
        text.append("  Private keys here: ", style=DIM)
        text.append(
            " · ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in held) + "\n", style=DIM
        )
    text.append("\nRecovery\n", style=HEAD)
    kind = "a recovery key or passphrase" if health.secret_storage_passphrase else "a recovery key"
    _line(
        text,
        health.secret_storage,
        f"Secret storage is set up, unlocked by {kind}"
        if health.secret_storage
        else "No secret storage: nothing to recover a new device with",
        "" if health.secret_storage else "s",
    )
    cached = [_SECRET_NAMES.get(name, clean_line(name, 60)) for name in health.secrets_cached]
    text.append("  Secrets cached on this device: ", style=DIM)
    text.append((", ".join(cached) if cached else "none") + "\n", style=DIM)
    text.append("\nKey backup\n", style=HEAD)
    _backup_lines(text, health.backup)
    text.append("\nThis device\n", style=HEAD)
    _keyring_line(text, health)
    _backend_line(text, health.crypto_backend)
    otks = health.one_time_keys
    _line(
        text,
        otks is not None and otks > 0,
        f"{otks} one-time keys on the server"
        if otks is not None
        else "One-time keys on the server: not known yet",
        "others start encrypted sessions with this device with them",
    )
    text.append("\nMessages that could not be decrypted\n", style=HEAD)
    if not health.undecryptable:
        _line(text, True, "None")
    for group in health.undecryptable:
        plural = "s" if group.events != 1 else ""
        keys = "s" if group.sessions != 1 else ""
        text.append(
            f"  ! {group.events:,} message{plural} ({group.sessions:,} key{keys}): ", style=BAD
        )
        text.append(clean_line(group.reason, 200) + "\n")
        for fix in group.fixes:
            key, words = _fix(fix, health)
            text.append("      → ")
            if key:
                text.append(f"{key} ", style=Style(bold=True))
            text.append(words + "\n", style=DIM)
    return text


#: The crypto backends by name, as the health screen names them, and whether each is sound.
_BACKENDS = {
    "vodozemac": ("Encryption library: vodozemac", True),
    "olm": (
        "Encryption library: python-olm (libolm: deprecated, with known timing side channels)",
        False,
    ),
}


def _backend_line(text: Text, backend: str) -> None:
    if not backend:
        return
    label, sound = _BACKENDS.get(backend, (f"Encryption library: {clean_line(backend, 40)}", False))
    _line(text, sound, label)


def _keyring_line(text: Text, health: EncryptionHealth) -> None:
    warning = health.keyring_warning
    _line(
        text,
        warning is None,
        clean_line(warning, 400)
        if warning
        else "Your access token and keys are in the system keyring",
    )


def _backup_lines(text: Text, backup: BackupStatus) -> None:
    state = backup.state
    version = f"version {clean_line(backup.version, 40)}" if backup.version else ""
    if state == "active":
        _line(text, True, f"Backup {version} is in use")
        text.append(f"    {clean_line(backup.detail, 200)}\n", style=DIM)
        _line(
            text,
            backup.up_to_date,
            f"{backup.keys_backed_up:,} of {backup.keys_total:,} room keys on this device are backed up"
            + (
                f" ({backup.server_count:,} in the backup)"
                if backup.server_count is not None
                else ""
            ),
            "" if backup.up_to_date else "uploading",
        )
        _line(
            text,
            backup.key_cached,
            "This device holds the backup key"
            if backup.key_cached
            else "This device does not hold the backup key",
            "it can restore from the backup: b"
            if backup.key_cached
            else "enter your recovery key to get it: k",
        )
    elif state == "none":
        _line(
            text, False, "This account has no key backup: new devices cannot read your history", "s"
        )
    elif state == "untrusted":
        _line(
            text,
            False,
            f"The backup on the server ({version}) is not used: {clean_line(backup.detail, 200)}",
            "x to reset it",
        )
    elif state in ("unknown", "off"):
        text.append(
            "  " + ("Checking…" if state == "unknown" else clean_line(backup.detail, 200)) + "\n",
            style=DIM,
        )
    else:
        _line(text, False, clean_line(backup.detail, 300) or f"The backup is {state}")
    if backup.error:
        text.append(f"  Last upload failed: {clean_line(backup.error, 200)}\n", style=BAD)
