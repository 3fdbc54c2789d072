"""The Textual application: login or restore, then the chat screen, fed by the engine."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import App, SystemCommand
from textual.screen import Screen

from ..config import Config, themes_dir, write_setting
from ..engine import gc_policy
from ..engine.cache_key import CacheKeyError, set_aside_unreadable_cache
from ..engine.client import CACHE_FILE, SESSION_FILE, MatrixClient
from ..engine.encryption import configure_backend
from ..engine.paths import profile_dir
from ..engine.settings import account_values, apply_config
from ..engine.storage import StorageUnavailable
from ..engine.updates import (
    BackupStatus,
    CacheDamageFound,
    CryptoStoreUpgrade,
    KeyRestoreProgress,
    RecoverySuggested,
    RoomListChanged,
    SessionEnded,
    SyncStatus,
    Update,
)
from ..net.http import configure_http2
from ..protocol.ids import InvalidIdentifier
from ..protocol.sanitize import clean_line
from . import notify, strip_cycles
from .accounts import Account, AccountManager
from .after_paint import after_paint
from .app_interface import ClientApp
from .bindings import APP_BINDINGS
from .graphics import detect, graphics, set_graphics
from .join_flow import JoinFlow
from .keymap import KeySettings, load_key_settings
from .messages import EngineUpdates, UpdateBatch
from .palette import RoomsProvider, room_commands
from .screens.chat import ChatScreen, chat_screen_of
from .screens.follows import FollowsUpdates
from .security_flow import SecurityFlow
from .themes import DEFAULT_THEME, builtin_themes, honour_no_color, load_themes
from .update_routes import UpdateRoutes, coalesce
from .when import TimeStyle, set_time_style
from .widgets.account_bar import AccountBar

if TYPE_CHECKING:
    from ..protocol.directory import PublicRoom
    from .screens.login import LoginScreen

log = logging.getLogger(__name__)


class TuiClientApp(ClientApp):
    """tui_client."""

    CSS_PATH = "app.tcss"
    TITLE = "tui_client"
    # Below 100 columns the side panels narrow, so an 80-column terminal keeps a readable timeline.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-normal")]
    COMMANDS = App.COMMANDS | {RoomsProvider}
    BINDINGS = APP_BINDINGS

    def __init__(
        self,
        *,
        profile: str = "default",
        base_dir: Path | None = None,
        client: MatrixClient | None = None,
        transport: Any = None,
        start_sync: bool = True,
        homeserver: str = "",
        user_id: str = "",
        config: Config | None = None,
    ) -> None:
        super().__init__()
        strip_cycles.install()
        self.profile = profile
        self.base_dir = base_dir
        self.client = client
        self.transport = transport
        self.start_sync = start_sync
        self._homeserver = homeserver
        self._user_id = user_id
        self._unsubscribe: Any = None
        self.join_flow: JoinFlow = JoinFlow(self)
        self.security: SecurityFlow = SecurityFlow(self)
        self.notifier = notify.attach(self)
        #: Every account in the window (ui/accounts.py); ``client`` is the one in front.
        self.accounts = AccountManager(self)
        self._app_routes = (
            UpdateRoutes()
            .on(RoomListChanged, lambda _update: self.accounts.refresh())
            .on(SessionEnded, self._session_ended)
            .on(CacheDamageFound, self._offer_rebuild)
        )
        if self.no_color:
            honour_no_color(self._filters)
        self._apply_config(config or Config())

    def _apply_config(self, config: Config) -> None:
        """Themes, the theme chosen and the time style; the file's problems are kept for a toast."""
        self.config = config
        self.config_problems = [str(problem) for problem in config.problems]
        set_time_style(
            TimeStyle.from_settings(config.time_format, config.date_format, config.relative_days)
        )
        for theme in builtin_themes():
            self.register_theme(theme)
        if config.path is not None:
            themes, refused = load_themes(themes_dir(config.path))
            for theme in themes:
                self.register_theme(theme)
            self.config_problems += [str(problem) for problem in refused]
        if config.theme in self.available_themes:
            self.theme = config.theme
        else:
            self.config_problems.append(
                f"Theme {config.theme!r} not found (built in: tui-dark, tui-light, tui-high-contrast, "
                f"or a JSON file in {themes_dir(config.path) if config.path else 'the themes folder'}); using {DEFAULT_THEME}"
            )
            self.theme = DEFAULT_THEME
        self._saved_settings: dict[str, Any] = {"theme": self.theme}
        self._last_input = time.monotonic()

    def save_settings(self) -> None:
        """Write the settings changed in the client (theme, account toggles) back to the config file."""
        path = self.config.path
        if path is None:
            return
        now: dict[str, Any] = {"theme": self.theme}
        if self.client is not None:
            now.update(account_values(self.client))
        for name, value in now.items():
            if self._saved_settings.get(name) == value:
                continue
            try:
                write_setting(path, name, value)
            except (OSError, ValueError) as error:
                self.notify(
                    f"Could not save the setting to {path}: {error}", severity="error", markup=False
                )
                return
            self._saved_settings[name] = value

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        # Full collections are held back while the user types or pages (gc_policy).
        gc_policy.collect_when_idle(time.monotonic() - self._last_input)

    async def on_mount(self) -> None:
        gc_policy.configure()
        self.set_interval(gc_policy.IDLE_SECONDS / 2, self._collect_when_idle, name="idle gc")
        self._apply_key_settings()
        for problem in self.config_problems:
            self.notify(problem, title="Config", severity="warning", timeout=15, markup=False)
        self.theme_changed_signal.subscribe(self, lambda _theme: self.save_settings())
        if self.client is None:
            try:
                self.client = MatrixClient.restore(
                    profile=self.profile, base_dir=self.base_dir, transport=self.transport
                )
            except CacheKeyError as error:
                log.warning("the cache does not open: %s", error)
                self._offer_fresh_login(str(error))
                return
            except StorageUnavailable as error:
                # Not a reason to log in again (a new device): say it and leave.
                log.error("the cache cannot be opened: %s", error)
                self.exit(
                    return_code=1,
                    message=f"tui_client cannot open its cache: {error}. Free some space (or make the data "
                    "folder writable) and start it again; nothing was lost.",
                )
                return
            except Exception as error:
                log.exception("could not restore the session")
                self.notify(
                    f"Could not restore the saved session: {error}", severity="error", markup=False
                )
        if self.client is not None:
            await self._start(self.client)
        # The accounts added to this window before (each in its own folder and mode).
        if not await self.accounts.restore_others() and self.client is None:
            self._show_login()

    #: The key bindings in force (the config's [keys]); set when the app starts.
    key_settings: KeySettings | None = None

    def _apply_key_settings(self) -> None:
        """The config's [keys]: rebind (Textual's keymap, by binding id), the vim switch,
        and a toast naming what is wrong (unknown actions, two actions on one key)."""
        config = getattr(self, "config", None)
        self.key_settings = load_key_settings(
            config if config is not None and config.path is not None else None
        )
        self.set_keymap(self.key_settings.keymap)
        if self.key_settings.problems:
            self.notify(
                "\n".join(self.key_settings.problems),
                title="Key bindings",
                severity="warning",
                timeout=20,
                markup=False,
            )

    def _offer_fresh_login(self, reason: str) -> None:
        """The cache does not open with this device's key: offer a fresh login, or quit untouched."""
        from .screens.dialogs import ConfirmDialog

        saved = MatrixClient.saved_session(self.profile, self.base_dir)
        reason = clean_line(reason, 200)
        question = (
            f"{reason[:1].upper()}{reason[1:]}.\n\nLog in again on a new cache? The unreadable cache is "
            "kept aside, not deleted. This device's encryption keys are in it: after logging in, "
            "press F7 and restore your keys from your recovery key. Cancel quits and changes nothing."
        )

        def answer(fresh: bool | None) -> None:
            if not fresh:
                self.exit(message=f"{reason}. Nothing was changed.")
                return
            folder = profile_dir(self.profile, self.base_dir)
            aside = set_aside_unreadable_cache(folder, CACHE_FILE, SESSION_FILE)
            if saved is not None:
                self._homeserver = self._homeserver or saved.homeserver
            where = f" The unreadable cache is now {aside.name}." if aside else ""
            self._show_login(
                f"Log in again to start a new cache.{where} Then press F7 to restore your keys "
                "from your recovery key.",
                user_id=saved.user_id if saved else "",
            )

        self.push_screen(ConfirmDialog(question, "Log in again"), answer)

    def _show_login(self, message: str = "", user_id: str = "") -> None:
        from .screens.login import LoginScreen

        saved = MatrixClient.saved_session(self.profile, self.base_dir)
        self.push_screen(
            LoginScreen(
                profile=self.profile,
                base_dir=self.base_dir,
                transport=self.transport,
                user_id=user_id or self._user_id or (saved.user_id if saved else ""),
                homeserver=self._homeserver or (saved.homeserver if saved else ""),
                message=message,
            )
        )

    async def _start(self, client: MatrixClient) -> None:
        self.client = client
        # Handled as they come, not queued (the machine's store upgrade, over the chat screen).
        opening = UpdateRoutes().on(CryptoStoreUpgrade, self._show_upgrade)

        batch = UpdateBatch(self, client)

        def forward(update: Update) -> None:
            if not opening.dispatch(update):
                batch(update)

        self._unsubscribe = client.subscribe(forward)
        # The room list from the cache first; the machine after the first paint (issue 13).
        await client.open_cache()
        chat = ChatScreen(client)
        await self.push_screen(chat)
        self.accounts.started(client, chat, self._unsubscribe)
        # Named widths only: the stylesheet's narrow layout stays for the rest.
        for selector, setting in (("#rooms", "room_list_width"), ("#members", "member_list_width")):
            if self.config.names(setting):
                for widget in chat.query(selector):
                    widget.styles.width = getattr(self.config, setting)
        self.security.attach(chat)
        # The room list and the screens are long-lived: out of the collector's sight.
        # (after_paint: the damage offer may come and go before the first refresh.)
        after_paint(chat, gc_policy.settle)
        after_paint(chat, lambda: self.run_worker(self._open_services(client), exit_on_error=False))

    async def _open_services(self, client: MatrixClient) -> None:
        """After the first paint: the machine, the config's account settings (the file is the
        source of truth for those it names), sync."""
        try:
            await client.open_services()
            if not client.closed:
                await apply_config(client, self.config)
        except Exception as error:  # in a worker: unsaid, the client would just never sync
            if client.closed:
                return  # closed meanwhile (a rebuild from the damage dialog): a new one took over
            log.exception("the account could not finish opening")
            self.notify(
                f"Could not finish opening the account: {clean_line(str(error), 300)}. "
                "Messages are not synced or sent; start tui_client again.",
                severity="error",
                timeout=30,
                markup=False,
            )
            return
        if client.closed:  # rebuilt or logged out while it opened: a new client took over
            return
        self._saved_settings.update(account_values(client))
        self.security.refresh_bar()
        # Loaded on a thread (the damage and recovery dialogs: ~45 ms of imports): on the
        # UI loop it was the longest frame of a first start, with the first sync streaming in.
        await asyncio.to_thread(importlib.import_module, f"{__package__}.cache_damage")
        from . import cache_damage

        cache_damage.after_open(self, client)
        if self.start_sync:
            client.start()

    def _offer_rebuild(self, update: CacheDamageFound) -> None:
        from . import cache_damage

        cache_damage.offer_rebuild(self, update)

    def _show_upgrade(self, update: CryptoStoreUpgrade) -> None:
        from .screens.store_upgrade import show_upgrade

        show_upgrade(self, update)

    async def on_login_screen_logged_in(self, message: LoginScreen.LoggedIn) -> None:
        await self.pop_screen()
        await self._start(message.client)

    def on_engine_updates(self, message: EngineUpdates) -> None:
        """What the engine published since the last frame, superseded updates dropped."""
        source = message.batch.source
        account = self.accounts.of(source)  # (once a batch: a first sync brings 1,000+)
        for update in coalesce(message.batch.take()):
            self._apply_update(update, source, account)

    def _apply_update(self, update: Update, source: object, account: Account | None) -> None:
        if not self.is_running:
            return  # shutting down: the screens are being taken apart
        if source is not self.client:  # (or no longer: an update of the batch ended it)
            account = self.accounts.of(source)
            if account is not None:
                self.accounts.background_update(account, update)
                return
            if source is not None:
                return  # a closed account's last words
        screen = self.chat_screen
        # A chat screen not mounted yet reads the client's state when it mounts.
        if screen is not None and screen.is_mounted:
            screen.handle_update(update)
        # The directory and space views follow memberships and join progress too.
        for other in self.screen_stack:
            if isinstance(other, FollowsUpdates) and other.is_mounted:
                other.handle_update(update)
        self.security.handle(update)
        (account.notifier if account is not None else self.notifier).handle(update)
        if isinstance(update, KeyRestoreProgress | BackupStatus | RecoverySuggested):
            from .screens import recovery

            recovery.handle_update(self, self.client, update)
        self._app_routes.dispatch(update)

    def account_count(self) -> int:
        """How many accounts the window holds."""
        return len(self.accounts.accounts)

    @property
    def chat_screen(self) -> ChatScreen | None:
        """The chat screen, if it is on the stack."""
        return chat_screen_of(self)

    def _session_ended(self, update: SessionEnded) -> None:
        from .screens.dialogs import PromptDialog

        client = self.client
        if client is None or update.by_user:
            return  # a logout asked for here already shows the login screen
        # An OAuth session has no password to ask for: its login screen signs in again.
        if update.soft and client.oauth is None:
            self.push_screen(
                # No toast over it: an error said meanwhile would hide its buttons at 80x24.
                PromptDialog(
                    f"{update.message} Password for {client.user_id}:",
                    password=True,
                    uncovered=True,
                ),
                self._relogin,
            )
        else:
            self.run_worker(self._drop_client(update.message), exit_on_error=False)

    def _relogin(self, password: str | None) -> None:
        client = self.client
        if client is None or not password:
            return

        async def relogin() -> None:
            # In the account's own folder (the main one, or its slot's).
            profile, base_dir = self.accounts.location_of(client)
            mode = self.current_mode
            await self._drop_client("")
            try:
                fresh = await MatrixClient.login(
                    client.user_id,
                    password,
                    homeserver=client.info.homeserver,
                    profile=profile,
                    base_dir=base_dir,
                    transport=self.transport,
                )
            except Exception as error:
                from .screens.login import explain_login_failure

                problem = explain_login_failure(
                    error, user_id=client.user_id, homeserver=client.info.homeserver
                )
                if await self.accounts.leave_for_another(mode):
                    # The login screen is the main folder's: another account may be in it.
                    self.notify(
                        problem.text,
                        title=clean_line(client.user_id, 100),
                        severity="error",
                        markup=False,
                    )
                    return
                self._show_login(problem.text, client.user_id)
                return
            await self._start(fresh)

        self.run_worker(relogin(), exit_on_error=False)

    async def _drop_client(self, message: str) -> None:
        client = self.client
        self.client = None
        if self._unsubscribe:
            self._unsubscribe()
        if client is not None:
            self.accounts.ended(client, forget=bool(message))
            await client.close()
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        if message:
            if await self.accounts.leave_for_another(self.current_mode):
                user = clean_line(client.user_id, 100) if client is not None else ""
                self.notify(
                    f"{clean_line(message, 200)} F9, then a, to log in to it again.",
                    title=user,
                    severity="error",
                    markup=False,
                )
                return
            self._show_login(message)

    def open_room(self, room_id: str) -> None:
        """Open a room in the chat screen."""
        screen = self.chat_screen
        if screen is not None:
            screen.open_room(room_id)

    # -- the directory, spaces, previews (screens pushed over the chat) ------------------

    def show_room(self, room_id: str) -> None:
        """Back to the chat screen, showing ``room_id``."""
        chat = self.chat_screen
        if chat is None:
            return
        while self.screen is not chat and len(self.screen_stack) > 1:
            self.pop_screen()
        chat.open_room(room_id)

    def open_directory(self, servers: str = "") -> None:
        """The room directory (of ``servers``, comma-separated; ours by default)."""
        if self.client is None:
            return
        from ..engine.directory import parse_server_list
        from .screens.directory import DirectoryScreen

        try:
            parse_server_list(servers)
        except InvalidIdentifier as error:
            self.notify(str(error), severity="error", markup=False)
            return
        self.push_screen(DirectoryScreen(self.client, servers=servers))

    def show_space(self, space_id: str, via: Sequence[str] = ()) -> None:
        """The space view of ``space_id`` (joined or not)."""
        from .screens.space import SpaceScreen

        if self.client is not None:
            self.push_screen(SpaceScreen(self.client, space_id, via=via))

    def preview_room(
        self, target: str, via: Sequence[str] = (), known: PublicRoom | None = None
    ) -> None:
        """Preview a room, then join, open or explore it as the user chooses."""
        client = self.client
        if client is None:
            return

        def chosen(choice: str | None) -> None:
            room_id = known.room_id if known is not None else target
            if choice == "join":
                label = known.display_name if known is not None else ""
                self.join_flow.join(
                    target, via, label=label, open_after=not (known is not None and known.is_space)
                )
            elif choice == "open":
                self.show_room(room_id)
            elif choice == "space":
                self.show_space(room_id, via)
            elif choice == "knock":
                self.run_worker(self._knock(target, tuple(via)), exit_on_error=False)

        from .screens.room_preview import RoomPreviewScreen

        self.push_screen(RoomPreviewScreen(client, target, via, known), chosen)

    async def _knock(self, target: str, via: tuple[str, ...]) -> None:
        if self.client is None:
            return
        try:
            await self.client.admin.knock(target, via)
        except Exception as error:
            self.notify(f"Could not ask to join: {error}", severity="error", markup=False)
            return
        self.notify("Asked to join; you will be invited if someone lets you in.", markup=False)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from . import cache_damage, notification_commands
        from .pictures import media_commands
        from .screens import recovery
        from .url_previews import url_preview_commands

        yield from super().get_system_commands(screen)
        if self.chat_screen is None:
            return
        chat = self.chat_screen
        yield from room_commands(chat)
        yield from self.security.commands()
        yield from recovery.commands(self, chat.client)
        yield from notification_commands.commands(self, chat.client, chat.current_room)
        yield from notify.commands(self, chat.client)
        typing = "on" if chat.client.typing.enabled else "off"
        yield SystemCommand(
            "Typing notices",
            f"Let others see when you are writing to them (now: {typing})",
            self.action_toggle_typing,
        )
        yield SystemCommand(
            "Toggle member list", "Show or hide the members (F2)", chat.action_toggle_members
        )
        yield SystemCommand(
            "Threads",
            "The room's threads, all or yours; Enter opens one (Ctrl+T)",
            chat.action_thread_list,
        )
        yield SystemCommand(
            "Mark room as read", "Send a read receipt for the latest message", chat.action_mark_read
        )
        yield SystemCommand(
            "Mark all rooms as read",
            "Every room with unread messages, up to its latest",
            chat.action_mark_all_read,
        )
        private = "on" if chat.client.receipts.private else "off"
        yield SystemCommand(
            "Private read receipts",
            f"Others do not see what you have read (now: {private})",
            self.action_toggle_private_receipts,
        )
        presence = "on" if chat.client.presence.enabled else "off"
        yield SystemCommand(
            "Share presence",
            f"Online while the terminal has focus, away otherwise (now: {presence})",
            self.action_toggle_presence,
        )
        yield from media_commands(self, chat.client)
        yield from cache_damage.commands(self, chat.client)
        yield from url_preview_commands(self, chat.client)
        yield SystemCommand("Help", "Keys and commands (F1)", chat.action_help)
        yield SystemCommand(
            "Retry sync now", "Skip the wait after a connection problem", self.action_retry_sync
        )
        sliding = "allowed" if chat.client.sliding_sync_allowed else "off: /sync v2"
        yield SystemCommand(
            "Sliding sync",
            f"Use sliding sync where the server offers it (now: {sliding}; running: {chat.client.sync_mode})",
            self.action_toggle_sliding_sync,
        )
        yield from self.accounts.commands()
        if chat.client.account_page() is not None:
            for label, action, help_text in (
                (
                    "Account page",
                    None,
                    "Your account on the server's sign-in service, in the browser",
                ),
                ("Account page: sessions", "sessions", "Your signed-in devices, in the browser"),
                (
                    "Account page: profile",
                    "profile",
                    "Name, avatar and contact details, in the browser",
                ),
            ):
                yield SystemCommand(label, help_text, partial(self.open_account_page, action))
        yield SystemCommand(
            "Log out", "End this session on the server and remove local data", self.action_logout
        )

    async def open_account_page(self, action: str | None) -> None:
        """Open the account management page (OAuth servers) for ``action`` in the browser."""
        url = self.client.account_page(action) if self.client is not None else None
        if url is None:
            return
        from ..engine.opener import HandlerError, open_with_handler

        try:
            await open_with_handler(url)
        except HandlerError as error:
            self.notify(
                f"Cannot open a browser ({error}). Open {url}",
                severity="warning",
                markup=False,
                timeout=30,
            )
            return
        self.notify(f"Opened {url}", markup=False)

    async def action_toggle_typing(self) -> None:
        """Turn typing notices on or off."""
        if self.client is None:
            return
        value = not self.client.typing.enabled
        await self.client.typing.set_enabled(value)
        self.save_settings()
        self.notify(
            "Others now see when you are typing." if value else "Typing notices are off.",
            markup=False,
        )

    async def action_toggle_sliding_sync(self) -> None:
        """Allow sliding sync where offered, or force /sync v2 (the cache is kept)."""
        if self.client is None:
            return
        await self.client.set_sliding_sync(not self.client.sliding_sync_allowed)
        self.notify(f"Sync now runs as {self.client.sync_mode}.", markup=False)

    async def action_toggle_private_receipts(self) -> None:
        """Send private read receipts (m.read.private), or public ones."""
        if self.client is None:
            return
        value = not self.client.receipts.private
        await self.client.receipts.set_private(value)
        self.save_settings()
        self.notify(
            "Read receipts are private now." if value else "Others now see what you have read.",
            markup=False,
        )

    async def action_toggle_presence(self) -> None:
        """Share our presence from the terminal's focus, or not."""
        if self.client is None:
            return
        value = not self.client.presence.enabled
        await self.client.presence.set_enabled(value)
        self.save_settings()
        self.notify(
            "Others see when you are here or away."
            if value
            else "Presence follows only whether you are connected.",
            markup=False,
        )

    def action_help_quit(self) -> None:
        """Ctrl+C with nothing selected to copy: say how to quit, in words that fit a toast."""
        self.notify(
            "Press Ctrl+Q to quit. (Ctrl+C copies selected text.)",
            title="Do you want to quit?",
            markup=False,
        )

    def action_encryption_health(self) -> None:
        """F7: encryption health, recovery and the key backup."""
        if self.client is not None and self.chat_screen is not None:
            from .screens import recovery

            recovery.show_health(self, self.client)

    def action_devices(self) -> None:
        """F6: our sessions and devices."""
        self.security.show_devices()

    def action_retry_sync(self) -> None:
        """Cut a backoff short."""
        if self.client is not None and self.client.sync_loop is not None:
            self.client.sync_loop.retry_now()

    def action_logout(self) -> None:
        """Log out after confirmation."""

        from .screens.dialogs import ConfirmDialog

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._logout(), exit_on_error=False)

        self.push_screen(
            ConfirmDialog(
                "Log out? This ends the session on the server and deletes local data.",
                "Log out",
                danger=True,
            ),
            confirmed,
        )

    async def _logout(self) -> None:
        client = self.client
        if client is None:
            return
        self.client = None
        if self._unsubscribe:
            self._unsubscribe()
        user_id = client.user_id
        self.accounts.ended(client, forget=True)
        await client.logout()
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        if await self.accounts.leave_for_another(self.current_mode):
            self.notify(f"Logged out of {clean_line(user_id, 100)}.", markup=False)
            return
        self._show_login("Logged out.", user_id)

    async def on_unmount(self) -> None:
        graphics().forget(self)  # the kitty images this run sent
        clients = [account.client for account in self.accounts.accounts]
        if self.client is not None and self.client not in clients:
            clients.append(self.client)
        for client in clients:
            await client.close()

    def action_accounts(self) -> None:
        """F9: the accounts in this window (switch, or add one)."""
        self.accounts.show_switcher()

    def on_account_bar_account_chosen(self, message: AccountBar.AccountChosen) -> None:
        self.accounts.switch_slot(message.slot)

    def post_display_hook(self) -> None:
        """After each frame: the viewer's sixel or iTerm2 picture over its cells."""
        graphics().after_frame(self)

    @property
    def is_connected(self) -> bool:
        """True when sync is connected (for tests)."""
        return self.client is not None and self.client.sync_state.status is SyncStatus.CONNECTED


def run_app(
    profile: str = "default",
    base_dir: Path | None = None,
    homeserver: str = "",
    user_id: str = "",
    config: Config | None = None,
) -> None:
    """Run the client (restoring the profile's saved session, or showing the login)."""
    # Before Textual takes the terminal: ask it how it draws pictures.
    set_graphics(detect(config.image_protocol if config is not None else "auto"))
    # The config's encryption library, for every account this run opens (the
    # environment's TUI_CLIENT_CRYPTO_BACKEND wins over it).
    configure_backend(config.crypto_backend if config is not None else None)
    # HTTP/2 over HTTPS, unless the config file turns it off (TUI_CLIENT_HTTP2 wins).
    configure_http2(config.http2 if config is not None else None)
    TuiClientApp(
        profile=profile, base_dir=base_dir, homeserver=homeserver, user_id=user_id, config=config
    ).run()
