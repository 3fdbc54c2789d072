"""People found and invited by email through a real identity server (matrix-sydent)
beside Synapse, with the validation and invitation mails caught on loopback."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from textual.widgets._toast import Toast

from tui_client.config import Config
from tui_client.engine.identity import ConsentNeeded, IdentityError, TermsNeeded
from tui_client.engine.settings import apply_config
from tui_client.net.http import trust_context
from tui_client.protocol import identity as ids
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import ConfirmDialog, PromptDialog

from ..engine.support import ClientPool, login, wait_until, wait_until_async
from ..ui.test_login_errors import screen_text
from ..ui.test_login_errors import until as ui_until
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


async def _command(pilot: Any, name: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.press(*name)
    await pilot.pause(0.3)
    await pilot.press("enter")


async def _answer(pilot: Any, app: TuiClientApp, text: str) -> None:
    await ui_until(pilot, lambda: isinstance(app.screen, PromptDialog), "the prompt")
    await pilot.press(*text)
    await pilot.press("enter")


async def _confirm(pilot: Any, app: TuiClientApp, says: str, *, yes: bool = True) -> str:
    """Wait for the dialog that says ``says`` (on screen); answer it; return what it said."""
    await ui_until(
        pilot,
        lambda: isinstance(app.screen, ConfirmDialog) and says in app.screen._question,
        f"a dialog: {says}",
    )
    question = app.screen._question  # type: ignore[attr-defined]
    assert " ".join(says.split()[:2]) in shown(app)
    await pilot.press("y" if yes else "escape")
    return str(question)


def _save_screenshot(name: str, svg: str) -> None:
    """The README's screenshot, written when asked to (TUI_CLIENT_UPDATE_SCREENSHOTS=1)."""
    if os.environ.get("TUI_CLIENT_UPDATE_SCREENSHOTS"):
        (Path(__file__).resolve().parents[2] / "screenshots" / f"{name}.svg").write_text(svg)


def shown(app: TuiClientApp) -> str:
    """The screen's text, each toast's wrapped lines joined into one line after it."""
    lines = screen_text(app).splitlines()
    toasts = []
    for toast in app.screen.query(Toast):
        region = toast.region
        rows = [
            lines[y][region.x : region.right]
            for y in range(region.y, min(region.bottom, len(lines)))
        ]
        toasts.append(" ".join(" ".join(rows).replace("▌", " ").split()))
    return "\n".join([*lines, *toasts])


