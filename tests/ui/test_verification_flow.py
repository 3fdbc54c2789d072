"""Pilot drives verifications to the end: the app against a real Synapse, another client
of ours (headless, on the same engine) as the other side."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Static

from tui_client.crypto.verification import VerificationState
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.devices import DevicesScreen
from tui_client.ui.screens.dialogs import PromptDialog
from tui_client.ui.screens.verification import VerificationDialog, emoji_glyph
from tui_client.ui.widgets.member_list import MemberList
from tui_client.ui.widgets.room_header import RoomHeader
from tui_client.ui.widgets.security_bar import SecurityBar

from ..integration.e2ee_support import client_for, join, until
from ..integration.verification_support import cross_signing_complete, incoming, reach
from ..support.users import MakeUser
from .test_snapshots import wait_for

SIZE = (120, 36)


async def _app_client(synapse: SynapseServer, user: RegisteredUser, folder: Path) -> MatrixClient:
    return await MatrixClient.login(
        user.user_id, user.password, homeserver=synapse.base_url, base_dir=folder, long_poll_ms=500
    )


def _dialog(app: TuiClientApp) -> VerificationDialog:
    screen = app.screen
    assert isinstance(screen, VerificationDialog), screen
    return screen


def _bar_text(app: TuiClientApp) -> str:
    bar = app.screen_stack[1].query_one(SecurityBar)
    return str(bar.query_one("#security-text", Static).render()) if bar.display else ""


async def test_this_session_is_verified_from_the_bar(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    alice_user = make_user("alice")
    other = await client_for(synapse, alice_user, tmp_path / "other")
    await cross_signing_complete(other)
    client = await _app_client(synapse, alice_user, tmp_path / "app")
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                pilot,
                lambda: "This session is not verified" in _bar_text(app),
                "the bar asking to verify",
                timeout=40,
            )
            await pilot.click("#security-bar .security-action")  # "Verify this session"
            await wait_for(pilot, lambda: isinstance(app.screen, VerificationDialog), "the dialog")
            request = await incoming(other)
            assert request.other_device_id == client.device_id
            await other.verification.accept(request.id)
            theirs = await reach(other, request.id, VerificationState.KEYS_EXCHANGED)
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.KEYS_EXCHANGED,
                "the emoji",
            )
            dialog = _dialog(app)
            assert theirs.emoji is not None
            for n, emoji in enumerate(theirs.emoji):
                card = str(dialog.query_one(f"#emoji-{n}", Static).render())
                assert emoji_glyph(emoji.symbol) in card and emoji.name in card
            assert theirs.decimals is not None
            assert "  ".join(map(str, theirs.decimals)) in str(
                dialog.query_one("#verification-decimals", Static).render()
            )
            await other.verification.confirm(request.id)
            await pilot.click("#match")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.DONE,
                "verified",
                timeout=30,
            )
            assert "✓ Verified." in str(dialog.query_one("#verification-status", Static).render())
            await reach(other, request.id, VerificationState.DONE)
            await pilot.click("#close")
            await cross_signing_complete(client)
            await wait_for(
                pilot,
                lambda: not app.screen_stack[1].query_one(SecurityBar).display,
                "the bar to go",
            )
    finally:
        await other.close()


async def test_an_incoming_request_in_a_dm_is_answered_from_the_bar(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    alice_user, bob_user = make_user("alice"), make_user("bob")
    bob = await client_for(synapse, bob_user, tmp_path / "bob")
    client = await _app_client(synapse, alice_user, tmp_path / "app")
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(
                lambda: (
                    client.cross_signing.state is not None
                    and client.cross_signing.state.status.complete
                ),
                "alice's identity",
            )
            await cross_signing_complete(bob)
            room = await bob.admin.create_dm(alice_user.user_id)
            await join(client, room)
            await until(lambda: bob.rooms[room].joined_count == 2, "alice in the DM")
            app.open_room(room)
            chat = app.screen_stack[1]
            await wait_for(
                pilot, lambda: getattr(chat, "current_room", None) == room, "the DM open"
            )
            asked = await bob.verification.verify_user(alice_user.user_id, room)
            await wait_for(
                pilot, lambda: "wants to verify you" in _bar_text(app), "the request in the bar"
            )
            assert bob_user.user_id in _bar_text(app)
            accept = [b for b in chat.query_one(SecurityBar).query(Button) if b.name == "accept"]
            await pilot.click(accept[0])
            await wait_for(pilot, lambda: isinstance(app.screen, VerificationDialog), "the dialog")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.KEYS_EXCHANGED,
                "the emoji",
                timeout=30,
            )
            theirs = await reach(bob, asked.id, VerificationState.KEYS_EXCHANGED)
            assert theirs.emoji == _dialog(app).flow.emoji
            await pilot.click("#match")
            await bob.verification.confirm(asked.id)
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.DONE,
                "verified",
                timeout=30,
            )
            await reach(bob, asked.id, VerificationState.DONE)
            await pilot.press("escape")
            # Bob is now shown as verified: the DM's header and the member list say so.
            header = chat.query_one(RoomHeader)
            await wait_for(
                pilot, lambda: "✓ verified" in str(header.render()), "the verified DM header"
            )
            await pilot.press("f2")
            members = chat.query_one(MemberList)

            def bob_marked() -> bool:
                return any(
                    "✓" in str(members.get_option_at_index(i).prompt)
                    and "bob" in str(members.get_option_at_index(i).prompt).lower()
                    for i in range(members.option_count)
                )

            await wait_for(pilot, bob_marked, "bob's badge in the member list")
    finally:
        await bob.close()


async def test_a_request_arriving_while_the_devices_screen_is_open_is_answered_there(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    """F6 hides the chat screen's bar: the devices screen shows the request, with Accept."""
    alice_user = make_user("alice")
    other = await client_for(synapse, alice_user, tmp_path / "other")
    await cross_signing_complete(other)
    client = await _app_client(synapse, alice_user, tmp_path / "app")
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                pilot,
                lambda: client.cross_signing.state is not None,
                "the cross-signing check",
                timeout=40,
            )
            await pilot.press("f6")
            await wait_for(
                pilot, lambda: isinstance(app.screen, DevicesScreen), "the devices screen"
            )
            devices = app.screen
            bar = devices.query_one(SecurityBar)
            # Only requests and flows in progress there: not the chat bar's "verify this session".
            assert not bar.display
            app.clear_notifications()
            asked = await other.verification.verify_device(alice_user.user_id, client.device_id)

            def shown() -> str:
                return (
                    str(bar.query_one("#security-text", Static).render())
                    if bar.display and app.screen is devices
                    else ""
                )

            await wait_for(
                pilot,
                lambda: "asks to verify this session" in shown(),
                "the request on the devices screen",
            )
            assert (
                f"Your session {other.device_id}" in shown()
                and "That device is not verified yet." in shown()
            )
            assert any("answer it in the bar above" in n.message for n in app._notifications)
            [accept] = [b for b in bar.query(Button) if b.name == "accept"]
            await pilot.click(accept)
            await wait_for(pilot, lambda: isinstance(app.screen, VerificationDialog), "the dialog")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.KEYS_EXCHANGED,
                "the emoji",
                timeout=30,
            )
            theirs = await reach(other, asked.id, VerificationState.KEYS_EXCHANGED)
            assert theirs.emoji == _dialog(app).flow.emoji
            await other.verification.confirm(asked.id)
            await pilot.click("#match")
            await wait_for(
                pilot,
                lambda: _dialog(app).flow.state is VerificationState.DONE,
                "verified",
                timeout=30,
            )
            await pilot.click("#close")
            await wait_for(
                pilot,
                lambda: app.screen is devices and not bar.display,
                "the devices screen, the bar gone",
            )
    finally:
        await other.close()


