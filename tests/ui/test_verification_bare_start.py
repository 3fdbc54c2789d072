"""An older client (matrix-nio 0.26) verifies us with a bare ``m.key.verification.start``,
no request before it: the app asks first (who, which device, how far we trust it), and
only an Accept leads to the emoji. The app against a real Synapse, nio as the other side
(patched on its three deviations from the spec, as in tests/crypto/test_interop_nio_sas.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nio import AsyncClient, AsyncClientConfig, KeyVerificationEvent
from textual.pilot import Pilot
from textual.widgets import Button, Static

from tui_client.crypto.verification import VerificationState
from tui_client.devtools.synapse import SynapseServer
from tui_client.engine.client import MatrixClient
from tui_client.ui.app import TuiClientApp
from tui_client.ui.screens.verification import VerificationDialog, emoji_glyph
from tui_client.ui.widgets.security_bar import SecurityBar

from ..crypto.test_interop_nio_sas import patched_nio
from ..integration.e2ee_support import encrypted_room, until
from ..integration.test_verification_nio import NioPeer
from ..integration.verification_support import reach
from ..support.users import MakeUser
from .test_snapshots import wait_for

__all__ = ["patched_nio"]

SIZE = (120, 36)


class World:
    """The app logged in as alice, nio syncing in the background, an encrypted room in common."""

    def __init__(self, app: TuiClientApp, client: MatrixClient, peer: NioPeer) -> None:
        self.app = app
        self.client = client
        self.peer = peer
        #: The verification events nio received, in order.
        self.nio_received: list[KeyVerificationEvent] = []
        peer.client.add_to_device_callback(self.nio_received.append, KeyVerificationEvent)  # type: ignore[arg-type]

    def bar(self) -> SecurityBar:
        return self.app.screen_stack[1].query_one(SecurityBar)

    def bar_text(self) -> str:
        bar = self.bar()
        return str(bar.query_one("#security-text", Static).render()) if bar.display else ""

    def bar_button(self, action: str) -> Button:
        [button] = [b for b in self.bar().query(Button) if b.name == action]
        return button

    def received_types(self) -> list[str]:
        return [type(event).__name__ for event in self.nio_received]

    async def nio_starts(self, pilot: Pilot[None]) -> str:
        """nio's bare start; waits until the bar asks about it. Its transaction ID."""
        nio = self.peer.client
        await nio.start_key_verification(
            nio.device_store[self.client.user_id][self.client.device_id]
        )
        [transaction_id] = list(nio.key_verifications)
        expected = f"{nio.user_id} (device {nio.device_id}) wants to verify you. That device is not verified yet."
        await wait_for(
            pilot, lambda: expected in self.bar_text(), "the bare start in the bar", timeout=30
        )
        [flow] = self.client.verification.active()
        assert flow.flow_id == transaction_id and flow.state is VerificationState.INCOMING
        # Asked, not answered: no emoji dialog, nothing sent to nio.
        assert not isinstance(self.app.screen, VerificationDialog)
        assert self.received_types() == []
        return transaction_id


@pytest.fixture
async def world(
    synapse: SynapseServer,
    make_user: MakeUser,
    tmp_path: Path,
    memory_keyring: None,
    patched_nio: None,
) -> AsyncIterator[tuple[World, Pilot[None]]]:
    alice_user, nio_user = make_user("alice"), make_user("niouser")
    client = await MatrixClient.login(
        alice_user.user_id,
        alice_user.password,
        homeserver=synapse.base_url,
        base_dir=tmp_path / "app",
        long_poll_ms=500,
    )
    store = tmp_path / "nio-store"
    store.mkdir()
    nio = AsyncClient(
        synapse.base_url,
        nio_user.user_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True),
    )
    await nio.login(nio_user.password, device_name="nio test peer")
    peer = NioPeer(nio)
    peer.task = asyncio.ensure_future(peer.run())
    app = TuiClientApp(client=client, base_dir=tmp_path / "app")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await client.wait_synced()
            room = await encrypted_room(client, "interop", [nio_user.user_id])
            await until(lambda: room in nio.invited_rooms, "nio's invite")
            await nio.join(room)
            await until(
                lambda: room in client.rooms and client.rooms[room].joined_count == 2,
                "nio's join at alice",
            )
            await until(
                lambda: client.user_id in nio.device_store.users, "nio knowing alice's devices"
            )
            await until(
                lambda: client.device_id in nio.device_store[client.user_id],
                "nio knowing this session",
            )
            await client.devices.await_queried([nio_user.user_id])
            yield World(app, client, peer), pilot
    finally:
        peer.stop.set()
        if peer.task is not None:
            await asyncio.wait_for(peer.task, 10)
        await nio.close()


async def test_a_bare_start_is_accepted_before_the_emoji(world: tuple[World, Pilot[None]]) -> None:
    state, pilot = world
    client, nio = state.client, state.peer.client
    transaction_id = await state.nio_starts(pilot)
    await pilot.click(state.bar_button("accept"))
    await wait_for(pilot, lambda: isinstance(state.app.screen, VerificationDialog), "the dialog")
    dialog = state.app.screen
    assert isinstance(dialog, VerificationDialog)
    await wait_for(
        pilot,
        lambda: dialog.flow.state is VerificationState.KEYS_EXCHANGED,
        "the emoji",
        timeout=30,
    )
    sas = state.peer.sas(transaction_id)
    await until(lambda: getattr(sas, "their_sas_key", None) is not None, "nio to have our SAS key")
    for n, (symbol, _name) in enumerate(sas.get_emoji()):
        assert emoji_glyph(symbol) in str(dialog.query_one(f"#emoji-{n}", Static).render())
    await nio.confirm_short_auth_string(transaction_id)
    await pilot.click("#match")
    await reach(client, dialog.flow.id, VerificationState.DONE)
    await until(lambda: sas.verified, "nio to verify our device")
    assert state.received_types()[0] == "KeyVerificationAccept"


async def test_a_declined_bare_start_tells_the_other_side(world: tuple[World, Pilot[None]]) -> None:
    state, pilot = world
    transaction_id = await state.nio_starts(pilot)
    await pilot.click(state.bar_button("decline"))
    await until(lambda: bool(state.nio_received), "nio to hear the answer")
    [cancel] = state.nio_received
    assert type(cancel).__name__ == "KeyVerificationCancel"
    assert (cancel.transaction_id, getattr(cancel, "code", None)) == (transaction_id, "m.user")
    await wait_for(pilot, lambda: not state.bar().display, "the bar to go")
    assert not isinstance(state.app.screen, VerificationDialog)
    assert state.peer.sas(transaction_id) is None
