"""Uploads against Synapse: a 50 MB file streams (memory stays flat) with progress and the
server holds its exact bytes; an upload cut short by closing the client resumes on the
next start and is sent once (a file changed meanwhile is not sent); an encrypted upload
streams and the other side decrypts it, thumbnail included."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.image_decode import decode_image
from tui_client.engine.updates import Notice, Update, UploadProgress
from tui_client.store.uploads import uploads_pending

from .e2ee_support import client_for, encrypted_room, join, restore, until
from .test_attachments import media_item

MB = 1_000_000


def _random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes in pieces; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(size // MB):
            piece = os.urandom(MB)
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest()


def _server_sha256(synapse: SynapseServer, user: RegisteredUser, uri: str) -> str:
    server, media_id = uri[len("mxc://") :].split("/")
    digest = hashlib.sha256()
    with httpx.stream(
        "GET",
        f"{synapse.base_url}/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {user.access_token}"},
        timeout=60,
    ) as answer:
        assert answer.status_code == 200
        for piece in answer.iter_bytes():
            digest.update(piece)
    return digest.hexdigest()


def _server_files(
    synapse: SynapseServer, user: RegisteredUser, room_id: str
) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{synapse.base_url}/_matrix/client/v3/rooms/{room_id}/messages",
        params={"dir": "b", "limit": "100"},
        headers={"Authorization": f"Bearer {user.access_token}"},
        timeout=30,
    )
    assert answer.status_code == 200
    return [e["content"] for e in answer.json()["chunk"] if e["type"] == "m.room.message"]


def _collect(client: MatrixClient) -> list[Update]:
    seen: list[Update] = []
    client.subscribe(seen.append)
    return seen


async def test_a_50_mb_upload_streams_with_progress_and_arrives_whole(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    big = tmp_path / "big.bin"
    digest = _random_file(big, 50 * MB)
    try:
        room = await alice.create_room({"preset": "private_chat"})
        await until(lambda: room in alice.rooms, "the room")
        updates = _collect(alice)
        tracemalloc.start()
        try:
            job = await alice.uploads.send_file(room, big)
            await until(job.done.is_set, "the upload", timeout=120)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert job.error is None and job.entry is not None
        # Streamed: the process never held more than a few pieces of the file.
        assert peak < 10 * MB, f"peak traced memory {peak / MB:.1f} MB"
        progress = [u for u in updates if isinstance(u, UploadProgress) and u.state == "uploading"]
        assert len(progress) >= 3
        assert [p.sent for p in progress] == sorted(p.sent for p in progress)
        assert progress[-1].sent == progress[-1].total == 50 * MB
        assert all(p.bytes_per_second > 0 for p in progress)
        assert [u.state for u in updates if isinstance(u, UploadProgress)][-1] == "sent"
        await until(
            lambda: any(
                c.get("body") == "big.bin" for c in _server_files(synapse, alice_user, room)
            ),
            "the message",
        )
        (content,) = [
            c for c in _server_files(synapse, alice_user, room) if c.get("body") == "big.bin"
        ]
        assert content["msgtype"] == "m.file" and content["info"]["size"] == 50 * MB
        assert _server_sha256(synapse, alice_user, content["url"]) == digest
        print(
            f"\n50 MB upload: peak traced memory {peak / MB:.2f} MB, {len(progress)} progress updates"
        )
    finally:
        await alice.close()


async def test_an_upload_cut_short_resumes_after_a_restart_and_is_sent_once(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice_user = make_user("alice")
    folder = tmp_path / "alice"
    alice = await client_for(synapse, alice_user, folder)
    kept, edited = tmp_path / "kept.bin", tmp_path / "edited.bin"
    digest = _random_file(kept, 30 * MB)
    _random_file(edited, 30 * MB)
    room = await alice.create_room({"preset": "private_chat"})
    await until(lambda: room in alice.rooms, "the room")
    updates = _collect(alice)
    first = await alice.uploads.send_file(room, kept)
    await alice.uploads.send_file(room, edited)
    # Close the client while the first file is on its way.
    await until(lambda: first.sent >= 3 * MB, "part of the upload", timeout=60)
    await alice.close()
    assert not first.done.is_set() or first.entry is None
    assert not any(isinstance(u, UploadProgress) and u.state == "sent" for u in updates)
    with edited.open("r+b") as handle:
        handle.write(b"changed")

    alice = await restore(folder)
    try:
        notices = _collect(alice)
        await until(
            lambda: any(
                c.get("body") == "kept.bin" for c in _server_files(synapse, alice_user, room)
            ),
            "the resumed upload",
            timeout=120,
        )
        jobs = list(alice.uploads.jobs.values())
        await until(lambda: all(j.done.is_set() for j in jobs), "the uploads to end")
        files = [
            c for c in _server_files(synapse, alice_user, room) if c.get("msgtype") == "m.file"
        ]
        assert [c["body"] for c in files] == ["kept.bin"]  # once; the edited file never
        assert _server_sha256(synapse, alice_user, files[0]["url"]) == digest
        assert await alice.db.run(uploads_pending, alice.cache) == []
        said = [u.text for u in notices if isinstance(u, Notice)] + [
            u.error or "" for u in notices if isinstance(u, UploadProgress)
        ]
        assert "edited.bin changed since, not sent" in said
    finally:
        await alice.close()


async def test_an_encrypted_upload_streams_and_the_other_side_decrypts_it(
    synapse: SynapseServer, make_user: Any, tmp_path: Path
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    alice = await client_for(synapse, alice_user, tmp_path / "alice")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    data = tmp_path / "data.bin"
    digest = _random_file(data, 12 * MB)
    photo = tmp_path / "photo.jpg"
    Image.linear_gradient("L").resize((1600, 1200)).convert("RGB").save(photo, "JPEG", quality=95)
    try:
        room = await encrypted_room(alice, "files", [bob_user.user_id])
        await join(bob, room)
        await until(lambda: alice.rooms[room].joined_count == 2, "bob in the room")
        job = await alice.uploads.send_file(room, data)
        await until(job.done.is_set, "the encrypted upload", timeout=120)
        assert job.error is None
        event_id = await media_item(bob, room, "data.bin")
        saved = await bob.save_attachment(event_id, tmp_path / "bob-dl")
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == digest

        # A big image: its thumbnail is uploaded too, encrypted, and decrypts to 800 x 600.
        job = await alice.uploads.send_file(room, photo)
        await until(job.done.is_set, "the photo", timeout=60)
        event_id = await media_item(bob, room, "photo.jpg")
        clear = (await bob.db.run(bob.encryption.store.decrypted, [event_id]))[event_id][0][
            "content"
        ]
        info = clear["info"]
        assert clear["msgtype"] == "m.image" and (info["w"], info["h"]) == (1600, 1200)
        assert info["mimetype"] == "image/jpeg" and "thumbnail_url" not in info
        assert info["thumbnail_info"]["w"] == 800 and info["thumbnail_info"]["h"] == 600
        assert isinstance(info.get("xyz.amorgan.blurhash"), str)
        from tui_client.crypto.attachments import decrypt_attachment
        from tui_client.engine.attachments import download
        from tui_client.protocol.media import parse_attachment

        thumb = parse_attachment(
            {"msgtype": "m.image", "body": "t", "file": info["thumbnail_file"]}
        )
        assert thumb.encrypted is not None
        plain = decrypt_attachment(await download(bob.connection, thumb), thumb.encrypted)
        assert decode_image(plain, "image/jpeg").size == (800, 600)
        assert Image.open(io.BytesIO(plain)).format == "JPEG"
    finally:
        await alice.close()
        await bob.close()
