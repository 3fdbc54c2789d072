"""People found and invited by email through a real identity server (matrix-sydent)
beside Synapse, with the validation and invitation mails caught on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tui_client.engine.identity import ConsentNeeded, IdentityError, TermsNeeded
from tui_client.net.http import trust_context
from tui_client.protocol import identity as ids

from ..engine.support import ClientPool, login, wait_until
from .identity_world import IdentityWorld, identity_world

__all__ = ["identity_world"]


async def _ready(client: object) -> None:
    identity = client.identity  # type: ignore[attr-defined]
    await identity.consent()
    try:
        await identity.ready()
    except TermsNeeded as needed:
        await identity.accept_terms(needed.policies)
    await identity.ready()


async def test_email_invite_accepted_by_user_who_binds_the_email(
    identity_world: IdentityWorld, pool: ClientPool, tmp_path: Path
) -> None:
    world = identity_world
    synapse = world.synapse
    alice = pool.add(
        await login(synapse, synapse.register_user("alice", "password-alice"), tmp_path / "a")
    )
    bob = pool.add(
        await login(synapse, synapse.register_user("bob", "password-bob"), tmp_path / "b")
    )

    # The server comes from the homeserver's .well-known; nothing is looked up before consent.
    assert await alice.identity.server() == world.sydent.base_url
    with pytest.raises(ConsentNeeded):
        await alice.identity.find_email("bob@example.test")
    await alice.identity.consent()
    with pytest.raises(TermsNeeded) as needed:
        await alice.identity.find_email("bob@example.test")
    assert [p.title for p in needed.value.policies] == ["Privacy policy"]
    await alice.identity.accept_terms(needed.value.policies)
    # No one has bound the address yet: no match.
    assert await alice.identity.find_email("Bob@Example.test") is None

    room_id = await alice.create_room({"name": "Email invites", "preset": "private_chat"})
    seen = len(world.mail.mails)
    assert await alice.identity.invite_email(room_id, "Bob@Example.test") is None
    invite_mail = world.mail.wait_for("bob@example.test", after=seen)
    assert "Email invites" in invite_mail.subject or room_id in invite_mail.body
    status, state = synapse.request_json(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state",
        token=alice.connection.access_token,
    )
    assert status == 200
    pending = [e for e in json.loads(state["_raw"]) if e["type"] == "m.room.third_party_invite"]
    assert len(pending) == 1 and pending[0]["content"]["display_name"].startswith("b...@exa")

    # Bob binds the address: the identity server mails a link, he follows it, then binds.
    await _ready(bob)
    seen = len(world.mail.mails)
    validation = await bob.identity.request_email_validation("bob@example.test")
    mail = world.mail.wait_for("bob@example.test", after=seen)
    with pytest.raises(IdentityError, match="not confirmed yet"):
        await bob.identity.bind_email(validation)
    world.click(mail)
    await bob.identity.bind_email(validation)

    # The pending invite turns into Bob's invite; he joins.
    await wait_until(
        lambda: room_id in bob.rooms and bob.rooms[room_id].membership == "invite", timeout=30
    )
    await bob.join(room_id)
    await wait_until(lambda: bob.rooms[room_id].membership == "join", timeout=30)

    # The hashed lookup now finds him, and the address never left in clear.
    sent: list[bytes] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(await request.aread())
            return await super().handle_async_request(request)

    alice.identity._transport = Recording(verify=trust_context())
    alice.identity._connection = None
    assert await alice.identity.find_email("bob@example.test") == bob.user_id
    lookups = [json.loads(body) for body in sent if b"addresses" in body]
    assert len(lookups) == 1 and lookups[0]["algorithm"] == "sha256"
    assert all(b"bob@example" not in body for body in sent)

    # Unbinding removes him from lookups.
    await bob.identity.unbind_email("bob@example.test")
    assert await alice.identity.find_email("bob@example.test") is None


async def test_identity_server_unreachable(
    identity_world: IdentityWorld, pool: ClientPool, tmp_path: Path
) -> None:
    synapse = identity_world.synapse
    carol = pool.add(
        await login(synapse, synapse.register_user("carol", "password-carol"), tmp_path)
    )
    identity = carol.identity
    identity.configured = "https://127.0.0.1:9"
    await identity.consent()
    with pytest.raises(IdentityError, match="cannot be reached"):
        await identity.find_email("someone@example.test")


def test_hash_is_the_spec_example() -> None:
    # The spec's example: alice@example.com, pepper matrixrocks.
    assert (
        ids.hash_address("alice@example.com", "email", "matrixrocks")
        == "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc"
    )
