"""The CryptoStore conformance suite: every store implementation must pass all of it.

Each check is a function taking a *store factory* (a zero-argument callable that
returns a fresh, empty store) and raising ``AssertionError`` on a violation. A
store test module runs them like this::

    from tests.crypto.store_conformance import CONFORMANCE_CHECKS

    @pytest.mark.parametrize("check", CONFORMANCE_CHECKS, ids=lambda c: c.__name__)
    def test_conformance(check, tmp_path):
        check(lambda: SqliteCryptoStore(tmp_path / f"{uuid4()}.db"))

The factory may be called several times by one check; each call must return an
empty store. A check never relies on a transaction API: stores may auto-commit or
be wrapped by the caller. The last check runs a real two-device conversation
through :class:`~tui_client.crypto.machine.OlmMachine` on stores from the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tui_client.crypto.store_api import (
    AccountRecord,
    CryptoStore,
    DeviceRecord,
    InboundGroupSessionRecord,
    KeyRequestRecord,
    OlmPeerStateRecord,
    OlmSessionRecord,
    OutboundGroupSessionRecord,
    PendingToDeviceRecord,
    RoomKeyShareRecord,
    SecretRecord,
    UserIdentityRecord,
    WithheldRecord,
)

__all__ = ["CONFORMANCE_CHECKS", "StoreFactory"]

StoreFactory = Callable[[], CryptoStore]


def _account(**changes: Any) -> AccountRecord:
    record = AccountRecord(
        user_id="@a:x",
        device_id="DEV",
        pickle="pickle-1",
        shared=False,
        uploaded_otk_count=-1,
        fallback_key_needed=True,
        old_fallback_forget_at_ms=0,
    )
    return {**record, **changes}  # type: ignore[typeddict-item]


def _olm(sender_key: str = "K1", session_id: str = "S1", **changes: Any) -> OlmSessionRecord:
    record = OlmSessionRecord(
        sender_key=sender_key, session_id=session_id, pickle="p", created_ms=1, last_used_ms=2
    )
    return {**record, **changes}  # type: ignore[typeddict-item]


def _inbound(
    room_id: str = "!r:x", session_id: str = "S", **changes: Any
) -> InboundGroupSessionRecord:
    record = InboundGroupSessionRecord(
        room_id=room_id,
        session_id=session_id,
        pickle="p",
        sender_key="curve",
        signing_key="ed",
        sender_user_id="@b:y",
        first_known_index=0,
        forwarding_chain=["c1", "c2"],
        origin="m.room_key",
        shared_history=False,
        backed_up=False,
        received_ms=5,
    )
    return {**record, **changes}  # type: ignore[typeddict-item]


def _device(user_id: str = "@b:y", device_id: str = "D1", **changes: Any) -> DeviceRecord:
    record = DeviceRecord(
        user_id=user_id,
        device_id=device_id,
        curve25519=f"curve-{user_id}-{device_id}",
        ed25519=f"ed-{user_id}-{device_id}",
        algorithms=["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        keys_json='{"k":"v"}',
        display_name="Phone",
        local_trust="unset",
        deleted=False,
        first_seen_ms=9,
    )
    return {**record, **changes}  # type: ignore[typeddict-item]


def check_account_roundtrip(factory: StoreFactory) -> None:
    """An empty store has no account; a saved one comes back equal and is replaced by upserts."""
    store = factory()
    assert store.load_account() is None
    store.save_account(_account())
    assert store.load_account() == _account()
    store.save_account(_account(pickle="pickle-2", shared=True, uploaded_otk_count=50))
    assert store.load_account() == _account(pickle="pickle-2", shared=True, uploaded_otk_count=50)


def check_records_are_copies(factory: StoreFactory) -> None:
    """Mutating a record after saving it, or one that was returned, changes nothing stored."""
    store = factory()
    record = _inbound()
    store.save_inbound_group_session(record)
    record["forwarding_chain"].append("x")
    record["pickle"] = "changed"
    loaded = store.get_inbound_group_session("!r:x", "S")
    assert loaded == _inbound()
    assert loaded is not None
    loaded["forwarding_chain"].append("y")
    assert store.get_inbound_group_session("!r:x", "S") == _inbound()


def check_olm_sessions(factory: StoreFactory) -> None:
    """Olm sessions are kept per sender key, upserted by session ID, deletable."""
    store = factory()
    assert store.get_olm_sessions("K1") == []
    store.save_olm_session(_olm())
    store.save_olm_session(_olm(session_id="S2", last_used_ms=7))
    store.save_olm_session(_olm(sender_key="K2"))
    store.save_olm_session(_olm(pickle="p2"))
    by_id = {r["session_id"]: r for r in store.get_olm_sessions("K1")}
    assert by_id == {"S1": _olm(pickle="p2"), "S2": _olm(session_id="S2", last_used_ms=7)}
    store.delete_olm_session("K1", "S1")
    store.delete_olm_session("K1", "missing")
    assert [r["session_id"] for r in store.get_olm_sessions("K1")] == ["S2"]
    assert len(store.get_olm_sessions("K2")) == 1


def check_inbound_group_sessions(factory: StoreFactory) -> None:
    """Inbound sessions by (room, session); listing by room; None and list values survive."""
    store = factory()
    assert store.get_inbound_group_session("!r:x", "S") is None
    store.save_inbound_group_session(_inbound())
    store.save_inbound_group_session(
        _inbound(session_id="T", sender_user_id=None, forwarding_chain=[])
    )
    store.save_inbound_group_session(_inbound(room_id="!other:x"))
    assert store.get_inbound_group_session("!r:x", "T") == _inbound(
        session_id="T", sender_user_id=None, forwarding_chain=[]
    )
    assert store.get_inbound_group_session("!nope:x", "S") is None
    assert len(store.list_inbound_group_sessions()) == 3
    assert {r["session_id"] for r in store.list_inbound_group_sessions("!r:x")} == {"S", "T"}
    store.save_inbound_group_session(_inbound(first_known_index=3, pickle="q"))
    loaded = store.get_inbound_group_session("!r:x", "S")
    assert loaded is not None and loaded["first_known_index"] == 3 and loaded["pickle"] == "q"


def check_backup_flags(factory: StoreFactory) -> None:
    """Backed-up flags: listed when unset, set by key, reset all at once, counted."""
    store = factory()
    for i in range(5):
        store.save_inbound_group_session(_inbound(session_id=f"S{i}"))
    assert store.count_inbound_group_sessions() == (5, 0)
    batch = store.inbound_group_sessions_to_back_up(3)
    assert len(batch) == 3
    store.mark_inbound_group_sessions_backed_up([(r["room_id"], r["session_id"]) for r in batch])
    assert store.count_inbound_group_sessions() == (5, 3)
    rest = store.inbound_group_sessions_to_back_up(10)
    assert {r["session_id"] for r in rest} == {f"S{i}" for i in range(5)} - {
        r["session_id"] for r in batch
    }
    store.reset_inbound_group_sessions_backup()
    assert store.count_inbound_group_sessions() == (5, 0)


def check_outbound_sessions_and_shares(factory: StoreFactory) -> None:
    """One outbound session per room; shares upserted per device."""
    store = factory()
    record = OutboundGroupSessionRecord(
        room_id="!r:x",
        session_id="S",
        pickle="p",
        created_ms=1,
        message_count=0,
        rotation_period_ms=10,
        rotation_period_msgs=5,
        settings_key="k",
        invalidated=False,
    )
    assert store.get_outbound_group_session("!r:x") is None
    store.save_outbound_group_session(record)
    store.save_outbound_group_session({**record, "message_count": 2})
    assert store.get_outbound_group_session("!r:x") == {**record, "message_count": 2}
    store.save_outbound_group_session({**record, "session_id": "S2"})
    loaded = store.get_outbound_group_session("!r:x")
    assert loaded is not None and loaded["session_id"] == "S2"
    share = RoomKeyShareRecord(
        room_id="!r:x",
        session_id="S",
        user_id="@b:y",
        device_id="D1",
        curve25519="c",
        message_index=0,
        state="pending",
        request_id="req",
        withheld_code=None,
    )
    store.save_room_key_shares([share, {**share, "device_id": "D2"}])
    store.save_room_key_shares([{**share, "state": "sent", "request_id": None}])
    shares = {s["device_id"]: s for s in store.get_room_key_shares("!r:x", "S")}
    assert shares == {
        "D1": {**share, "state": "sent", "request_id": None},
        "D2": {**share, "device_id": "D2"},
    }
    assert store.get_room_key_shares("!r:x", "S2") == []
    store.delete_outbound_group_session("!r:x")
    store.delete_outbound_group_session("!r:x")
    assert store.get_outbound_group_session("!r:x") is None


def check_devices(factory: StoreFactory) -> None:
    """Devices by user, by ID, and by Curve25519 key (which follows an update)."""
    store = factory()
    store.save_device(_device())
    store.save_device(_device(device_id="D2"))
    store.save_device(_device(user_id="@c:z", curve25519="curve-@b:y-D1"))
    assert store.get_device("@b:y", "D1") == _device()
    assert store.get_device("@b:y", "D9") is None
    assert {d["device_id"] for d in store.get_user_devices("@b:y")} == {"D1", "D2"}
    owners = {d["user_id"] for d in store.get_devices_by_curve_key("curve-@b:y-D1")}
    assert owners == {"@b:y", "@c:z"}
    store.save_device(_device(deleted=True, local_trust="verified", display_name=None))
    assert store.get_device("@b:y", "D1") == _device(
        deleted=True, local_trust="verified", display_name=None
    )
    store.save_device(_device(device_id="D2", curve25519="new"))
    assert store.get_devices_by_curve_key("curve-@b:y-D2") == []
    assert [d["device_id"] for d in store.get_devices_by_curve_key("new")] == ["D2"]


def check_tracking_and_cross_signing(factory: StoreFactory) -> None:
    """Tracked users with their dirty flag; cross-signing keys per user."""
    store = factory()
    assert store.get_tracked_users() == []
    store.save_tracked_user({"user_id": "@b:y", "dirty": True})
    store.save_tracked_user({"user_id": "@c:z", "dirty": True})
    store.save_tracked_user({"user_id": "@b:y", "dirty": False})
    assert store.get_tracked_user("@b:y") == {"user_id": "@b:y", "dirty": False}
    assert {r["user_id"] for r in store.get_tracked_users()} == {"@b:y", "@c:z"}
    store.delete_tracked_user("@c:z")
    store.delete_tracked_user("@nobody:z")
    assert store.get_tracked_user("@c:z") is None
    assert store.get_cross_signing_keys("@b:y") is None
    keys = {
        "user_id": "@b:y",
        "master_key_json": '{"a":1}',
        "self_signing_key_json": None,
        "user_signing_key_json": None,
    }
    store.save_cross_signing_keys(keys)  # type: ignore[arg-type]
    assert store.get_cross_signing_keys("@b:y") == keys


def check_key_requests(factory: StoreFactory) -> None:
    """Key requests by ID and by (room, session); secrets never match a room lookup."""
    store = factory()
    request = KeyRequestRecord(
        request_id="R1",
        kind="room_key",
        room_id="!r:x",
        session_id="S",
        secret_name=None,
        recipients=["D1", "D2"],
        state="unsent",
        created_ms=1,
    )
    secret = KeyRequestRecord(
        request_id="R2",
        kind="secret",
        room_id=None,
        session_id=None,
        secret_name="m.megolm_backup.v1",
        recipients=["D1"],
        state="sent",
        created_ms=2,
    )
    store.save_key_request(request)
    store.save_key_request(secret)
    assert store.get_key_request("R1") == request
    assert store.find_room_key_request("!r:x", "S") == request
    assert store.find_room_key_request("!r:x", "T") is None
    assert len(store.list_key_requests()) == 2
    store.save_key_request({**request, "state": "sent"})
    found = store.find_room_key_request("!r:x", "S")
    assert found is not None and found["state"] == "sent"
    store.delete_key_request("R1")
    store.delete_key_request("R1")
    assert store.get_key_request("R1") is None
    assert store.list_key_requests() == [secret]


def check_pending_to_device_order(factory: StoreFactory) -> None:
    """Pending to-device requests come back in insertion order; replacing keeps the position."""
    store = factory()
    records = [
        PendingToDeviceRecord(
            request_id=f"T{i}",
            event_type="m.room.encrypted",
            messages={"@b:y": {"D1": {"n": i, "nested": {"list": [1, 2]}}}},
            kind="room_key_share",
            meta={"room_id": "!r:x", "session_id": "S"},
            created_ms=100 - i,
        )
        for i in range(4)
    ]
    for record in records:
        store.save_pending_to_device(record)
    assert [r["request_id"] for r in store.list_pending_to_device()] == ["T0", "T1", "T2", "T3"]
    store.save_pending_to_device({**records[1], "kind": "other"})
    assert [r["request_id"] for r in store.list_pending_to_device()] == ["T0", "T1", "T2", "T3"]
    assert store.get_pending_to_device("T1") == {**records[1], "kind": "other"}
    store.delete_pending_to_device("T0")
    store.delete_pending_to_device("T0")
    assert store.get_pending_to_device("T0") is None
    assert [r["request_id"] for r in store.list_pending_to_device()] == ["T1", "T2", "T3"]
    assert store.list_pending_to_device()[1] == records[2]


def check_replay_table(factory: StoreFactory) -> None:
    """The first event recorded for (session, index) wins; other indexes and sessions are separate."""
    store = factory()
    assert store.record_megolm_index("S", 0, "$a", 10) == ("$a", 10)
    assert store.record_megolm_index("S", 0, "$a", 10) == ("$a", 10)
    assert store.record_megolm_index("S", 0, "$b", 11) == ("$a", 10)
    assert store.record_megolm_index("S", 1, "$b", 11) == ("$b", 11)
    assert store.record_megolm_index("T", 0, "$c", 12) == ("$c", 12)


def check_withheld(factory: StoreFactory) -> None:
    """Withheld notices by (room, session)."""
    store = factory()
    notice = WithheldRecord(
        room_id="!r:x",
        session_id="S",
        sender_user_id="@b:y",
        sender_key=None,
        code="m.unverified",
        reason=None,
        received_ms=3,
    )
    assert store.get_withheld("!r:x", "S") is None
    store.save_withheld(notice)
    assert store.get_withheld("!r:x", "S") == notice
    store.save_withheld({**notice, "code": "m.blacklisted", "reason": "why"})
    assert store.get_withheld("!r:x", "S") == {**notice, "code": "m.blacklisted", "reason": "why"}
    store.delete_withheld("!r:x", "S")
    store.delete_withheld("!r:x", "S")
    assert store.get_withheld("!r:x", "S") is None


def check_peer_state(factory: StoreFactory) -> None:
    """Per-device Olm bookkeeping; the unwedge list follows the flag."""
    store = factory()
    state = OlmPeerStateRecord(
        curve25519="K",
        user_id="@b:y",
        device_id="D1",
        last_new_session_ms=0,
        unwedge_pending=False,
        no_olm_sent=False,
    )
    assert store.get_olm_peer_state("K") is None
    store.save_olm_peer_state(state)
    assert store.list_unwedge_pending() == []
    store.save_olm_peer_state({**state, "unwedge_pending": True})
    store.save_olm_peer_state({**state, "curve25519": "L", "no_olm_sent": True})
    assert store.list_unwedge_pending() == [{**state, "unwedge_pending": True}]
    assert store.get_olm_peer_state("L") == {**state, "curve25519": "L", "no_olm_sent": True}


def check_user_identities(factory: StoreFactory) -> None:
    """The local judgement on identities: upsert by user, listed, copies."""
    store = factory()
    assert store.get_user_identity("@b:y") is None and store.list_user_identities() == []
    record = UserIdentityRecord(
        user_id="@b:y",
        pinned_master_key="M1",
        verified_master_key=None,
        previously_verified=False,
        device_id_collision=False,
    )
    store.save_user_identity(record)
    assert store.get_user_identity("@b:y") == record
    store.save_user_identity({**record, "verified_master_key": "M1", "previously_verified": True})
    other = {**record, "user_id": "@c:z"}
    store.save_user_identity(other)  # type: ignore[arg-type]
    found = {r["user_id"]: r for r in store.list_user_identities()}
    assert set(found) == {"@b:y", "@c:z"}
    assert found["@b:y"]["verified_master_key"] == "M1" and found["@b:y"]["previously_verified"]
    copy = store.get_user_identity("@b:y")
    assert copy is not None
    copy["pinned_master_key"] = "changed"
    assert store.get_user_identity("@b:y") == {
        **record,
        "verified_master_key": "M1",
        "previously_verified": True,
    }


def check_secrets(factory: StoreFactory) -> None:
    """Sealed secrets by name: upsert, names listed, deletion."""
    store = factory()
    assert store.get_secret("m.cross_signing.master") is None and store.list_secret_names() == []
    store.save_secret(SecretRecord(name="m.cross_signing.master", sealed="AAAA"))
    store.save_secret(SecretRecord(name="m.megolm_backup.v1", sealed="BBBB"))
    store.save_secret(SecretRecord(name="m.cross_signing.master", sealed="CCCC"))
    assert store.get_secret("m.cross_signing.master") == {
        "name": "m.cross_signing.master",
        "sealed": "CCCC",
    }
    assert sorted(store.list_secret_names()) == ["m.cross_signing.master", "m.megolm_backup.v1"]
    store.delete_secret("m.cross_signing.master")
    store.delete_secret("m.cross_signing.master")
    assert store.get_secret("m.cross_signing.master") is None
    assert store.list_secret_names() == ["m.megolm_backup.v1"]


def check_pickle_format_and_listing(factory: StoreFactory) -> None:
    """The recorded pickle format, and the full listings a migration walks."""
    store = factory()
    assert store.load_pickle_format() is None
    store.save_pickle_format("olm")
    store.save_pickle_format("vodozemac")
    assert store.load_pickle_format() == "vodozemac"
    assert store.list_olm_sessions() == [] and store.list_outbound_group_sessions() == []
    store.save_olm_session(_olm("K1", "S1"))
    store.save_olm_session(_olm("K2", "S2"))
    store.save_olm_session(_olm("K2", "S3"))
    listed = sorted((r["sender_key"], r["session_id"]) for r in store.list_olm_sessions())
    assert listed == [("K1", "S1"), ("K2", "S2"), ("K2", "S3")]
    for room in ("!a:x", "!b:x"):
        store.save_outbound_group_session(
            OutboundGroupSessionRecord(
                room_id=room,
                session_id=f"S{room}",
                pickle="p",
                created_ms=1,
                message_count=0,
                rotation_period_ms=10,
                rotation_period_msgs=10,
                settings_key="k",
                invalidated=False,
            )
        )
    store.delete_outbound_group_session("!a:x")
    assert [r["room_id"] for r in store.list_outbound_group_sessions()] == ["!b:x"]


def _machine_conversation(factory: StoreFactory, backend: str) -> None:
    """Two machines on this store type exchange messages, survive a restart, and detect replays."""
    from tui_client.crypto.types import DecryptedEvent, FailureReason

    from .harness import FakeClock, FakeHomeserver, Peer

    server, clock = FakeHomeserver(), FakeClock()
    alice = Peer(server, "@alice:x", "ALICE", backend, clock, store=factory())  # type: ignore[arg-type]
    bob = Peer(server, "@bob:y", "BOB", backend, clock, store=factory())  # type: ignore[arg-type]
    alice.login()
    bob.login()
    users = ["@alice:x", "@bob:y"]
    first = alice.encrypt("!room:x", users, "one")
    bob.sync()
    assert bob.decrypt(first, "!room:x").content["body"] == "one"
    bob.restart()
    alice.restart()
    second = alice.encrypt("!room:x", users, "two")
    assert bob.decrypt(second, "!room:x").content["body"] == "two"
    assert bob.decrypt(first, "!room:x").content["body"] == "one"
    replay = {**second, "event_id": "$other"}
    result = bob.machine.decrypt_room_event(replay, "!room:x")
    assert not isinstance(result, DecryptedEvent) and result.reason is FailureReason.REPLAY
    back = bob.encrypt("!room:x", users, "three")
    alice.sync()
    assert alice.decrypt(back, "!room:x").content["body"] == "three"


def check_machine_conversation_olm(factory: StoreFactory) -> None:
    """Two python-olm machines on this store type."""
    _machine_conversation(factory, "olm")


def check_machine_conversation_vodozemac(factory: StoreFactory) -> None:
    """Two vodozemac machines on this store type."""
    _machine_conversation(factory, "vodozemac")


def check_migration_to_vodozemac(factory: StoreFactory) -> None:
    """A python-olm device's store moves to vodozemac and carries on talking to a python-olm peer."""
    from tui_client.crypto import load_backend
    from tui_client.crypto.migration import PickleFormatError, prepare_store

    from .harness import FakeClock, FakeHomeserver, Peer

    server, clock = FakeHomeserver(), FakeClock()
    alice = Peer(server, "@alice:x", "ALICE", "olm", clock, store=factory())  # type: ignore[arg-type]
    bob = Peer(server, "@bob:y", "BOB", "olm", clock, store=factory())  # type: ignore[arg-type]
    alice.login()
    bob.login()
    users = ["@alice:x", "@bob:y"]
    ours = [alice.encrypt(room, users, f"before in {room}") for room in ("!one:x", "!two:x")]
    bob.sync()
    theirs = bob.encrypt("!one:x", users, "theirs before")
    alice.sync()
    identity = alice.machine.identity_keys
    store, vodozemac = alice.store, load_backend("vodozemac")
    assert store.load_pickle_format() is None  # a store from before formats were recorded

    report = prepare_store(store, vodozemac, alice.pickle_key)
    assert (report.source, report.target, report.dropped_outbound) == ("olm", "vodozemac", 2)
    # The account, one Olm session each way (or one, reused), our two room keys and Bob's.
    assert report.migrated >= 5 and store.load_pickle_format() == "vodozemac"
    # The store says vodozemac now: python-olm is refused before it misreads anything.
    with pytest.raises(PickleFormatError):
        prepare_store(store, load_backend("olm"), alice.pickle_key)
    again = prepare_store(store, vodozemac, alice.pickle_key)
    assert not again.changed

    alice.backend_name = "vodozemac"
    alice.restart()
    assert alice.machine.identity_keys == identity
    for room, event in zip(("!one:x", "!two:x"), ours, strict=True):
        assert alice.decrypt(event, room).content["body"] == f"before in {room}"
    assert alice.decrypt(theirs, "!one:x").content["body"] == "theirs before"
    after = alice.encrypt("!one:x", users, "after")
    assert after["content"]["session_id"] != ours[0]["content"]["session_id"]  # rotated
    bob.sync()
    assert bob.decrypt(after, "!one:x").content["body"] == "after"
    reply = bob.encrypt("!one:x", users, "reply")
    alice.sync()
    assert alice.decrypt(reply, "!one:x").content["body"] == "reply"


CONFORMANCE_CHECKS: list[Callable[[StoreFactory], None]] = [
    check_account_roundtrip,
    check_records_are_copies,
    check_olm_sessions,
    check_inbound_group_sessions,
    check_backup_flags,
    check_outbound_sessions_and_shares,
    check_devices,
    check_tracking_and_cross_signing,
    check_key_requests,
    check_pending_to_device_order,
    check_replay_table,
    check_withheld,
    check_peer_state,
    check_user_identities,
    check_secrets,
    check_pickle_format_and_listing,
    check_machine_conversation_olm,
    check_machine_conversation_vodozemac,
    check_migration_to_vodozemac,
]
