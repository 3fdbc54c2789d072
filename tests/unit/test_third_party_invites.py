"""Pending third-party invites in a room's members (m.room.third_party_invite)."""

from __future__ import annotations

from tui_client.protocol.room_state import RoomMembers

TAKEN_UP = {
    "membership": "invite",
    "third_party_invite": {"display_name": "b...@exa...", "signed": {"token": "tok"}},
}


def test_pending_until_a_member_event_takes_the_token_up() -> None:
    members = RoomMembers()
    members.update_third_party("tok", {"display_name": "b...@exa..."})
    members.update_third_party("other", {"display_name": "c...@exa...\x1b[31m"})
    assert members.third_party_pending() == ["b...@exa...", "c...@exa..."]
    members.update("@bob:hs", TAKEN_UP)
    assert members.third_party_pending() == ["c...@exa..."]
    members.update_third_party("other", {})  # revoked
    assert members.third_party_pending() == []


def test_state_in_any_order() -> None:
    members = RoomMembers()
    members.update("@bob:hs", TAKEN_UP)
    members.update_third_party("tok", {"display_name": "b...@exa..."})
    assert members.third_party_pending() == []
