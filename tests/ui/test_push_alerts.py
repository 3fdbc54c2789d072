"""Push rules evaluated by the client, against Synapse: a mention in an encrypted room
highlights and rings (as does each message the rules notify of, in a room of two); a room
muted through our push rules API never rings."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import BatchCommitted, Update
from tui_client.protocol.push_rules import LEVEL_MENTIONS, LEVEL_MUTE
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.dialogs import PromptDialog

from ..integration.e2ee_support import client_for, encrypted_room
from ..support.waiting import ui_caught_up, until_async
from .test_flow import until


def _rule(
    synapse: SynapseServer, user: RegisteredUser, kind: str, rule_id: str
) -> tuple[int, object]:
    path = f"/_matrix/client/v3/pushrules/global/{kind}/{urllib.parse.quote(rule_id, safe='')}"
    return synapse.request_json("GET", path, None, user.access_token)


async def test_encrypted_mention_rings_and_a_muted_room_never_does(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    me = make_user("alice", displayname="Alice Tester")
    bob_user = make_user("bob", displayname="Bob")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    try:
        lobby = await bob.create_room(
            {"name": "Lobby", "preset": "private_chat", "invite": [me.user_id]}
        )
        secret = await encrypted_room(bob, "Secret", [me.user_id])
        quiet = await encrypted_room(bob, "Quiet", [me.user_id])
        client = await MatrixClient.login(
            me.user_id, me.password, homeserver=synapse.base_url, base_dir=tmp_path / "me"
        )
        app = TuiClientApp(client=client, base_dir=tmp_path / "me")
        rings: list[int] = []
        app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
        arrived: list[str] = []

        def note(update: Update) -> None:
            if isinstance(update, BatchCommitted):
                arrived.extend(e.get("event_id", "") for e in update.events.get(quiet, ()))

        client.subscribe(note)
        async with app.run_test(size=(120, 36)) as pilot:
            chat = app.chat_screen
            await until(
                pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat screen"
            )
            chat = app.chat_screen
            assert chat is not None
            await until(
                pilot, lambda: all(r in client.rooms for r in (lobby, secret, quiet)), "the invites"
            )
            for room in (lobby, secret, quiet):
                await client.join(room)
            app.open_room(lobby)
            await until(
                pilot,
                lambda: chat.current_room == lobby and chat._counts is not None,
                "the lobby, alerts armed",
            )
            await until(
                pilot,
                lambda: all(bob.rooms[r].joined_count == 2 for r in (secret, quiet)),
                "bob sees the joins",
            )
            # Bob shares the room key with the devices of Alice he knows: hers must be one.
            # Its keys go up after her first sync; on a busy machine Bob queried before, and
            # the messages below stayed undecryptable (reproduced by delaying the upload).
            await until_async(
                lambda: _knows_device(bob, me.user_id, client.device_id),
                "Bob knows the keys of Alice's device",
            )

            # Mute through our API; Synapse holds Element's shape of the rule.
            await client.notifications.set_room_level(quiet, LEVEL_MUTE)
            status, rule = _rule(synapse, me, "override", quiet)
            assert status == 200, rule
            assert isinstance(rule, dict)
            assert rule["actions"] == [] and rule["enabled"] is True
            assert rule["conditions"] == [
                {"kind": "event_match", "key": "room_id", "pattern": quiet}
            ]
            assert _rule(synapse, me, "room", quiet)[0] == 404
            assert client.notifications.room_level(quiet) == LEVEL_MUTE

            # A mention in the encrypted room: highlighted and counted by us, the bell rings
            # (for both messages: in a room of two every message notifies, with a sound).
            app.clear_notifications()
            await bob.send_message(secret, "just chatting")
            await bob.send_message(
                secret, "Alice Tester: lunch?", extra={"m.mentions": {"user_ids": [me.user_id]}}
            )
            await until(
                pilot,
                lambda: client.rooms[secret].highlight_count == 1,
                "the highlight",
                timeout=30,
                on_timeout=lambda: _what_alice_has(client, secret),
            )
            assert client.rooms[secret].notification_count == 2
            await until(pilot, lambda: len(rings) == 2, "the bell", on_timeout=lambda: str(rings))
            # The notice comes with the room list, a message of its own that the UI may
            # handle after the engine's counts (and the bell's message) are in.
            await until(
                pilot,
                lambda: any(
                    n.message.startswith("You were mentioned in Secret") for n in app._notifications
                ),
                "the mention's notice",
                on_timeout=lambda: str([n.message for n in app._notifications]),
            )

            # The muted room: a mention arrives, decrypted, and nothing rings or counts.
            entry = await bob.send_message(
                quiet,
                "Alice Tester: are you there?",
                extra={"m.mentions": {"user_ids": [me.user_id]}},
            )
            await until(
                pilot,
                lambda: (
                    entry.txn_id is not None and len(arrived) >= 1 and _decrypted_in(client, quiet)
                ),
                "the muted mention",
            )
            # A bell or a notice for it would be in by the time the UI has handled the
            # updates already posted (the batch's push notification is published before it).
            await ui_caught_up(app)
            assert (
                client.rooms[quiet].highlight_count == 0
                and client.rooms[quiet].notification_count == 0
            )
            assert len(rings) == 2
            assert not any("Quiet" in n.message for n in app._notifications)

            # Mentions only: a plain message is not counted, a mention is.
            await client.notifications.set_room_level(quiet, LEVEL_MENTIONS)
            status, rule = _rule(synapse, me, "room", quiet)
            assert status == 200 and isinstance(rule, dict) and rule["actions"] == []
            assert _rule(synapse, me, "override", quiet)[0] == 404
            await until(
                pilot, lambda: client.notifications.room_level(quiet) == LEVEL_MENTIONS, "the level"
            )
            await bob.send_message(quiet, "nothing for you")
            await bob.send_message(
                quiet, "Alice Tester!", extra={"m.mentions": {"user_ids": [me.user_id]}}
            )
            await until(
                pilot,
                lambda: client.rooms[quiet].highlight_count == 1,
                "the highlight in the quiet room",
            )
            assert client.rooms[quiet].notification_count == 1
            await until(pilot, lambda: len(rings) == 3, "the bell for the quiet room's mention")
    finally:
        await bob.close()


def _decrypted_in(client: MatrixClient, room_id: str) -> bool:
    """The room's newest cached event is readable to us."""
    stored, _ = client.db.call(client.cache.load_before, room_id, None, 1)
    if not stored:
        return False
    shown = client.db.call(client.encryption.shown_forms, [stored[-1].event])
    event = shown.get(stored[-1].event.get("event_id", ""), stored[-1].event)
    return event.get("type") == "m.room.message"


