"""Uploads against a real Synapse with faults injected at the transport: a rate limit, a
cut connection and a proxy's 502 are waited out (the file is sent once), a refusal ends the upload with
a plain notice and nothing sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.updates import Notice, UploadProgress
from tui_client.store.uploads import uploads_pending

from ..support.updates import Recorder
from .support import (
    ClientPool,
    Wire,
    create_room,
    json_response,
    login,
    server_messages,
    wait_until,
)


def is_upload(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/media/v3/upload")


def _cut(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def test_rate_limit_and_cut_connection_are_waited_out_and_a_refusal_is_said(
    synapse: SynapseServer, make_user: Any, tmp_path: Path, wire: Wire, pool: ClientPool
) -> None:
    user = make_user("uploader")
    room_id = create_room(synapse, user)
    client = pool.add(await login(synapse, user, tmp_path / "p", wire=wire))
    await wait_until(lambda: room_id in client.rooms, what="room synced")
    recorder = Recorder(client)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"minutes of the meeting\n" * 100)

    wire.inject(
        is_upload,
        lambda r: json_response(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300}),
    )
    wire.inject(is_upload, _cut)
    # A reverse proxy's 502 while the homeserver restarts is waited out too.
    wire.inject(is_upload, lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"))
    job = await client.uploads.send_file(room_id, notes)
    await wait_until(job.done.is_set, what="the upload", timeout=40)
    assert job.error is None and job.entry is not None
    assert (
        len(
            [r for r in wire.requests if r.method == "POST" and r.path.endswith("/media/v3/upload")]
        )
        == 4
    )
    waiting = [u for u in recorder.of(UploadProgress) if u.state == "waiting"]
    assert len(waiting) == 3 and "could not connect" in (waiting[1].error or "")
    await wait_until(
        lambda: (
            [e["content"].get("body") for e in server_messages(synapse, user.access_token, room_id)]
            == ["notes.txt"]
        ),
        what="the message, once",
    )

    # Refused for good (too large for the server after all): said, nothing sent.
    wire.inject(
        is_upload,
        lambda r: json_response(413, {"errcode": "M_TOO_LARGE", "error": "File too large"}),
    )
    job = await client.uploads.send_file(room_id, notes)
    await wait_until(job.done.is_set, what="the refusal")
    assert job.entry is None and "File too large" in (job.error or "")
    assert any(
        isinstance(n, Notice) and "Could not send notes.txt" in n.text for n in recorder.of(Notice)
    )
    assert [u.state for u in recorder.of(UploadProgress)][-1] == "failed"
    assert await client.db.run(uploads_pending, client.cache) == []
    assert [
        e["content"].get("body") for e in server_messages(synapse, user.access_token, room_id)
    ] == ["notes.txt"]
