"""The account list of a profile (engine/accounts.py): slots, folders, the file on disk."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tui_client.engine.accounts import (
    ACCOUNTS_FILE,
    MAIN,
    AccountList,
    load_accounts,
    save_accounts,
    slot_location,
)


def test_the_main_slot_is_the_profile_folder_and_others_live_under_it(tmp_path: Path) -> None:
    assert slot_location("default", tmp_path, MAIN) == ("default", tmp_path)
    profile, base = slot_location("default", tmp_path, "default.acct2")
    assert profile == "default.acct2" and base == tmp_path / "default" / "accounts"
    # --profile work: a separate set, in its own folder.
    assert slot_location("work", tmp_path, "work.acct2")[1] == tmp_path / "work" / "accounts"


def test_free_slots_reuse_main_then_count_up() -> None:
    listing = AccountList()
    assert listing.free_slot("default", set()) == MAIN
    assert listing.free_slot("default", {MAIN}) == "default.acct2"
    listing = listing.adding("default.acct2")
    assert listing.slots == (MAIN, "default.acct2") and listing.active == MAIN
    assert listing.free_slot("default", {MAIN, "default.acct2"}) == "default.acct3"
    # A listed slot whose account is not running (being restored, or set aside) is not reused.
    assert listing.free_slot("default", {MAIN}) == "default.acct3"


def test_removing_keeps_main_and_moves_the_front(tmp_path: Path) -> None:
    listing = AccountList((MAIN, "p.acct2", "p.acct3"), "p.acct2")
    assert listing.removing("p.acct2") == AccountList((MAIN, "p.acct3"), MAIN)
    assert listing.removing(MAIN) == AccountList((MAIN, "p.acct2", "p.acct3"), "p.acct2")
    assert listing.in_front("p.acct3").active == "p.acct3"
    assert listing.in_front("nowhere").active == "p.acct2"


def test_saved_and_loaded_per_profile_private(tmp_path: Path) -> None:
    listing = AccountList((MAIN, "default.acct2"), "default.acct2")
    save_accounts("default", tmp_path, listing)
    path = tmp_path / "default" / ACCOUNTS_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_accounts("default", tmp_path) == listing
    assert load_accounts("work", tmp_path) == AccountList()  # another profile: its own


def test_a_damaged_list_means_the_main_account_only(tmp_path: Path) -> None:
    path = tmp_path / "default" / ACCOUNTS_FILE
    path.parent.mkdir(parents=True)
    for text in ("{not json", "[]", json.dumps({"accounts": "x"})):
        path.write_text(text)
        assert load_accounts("default", tmp_path) == AccountList()
    # Hostile names (a path out of the folder) are dropped; the front falls back to main.
    path.write_text(
        json.dumps(
            {"accounts": ["main", "../../etc", "ok.acct2", "ok.acct2", 7], "active": "../../etc"}
        )
    )
    assert load_accounts("default", tmp_path) == AccountList((MAIN, "ok.acct2"), MAIN)
