"""Several accounts in one window: each with its own engine, screens and notifier.

Every account is a :class:`MatrixClient` (its own cache, keys, sync loop and send queue,
all running at once) shown in a Textual *mode* of its own: its chat screen and whatever
the user opened over it stay as they were while another account is in front. The first
account lives in the app's default mode, as a single account always did; each added one
gets a mode named after its slot (:mod:`tui_client.engine.accounts`).

The engine's updates carry the client they came from; the app hands each update only to
that account's screens and notifier. An account in the background shows nothing in
front: its chat screen is marked ``background`` (no toasts of its own, nothing marked
read), and what it has to say reaches the user as a toast naming the account, its
unread count in the account list (the sidebar, above the spaces, and F9), and its
notifier (bell or desktop notification, by that account's own settings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ..engine.accounts import MAIN, AccountList, load_accounts, save_accounts, slot_location
from ..engine.client import MatrixClient
from ..engine.paths import profile_dir
from ..engine.updates import CacheDamageFound, Notice, SessionEnded, Update, VerificationChanged
from ..protocol.sanitize import clean_line
from . import notify
from .update_routes import UpdateRoutes
from .widgets.account_bar import AccountBar, AccountEntry, account_row
from .widgets.room_list import visible_rooms

if TYPE_CHECKING:
    from .app_interface import ClientApp
    from .screens.chat import ChatScreen

log = logging.getLogger(__name__)

#: What the switcher answers for "Add account".
ADD = "+add"


def unread_of(client: MatrixClient) -> tuple[int, int]:
    """``(notifications, highlights)`` of an account: its joined rooms' counts, an invite
    counting as one notification (what its room list shows)."""
    notifications = highlights = 0
    for room in visible_rooms(client.rooms.values(), hidden=client.notifications.hides_room):
        if room.membership == "invite":
            notifications += 1
        elif room.membership == "join":
            notifications += room.notification_count
            highlights += room.highlight_count
    return notifications, highlights


@dataclass(eq=False)
class Account:
    """A logged-in account in the window."""

    slot: str
    client: MatrixClient
    mode: str
    unsubscribe: Callable[[], None]
    notifier: notify.Notifier
    chat: ChatScreen | None = None
    #: Damage found in its cache while it was behind: the rebuild is offered when it is
    #: brought to the front (once).
    damage_offer: CacheDamageFound | None = None

    def entry(self, active: bool) -> AccountEntry:
        """As listed."""
        notifications, highlights = unread_of(self.client)
        return AccountEntry(
            self.slot,
            self.client.user_id,
            self.client.info.homeserver,
            notifications,
            highlights,
            active,
            damaged=self.client.damage.reason is not None,
        )


class AccountSwitcher(ModalScreen[str | None]):
    """F9: the accounts in this window, with their unread counts; Enter or 1-9 switches,
    the last line adds an account."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", id="dialogs.cancel"),
        *(Binding(str(n), f"pick({n})", show=False) for n in range(1, 10)),
        Binding("a", "add", "Add account", show=False),
    ]

    def __init__(self, entries: Iterable[AccountEntry]) -> None:
        super().__init__()
        self._entries = tuple(entries)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog account-switcher"):
            yield Label("Accounts: Enter or 1-9 switches, a adds one", classes="dialog-title")
            yield OptionList(markup=False, id="account-list")

    def on_mount(self) -> None:
        options = []
        for n, entry in enumerate(self._entries, 1):
            row = account_row(n, entry, 40)
            if entry.damaged:  # before the homeserver: a narrow terminal cuts the end
                row.append("  cache damaged", style=Style(color="red"))
            row.append(f"  {clean_line(entry.homeserver, 60)}", style=Style(dim=True))
            if entry.active:
                row.append("  (shown)", style=Style(italic=True))
            options.append(Option(row, id=entry.slot))
        options.append(Option(Text("+ Add account…"), id=ADD))
        listing = self.query_one("#account-list", OptionList)
        listing.set_options(options)
        current = next((n for n, e in enumerate(self._entries) if e.active), 0)
        listing.highlighted = current
        listing.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_pick(self, number: int) -> None:
        """The account numbered ``number``."""
        if 0 < number <= len(self._entries):
            self.dismiss(self._entries[number - 1].slot)

    def action_add(self) -> None:
        """Log in to one more account."""
        self.dismiss(ADD)

    def action_cancel(self) -> None:
        """Close."""
        self.dismiss(None)


