"""Against an independent implementation: matrix-nio's own Olm machine and key files.

nio (0.26, on vodozemac) is driven the way its AsyncClient drives it, through the
same in-memory homeserver; only its HTTP layer is replaced by direct calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nio.crypto import Olm
from nio.crypto.sessions import InboundGroupSession as NioInboundGroupSession
from nio.events import MegolmEvent, RoomMessageText, ToDeviceEvent
from nio.responses import KeysClaimResponse, KeysQueryResponse, KeysUploadResponse
from nio.store import SqliteMemoryStore

from tui_client.crypto import load_backend
from tui_client.crypto.types import KeyOrigin, SenderTrust

from .harness import FakeClock, FakeHomeserver, Peer

ROOM = "!room:x"


class NioPeer:
    """A matrix-nio Olm machine on the fake homeserver."""

    def __init__(self, server: FakeHomeserver, user_id: str, device_id: str) -> None:
        self.server, self.user_id, self.device_id = server, user_id, device_id
        self.olm = Olm(user_id, device_id, SqliteMemoryStore(user_id, device_id, "pickle"))
        server.register(user_id, device_id)
        self._event_no = 0

    def upload(self) -> None:
        answer = self.server._upload(self.user_id, self.device_id, self.olm.share_keys())
        counts = {"curve25519": 0, **answer["one_time_key_counts"]}
        self.olm.handle_response(KeysUploadResponse.from_dict({"one_time_key_counts": counts}))

    def prepare(self, users: list[str]) -> None:
        answer = self.server._query({"device_keys": {u: [] for u in users}})
        self.olm.handle_response(KeysQueryResponse.from_dict(answer))
        wanted = self.olm.get_missing_sessions(users)
        if wanted:
            body = {
                "one_time_keys": {
                    u: {d: "signed_curve25519" for d in ds} for u, ds in wanted.items()
                }
            }
            self.olm.handle_response(KeysClaimResponse.from_dict(self.server._claim(body)))

    def encrypt(self, users: list[str], body: str) -> dict[str, Any]:
        self.prepare(users)
        if self.olm.should_share_group_session(ROOM):
            _, to_device = self.olm.share_group_session(ROOM, users, ignore_unverified_devices=True)
            for user_id, devices in to_device["messages"].items():
                for device_id, content in devices.items():
                    self.server.deliver(
                        user_id,
                        device_id,
                        {"type": "m.room.encrypted", "sender": self.user_id, "content": content},
                    )
            self.olm.outbound_group_sessions[ROOM].shared = True
        content = self.olm.group_encrypt(
            ROOM, {"type": "m.room.message", "content": {"msgtype": "m.text", "body": body}}
        )
        self._event_no += 1
        return {
            "type": "m.room.encrypted",
            "sender": self.user_id,
            "event_id": f"$nio{self._event_no}",
            "origin_server_ts": self._event_no,
            "content": content,
        }

    def sync(self) -> None:
        for event in self.server.sync(self.user_id, self.device_id)["to_device"]:
            self.olm.handle_to_device_event(ToDeviceEvent.parse_event(event))

    def decrypt(self, event: dict[str, Any]) -> str:
        decrypted = self.olm.decrypt_megolm_event(MegolmEvent.from_dict(event), ROOM)
        assert isinstance(decrypted, RoomMessageText), decrypted
        return str(decrypted.body)


def test_nio_and_our_machine_read_each_other(
    server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    ours = Peer(server, "@ours:x", "OURS", backend_name, clock)
    ours.login()
    nio = NioPeer(server, "@nio:y", "NIO")
    nio.upload()
    users = ["@ours:x", "@nio:y"]
    for round_no in range(3):
        event = ours.encrypt(ROOM, users, f"to nio {round_no}")
        nio.sync()
        assert nio.decrypt(event) == f"to nio {round_no}"
        reply = nio.encrypt(users, f"to ours {round_no}")
        changes = ours.sync()
        assert changes.rejected == []
        decrypted = ours.decrypt(reply, ROOM)
        assert decrypted.content["body"] == f"to ours {round_no}"
        assert decrypted.sender_device_id == "NIO" and decrypted.trust is SenderTrust.UNVERIFIED


def test_nio_reads_our_key_export(
    tmp_path: Path, server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    alice = Peer(server, "@alice:x", "A1", backend_name, clock)
    alice.login()
    event = alice.encrypt(ROOM, ["@alice:x"], "exported")
    path = tmp_path / "keys.txt"
    path.write_text(alice.machine.export_room_keys("pass", rounds=1000))
    [session] = Olm.import_keys_static(str(path), "pass")
    assert session.room_id == ROOM and session.sender_key == alice.machine.identity_keys.curve25519
    plaintext, index = session.decrypt(MegolmEvent.from_dict(event).ciphertext)
    assert json.loads(plaintext)["content"]["body"] == "exported" and index == 0


def test_we_read_nios_key_export(
    tmp_path: Path, server: FakeHomeserver, clock: FakeClock, backend_name: str
) -> None:
    outbound = load_backend("vodozemac").create_outbound_group_session()
    session_key = outbound.session_key
    ciphertext = outbound.encrypt(
        json.dumps(
            {"type": "m.room.message", "content": {"body": "from nio's file"}, "room_id": ROOM}
        )
    )
    nio_session = NioInboundGroupSession(
        session_key, "claimed-ed25519", "claimed-curve25519", ROOM, ["chain-key"]
    )
    path = tmp_path / "nio-keys.txt"
    Olm.export_keys_static([nio_session], str(path), "pass", count=1000)
    bob = Peer(server, "@bob:y", "B1", backend_name, clock)
    bob.login()
    result = bob.machine.import_room_keys(path.read_text(), "pass")
    assert result.imported == 1 and result.room_keys[0].origin is KeyOrigin.IMPORTED
    event = {
        "type": "m.room.encrypted",
        "sender": "@someone:z",
        "event_id": "$x",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": ciphertext,
            "session_id": outbound.session_id,
        },
    }
    decrypted = bob.decrypt(event, ROOM)
    assert decrypted.content == {"body": "from nio's file"}
    assert decrypted.trust is SenderTrust.UNAUTHENTICATED
    assert decrypted.forwarding_chain == ("chain-key",)


@pytest.mark.parametrize("rounds", [1000])
def test_nio_export_format_is_the_spec_format(tmp_path: Path, rounds: int) -> None:
    """A file nio writes carries the ExportedSessionData fields the spec lists."""
    from tui_client.crypto.key_export import decrypt_key_export

    outbound = load_backend("olm").create_outbound_group_session()
    session = NioInboundGroupSession(outbound.session_key, "ed", "curve", ROOM, [])
    path = tmp_path / "k.txt"
    Olm.export_keys_static([session], str(path), "pw", count=rounds)
    [entry] = json.loads(decrypt_key_export(path.read_text(), "pw"))
    assert set(entry) >= {
        "algorithm",
        "room_id",
        "session_id",
        "session_key",
        "sender_key",
        "sender_claimed_keys",
        "forwarding_curve25519_key_chain",
    }
