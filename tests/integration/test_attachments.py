"""Saving attachments against Synapse (authenticated media): a plain file, an encrypted one
made by another implementation (matrix-nio), and a file that does not match its hash."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from nio.crypto.attachments import encrypt_attachment as nio_encrypt

from tui_client.crypto.attachments import AttachmentError
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient

from .e2ee_support import client_for, encrypted_room, join, until


def upload(synapse: SynapseServer, user: RegisteredUser, data: bytes) -> str:
    """Upload bytes as ``user``; their content URI."""
    answer = httpx.post(
        f"{synapse.base_url}/_matrix/media/v3/upload",
        params={"filename": "upload.bin"},
        content=data,
        headers={
            "Authorization": f"Bearer {user.access_token}",
            "Content-Type": "application/octet-stream",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content_uri"])


async def media_item(client: MatrixClient, room: str, label: str) -> str:
    """Wait until the room shows a file message whose label contains ``label``; its event ID."""
    view = await client.open_room(room)

    def found() -> str | None:
        for item in view.model.items:
            if (
                item.kind == "media"
                and label in item.body
                and item.event_id
                and not item.is_local_echo
            ):
                return item.event_id
        return None

    await until(lambda: found() is not None, f"the file message {label!r}")
    event_id = found()
    assert event_id is not None
    return event_id


async def test_plain_and_encrypted_files_are_saved_and_a_swapped_one_is_refused(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    downloads = tmp_path / "downloads"
    try:
        # A plain room: the name someone else chose cannot leave the downloads folder.
        plain = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
        await join(bob, plain)
        data = b"the quarterly numbers\n" * 50
        uri = upload(synapse, bob_user, data)
        await bob.send_event(
            plain,
            "m.room.message",
            {
                "msgtype": "m.file",
                "body": "../../numbers.txt",
                "url": uri,
                "info": {"size": len(data)},
            },
        )
        event_id = await media_item(alice, plain, "numbers.txt")
        saved = await alice.save_attachment(event_id, downloads)
        assert saved == downloads / "numbers.txt" and saved.read_bytes() == data
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        again = await alice.save_attachment(event_id, downloads)
        assert again == downloads / "numbers (1).txt" and again.read_bytes() == data

        # An encrypted room, the file encrypted by matrix-nio: decrypted on saving.
        secret = await encrypted_room(alice, "files", [bob_user.user_id])
        await join(bob, secret)
        await until(lambda: alice.rooms[secret].joined_count == 2, "bob in the encrypted room")
        photo = bytes(range(256)) * 64
        ciphertext, keys = nio_encrypt(photo)
        file = {
            "v": "v2",
            "key": keys["key"],
            "iv": keys["iv"],
            "hashes": keys["hashes"],
            "url": upload(synapse, bob_user, ciphertext),
        }
        await bob.send_event(
            secret,
            "m.room.message",
            {
                "msgtype": "m.image",
                "body": "photo.png",
                "file": file,
                "info": {"mimetype": "image/png"},
            },
        )
        event_id = await media_item(alice, secret, "photo.png")
        saved = await alice.save_attachment(event_id, downloads)
        assert saved.name == "photo.png" and saved.read_bytes() == photo

        # A file swapped on the way (its hash names other bytes): refused, nothing written.
        swapped = {**file, "url": upload(synapse, bob_user, nio_encrypt(b"something else")[0])}
        await bob.send_event(
            secret, "m.room.message", {"msgtype": "m.file", "body": "swapped.bin", "file": swapped}
        )
        event_id = await media_item(alice, secret, "swapped.bin")
        with pytest.raises(AttachmentError, match="does not match its hash"):
            await alice.save_attachment(event_id, downloads)
        assert not (downloads / "swapped.bin").exists()
    finally:
        await alice.close()
        await bob.close()


async def test_upload_sends_a_file_that_the_other_side_saves(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    from tui_client.protocol.commands import CommandError

    from .e2ee_support import server_event_types

    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    photo = tmp_path / "holiday photo.png"
    from PIL import Image

    Image.new("RGB", (30, 20), (10, 200, 30)).save(photo, "PNG")
    try:
        plain = await alice.create_room({"preset": "private_chat", "invite": [bob_user.user_id]})
        await join(bob, plain)
        assert await alice.submit(plain, f"/upload {photo}") == "Sending holiday photo.png"
        event_id = await media_item(bob, plain, "holiday photo.png")
        saved = await bob.save_attachment(event_id, tmp_path / "bob-downloads")
        assert saved.read_bytes() == photo.read_bytes()
        content = (await bob.db.run(bob.cache.load_events, [event_id]))[event_id]["content"]
        assert content["msgtype"] == "m.image" and content["info"]["mimetype"] == "image/png"
        assert (content["info"]["w"], content["info"]["h"]) == (
            30,
            20,
        ) and "thumbnail_url" not in content["info"]

        # In an encrypted room the server sees neither the message nor the file.
        secret = await encrypted_room(alice, "files", [bob_user.user_id])
        await join(bob, secret)
        await until(lambda: alice.rooms[secret].joined_count == 2, "bob in the encrypted room")
        await alice.submit(secret, f"/upload {photo}")
        event_id = await media_item(bob, secret, "holiday photo.png")
        saved = await bob.save_attachment(event_id, tmp_path / "bob-downloads")
        assert saved.read_bytes() == photo.read_bytes()
        assert server_event_types(synapse, bob_user.access_token, secret)[0] == "m.room.encrypted"
        clear = (await bob.db.run(bob.encryption.store.decrypted, [event_id]))[event_id][0][
            "content"
        ]
        assert "url" not in clear and clear["file"]["url"].startswith("mxc://")
        server, media_id = clear["file"]["url"][len("mxc://") :].split("/")
        stored = httpx.get(
            f"{synapse.base_url}/_matrix/client/v1/media/download/{server}/{media_id}",
            headers={"Authorization": f"Bearer {bob_user.access_token}"},
            timeout=30,
        )
        assert stored.status_code == 200 and stored.content != photo.read_bytes()

        # A path that is not a file: said plainly, nothing sent.
        with pytest.raises(CommandError, match="there is no file"):
            await alice.submit(secret, f"/upload {tmp_path / 'missing.txt'}")
    finally:
        await alice.close()
        await bob.close()