class AccountManager:
    """The accounts of the app's profile (see the module documentation)."""

    def __init__(self, app: ClientApp) -> None:
        self.app = app
        self.accounts: list[Account] = []
        self._listing: AccountList | None = None
        self._modes = 0

    # -- the list on disk ---------------------------------------------------------------

    @property
    def listing(self) -> AccountList:
        """The profile's account list (read once)."""
        if self._listing is None:
            self._listing = load_accounts(self.app.profile, self.app.base_dir)
        return self._listing

    def _save(self, listing: AccountList) -> None:
        self._listing = listing
        try:
            save_accounts(self.app.profile, self.app.base_dir, listing)
        except OSError as error:
            self.app.notify(
                f"Could not save the list of accounts: {error}", severity="error", markup=False
            )

    def slot_of(self, client: MatrixClient) -> str:
        """The slot whose folder ``client`` keeps its files in."""
        if client.folder == profile_dir(self.app.profile, self.app.base_dir):
            return MAIN
        return client.folder.name

    def location_of(self, client: MatrixClient) -> tuple[str, Path | None]:
        """``(profile, base_dir)`` of ``client``'s slot (to log in there again)."""
        return slot_location(self.app.profile, self.app.base_dir, self.slot_of(client))

    # -- who is who ---------------------------------------------------------------------

    def of(self, client: object) -> Account | None:
        """The account of ``client``."""
        return next((a for a in self.accounts if a.client is client), None)

    @property
    def active(self) -> Account | None:
        """The account in front."""
        return self.of(self.app.client)

    def others(self, client: MatrixClient | None) -> list[Account]:
        """Every account but ``client``'s."""
        return [a for a in self.accounts if a.client is not client]

    def entries(self) -> list[AccountEntry]:
        """The accounts as listed, in the order added."""
        order = {slot: n for n, slot in enumerate(self.listing.slots)}
        ranked = sorted(self.accounts, key=lambda a: order.get(a.slot, len(order)))
        return [a.entry(a.client is self.app.client) for a in ranked]

    # -- starting and ending ------------------------------------------------------------

    def started(
        self, client: MatrixClient, chat: ChatScreen, unsubscribe: Callable[[], None]
    ) -> Account:
        """``client`` was started in the current mode, shown by ``chat``."""
        old = self.of(client)
        if old is not None:
            self.accounts.remove(old)
        account = Account(
            slot=self.slot_of(client),
            client=client,
            mode=self.app.current_mode,
            unsubscribe=unsubscribe,
            notifier=notify.attach(self.app, client),
            chat=chat,
        )
        self.accounts.append(account)
        # The account started is in front: every other one keeps quiet.
        for other in self.accounts:
            if other.chat is not None:
                other.chat.background = other is not account
        if len(self.accounts) > 1 or account.slot != MAIN or self.listing.slots != (MAIN,):
            self._save(self.listing.adding(account.slot))
        self.refresh()
        return account

    def ended(self, client: MatrixClient, *, forget: bool) -> Account | None:
        """``client`` is closed or logged out; ``forget``: off the list for good."""
        account = self.of(client)
        if account is None:
            return None
        self.accounts.remove(account)
        account.unsubscribe()
        if forget and (account.slot != MAIN or len(self.listing.slots) > 1):
            self._save(self.listing.removing(account.slot))
        return account

    async def restore_others(self) -> bool:
        """Start the accounts added earlier (in their modes); True if any is running."""
        listing = self.listing
        for slot in listing.slots:
            if slot == MAIN or any(a.slot == slot for a in self.accounts):
                continue
            profile, base = slot_location(self.app.profile, self.app.base_dir, slot)
            try:
                client = MatrixClient.restore(
                    profile=profile, base_dir=base, transport=self.app.transport
                )
            except Exception as error:
                log.exception("could not restore the account in %s", slot)
                self.app.notify(
                    f"Could not restore an account ({slot}): {clean_line(str(error), 200)}",
                    severity="error",
                    markup=False,
                )
                continue
            if client is None:
                log.info("no session in %s any more", slot)
                continue
            await self.app.switch_mode(self.new_mode())
            await self.app._start(client)
        wanted = next((a for a in self.accounts if a.slot == listing.active), None)
        if wanted is not None and wanted.client is not self.app.client:
            await self.switch_to(wanted)
        return bool(self.accounts)

    def new_mode(self) -> str:
        """A fresh mode (an empty screen stack) for one more account."""
        self._modes += 1
        name = f"account-{self._modes}"
        self.app.add_mode(name, Screen)
        return name

    # -- switching ----------------------------------------------------------------------

    async def switch_to(self, account: Account) -> None:
        """Bring ``account`` to the front."""
        app = self.app
        app.client = account.client
        app._unsubscribe = account.unsubscribe
        for other in self.accounts:
            if other.chat is not None:
                other.chat.background = other is not account
        if app.current_mode != account.mode:
            # Textual lists only added modes as ones to switch to; the default one has its
            # stack already (the first account's screens).
            app._modes.setdefault("_default", Screen)
            await app.switch_mode(account.mode)
        app.security.refresh_bar()
        self._save(self.listing.in_front(account.slot))
        self.refresh()
        offer, account.damage_offer = account.damage_offer, None
        if offer is not None and account.client.damage.reason is not None:
            from . import cache_damage

            cache_damage.offer_rebuild(app, offer)

    def switch_slot(self, slot: str) -> None:
        """Bring the account in ``slot`` to the front (from the switcher or the sidebar)."""
        account = next((a for a in self.accounts if a.slot == slot), None)
        if account is not None and account.client is not self.app.client:
            self.app.run_worker(self.switch_to(account), exit_on_error=False)

    async def leave_for_another(self, gone_mode: str) -> bool:
        """An account in ``gone_mode`` ended: show another one (True), if there is any."""
        if not self.accounts:
            return False
        await self.switch_to(self.accounts[0])
        await self._drop_mode(gone_mode)
        return True

    async def _drop_mode(self, mode: str) -> None:
        """Take apart the screens of an ended account's mode (not the one in front)."""
        app = self.app
        if mode == app.current_mode:
            return
        if mode != "_default":
            await app.remove_mode(mode)
            return
        # The default mode cannot be removed: back to its empty base screen.
        stack = app._screen_stacks.get(mode, [])
        for screen in stack[1:]:
            await screen.remove()
        del stack[1:]

    def show_switcher(self) -> None:
        """F9: the account switcher (once an account is logged in; not over a login)."""
        from .screens.login import LoginScreen

        if not self.accounts or isinstance(self.app.screen, LoginScreen | AccountSwitcher):
            return

        def chosen(slot: str | None) -> None:
            if slot == ADD:
                self.add_account()
            elif slot is not None:
                self.switch_slot(slot)

        self.app.push_screen(AccountSwitcher(self.entries()), chosen)

    def add_account(self) -> None:
        """The login screen for one more account; a failure keeps the accounts open."""
        from .screens.add_account import AddAccountScreen

        app = self.app
        used = {a.slot for a in self.accounts}
        slot = self.listing.free_slot(app.profile, used)
        profile, base = slot_location(app.profile, app.base_dir, slot)

        def added(client: MatrixClient | None) -> None:
            if client is None:
                return
            if any(a.client.user_id == client.user_id for a in self.accounts):
                # (The login screen refuses this before asking the server; should it not.)
                app.run_worker(self._refuse_twice(client), exit_on_error=False)
                return
            app.run_worker(self._start_added(client), exit_on_error=False)

        app.push_screen(
            AddAccountScreen(
                open_ids=[a.client.user_id for a in self.accounts],
                profile=profile,
                base_dir=base,
                transport=app.transport,
            ),
            added,
        )

    async def _refuse_twice(self, client: MatrixClient) -> None:
        await client.logout()  # the device just made, on the server and here
        self.app.notify(
            f"{clean_line(client.user_id, 100)} is already open in this window (F9 switches to it).",
            severity="error",
            markup=False,
        )

    async def _start_added(self, client: MatrixClient) -> None:
        for other in self.accounts:
            if other.chat is not None:
                other.chat.background = True
        await self.app.switch_mode(self.new_mode())
        await self.app._start(client)
        self._save(self.listing.in_front(self.slot_of(client)))
        self.app.notify(
            f"Added {clean_line(client.user_id, 100)}. F9 switches between accounts.", markup=False
        )

    # -- updates --------------------------------------------------------------------------

    def background_update(self, account: Account, update: Update) -> None:
        """An update of an account not in front: to its own screens and notifier only."""
        chat = account.chat
        if chat is not None and chat.is_mounted:
            chat.handle_update(update)
        account.notifier.handle(update)
        UpdateRoutes().on(Notice, partial(self._background_notice, account)).on(
            VerificationChanged, partial(self._background_verification, account)
        ).on(SessionEnded, partial(self._background_session_ended, account)).on(
            CacheDamageFound, partial(self._background_damage, account)
        ).dispatch(update)
        self.refresh()

    def _background_damage(self, account: Account, update: CacheDamageFound) -> None:
        """Damage in the cache of an account behind: said naming it; the rebuild is offered
        when it comes to the front (F9), or from the palette."""
        account.damage_offer = update
        self.app.notify(
            f"This account's cache is damaged ({clean_line(update.reason, 160)}): nothing new "
            "is saved to it. F9 switches to it to rebuild it (or the palette: Rebuild the "
            "damaged cache of …).",
            title=clean_line(account.client.user_id, 100),
            severity="error",
            timeout=30,
            markup=False,
        )

    def _background_notice(self, account: Account, update: Notice) -> None:
        if update.level in ("warning", "error"):
            who = clean_line(account.client.user_id, 100)
            severity: Literal["warning", "error"] = (
                "error" if update.level == "error" else "warning"
            )
            self.app.notify(
                clean_line(update.text, 300), title=who, severity=severity, markup=False
            )

    def _background_verification(self, account: Account, update: VerificationChanged) -> None:
        from ..crypto.verification import VerificationState

        if update.verification.state is VerificationState.INCOMING:
            self.app.notify(
                "A verification request: F9 switches to this account to answer it.",
                title=clean_line(account.client.user_id, 100),
                markup=False,
            )

    def _background_session_ended(self, account: Account, update: SessionEnded) -> None:
        if not update.by_user:
            self.app.run_worker(self._background_ended(account, update), exit_on_error=False)

    async def _background_ended(self, account: Account, update: SessionEnded) -> None:
        if update.soft:
            # The password prompt is the front account's: bring this one forward for it.
            await self.switch_to(account)
            self.app._session_ended(update)
            return
        self.ended(account.client, forget=True)
        await account.client.close()
        await self._drop_mode(account.mode)
        self.app.notify(
            f"{clean_line(update.message, 200)} F9, then a, to log in to it again.",
            title=clean_line(account.client.user_id, 100),
            severity="error",
            markup=False,
        )
        self.refresh()

    def refresh(self) -> None:
        """Every account's sidebar list, with the latest counts."""
        entries = self.entries()
        for account in self.accounts:
            chat = account.chat
            if chat is None or not chat.is_mounted:
                continue
            for bar in chat.query(AccountBar):
                bar.show(entries)

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries: add an account, switch to each other one."""
        yield SystemCommand(
            "Add account", "Log in to one more account in this window (F9, a)", self.add_account
        )
        for entry in self.entries():
            if not entry.active:
                unread = f", {entry.notifications} unread" if entry.notifications else ""
                yield SystemCommand(
                    f"Switch to {clean_line(entry.user_id, 100)}",
                    f"Show this account (F9{unread})",
                    partial(self.switch_slot, entry.slot),
                )
            if entry.damaged and not entry.active:
                yield SystemCommand(
                    f"Rebuild the damaged cache of {clean_line(entry.user_id, 100)}",
                    "Show this account and rebuild its cache (keys and unsent messages kept)",
                    partial(self._rebuild_behind, entry.slot),
                )

    def _rebuild_behind(self, slot: str) -> None:
        account = next((a for a in self.accounts if a.slot == slot), None)
        if account is None:
            return

        async def run() -> None:
            from . import cache_damage

            account.damage_offer = None  # rebuilt now: no offer when it comes to the front
            await self.switch_to(account)
            await cache_damage.rebuild(self.app, account.client)

        self.app.run_worker(run(), group="rebuild-cache", exit_on_error=False)
