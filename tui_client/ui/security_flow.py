"""Verification, devices and trust across the UI (the app's helper, like :mod:`.join_flow`).

- Routes the engine's security updates: a flow's new snapshot to its dialog; requests
  we made open their dialog at once, incoming ones go to the security bar of the chat
  screen and of the devices screen (with a notification saying where to answer, on
  whatever screen is on top); a flow that reaches the emoji opens its dialog if hidden;
  trust changes re-render the member list, the message markers and a DM's header.
- Starts verifications (a user, one device, our other sessions), answers requests,
  acknowledges identity changes, opens the devices screen.
- Asks for the password when the server wants it (user-interactive auth).
- Offers all of it in the command palette.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual.app import SystemCommand
from textual.markup import escape as escape_markup

from ..engine.updates import (
    CrossSigningChanged,
    IdentityWarnings,
    TrustChanged,
    Update,
    VerificationChanged,
)
from ..protocol.sanitize import clean_line
from .screens.chat import ChatScreen, chat_screen_of
from .screens.follows import DevicesView
from .update_routes import UpdateRoutes
from .widgets.member_list import MemberList
from .widgets.room_header import RoomHeader
from .widgets.security_bar import BarItem, SecurityBar
from .widgets.timeline import TimelineView

if TYPE_CHECKING:
    from ..crypto.verification import Verification, VerificationState
    from ..engine.client import MatrixClient
    from .app_interface import ClientApp
    from .screens.verification import VerificationDialog


def _ask_states() -> frozenset[VerificationState]:
    """States where the user must answer: the dialog opens again even if they hid it."""
    from ..crypto.verification import VerificationState

    return frozenset({VerificationState.KEYS_EXCHANGED, VerificationState.QR_SCANNED})


class SecurityFlow:
    """See the module documentation."""

    def __init__(self, app: ClientApp) -> None:
        self.app = app
        self._routes = (
            UpdateRoutes()
            .on(VerificationChanged, lambda update: self._flow_changed(update.verification))
            .on(TrustChanged, self._on_trust_changed)
            .on(IdentityWarnings, lambda _update: self.refresh_bar())
            .on(CrossSigningChanged, lambda _update: self.refresh_bar())
        )
        self._notified: set[str] = set()
        self._later: set[str] = set()
        self._opened: set[str] = set()

    @property
    def client(self) -> MatrixClient | None:
        """The app's client."""
        return self.app.client

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, chat: ChatScreen) -> None:
        """Give the chat screen's views the trust cache, and the engine a password prompt."""
        client = chat.client
        client.ask_password = self.ask_password
        client.approve_in_browser = self.approve_in_browser
        trust = client.devices.trust
        timeline = chat.query_one(TimelineView)
        timeline.trust_of = trust
        timeline.own_user = client.user_id
        members = chat.query_one(MemberList)
        members.trust_of = trust
        members.own_user = client.user_id
        chat.query_one(RoomHeader).trust_of = trust
        self.refresh_bar()

    async def ask_password(self, prompt: str) -> str | None:
        """Show ``prompt`` with a password field; the answer, or ``None`` if cancelled."""
        from .screens.dialogs import PromptDialog

        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def done(value: str | None) -> None:
            if not answer.done():
                answer.set_result(value)

        self.app.push_screen(PromptDialog(clean_line(prompt, 200), password=True), done)
        return await answer

    async def approve_in_browser(self, url: str, purpose: str) -> bool:
        """Open the account page where the server wants ``purpose`` approved, and wait for
        the user to say it is done (True) or give up (False)."""
        from ..engine.opener import HandlerError, open_with_handler
        from .screens.dialogs import ConfirmDialog

        try:
            await open_with_handler(url)
            opened = "It is open in your browser"
        except HandlerError:
            opened = "Open it in a browser"
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()

        def done(value: bool | None) -> None:
            if not answer.done():
                answer.set_result(bool(value))

        question = (
            f"{clean_line(purpose, 80)}: your server asks you to approve this on your account page. "
            f"{opened}: {clean_line(url, 300)} , then choose 'Approved, go on'."
        )
        self.app.push_screen(ConfirmDialog(question, "Approved, go on"), done)
        return await answer

    # -- updates --------------------------------------------------------------------------

    def handle(self, update: Update) -> None:
        """Apply one engine update (called by the app for every update)."""
        self._routes.dispatch(update)
        for screen in self.app.screen_stack:
            if isinstance(screen, DevicesView) and screen.is_mounted:
                screen.handle_update(update)

    def _on_trust_changed(self, update: TrustChanged) -> None:
        self._trust_changed(update.user_ids)
        self.refresh_bar()

    def _dialog(self, verification_id: str) -> VerificationDialog | None:
        from .screens.verification import VerificationDialog

        for screen in self.app.screen_stack:
            if isinstance(screen, VerificationDialog) and screen.verification_id == verification_id:
                return screen
        return None

    def _flow_changed(self, flow: Verification) -> None:
        from ..crypto.verification import VerificationState
        from .screens.verification import describe_other

        ask_states = _ask_states()
        dialog = self._dialog(flow.id)
        if dialog is not None:
            dialog.update_flow(flow)
        elif (flow.we_requested and not flow.is_final and flow.id not in self._opened) or (
            flow.state in ask_states and f"{flow.id}:{flow.state.value}" not in self._opened
        ):
            # Ours: show it at once. Any: when the user must answer (even if hidden before):
            # the emoji to compare, or whether the other device says it scanned our code.
            self.show_dialog(flow)
        if flow.state in ask_states:
            self._opened.add(f"{flow.id}:{flow.state.value}")
        self.refresh_bar()
        if flow.state is VerificationState.INCOMING and flow.id not in self._notified:
            self._notified.add(flow.id)
            who = describe_other(self.client.user_id if self.client else "", flow)
            if self._bar_on_top():
                self.app.notify(
                    f"Verification request from {who}: answer it in the bar above.",
                    markup=False,
                    timeout=8,
                )
            else:
                self.app.notify(
                    f"Verification request from {who}. To answer it, press Escape to go back to the chat "
                    "(the bar above the messages), or Ctrl+P: Answer verification request.",
                    markup=False,
                    timeout=30,
                )

    def _bar_on_top(self) -> bool:
        """The screen on top shows a security bar (the chat or devices screen)."""
        return bool(self.app.screen.query(SecurityBar))

    def _trust_changed(self, user_ids: Iterable[str]) -> None:
        chat = chat_screen_of(self.app)
        if chat is None or not chat.is_mounted:
            return
        chat.query_one(TimelineView).refresh_trust(frozenset(user_ids))
        members = chat.query_one(MemberList)
        if members.display and chat.view is not None:
            members.show_members(chat.view.members, chat.view.power_levels)
        chat.query_one(RoomHeader).refresh()

    def show_dialog(self, flow: Verification, *, focus: bool = False) -> None:
        """Open (or bring back) the dialog of a flow (``focus``: the user asked for it)."""
        client = self.client
        if client is None or self._dialog(flow.id) is not None:
            return
        from .screens.verification import VerificationDialog

        self._opened.add(flow.id)
        self.app.push_screen(VerificationDialog(client, flow, focus=focus))

    # -- the bar ----------------------------------------------------------------------------

    def bar_item(self, *, verifications_only: bool = False) -> BarItem | None:
        """The most urgent thing for the security bar, or nothing (``verifications_only``:
        only requests to answer and flows in progress, for the devices screen)."""
        client = self.client
        if client is None or not client.encryption.available:
            return None
        waiting = client.verification.incoming()
        if waiting:
            # (imported when needed: a few ms on the UI loop, in a first sync's frame)
            from .screens.verification import describe_other, trust_note

            flow = waiting[0]
            who = describe_other(client.user_id, flow)
            text = Text("🔐 ", style=Style(bold=True))
            if flow.other_user_id == client.user_id:
                text.append(f"{who[0].upper()}{who[1:]} asks to verify this session.")
            else:
                text.append(f"{who} wants to verify you.")
            note = trust_note(client.devices.trust(flow.other_user_id), flow)
            if note:
                text.append(f" {note}", style=Style(dim=True))
            if len(waiting) > 1:
                text.append(f"  (+{len(waiting) - 1} more)", style=Style(dim=True))
            return BarItem(
                f"incoming:{flow.id}",
                text,
                (("accept", "Accept", "primary"), ("decline", "Decline", "error")),
            )
        if verifications_only:
            return self._flow_in_progress(client)
        for identity in client.devices.warnings:
            if f"identity:{identity.user_id}" in self._later:
                continue
            text = Text("⚠ ", style=Style(bold=True))
            text.append(f"The identity of {clean_line(identity.user_id)} changed")
            text.append(" since you verified it." if identity.verification_violation else ".")
            return BarItem(
                f"identity:{identity.user_id}",
                text,
                (
                    ("verify_user", "Verify again", "primary"),
                    ("acknowledge", "Acknowledge", "default"),
                ),
            )
        state = client.cross_signing.state
        if state is not None and state.needs_verification and "session" not in self._later:
            text = Text("🔐 This session is not verified: ", style=Style(bold=True))
            text.append("your other sessions will not trust it, nor share their keys with it.")
            return BarItem(
                "session",
                text,
                (
                    ("verify_session", "Verify this session", "primary"),
                    ("later", "Later", "default"),
                ),
            )
        if state is not None and state.error and "error" not in self._later:
            return BarItem(
                "error",
                Text(clean_line(state.error, 200)),
                (("retry_bootstrap", "Retry", "primary"), ("later", "Later", "default")),
            )
        return self._flow_in_progress(client)

    def _flow_in_progress(self, client: MatrixClient) -> BarItem | None:
        from ..crypto.verification import VerificationState

        for flow in client.verification.active():
            if self._dialog(flow.id) is None and flow.state is not VerificationState.INCOMING:
                from .screens.verification import describe_other

                text = Text(
                    f"Verification with {describe_other(client.user_id, flow)} in progress."
                )
                return BarItem(
                    f"flow:{flow.id}",
                    text,
                    (("show", "Show", "primary"), ("cancel", "Cancel", "default")),
                )
        return None

    def refresh_bar(self) -> None:
        """Show the current most urgent item in the bars of the chat and devices screens."""
        chat = chat_screen_of(self.app)
        for screen in self.app.screen_stack:
            devices = isinstance(screen, DevicesView)
            if not screen.is_mounted or not (devices or screen is chat):
                continue
            item = self.bar_item(verifications_only=devices)
            for bar in screen.query(SecurityBar):
                bar.show_item(item)

    def bar_action(self, action: str, key: str) -> None:
        """A button of the bar was pressed."""
        client = self.client
        if client is None:
            return
        kind, _, subject = key.partition(":")
        if kind in ("incoming", "flow"):
            flow = client.verification.get(subject)
            if flow is None:
                self.refresh_bar()
                return
            if action == "accept":
                self.show_dialog(flow, focus=True)
                self._run(client.verification.accept(flow.id))
            elif action in ("decline", "cancel"):
                self._run(client.verification.cancel(flow.id))
            elif action == "show":
                self.show_dialog(flow, focus=True)
        elif kind == "identity":
            if action == "verify_user":
                self.verify_user(subject)
            elif action == "acknowledge":
                self.acknowledge(subject)
        elif action == "verify_session":
            self.verify_this_session()
        elif action == "retry_bootstrap":
            self._run(client.cross_signing.check(bootstrap=True))
        elif action == "later":
            self._later.add(key)
        self.refresh_bar()

    # -- starting things --------------------------------------------------------------------

    def _run(self, work: Awaitable[Any], done: Callable[[Any], None] | None = None) -> None:
        async def run() -> None:
            try:
                result = await work
            except Exception as error:  # the engine's messages say why
                self.app.notify(
                    clean_line(f"Verification: {error}", 300),
                    severity="error",
                    markup=False,
                    timeout=8,
                )
                return
            if done is not None:
                done(result)
            self.refresh_bar()

        self.app.run_worker(run(), group="security", exit_on_error=False)

    def verify_user(self, user_id: str, room_id: str | None = None) -> None:
        """Verify a user (in our DM with them; our own user: our other sessions)."""
        if self.client is not None:
            self._run(self.client.verification.verify_user(user_id.strip(), room_id))

    def verify_device(self, user_id: str, device_id: str) -> None:
        """Verify one device (ours: this session asks it)."""
        if self.client is not None:
            self._run(self.client.verification.verify_device(user_id, device_id))

    def verify_this_session(self) -> None:
        """Ask our other sessions to verify this one."""
        if self.client is not None:
            self._run(self.client.cross_signing.verify_this_session())

    def acknowledge(self, user_id: str) -> None:
        """Accept that a user's identity changed."""
        if self.client is not None:
            self._run(self.client.devices.acknowledge(user_id))

    def answer_next(self) -> None:
        """Open the oldest waiting request."""
        client = self.client
        waiting = client.verification.incoming() if client is not None else []
        if not waiting:
            self.app.notify("No verification request is waiting.", markup=False)
            return
        self.show_dialog(waiting[0], focus=True)

    def show_devices(self, user_id: str | None = None) -> None:
        """The devices screen (ours, or ``user_id``'s)."""
        client = self.client
        if client is None:
            return
        from .screens.devices import DevicesScreen

        if isinstance(self.app.screen, DevicesScreen) and self.app.screen.user_id == (
            user_id or client.user_id
        ):
            return
        self.app.push_screen(DevicesScreen(client, user_id))

    def ask_and_verify_user(self) -> None:
        """Ask whom to verify, then verify them."""
        from .screens.dialogs import PromptDialog

        self.app.push_screen(
            PromptDialog("Verify a user", "@name:server"),
            lambda user: self.verify_user(user) if user else None,
        )

    def toggle_key_sharing(self) -> None:
        """Share room keys with every device, or only with verified ones."""
        client = self.client
        if client is None:
            return
        value = not client.devices.only_verified

        async def run() -> None:
            await client.devices.set_only_verified(value)
            self.app.save_settings()
            self.app.notify(
                "Room keys now go only to verified devices."
                if value
                else "Room keys now go to every device in the room.",
                markup=False,
            )

        self.app.run_worker(run(), group="security", exit_on_error=False)

    # -- the command palette ------------------------------------------------------------------

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries."""
        client = self.client
        if client is None:
            return
        yield SystemCommand(
            "Devices and sessions",
            "Your sessions: verify, rename, sign out (F6)",
            self.show_devices,
        )
        yield SystemCommand(
            "Verify a user",
            "Compare emoji with someone, in your DM with them",
            self.ask_and_verify_user,
        )
        yield SystemCommand(
            "Verify this session",
            "Ask one of your other sessions to verify this one",
            self.verify_this_session,
        )
        if client.verification.incoming():
            yield SystemCommand(
                "Answer verification request", "Open the oldest waiting request", self.answer_next
            )
        sharing = "only verified devices" if client.devices.only_verified else "every device"
        yield SystemCommand(
            "Key sharing: only verified devices",
            f"Share room keys only with verified devices (now: {sharing})",
            self.toggle_key_sharing,
        )
        chat = chat_screen_of(self.app)
        summary = (
            client.rooms.get(chat.current_room) if chat is not None and chat.current_room else None
        )
        if summary is not None and summary.is_dm and summary.dm_user:
            user = summary.dm_user
            # Palette titles are read as markup: a user ID may hold brackets (historical IDs).
            shown = escape_markup(clean_line(user, 200))
            yield SystemCommand(
                f"Verify {shown}",
                "Compare emoji in this direct chat",
                partial(self.verify_user, user, summary.room_id),
            )
            yield SystemCommand(
                f"Devices of {shown}",
                "Their devices and identity",
                partial(self.show_devices, user),
            )
