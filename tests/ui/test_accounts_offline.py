"""Several accounts restored from disk, on the fake homeservers (no network): two accounts
on two homeservers come back at start, each with its own rooms; an account behind whose
session ends softly (the server wants the password again) comes to the front and asks for
its own password, never the other account's."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tui_client.engine.accounts import slot_location
from tui_client.engine.client import CACHE_FILE, SESSION_FILE, SessionInfo
from tui_client.engine.paths import profile_dir
from tui_client.engine.secrets import SecretStore
from tui_client.protocol.sync import parse_sync
from tui_client.store.cache import Cache
from tui_client.store.repair import damage_mark
from tui_client.ui.accounts import AccountSwitcher
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.chat import ChatScreen
from tui_client.ui.screens.dialogs import ConfirmDialog, PromptDialog

from ..support.waiting import pilot_until
from .fake_world import ME, FakeHomeserver, make_profile
from .test_first_minutes import screen_lines, toast_texts
from .test_snapshots import wait_for

BOB = "@bob:other.example"
BOB_ROOM = "!bobsroom0000000000000000000000000000000001:other.example"


def _bob_sync() -> dict[str, object]:
    state = [
        {"type": "m.room.create", "state_key": "", "sender": BOB, "event_id": "$c", "origin_server_ts": 1, "content": {"creator": BOB}},
        {"type": "m.room.member", "state_key": BOB, "sender": BOB, "event_id": "$m", "origin_server_ts": 2, "content": {"membership": "join", "displayname": "Bob"}},
        {"type": "m.room.name", "state_key": "", "sender": BOB, "event_id": "$n", "origin_server_ts": 3, "content": {"name": "Bob's own room"}},
    ]  # fmt: skip
    timeline = [
        {"type": "m.room.message", "sender": BOB, "event_id": "$t", "origin_server_ts": 4, "content": {"msgtype": "m.text", "body": "only bob sees this"}}
    ]  # fmt: skip
    return {
        "next_batch": "b1",
        "rooms": {
            "join": {
                BOB_ROOM: {
                    "state": {"events": state},
                    "timeline": {"events": timeline, "limited": False},
                }
            }
        },
    }


def _two_accounts(base: Path) -> None:
    """Alice (the fake world's user) in the main folder, bob on another homeserver in an
    added account's folder, listed in accounts.json with alice in front."""
    make_profile(base)
    profile, slot_base = slot_location("default", base, "default.acct2")
    folder = profile_dir(profile, slot_base)
    info = SessionInfo(BOB, "BOBDEVICE", "https://matrix.other.example")
    (folder / SESSION_FILE).write_text(json.dumps(info.to_json()))
    SecretStore(folder, BOB).set("access_token", "bob-token")
    cache = Cache(folder / CACHE_FILE, own_user_id=BOB)
    cache.ingest_sync(parse_sync(_bob_sync()), {})
    cache.close()
    (base / "default" / "accounts.json").write_text(
        json.dumps({"accounts": ["main", "default.acct2"], "active": "main"})
    )


async def test_two_homeservers_restored_and_a_soft_logout_behind_asks_its_own_password(
    tmp_path: Path, memory_keyring: None
) -> None:
    _two_accounts(tmp_path)
    fake = FakeHomeserver()
    ended = {"bob": False}
    hosts: dict[str, set[str]] = {}
    logins: list[tuple[str, str]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "")
        hosts.setdefault(token, set()).add(request.url.host)
        if request.url.path.endswith("/login") and request.method == "POST":
            body = json.loads(request.content)
            logins.append((request.url.host, body.get("identifier", {}).get("user")))
            answer = {"user_id": BOB, "access_token": "bob-token-2", "device_id": "BOBDEVICE"}
            return httpx.Response(200, json=answer)
        if request.url.path.endswith("/versions"):
            return httpx.Response(200, json={"versions": ["v1.11"]})
        if token == "Bearer bob-token" and request.url.path.endswith("/sync"):
            if ended["bob"]:
                return httpx.Response(
                    401,
                    json={
                        "errcode": "M_UNKNOWN_TOKEN",
                        "error": "Token expired",
                        "soft_logout": True,
                    },
                )
            return httpx.Response(200, json={"next_batch": "b2"})
        return await fake.handle(request)

    app = TuiClientApp(base_dir=tmp_path, transport=httpx.MockTransport(handle))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.accounts.accounts) == 2, "both accounts")
        alice, bob = app.accounts.accounts
        assert alice.client.user_id == ME and bob.client.user_id == BOB
        assert (
            app.client is alice.client
            and isinstance(app.screen, ChatScreen)
            and app.screen is alice.chat
        )
        assert BOB_ROOM in bob.client.rooms and BOB_ROOM not in alice.client.rooms
        assert not set(bob.client.rooms) & set(alice.client.rooms)
        await wait_for(
            pilot,
            lambda: "matrix.other.example" in hosts.get("Bearer bob-token", set()),
            "bob's sync",
        )
        assert hosts["Bearer bob-token"] == {"matrix.other.example"}
        assert "matrix.other.example" not in hosts.get("Bearer secret-token", set())

        ended["bob"] = True  # the long poll in flight answers; the next one is refused
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, PromptDialog),
            "the password prompt",
        )
        assert app.client is bob.client and app.current_mode == bob.mode
        prompt = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert f"Password for {BOB}" in prompt and ME not in prompt

        # Bob's password: he logs in again in his own folder, on his server, and is back.
        await pilot.press(*"bobs password", "enter")
        await wait_for(
            pilot,
            lambda: any(
                a.client.user_id == BOB and a.client.connection.access_token == "bob-token-2"
                for a in app.accounts.accounts
            ),
            "bob logged in again",
        )
        assert logins == [("matrix.other.example", BOB)]
        again = next(a for a in app.accounts.accounts if a.client.user_id == BOB)
        assert app.client is again.client and again.slot == "default.acct2"
        assert again.client.folder == tmp_path / "default" / "accounts" / "default.acct2"
        # Alice's folder and session are untouched, and she still runs behind.
        assert json.loads((tmp_path / "default" / SESSION_FILE).read_text())["user_id"] == ME
        assert (
            any(a.client is alice.client for a in app.accounts.accounts)
            and len(app.accounts.accounts) == 2
        )
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ChatScreen) and app.screen is again.chat,
            "bob's chat",
        )

        # The palette adds an account or switches to another one (not to the one in front).
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Add account" in commands and f"Switch to {BOB}" not in commands
        commands[f"Switch to {ME}"].callback()
        await wait_for(
            pilot, lambda: app.screen is alice.chat and app.client is alice.client, "alice in front"
        )


