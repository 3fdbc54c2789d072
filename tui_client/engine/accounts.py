"""Several accounts in one window: which accounts a profile holds, and where each keeps its files.

A profile (``--profile``, one process) holds one or more accounts. The first lives in the
profile's own folder, as a single account always did (slot ``main``); each added account
gets a folder of its own under ``<profile>/accounts/`` (slot ``<profile>.acct<n>``), with
its own session, cache, keys and secrets: nothing is shared between accounts but the
window. ``accounts.json`` in the profile folder lists the slots in the order the user
added them and which one was in front, so every account comes back after a restart.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .paths import profile_dir

__all__ = [
    "ACCOUNTS_FILE",
    "MAIN",
    "AccountList",
    "load_accounts",
    "save_accounts",
    "slot_location",
]

log = logging.getLogger(__name__)

ACCOUNTS_FILE = "accounts.json"
#: The slot of the profile's own folder.
MAIN = "main"
_SLOT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class AccountList:
    """The slots of a profile's accounts, in the order added, and the one in front."""

    slots: tuple[str, ...] = (MAIN,)
    active: str = MAIN

    def adding(self, slot: str) -> AccountList:
        """With ``slot`` added (at the end)."""
        slots = self.slots if slot in self.slots else (*self.slots, slot)
        return AccountList(slots, self.active)

    def removing(self, slot: str) -> AccountList:
        """Without ``slot`` (the main slot stays listed: it is the profile's own folder)."""
        slots = tuple(s for s in self.slots if s != slot or s == MAIN)
        active = (
            self.active if self.active != slot else (next((s for s in slots if s != slot), MAIN))
        )
        return AccountList(slots, active)

    def in_front(self, slot: str) -> AccountList:
        """With ``slot`` in front."""
        return AccountList(self.slots, slot if slot in self.slots else self.active)

    def free_slot(self, profile: str, used: set[str]) -> str:
        """A slot for a new account: the main one if no account is in it, else the next number."""
        if MAIN not in used:
            return MAIN
        taken = set(self.slots) | used
        n = 2
        while f"{profile}.acct{n}" in taken:
            n += 1
        return f"{profile}.acct{n}"


def slot_location(profile: str, base_dir: Path | None, slot: str) -> tuple[str, Path | None]:
    """``(profile, base_dir)`` to give :class:`MatrixClient` for the account in ``slot``."""
    if slot == MAIN:
        return profile, base_dir
    return slot, profile_dir(profile, base_dir) / "accounts"


def load_accounts(profile: str, base_dir: Path | None) -> AccountList:
    """The profile's account list; a missing or damaged file means the main slot only."""
    path = profile_dir(profile, base_dir) / ACCOUNTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AccountList()
    except (OSError, ValueError) as error:
        log.warning("ignoring the unreadable account list %s: %s", path, error)
        return AccountList()
    raw = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        log.warning("ignoring the account list %s: no list of accounts", path)
        return AccountList()
    slots = [MAIN]
    for slot in raw:
        if (
            isinstance(slot, str)
            and _SLOT_RE.match(slot)
            and slot not in (".", "..")
            and slot not in slots
        ):
            slots.append(slot)
    active = data.get("active")
    return AccountList(
        tuple(slots), active if isinstance(active, str) and active in slots else MAIN
    )


def save_accounts(profile: str, base_dir: Path | None, accounts: AccountList) -> None:
    """Write the account list (atomically, mode 0600)."""
    path = profile_dir(profile, base_dir) / ACCOUNTS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"accounts": list(accounts.slots), "active": accounts.active}, handle)
    os.replace(tmp, path)