async def test_invite_link_and_find_by_email_through_the_ui(
    identity_world: IdentityWorld, pool: ClientPool, tmp_path: Path
) -> None:
    """Pilot: Dana invites erin@ by email from the palette (consent asked first, then the
    terms); the invitation is mailed and pending. Erin links the address from the palette,
    follows the mailed link, confirms; the invite reaches her. Dana then finds her by email
    for a direct chat; an unknown address says so on screen."""
    world = identity_world
    synapse = world.synapse
    dana_user = synapse.register_user("dana", "password-dana")
    dana = pool.add(await login(synapse, dana_user, tmp_path / "d"))
    erin = pool.add(
        await login(synapse, synapse.register_user("erin", "password-erin"), tmp_path / "e")
    )
    room_id = await dana.create_room({"name": "Mail room", "preset": "private_chat"})
    server = world.sydent.server_name

    app = TuiClientApp(client=dana, base_dir=tmp_path / "ui-d")
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await ui_until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        chat = app.chat_screen
        assert chat is not None
        await ui_until(pilot, lambda: room_id in dana.rooms, "the room")
        chat.open_room(room_id)
        await ui_until(pilot, lambda: chat.may("invite"), "the room open")

        # Declining the consent looks nothing up, and says so.
        seen = len(world.mail.mails)
        await _command(pilot, "Invite to room")
        await _answer(pilot, app, "Erin@Example.test")
        await _confirm(pilot, app, "Find people by email", yes=False)
        await ui_until(pilot, lambda: "you did not agree" in shown(app), "the refusal on screen")
        assert not await dana.identity.consented()

        # Consent (asked once), then the terms, then the invitation is mailed.
        await _command(pilot, "Invite to room")
        await _answer(pilot, app, "Erin@Example.test")
        await ui_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the consent dialog")
        await pilot.pause(0.3)
        _save_screenshot(
            "identity_consent", app.export_screenshot(title="Consent before the first lookup")
        )
        question = await _confirm(pilot, app, "Find people by email")
        assert server in question
        terms = await _confirm(pilot, app, "asks you to accept")
        assert "Privacy policy" in terms and "https://identity.test/privacy-1.0.html" in terms
        await ui_until(pilot, lambda: "pending until they join" in shown(app), "the invite notice")
        await asyncio.to_thread(world.mail.wait_for, "erin@example.test", after=seen)
        await ui_until(
            pilot,
            lambda: "dana invited eri...@exa... by third-party" in shown(app),
            "the pending invite in the timeline",
        )
        # The member list (F2) lists the invitation as pending.
        await pilot.press("f2")
        await ui_until(
            pilot,
            lambda: "INVITED BY EMAIL — 1" in shown(app) and "✉ eri...@exa..." in shown(app),
            "the pending invite in the member list",
        )

        # A second lookup asks nothing more; an unknown address is said on screen.
        await _command(pilot, "Start direct chat")
        await _answer(pilot, app, "nobody@example.test")
        await ui_until(
            pilot, lambda: "No one on Matrix has linked" in shown(app), "no match on screen"
        )
        assert not isinstance(app.screen, ConfirmDialog)

    pool.forget(dana)

    # Erin links her address through her own client.
    app = TuiClientApp(client=erin, base_dir=tmp_path / "ui-e")
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await ui_until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        seen = len(world.mail.mails)
        await _command(pilot, "Link my email address")
        await _answer(pilot, app, "erin@example.test")
        await _confirm(pilot, app, "Find people by email")
        await _confirm(pilot, app, "asks you to accept")
        mail = await asyncio.to_thread(world.mail.wait_for, "erin@example.test", after=seen)
        # Continuing before following the link: told to open it first, and asked again.
        await _confirm(pilot, app, "A link was mailed")
        await ui_until(pilot, lambda: "not confirmed yet" in shown(app), "not confirmed on screen")
        await asyncio.to_thread(world.click, mail)
        await _confirm(pilot, app, "A link was mailed")
        await ui_until(pilot, lambda: "is linked" in shown(app), "linked on screen")
        # The pending invitation became hers.
        await ui_until(
            pilot,
            lambda: room_id in erin.rooms and erin.rooms[room_id].membership == "invite",
            "erin's invite",
            timeout=30,
        )

    pool.forget(erin)

    # Dana (a new session: asked to consent again) finds Erin by her address now.
    dana = pool.add(await login(synapse, dana_user, tmp_path / "d2"))
    app = TuiClientApp(client=dana, base_dir=tmp_path / "ui-d2")
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await ui_until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        before = set(dana.rooms)
        await _command(pilot, "Start direct chat")
        await _answer(pilot, app, "erin@example.test")
        await _confirm(pilot, app, "Find people by email")
        await _confirm(pilot, app, "asks you to accept")
        await ui_until(
            pilot, lambda: len(set(dana.rooms) - before) == 1, "the direct chat", timeout=30
        )
        (dm,) = set(dana.rooms) - before

        async def erin_invited() -> bool:
            members = await dana.fetch_members(dm)
            return any(
                m["state_key"] == erin.user_id and m["content"].get("membership") == "invite"
                for m in members
            )

        await wait_until_async(erin_invited, timeout=30)
        # In the room Erin was invited to by email, the invitation is no longer pending.
        view = await dana.open_room(room_id)
        assert view.members.get(erin.user_id) is not None
        assert view.members.third_party_pending() == []
    pool.forget(dana)


async def test_unreachable_identity_server_on_screen(
    identity_world: IdentityWorld, pool: ClientPool, tmp_path: Path
) -> None:
    synapse = identity_world.synapse
    fay = pool.add(
        await login(synapse, synapse.register_user("fay", "password-fay"), tmp_path / "f")
    )
    # The settings name a server (wins over the homeserver's .well-known): nothing listens there.
    config = Config(identity_server="https://127.0.0.1:9/", named=frozenset({"identity_server"}))
    assert await apply_config(fay, config) == ["identity_server"]
    assert await fay.identity.server() == "https://127.0.0.1:9"
    app = TuiClientApp(client=fay, base_dir=tmp_path / "ui")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ui_until(
            pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
        )
        await _command(pilot, "Start direct chat")
        await _answer(pilot, app, "someone@example.test")
        await _confirm(pilot, app, "Find people by email")
        await ui_until(pilot, lambda: "cannot be reached" in shown(app), "the error on screen")
    pool.forget(fay)