async def _knows_device(observer: MatrixClient, user_id: str, device_id: str) -> bool:
    """``observer`` has the keys of ``user_id``'s device ``device_id``."""
    _, devices = await observer.devices.user_devices(user_id)
    return any(d.device_id == device_id and d.ed25519 for d in devices)


def _what_alice_has(client: MatrixClient, room_id: str) -> str:
    """The room's counts and its newest cached events as shown to us (decrypted or not),
    for a failure to say whether the message never came, or came and stayed unreadable."""
    summary = client.rooms[room_id]
    lines = [
        f"counts {summary.notification_count}/{summary.highlight_count}, "
        f"{summary.joined_count} joined, encrypted={summary.encrypted}"
    ]
    stored, _ = client.db.call(client.cache.load_before, room_id, None, 6)
    events = [s.event for s in stored]
    shown = client.db.call(client.encryption.shown_forms, events)
    for event in events:
        form = shown.get(event.get("event_id", ""), event)
        lines.append(
            f"  {event.get('type')} from {event.get('sender')}: {form.get('type')} {str(form.get('content'))[:160]}"
        )
    return "\n".join(lines)


async def _palette(pilot: Pilot[None], app: TuiClientApp, text: str) -> None:
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
    await pilot.press(*text)
    await until(
        pilot,
        lambda: app.screen.query_one(CommandList).highlighted is not None,
        "the palette's results",
    )
    await pilot.press("enter")


async def test_palette_mutes_the_room_adds_a_keyword_and_ignores_a_user(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    me = make_user("alice")
    other = make_user("spam")
    room = _create(synapse, me, {"name": "Noisy", "preset": "private_chat"})
    client = await MatrixClient.login(
        me.user_id, me.password, homeserver=synapse.base_url, base_dir=tmp_path
    )
    app = TuiClientApp(client=client, base_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.current_room == room,
            "the room",
        )
        await _palette(pilot, app, "Notify: mute room")
        await until(
            pilot,
            lambda: _rule(synapse, me, "override", room)[0] == 200,
            "the mute rule on the server",
        )
        await until(
            pilot,
            lambda: client.notifications.room_level(room) == LEVEL_MUTE,
            "the level read back",
        )

        await _palette(pilot, app, "Add notification keyword")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), "the keyword prompt")
        await pilot.press(*"teapot", "enter")
        await until(pilot, lambda: client.notifications.keywords() == ["teapot"], "the keyword")
        status, rule = _rule(synapse, me, "content", "teapot")
        assert (
            status == 200
            and isinstance(rule, dict)
            and rule["pattern"] == "teapot"
            and "notify" in rule["actions"]
        )

        await _palette(pilot, app, "Ignore user")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), "the ignore prompt")
        await pilot.press(*other.user_id, "enter")
        await until(pilot, lambda: other.user_id in client.notifications.ignored, "ignored")
        path = f"/_matrix/client/v3/user/{urllib.parse.quote(me.user_id)}/account_data/m.ignored_user_list"
        status, data = synapse.request_json("GET", path, None, me.access_token)
        assert status == 200 and data == {"ignored_users": {other.user_id: {}}}

        # A wrong user ID is said, nothing is sent.
        await _palette(pilot, app, "Ignore user")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), "the ignore prompt")
        await pilot.press(*"nobody", "enter")
        await until(
            pilot,
            lambda: any("is not a user ID" in n.message for n in app._notifications),
            "the error",
        )
        assert client.notifications.ignored == {other.user_id}


def _create(synapse: SynapseServer, owner: RegisteredUser, body: dict[str, object]) -> str:
    status, answer = synapse.request_json(
        "POST", "/_matrix/client/v3/createRoom", body, owner.access_token
    )
    assert status == 200, answer
    return str(answer["room_id"])
