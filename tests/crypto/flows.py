"""Driving cross-signing and verification between harness peers (the engine's part, in memory)."""

from __future__ import annotations

from collections.abc import Iterable

from tui_client.crypto.types import ReceivedSecret
from tui_client.crypto.verification import Verification, VerificationState

from .harness import FakeRoom, Peer

__all__ = ["bootstrap", "received_secrets", "settle", "verify_in_room", "verify_to_device"]


def bootstrap(peer: Peer) -> None:
    """Create and upload the peer's cross-signing identity, then send what follows."""
    request = peer.machine.bootstrap_cross_signing()
    assert request is not None
    answer = peer.server.handle(peer.user_id, peer.device_id, request)
    peer.machine.mark_request_as_sent(request.request_id, answer)
    settle(peer)


def settle(*peers: Peer, rooms: Iterable[FakeRoom] = (), rounds: int = 12) -> None:
    """Let every peer send, sync and read the rooms until things calm down."""
    rooms = list(rooms)
    for _ in range(rounds):
        for peer in peers:
            peer.flush()
            for room in rooms:
                peer.send_room_messages(room)
                peer.read_room(room)
            peer.sync()
            peer.flush()


def received_secrets(peer: Peer) -> list[ReceivedSecret]:
    """Every secret the device received so far."""
    return [secret for changes in peer.history for secret in changes.secrets]


def _incoming(peer: Peer, other_user: str) -> Verification:
    [incoming] = [
        v
        for v in peer.machine.verifications()
        if v.state is VerificationState.INCOMING and v.other_user_id == other_user
    ]
    return incoming


def verify_to_device(requester: Peer, target: Peer) -> tuple[Verification, Verification]:
    """A complete to-device verification ``requester`` -> ``target``; the final snapshots."""
    ours = requester.machine.request_verification(target.user_id, [target.device_id])
    settle(requester, target)
    theirs = _incoming(target, requester.user_id)
    target.machine.accept_verification(theirs.id)
    settle(requester, target)
    requester.machine.start_sas(ours.id)
    settle(requester, target)
    a, b = requester.machine.get_verification(ours.id), target.machine.get_verification(theirs.id)
    assert a is not None and b is not None
    assert a.state is b.state is VerificationState.KEYS_EXCHANGED, (a, b)
    assert a.emoji == b.emoji and a.decimals == b.decimals
    requester.machine.confirm_sas(ours.id)
    target.machine.confirm_sas(theirs.id)
    settle(requester, target)
    a, b = requester.machine.get_verification(ours.id), target.machine.get_verification(theirs.id)
    assert a is not None and b is not None
    return a, b


def verify_in_room(
    requester: Peer, target: Peer, room: FakeRoom
) -> tuple[Verification, Verification]:
    """A complete in-room verification ``requester`` -> ``target``; the final snapshots."""
    ours = requester.machine.request_verification_in_room(room.room_id, target.user_id)
    settle(requester, target, rooms=[room])
    theirs = _incoming(target, requester.user_id)
    target.machine.accept_verification(theirs.id)
    settle(requester, target, rooms=[room])
    requester.machine.start_sas(ours.id)
    settle(requester, target, rooms=[room])
    a, b = requester.machine.get_verification(ours.id), target.machine.get_verification(theirs.id)
    assert a is not None and b is not None
    assert a.state is b.state is VerificationState.KEYS_EXCHANGED, (a, b)
    assert a.emoji == b.emoji and a.decimals == b.decimals
    requester.machine.confirm_sas(ours.id)
    target.machine.confirm_sas(theirs.id)
    settle(requester, target, rooms=[room])
    a, b = requester.machine.get_verification(ours.id), target.machine.get_verification(theirs.id)
    assert a is not None and b is not None
    return a, b
