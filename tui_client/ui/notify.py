"""Telling the user of a notification when they are not looking: a desktop notification
by terminal escape (through SSH and tmux), over D-Bus when running locally, or the bell.

The engine publishes a :class:`~tui_client.engine.updates.PushNotification` for each live
event the push rules say to notify of. :class:`Notifier` acts on it only when the terminal
does not have focus or the event's room is not the one on screen, and as the user chose
(:class:`~tui_client.engine.alert_settings.AlertSettings`): nothing, the bell, or a
desktop notification. The escape is picked from what the environment says the terminal
is — OSC 777 (rxvt, foot, WezTerm, Ghostty), OSC 9 (iTerm2, Windows Terminal, ConEmu),
OSC 99 (kitty) — and wrapped for tmux's passthrough inside tmux; an unknown terminal gets
the bell. ``TUI_CLIENT_NOTIFY_ESCAPE`` (``osc777``, ``osc9``, ``osc99`` or ``bell``)
overrides the guess.

Titles and texts come from other people (room names, display names, messages): every
field is cleaned of escape sequences and control characters, loses the ``;`` that would
split the escape's fields, and is bounded, so nothing they write reaches the terminal
as anything but text. Escapes are written through Textual's driver, never ``print``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand

from ..engine.alert_settings import (
    MODE_BELL,
    MODE_DESKTOP,
    MODE_OFF,
    TEXT_ALWAYS,
    TEXT_NEVER,
    TEXT_UNENCRYPTED,
    AlertSettings,
)
from ..engine.client import MatrixClient
from ..engine.updates import PushNotification
from ..protocol.sanitize import clean_line
from .screens.chat import chat_screen_of

if TYPE_CHECKING:
    from .app_interface import ClientApp

__all__ = [
    "BELL",
    "OSC9",
    "OSC99",
    "OSC777",
    "Notifier",
    "attach",
    "build_escape",
    "clean_field",
    "commands",
    "desktop_text",
    "local_session_bus",
    "send_dbus_notification",
    "terminal_kind",
    "tmux_wrap",
]

log = logging.getLogger(__name__)

OSC777 = "osc777"
OSC9 = "osc9"
OSC99 = "osc99"
BELL = "bell"
KINDS = (OSC777, OSC9, OSC99, BELL)

ESC = "\x1b"
ST = ESC + "\\"
TITLE_LENGTH = 80
BODY_LENGTH = 200
#: At most this many notifications in :data:`BURST_WINDOW` seconds (a reconnection after
#: a long outage must not flood the desktop); the rest are left to the unread counts.
BURST = 5
BURST_WINDOW = 10.0

# Anything clean_line leaves that a terminal could still read as a control: C0, DEL, C1
# (ST is U+009C), and separators that would end the line.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_field(text: object, limit: int) -> str:
    """``text`` made safe as one field of an OSC string: no escape sequence, no control
    character, no ``;``; one line of at most ``limit`` characters."""
    cleaned = _CONTROLS.sub("", clean_line(text)).replace(";", ",")
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 1)] + "…"
    return cleaned


def _set(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name))


def terminal_kind(environ: Mapping[str, str]) -> str:
    """Which notification the terminal understands: ``osc777``, ``osc9``, ``osc99`` or
    ``bell`` (unknown), from the environment it gave us."""
    chosen = environ.get("TUI_CLIENT_NOTIFY_ESCAPE", "").strip().lower()
    if chosen in KINDS:
        return chosen
    term = environ.get("TERM", "").lower()
    program = environ.get("TERM_PROGRAM", "").lower()
    if _set(environ, "KITTY_WINDOW_ID") or term == "xterm-kitty":
        return OSC99
    if program == "iterm.app" or environ.get("LC_TERMINAL", "").lower() == "iterm2":
        return OSC9
    if program in ("wezterm", "ghostty") or term in ("wezterm", "xterm-ghostty"):
        return OSC777
    if _set(environ, "WEZTERM_PANE") or _set(environ, "GHOSTTY_RESOURCES_DIR"):
        return OSC777
    if _set(environ, "WT_SESSION") or _set(environ, "ConEmuPID") or _set(environ, "ConEmuANSI"):
        return OSC9
    if term.startswith(("foot", "rxvt")):
        return OSC777
    return BELL


def build_escape(kind: str, title: str, body: str, *, ident: str = "1") -> str:
    """The escape sequence of a desktop notification (``""`` for ``bell``). ``title`` and
    ``body`` are cleaned here; ``ident`` (kitty's notification id) must be ``[A-Za-z0-9]``."""
    title = clean_field(title, TITLE_LENGTH)
    body = clean_field(body, BODY_LENGTH)
    if kind == OSC777:
        return f"{ESC}]777;notify;{title};{body}{ST}"
    if kind == OSC9:
        return f"{ESC}]9;{title}: {body}{ST}" if body else f"{ESC}]9;{title}{ST}"
    if kind == OSC99:
        ident = re.sub(r"[^A-Za-z0-9]", "", ident) or "1"
        return f"{ESC}]99;i={ident}:d=0:p=title;{title}{ST}{ESC}]99;i={ident}:d=1:p=body;{body}{ST}"
    return ""


def tmux_wrap(sequence: str) -> str:
    """``sequence`` passed through tmux to the terminal outside it (DCS ``tmux;`` with every
    ESC doubled; tmux needs ``set -g allow-passthrough on``)."""
    return f"{ESC}Ptmux;{sequence.replace(ESC, ESC + ESC)}{ST}" if sequence else ""


def over_ssh(environ: Mapping[str, str]) -> bool:
    """True when running in an SSH session (a local bus would notify the wrong desktop)."""
    return any(_set(environ, name) for name in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"))


def local_session_bus(environ: Mapping[str, str]) -> bool:
    """True when a desktop's session bus is at hand: set, and not over SSH."""
    return _set(environ, "DBUS_SESSION_BUS_ADDRESS") and not over_ssh(environ)


def desktop_text(update: PushNotification, show_text: bool) -> tuple[str, str]:
    """The (untrusted, not yet cleaned) title and body of a notification."""
    if show_text and update.body:
        said = update.body
    elif update.highlight:
        said = "mentioned you"
    else:
        said = "sent a message"
    if update.is_dm and update.room_name == update.sender_name:
        return update.sender_name, said
    return update.room_name, f"{update.sender_name}: {said}"


def send_dbus_notification(title: str, body: str, *, urgent: bool, sound: bool) -> None:
    """(blocking; a worker thread) ``org.freedesktop.Notifications.Notify`` on the session
    bus. The body is XML-escaped: servers may read it as markup."""
    import html

    from jeepney import DBusAddress, MessageType, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    address = DBusAddress(
        "/org/freedesktop/Notifications",
        bus_name="org.freedesktop.Notifications",
        interface="org.freedesktop.Notifications",
    )
    hints: dict[str, tuple[str, Any]] = {
        "urgency": ("y", 2 if urgent else 1),
        "category": ("s", "im.received"),
    }
    if sound:
        hints["sound-name"] = ("s", "message-new-instant")
    message = new_method_call(
        address,
        "Notify",
        "susssasa{sv}i",
        (
            "tui_client",
            0,
            "",
            clean_field(title, TITLE_LENGTH),
            html.escape(clean_field(body, BODY_LENGTH), quote=False),
            [],
            hints,
            -1,
        ),
    )
    with open_dbus_connection(bus="SESSION") as connection:
        reply = connection.send_and_get_reply(message, timeout=3)
    if reply.header.message_type == MessageType.error:
        raise OSError(f"the notification server refused: {reply.body!r}")


@dataclass(frozen=True, slots=True)
class Screen:
    """What the user is looking at, for :class:`Notifier`."""

    focused: bool
    room_id: str | None


class Notifier:
    """Acts on :class:`PushNotification` updates (see the module documentation)."""

    def __init__(
        self,
        settings: Callable[[], AlertSettings | None],
        looking_at: Callable[[], Screen],
        write: Callable[[str], None],
        bell: Callable[[], None],
        *,
        environ: Mapping[str, str] | None = None,
        dbus: Callable[..., None] = send_dbus_notification,
        clock: Callable[[], float] = time.monotonic,
        account: Callable[[], str | None] | None = None,
    ) -> None:
        self._settings = settings
        #: The account to name in the title (several accounts in one window), if any.
        self._account = account
        self._looking_at = looking_at
        self._write = write
        self._bell = bell
        self._environ = os.environ if environ is None else environ
        self._dbus = dbus
        self._clock = clock
        self._recent: deque[float] = deque()
        self._count = 0
        self._tasks: set[asyncio.Future[None]] = set()

    def handle(self, update: object) -> None:
        """Notify of ``update`` if it is a notification the user should be told of now."""
        if not isinstance(update, PushNotification):
            return
        settings = self._settings()
        if settings is None or settings.mode == MODE_OFF:
            return
        screen = self._looking_at()
        if screen.focused and screen.room_id == update.room_id:
            return
        now = self._clock()
        while self._recent and now - self._recent[0] > BURST_WINDOW:
            self._recent.popleft()
        if len(self._recent) >= BURST:
            log.info("notification of %s not shown: too many at once", update.event_id)
            return
        self._recent.append(now)
        if settings.mode == MODE_BELL:
            self._bell()
            return
        title, body = desktop_text(update, settings.shows_text(update.encrypted))
        account = self._account() if self._account is not None else None
        if account:
            title = f"{title} ({account})"
        if local_session_bus(self._environ):
            self._notify_dbus(update, title, body)
        else:
            self._notify_terminal(update, title, body)

    def _notify_terminal(self, update: PushNotification, title: str, body: str) -> None:
        kind = terminal_kind(self._environ)
        self._count += 1
        sequence = build_escape(kind, title, body, ident=f"tc{self._count}")
        if sequence and _set(self._environ, "TMUX"):
            sequence = tmux_wrap(sequence)
        if sequence:
            self._write(sequence)
        if not sequence or update.sound:
            self._bell()

    def _notify_dbus(self, update: PushNotification, title: str, body: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._notify_terminal(update, title, body)
            return
        task = loop.run_in_executor(
            None,
            lambda: self._dbus(
                title, body, urgent=update.highlight, sound=update.sound is not None
            ),
        )
        self._tasks.add(task)

        def done(future: asyncio.Future[None]) -> None:
            self._tasks.discard(future)
            if future.cancelled() or future.exception() is not None:
                log.info(
                    "D-Bus notification failed (%s); using the terminal",
                    future.exception() if not future.cancelled() else "cancelled",
                )
                self._notify_terminal(update, title, body)

        task.add_done_callback(done)


# -- the app's side ------------------------------------------------------------------------


def attach(app: ClientApp, client: MatrixClient | None = None) -> Notifier:
    """The app's notifier: the settings of its client, its screen and focus, its driver.

    With ``client``, one account's: its own settings, and the user looks at none of its
    rooms while another account is in front.
    """

    def settings() -> AlertSettings | None:
        shown = client if client is not None else app.client
        return shown.notifications.alerts if shown is not None else None

    def looking_at() -> Screen:
        if client is not None and app.client is not client:
            return Screen(app.app_focus, None)
        chat = chat_screen_of(app)
        room = chat.current_room if chat is not None and app.screen is chat else None
        return Screen(app.app_focus, room)

    def write(sequence: str) -> None:
        # As App.bell does: the driver writes to the terminal, in order with the screen.
        driver = app._driver
        if not app.is_headless and driver is not None:
            driver.write(sequence)

    def account() -> str | None:
        # With several accounts in the window, say whose notification it is.
        if client is None or app.account_count() < 2:
            return None
        return client.user_id

    return Notifier(settings, looking_at, write, lambda: app.bell(), account=account)


_MODE_TITLES = {
    MODE_DESKTOP: (
        "Alerts: desktop notifications",
        "A desktop notification (or the bell) when you are not looking",
    ),
    MODE_BELL: ("Alerts: bell only", "Ring the terminal's bell when you are not looking"),
    MODE_OFF: ("Alerts: off", "No bell, no desktop notification (unread counts only)"),
}
_TEXT_TITLES = {
    TEXT_UNENCRYPTED: (
        "Alert text: unencrypted rooms only",
        "Show the message in alerts, but not an encrypted room's",
    ),
    TEXT_ALWAYS: ("Alert text: always", "Show the message in alerts, encrypted rooms' too"),
    TEXT_NEVER: ("Alert text: never", "Alerts say who wrote where, never what"),
}


def commands(app: ClientApp, client: MatrixClient) -> Iterable[SystemCommand]:
    """Palette entries (Ctrl+P) for how notifications reach the user."""
    alerts = client.notifications.alerts
    for mode, (title, help_text) in _MODE_TITLES.items():
        if mode != alerts.mode:
            yield SystemCommand(
                title,
                f"{help_text} (now: {alerts.mode})",
                partial(_change, app, alerts.set_mode, mode, title),
            )
    for text, (title, help_text) in _TEXT_TITLES.items():
        if text != alerts.text:
            yield SystemCommand(
                title,
                f"{help_text} (now: {alerts.text})",
                partial(_change, app, alerts.set_text, text, title),
            )


def _change(
    app: ClientApp, setter: Callable[[str], Awaitable[None]], value: str, title: str
) -> None:
    async def work() -> None:
        try:
            await setter(value)
            app.save_settings()
        except Exception as error:
            app.notify(
                f"Could not change alerts: {clean_line(str(error), 200)}",
                severity="error",
                markup=False,
            )
            return
        app.notify(f"{title}.", markup=False)

    app.run_worker(work(), exit_on_error=False)