async def test_a_request_arriving_behind_another_screen_says_how_to_answer_it(
    synapse: SynapseServer, make_user: MakeUser, tmp_path: Path, memory_keyring: None
) -> None:
    """A screen without the bar on top (a prompt here): the notification, on top of it, says
    how to answer."""
    alice_user = make_user("alice")
    other = await client_for(synapse, alice_user, tmp_path / "other")
    await cross_signing_complete(other)
    client = await _app_client(synapse, alice_user, tmp_path / "app")
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_for(
                pilot,
                lambda: client.cross_signing.state is not None,
                "the cross-signing check",
                timeout=40,
            )
            app.push_screen(PromptDialog("Anything"))
            await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "a modal screen")
            app.clear_notifications()
            await other.verification.verify_device(alice_user.user_id, client.device_id)
            await incoming(client)

            def told() -> list[str]:
                return [
                    n.message
                    for n in app._notifications
                    if "Verification request from" in n.message
                ]

            await wait_for(pilot, lambda: bool(told()), "the notification")
            assert "press Escape to go back to the chat" in told()[0]
            assert "Ctrl+P: Answer verification request" in told()[0]
            # On the screen on top, with its words.
            await pilot.pause(0.2)
            screen = " ".join(
                " ".join(strip.text.split()) for strip in app.screen._compositor.render_strips()
            )
            assert "Ctrl+P: Answer verification request" in " ".join(
                screen.replace("▌", "").split()
            )
    finally:
        await other.close()
