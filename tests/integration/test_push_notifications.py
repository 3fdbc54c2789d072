"""Live notifications from the push rules, against Synapse: what was missed while away
only counts; a live mention and a message in an encrypted room notify with names and
text (decrypted); our own messages and a muted room never do. The alert settings are
kept in the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.alert_settings import MODE_BELL, TEXT_NEVER
from tui_client.engine.updates import PushNotification, Update
from tui_client.protocol.push_rules import LEVEL_MENTIONS, LEVEL_MUTE

from ..pty.test_composer_burst import make_room
from .e2ee_support import client_for, encrypted_room, join, restore, until
from .receipts_support import say


async def test_live_events_the_rules_notify_of_are_published(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    me = make_user("alice", displayname="Alice Tester")
    bob_user = make_user("bob", displayname="Bob")
    carol = make_user("carol", displayname="Carol")
    group = make_room(synapse, bob_user, "Group", me)
    for user in (carol,):
        status, _ = synapse.request_json(
            "POST",
            f"/_matrix/client/v3/rooms/{group}/invite",
            {"user_id": user.user_id},
            bob_user.access_token,
        )
        assert status == 200
        status, _ = synapse.request_json(
            "POST", f"/_matrix/client/v3/join/{group}", {}, user.access_token
        )
        assert status == 200
    noisy = make_room(synapse, bob_user, "Noisy", me)
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    client = await client_for(synapse, me, tmp_path / "me")
    try:
        secret = await encrypted_room(bob, "Secret", [me.user_id])
        await until(lambda: secret in client.rooms, "the invite")
        await join(client, secret)
        await client.notifications.set_room_level(noisy, LEVEL_MUTE)
        await client.notifications.set_room_level(group, LEVEL_MENTIONS)
        await client.notifications.alerts.set_mode(MODE_BELL)
        await client.notifications.alerts.set_text(TEXT_NEVER)
        await client.close()

        # Missed while away: the first batch after start only counts it.
        say(synapse, bob_user, group, "Alice Tester: you missed this", "missed1")
        seen: list[PushNotification] = []

        def note(update: Update) -> None:
            if isinstance(update, PushNotification):
                seen.append(update)

        client = await restore(tmp_path / "me")
        client.subscribe(note)
        await client.wait_synced()
        await until(lambda: client.rooms[group].highlight_count == 1, "the missed mention counted")
        assert client.notifications.alerts.mode == MODE_BELL
        assert client.notifications.alerts.text == TEXT_NEVER
        assert not client.notifications.alerts.shows_text(False)

        # Live, in a room set to mentions: a plain message does not notify, a mention does.
        say(synapse, carol, group, "just chatting", "c1")
        mention = say(synapse, bob_user, group, "Alice Tester: lunch?", "b1")
        await until(lambda: len(seen) >= 1, "the mention's notification")
        # Our own message, and a mention in the muted room: nothing.
        await client.send_text(group, "Alice Tester says hi")
        say(synapse, bob_user, noisy, "Alice Tester: in the muted room", "b2")
        # An encrypted room of two: every message notifies, decrypted.
        await bob.send_message(secret, "the secret plan")
        await until(lambda: len(seen) >= 2, "the encrypted message's notification")
        await until(
            lambda: client.rooms[noisy].notification_count == 0 and _has(client, noisy, "muted"),
            "the muted room's message",
        )
        assert [(n.room_id, n.body) for n in seen] == [
            (group, "Alice Tester: lunch?"),
            (secret, "the secret plan"),
        ]
        # Joining a room brings its history and our invite: nothing is notified of them,
        # a message after the join is.
        later = make_room(synapse, bob_user, "Later", carol)
        say(synapse, bob_user, later, "history before alice", "h1")
        status, _ = synapse.request_json(
            "POST",
            f"/_matrix/client/v3/rooms/{later}/invite",
            {"user_id": me.user_id},
            bob_user.access_token,
        )
        assert status == 200
        await join(client, later)
        await until(lambda: _has(client, later, "history"), "the room's history")
        say(synapse, bob_user, later, "welcome", "h2")
        await until(lambda: len(seen) >= 3, "the message after the join")
        assert [(n.room_id, n.body) for n in seen[2:]] == [(later, "welcome")]
        first, second = seen[:2]
        assert first.event_id == mention
        assert (first.sender, first.sender_name, first.room_name) == (
            bob_user.user_id,
            "Bob",
            "Group",
        )
        assert first.highlight and first.sound == "default" and not first.encrypted
        assert second.sender_name == "Bob" and second.room_name == "Secret"
        assert second.encrypted and not second.highlight
    finally:
        await bob.close()
        await client.close()


def _has(client: object, room_id: str, word: str) -> bool:
    from tui_client.engine.client import MatrixClient

    assert isinstance(client, MatrixClient)
    stored, _ = client.db.call(client.cache.load_before, room_id, None, 5)
    return any(word in str(s.event.get("content", {}).get("body", "")) for s in stored)
