"""Our devices against a real Synapse: the list, renaming, signing out with the password
(user-interactive auth), and the setting that keeps room keys from unverified devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.devices import ONLY_VERIFIED_SETTING
from tui_client.engine.uia import AuthCancelled, AuthFailed
from tui_client.engine.updates import SessionEnded

from ..support.updates import Recorder
from ..support.users import MakeUser
from .e2ee_support import client_for, encrypted_room, join, restore, until


async def test_list_rename_and_sign_out_with_the_password(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    a1 = await client_for(synapse, alice_user, tmp_path / "a1", device_name="Laptop")
    a2 = await client_for(synapse, alice_user, tmp_path / "a2", device_name="Phone")
    ended = Recorder(a2)
    try:
        # (a2 uploads its keys from its background request loop)
        await until(
            lambda: _keys_on_server(synapse, alice_user, a2.device_id), "a2's keys on the server"
        )
        devices = await a1.devices.own_devices()
        ids = [d.device_id for d in devices]
        assert ids[0] == a1.device_id and a2.device_id in ids
        this = devices[0]
        assert this.is_current and this.verified and this.display_name == "Laptop"
        [phone] = [d for d in devices if d.device_id == a2.device_id]
        assert phone.display_name == "Phone" and not phone.is_current
        assert phone.last_seen_ip == "127.0.0.1" and phone.last_seen_ts
        assert phone.trust == "unverified" and phone.ed25519

        await a1.devices.rename(a2.device_id, "Old phone")
        renamed = [d for d in await a1.devices.own_devices() if d.device_id == a2.device_id]
        assert renamed[0].display_name == "Old phone"

        # Declined at the password prompt: nothing happens.
        a1.ask_password = _answers(None)
        with pytest.raises(AuthCancelled):
            await a1.devices.sign_out([a2.device_id])
        # Refused three times: nothing happens either.
        prompts: list[str] = []
        a1.ask_password = _answers("wrong", "wrong again", "still wrong", seen=prompts)
        with pytest.raises(AuthFailed):
            await a1.devices.sign_out([a2.device_id])
        assert (
            prompts[0]
            == f"Sign out the device {a2.device_id}: confirm with the password of {alice_user.user_id}"
        )
        assert prompts[1].startswith("Wrong password.")
        assert a2.device_id in [d.device_id for d in await a1.devices.own_devices()]
        # A wrong password, then the right one.
        a1.ask_password = _answers("wrong", alice_user.password)
        await a1.devices.sign_out([a2.device_id])
        assert a2.device_id not in [d.device_id for d in await a1.devices.own_devices()]
        await until(lambda: bool(ended.of(SessionEnded)), "the signed-out session to notice")
        with pytest.raises(ValueError, match="log out"):
            await a1.devices.sign_out([a1.device_id])
    finally:
        await a1.close()
        await a2.close()


def _keys_on_server(synapse: SynapseServer, user: RegisteredUser, device_id: str | None) -> bool:
    status, body = synapse.request_json(
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {user.user_id: []}},
        user.access_token,
    )
    return status == 200 and device_id in body.get("device_keys", {}).get(user.user_id, {})


def _answers(*passwords: str | None, seen: list[str] | None = None):  # type: ignore[no-untyped-def]
    queue = list(passwords)

    async def ask(prompt: str) -> str | None:
        if seen is not None:
            seen.append(prompt)
        return queue.pop(0)

    return ask


async def test_keys_can_be_kept_from_unverified_devices(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        assert not alice.devices.only_verified
        await alice.devices.set_only_verified(True)
        await alice.close()
        alice = await restore(tmp_path / "alice")
        assert alice.devices.only_verified
        assert await alice.db.run(alice.cache.get_meta, ONLY_VERIFIED_SETTING) == "1"
        room = await encrypted_room(alice, "careful", [bob_user.user_id])
        await join(bob, room)
        await until(lambda: alice.rooms[room].joined_count == 2, "bob's join at alice")
        await alice.send_message(room, "for verified eyes only")
        view = await bob.open_room(room)

        def withheld() -> bool:
            return any(i.kind == "encrypted" and "unverified" in i.body for i in view.model.items)

        await until(
            withheld, f"the withheld message at bob: {[i.body for i in view.model.items][-3:]}"
        )
        assert "for verified eyes only" not in [i.body for i in view.model.items]
    finally:
        await alice.close()
        await bob.close()