async def test_damage_in_an_account_behind_is_said_and_rebuilt_when_it_comes_in_front(
    tmp_path: Path, memory_keyring: None
) -> None:
    """Bob's cache is found damaged while alice is in front (80x24): a toast naming bob says
    so, F9 marks him, the palette offers his rebuild, and bringing him to the front offers
    it; taking it rebuilds bob's cache and leaves alice as she was."""
    _two_accounts(tmp_path)
    fake = FakeHomeserver()

    async def handle(request: httpx.Request) -> httpx.Response:
        bobs = request.headers.get("authorization") == "Bearer bob-token"
        if bobs and request.url.path.endswith("/sync"):
            return httpx.Response(200, json={"next_batch": "b2"})
        return await fake.handle(request)

    app = TuiClientApp(base_dir=tmp_path, transport=httpx.MockTransport(handle))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: len(app.accounts.accounts) == 2, "both accounts")
        alice, bob = app.accounts.accounts
        await wait_for(pilot, lambda: bob.client.sync_loop is not None, "bob syncing")
        assert app.client is alice.client and app.screen is alice.chat
        damaged = bob.client
        damaged.damage.found("database disk image is malformed")

        def toasts() -> str:
            return " ".join(toast_texts(pilot))

        await wait_for(pilot, lambda: "F9 switches to it" in toasts(), "the toast naming bob")
        said = toasts()
        assert BOB in said and "cache is damaged (database disk image is malformed)" in said
        assert app.screen is alice.chat and app.client is alice.client  # nothing over alice
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert f"Rebuild the damaged cache of {BOB}" in commands
        assert "Rebuild the damaged cache" not in commands  # alice's is sound
        app.clear_notifications()

        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, AccountSwitcher), "the switcher")
        listed = [line for line in screen_lines(pilot) if BOB in line]
        assert listed and "cache damaged" in listed[0], listed
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the rebuild offer")
        assert app.client is damaged
        shown = " ".join(" ".join(screen_lines(pilot)).split())
        assert "The local cache is damaged (database disk image is malformed)" in shown, shown
        assert "Rebuild now" in shown and "Cancel" in shown, shown

        await pilot.press("enter")  # Rebuild now
        # (Not wait_for: the rebuild's worker goes on waiting for bob's room to sync again.)
        await pilot_until(
            pilot,
            lambda: any(
                a.client.user_id == BOB and a.client is not damaged for a in app.accounts.accounts
            ),
            "bob opened again",
            15,
        )
        again = next(a for a in app.accounts.accounts if a.client.user_id == BOB)
        assert app.client is again.client and again.client.damage.reason is None
        assert again.client.cache_repair is not None  # rebuilt from the marked file
        assert not damage_mark(again.client.cache.path).exists()
        assert any(a.client is alice.client for a in app.accounts.accounts)
        assert alice.client.damage.reason is None

        # Behind again and damaged again: the palette's entry rebuilds it, no question asked.
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands[f"Switch to {ME}"].callback()
        await pilot_until(pilot, lambda: app.client is alice.client, "alice in front", 10)
        await pilot_until(pilot, lambda: again.client.sync_loop is not None, "bob syncing", 10)
        again.client.damage.found("database disk image is malformed")
        await pilot_until(pilot, lambda: "F9 switches to it" in toasts(), "said again", 10)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands[f"Rebuild the damaged cache of {BOB}"].callback()
        await pilot_until(
            pilot,
            lambda: any(
                a.client.user_id == BOB and a.client not in (damaged, again.client)
                for a in app.accounts.accounts
            ),
            "bob rebuilt from the palette",
            15,
        )
        assert app.client is not None and app.client.user_id == BOB
        assert app.client.damage.reason is None and app.client.cache_repair is not None
        assert not isinstance(app.screen, ConfirmDialog)
