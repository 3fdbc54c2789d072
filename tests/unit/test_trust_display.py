"""How trust shows: the marks beside messages, a DM's header, the member list badge,
the verification dialog's words (pure pieces, no app)."""

from __future__ import annotations

import dataclasses

from rich.segment import Segment

from tui_client.crypto.cross_signing import UserIdentity
from tui_client.crypto.verification import VerificationState
from tui_client.engine.devices import IdentityState, UserTrust, identity_state
from tui_client.protocol.timeline import TimelineItem
from tui_client.ui.render import Palette, render_item, sender_marker
from tui_client.ui.screens.devices import fingerprint
from tui_client.ui.screens.verification import describe_other, time_left
from tui_client.ui.widgets.room_header import _trust_text

from ..support.verification import verification

BOB = "@bob:x"


def _item(
    trust: str | None, device: str | None = "BOB1", sender: str = BOB, encrypted: bool = True
) -> TimelineItem:
    return TimelineItem(
        key="$e",
        event_id="$e",
        txn_id=None,
        sender=sender,
        ts=1_700_000_000_000,
        kind="text",
        body="hi",
        event_type="m.room.message",
        encrypted=encrypted,
        trust=trust,
        device_id=device,
    )


VERIFIED_BOB = UserTrust(
    BOB, IdentityState.VERIFIED, "MASTER", frozenset({"BOB1", "BOB2"}), frozenset({"BOB1"})
)


def test_marks_beside_messages() -> None:
    # Without the sender's current trust: as decrypted (a device we cannot vouch for).
    assert sender_marker(_item("unverified"), None) == "!"
    assert sender_marker(_item("unknown device"), None) == "!"
    assert sender_marker(_item("verified"), None) is None
    assert sender_marker(_item("unverified", encrypted=False), None) is None
    # A verified user's verified device: ✓, also for messages decrypted before the verification.
    assert sender_marker(_item("verified"), VERIFIED_BOB) == "✓"
    assert sender_marker(_item("unverified"), VERIFIED_BOB) == "✓"
    # Their device nobody verified stays flagged, even for a verified user.
    assert sender_marker(_item("unverified", device="BOB2"), VERIFIED_BOB) == "!"
    # Our own messages get no ✓ (we are not "a verified user" to ourselves).
    assert (
        sender_marker(
            _item("verified", sender="@me:x"),
            dataclasses.replace(VERIFIED_BOB, user_id="@me:x"),
            "@me:x",
        )
        is None
    )
    unverified_bob = dataclasses.replace(VERIFIED_BOB, state=IdentityState.UNVERIFIED)
    assert sender_marker(_item("verified"), unverified_bob) is None


def test_the_mark_is_in_the_time_column() -> None:
    lines = render_item(
        _item("verified"), None, lambda user: user, 80, Palette(), trust=VERIFIED_BOB
    )
    first = [s for s in lines[1] if isinstance(s, Segment)]
    # "HH:MM" then the mark, in the six cells of the time column.
    assert len(first[0].text) == 5 and first[1].text == "✓"


def _identity(**changes: object) -> UserIdentity:
    identity = UserIdentity(
        user_id=BOB,
        master_key="M",
        self_signing_key="S",
        user_signing_key=None,
        verified=False,
        verified_by=None,
        pinned_master_key="M",
        changed=False,
        verification_violation=False,
        is_own=False,
    )
    return dataclasses.replace(identity, **changes)  # type: ignore[arg-type]


def test_identity_states() -> None:
    assert identity_state(None) is IdentityState.NONE
    assert identity_state(_identity(master_key=None)) is IdentityState.NONE
    assert identity_state(_identity()) is IdentityState.UNVERIFIED
    assert identity_state(_identity(verified=True)) is IdentityState.VERIFIED
    assert identity_state(_identity(changed=True)) is IdentityState.CHANGED
    assert (
        identity_state(_identity(changed=True, verification_violation=True))
        is IdentityState.VIOLATION
    )
    changed = UserTrust(BOB, IdentityState.CHANGED)
    assert changed.needs_attention and not changed.verified
    assert UserTrust(BOB, IdentityState.UNVERIFIED, device_id_collision=True).needs_attention


def test_dm_header_words() -> None:
    assert _trust_text(VERIFIED_BOB).plain == "  ✓ verified"
    assert _trust_text(UserTrust(BOB, IdentityState.VIOLATION)).plain == "  ⚠ identity changed"
    assert _trust_text(UserTrust(BOB, IdentityState.UNVERIFIED)).plain == "  not verified"
    assert _trust_text(UserTrust(BOB, IdentityState.NONE)).plain == "  no cross-signing"


_flow = verification


def test_whom_a_flow_verifies_in_words() -> None:
    assert describe_other("@me:x", _flow()) == "@bob:x (device BOB1)"
    assert describe_other("@me:x", _flow(room_id="!dm:x")) == "@bob:x"
    assert (
        describe_other("@me:x", _flow(other_user_id="@me:x"), "Phone")
        == "your session BOB1 “Phone”"
    )
    assert (
        describe_other("@me:x", _flow(other_user_id="@me:x", other_device_id=None))
        == "your other sessions"
    )
    # Names from others are sanitised.
    shown = describe_other("@me:x", _flow(other_user_id="@me:x"), "[b]x[/b]\x1b[31m\u202e")
    assert "\x1b" not in shown and "\u202e" not in shown and "[b]x[/b]" in shown


def test_time_left() -> None:
    assert time_left(_flow(), 18_000) == "Times out in 9:42"
    assert time_left(_flow(), 700_000) == "Times out in 0:00"
    assert time_left(_flow(state=VerificationState.DONE), 0) == ""


def test_fingerprints_are_grouped() -> None:
    assert fingerprint("abcdefghij") == "abcd efgh ij"
    assert fingerprint(None) == "—"


def test_every_trust_level_has_its_words() -> None:
    # The tables are keyed by the enums' string values (importing the enums' module is
    # left for when a message is decrypted, issue 13): each member must be found by it.
    from tui_client.crypto.types import DeviceTrust, SenderTrust
    from tui_client.engine.decryption_forms import TRUST_LABELS
    from tui_client.engine.devices import _TRUST_LABEL

    assert {TRUST_LABELS[t] for t in SenderTrust} == {
        "verified",
        "unverified",
        "blocked",
        "unknown device",
        "unauthenticated",
    }
    assert [_TRUST_LABEL[t] for t in DeviceTrust] == ["verified", "unverified", "blocked"]
