"""Secrets (access token, pickle key) in the system keyring, or a 0600 file without one.

Headless machines (CI, servers, containers) have no keyring backend. There the
secrets go to ``secrets.json`` in the profile folder, readable by the user only,
and :attr:`SecretStore.warning` says so in plain words for the UI to show.

A profile whose secrets are in that file keeps them there: the next start reads the
file without asking the keyring again (importing ``keyring`` and probing its backends
costs ~30-40 ms of start-up, issue 13; a keyring that became usable later would not
hold the secrets anyway). The file remembers why there was no keyring, for the warning.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["SecretStore", "keyring_status"]

SERVICE = "tui_client"
#: The secret (in the file only) saying why the keyring was not used when the file was made.
NO_KEYRING_NOTE = "no_keyring"
#: The warning's reason for a file made without that note (the keyring forced off).
KEPT_IN_FILE = "this profile's secrets are kept in its own file"


def keyring_status() -> tuple[bool, str]:
    """Whether a usable keyring backend exists, and a description of it or of the failure."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError as error:  # pragma: no cover - keyring is a dependency
        return False, f"the keyring package cannot be imported ({error})"
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False, "no system keyring backend is available"
    try:
        backend.get_password(SERVICE, "probe")
    except Exception as error:
        return False, f"the system keyring does not work ({type(error).__name__}: {error})"
    return True, type(backend).__name__


class SecretStore:
    """Secrets of one profile, by name (``access_token``, ``pickle_key``, ...)."""

    def __init__(self, profile_dir: Path, account: str, *, use_keyring: bool | None = None) -> None:
        # Keyed by profile and account: two profiles of the same user keep separate secrets.
        self.account = f"{profile_dir.name}/{account}"
        self.fallback_path = profile_dir / "secrets.json"
        self._note: str | None = None  # why there is no keyring: written with the file
        if use_keyring is None:
            kept = self._kept_in_file()
            if kept is not None:
                use_keyring, detail = False, kept
            else:
                use_keyring, detail = keyring_status()
                self._note = None if use_keyring else detail
        else:
            detail = "keyring forced off" if not use_keyring else "keyring forced on"
        self.uses_keyring = use_keyring
        self.warning: str | None = None
        if not use_keyring:
            self.warning = (
                f"No system keyring: {detail}. Your access token and encryption keys are stored "
                f"in {self.fallback_path}, readable only by you (mode 0600)."
            )

    def _key(self, name: str) -> str:
        return f"{self.account}:{name}"

    def _kept_in_file(self) -> str | None:
        """Why there was no keyring, if this account's secrets are already in the file."""
        if not self.fallback_path.exists():
            return None
        try:
            data = self._read_file()
        except RuntimeError:
            return None  # unreadable: the keyring is asked, as for a new profile
        prefix = self._key("")
        if not any(key.startswith(prefix) for key in data):
            return None
        return data.get(self._key(NO_KEYRING_NOTE)) or KEPT_IN_FILE

    def get(self, name: str) -> str | None:
        """A secret, or None if it was never stored."""
        if self.uses_keyring:
            import keyring

            value = keyring.get_password(SERVICE, self._key(name))
            return value if isinstance(value, str) else None
        return self._read_file().get(self._key(name))

    def set(self, name: str, value: str) -> None:
        """Store a secret."""
        if self.uses_keyring:
            import keyring

            keyring.set_password(SERVICE, self._key(name), value)
            return
        data = self._read_file()
        data[self._key(name)] = value
        if self._note is not None:
            data.setdefault(self._key(NO_KEYRING_NOTE), self._note)
        self._write_file(data)

    def delete(self, name: str) -> None:
        """Forget a secret (no error if it was not there)."""
        if self.uses_keyring:
            import keyring
            from keyring.errors import PasswordDeleteError

            try:
                keyring.delete_password(SERVICE, self._key(name))
            except PasswordDeleteError:
                pass
            return
        data = self._read_file()
        if data.pop(self._key(name), None) is not None:
            self._write_file(data)

    def delete_all(self, names: list[str]) -> None:
        """Forget several secrets; removes the fallback file once it is empty."""
        for name in names:
            self.delete(name)
        if not self.uses_keyring and self.fallback_path.exists():
            note = self._key(NO_KEYRING_NOTE)
            if not [key for key in self._read_file() if key != note]:
                self.fallback_path.unlink()

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self.fallback_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"cannot read the secrets file {self.fallback_path}: {error}"
            ) from error
        return (
            {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(data, dict)
            else {}
        )

    def _write_file(self, data: dict[str, str]) -> None:
        # Written to a 0600 temporary file and renamed over, so it is never readable
        # by others and never half-written.
        folder = self.fallback_path.parent
        fd, tmp = tempfile.mkstemp(prefix=".secrets.", dir=folder)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.fallback_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
